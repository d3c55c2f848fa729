//! `Prices` over the AWS Price List Query API (aws-sdk-pricing, `GetProducts`): one call per
//! distinct compute configuration or EBS volume type, each answer kept for the life of the
//! container (list prices change a few times a year, a Lambda container lives hours).

use super::{api_error, within, CallCounter};
use crate::policy::price::{ComputeKey, Usd, VolumeRates};
use crate::ports::{ApiError, Deadline, ErrorKind, Prices};
use aws_sdk_pricing::types::{Filter, FilterType};
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// The Price List Query API answers in these three regions only; it is callable from any.
const ENDPOINT_REGIONS: [&str; 3] = ["us-east-1", "eu-central-1", "ap-south-1"];
/// Products a page holds at most (the API's maximum).
const PAGE_SIZE: i32 = 100;
/// An exact question has one product; more pages than this is a filter that matched too much.
const MAX_PAGES: usize = 5;

/// The endpoint nearest to `region`: Asia-Pacific asks Mumbai, Europe, the Middle East and
/// Africa ask Frankfurt, the rest North Virginia.
pub(crate) fn endpoint_region(region: &str) -> &'static str {
    if region.starts_with("ap-") {
        ENDPOINT_REGIONS[2]
    } else if ["eu-", "me-", "af-", "il-"]
        .iter()
        .any(|p| region.starts_with(p))
    {
        ENDPOINT_REGIONS[1]
    } else {
        ENDPOINT_REGIONS[0]
    }
}

#[derive(Debug)]
pub struct PriceList {
    client: aws_sdk_pricing::Client,
    calls: CallCounter,
    compute: Mutex<HashMap<ComputeKey, Usd>>,
    volumes: Mutex<HashMap<(String, String), VolumeRates>>,
}

impl PriceList {
    /// A Price List client for a fleet in `region`, with its own call counter (the run adds its
    /// calls to the fleet's). Built from the SDK configuration, so `AWS_ENDPOINT_URL_PRICING`
    /// (or `AWS_ENDPOINT_URL`) points it elsewhere.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, region: &str) -> Self {
        let calls = CallCounter::default();
        // Few and short attempts: a price is worth less than the report's time to its sinks.
        let conf = aws_sdk_pricing::config::Builder::from(sdk)
            .region(aws_config::Region::new(endpoint_region(region)))
            .retry_config(aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                aws_smithy_types::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_millis(3100))
                    .operation_attempt_timeout(std::time::Duration::from_secs(5))
                    .operation_timeout(std::time::Duration::from_secs(10))
                    .build(),
            )
            .interceptor(calls.clone())
            .build();
        Self {
            client: aws_sdk_pricing::Client::from_conf(conf),
            calls,
            compute: Mutex::default(),
            volumes: Mutex::default(),
        }
    }

    /// Every product document matching `filters` (AmazonEC2), following `NextToken`.
    async fn products(
        &self,
        filters: &[(&str, &str)],
        deadline: Deadline,
    ) -> Result<Vec<String>, ApiError> {
        let filters: Vec<Filter> = filters
            .iter()
            .filter_map(|(field, value)| {
                Filter::builder()
                    .r#type(FilterType::TermMatch)
                    .field(*field)
                    .value(*value)
                    .build()
                    .ok()
            })
            .collect();
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let call = self
                .client
                .get_products()
                .service_code("AmazonEC2")
                .format_version("aws_v1")
                .set_filters(Some(filters.clone()))
                .max_results(PAGE_SIZE)
                .set_next_token(token.take())
                .send();
            let page = within("GetProducts", deadline.for_work(), async {
                call.await.map_err(api_error)
            })
            .await?;
            out.extend(page.price_list().iter().cloned());
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }
}

/// A product document of the Price List (`aws_v1`), as far as the ledger reads it.
#[derive(Deserialize)]
struct Product {
    product: ProductInfo,
    #[serde(default)]
    terms: Terms,
}

#[derive(Deserialize)]
struct ProductInfo {
    #[serde(rename = "productFamily", default)]
    family: String,
}

#[derive(Deserialize, Default)]
struct Terms {
    #[serde(rename = "OnDemand", default)]
    on_demand: BTreeMap<String, Term>,
}

#[derive(Deserialize)]
struct Term {
    #[serde(rename = "priceDimensions", default)]
    dimensions: BTreeMap<String, Dimension>,
}

#[derive(Deserialize)]
struct Dimension {
    unit: String,
    #[serde(rename = "beginRange", default)]
    begin: Option<String>,
    #[serde(rename = "pricePerUnit")]
    price: BTreeMap<String, String>,
}

fn malformed(why: String) -> ApiError {
    ApiError::new("MalformedPriceList", why, ErrorKind::Transient)
}

fn no_price(what: String) -> ApiError {
    ApiError::new(
        "NoPrice",
        format!("the Price List has no on-demand price for {what}"),
        ErrorKind::Instance,
    )
}

/// The on-demand (family, unit, first-tier USD) of each dimension of each document.
fn dimensions(documents: &[String]) -> Result<Vec<(String, String, Usd)>, ApiError> {
    let mut out = Vec::new();
    for doc in documents {
        let product: Product = serde_json::from_str(doc).map_err(|e| {
            malformed(format!(
                "a GetProducts PriceList entry is not a product document: {e}"
            ))
        })?;
        for dim in product
            .terms
            .on_demand
            .values()
            .flat_map(|t| t.dimensions.values())
        {
            // A tiered rate (io2 above 32 000 IOPS) is priced at its first tier.
            if dim.begin.as_deref().is_some_and(|b| b != "0") {
                continue;
            }
            let Some(usd) = dim.price.get("USD") else {
                continue;
            };
            let usd = Usd::parse(usd).map_err(malformed)?;
            out.push((product.product.family.clone(), dim.unit.clone(), usd));
        }
    }
    Ok(out)
}

/// The hourly price among a compute answer's documents.
pub(crate) fn compute_price(documents: &[String], what: &str) -> Result<Usd, ApiError> {
    dimensions(documents)?
        .into_iter()
        .find(|(_, unit, _)| unit == "Hrs")
        .map(|(_, _, usd)| usd)
        .ok_or_else(|| no_price(what.to_string()))
}

/// The monthly rates among a volume type's documents: storage per GB-month, provisioned IOPS
/// per IOPS-month, provisioned throughput per MiB/s-month (the Price List writes it per
/// GiBps-month).
pub(crate) fn volume_rates(documents: &[String], what: &str) -> Result<VolumeRates, ApiError> {
    let mut rates = VolumeRates::default();
    let mut storage = false;
    for (family, unit, usd) in dimensions(documents)? {
        match (family.as_str(), unit.as_str()) {
            ("Storage", "GB-Mo") => {
                rates.per_gib = usd;
                storage = true;
            }
            ("System Operation", "IOPS-Mo") => rates.per_iops = Some(usd),
            ("Provisioned Throughput", "GiBps-mo") => {
                rates.per_mibps = Some(usd.per_mib_of_gib());
            }
            ("Provisioned Throughput", "MiBps-mo") => rates.per_mibps = Some(usd),
            _ => {}
        }
    }
    storage
        .then_some(rates)
        .ok_or_else(|| no_price(what.to_string()))
}

impl Prices for PriceList {
    fn compute(
        &self,
        key: &ComputeKey,
        deadline: Deadline,
    ) -> BoxFuture<'_, Result<Usd, ApiError>> {
        let key = key.clone();
        async move {
            if let Some(hit) = self.compute.lock().ok().and_then(|c| c.get(&key).copied()) {
                return Ok(hit);
            }
            let filters = [
                ("instanceType", key.instance_type.as_str()),
                ("regionCode", key.region.as_str()),
                ("locationType", "AWS Region"),
                ("operatingSystem", key.operating_system),
                ("preInstalledSw", key.pre_installed_sw),
                ("licenseModel", key.license_model),
                ("tenancy", key.tenancy.price_list_name()),
                ("capacitystatus", "Used"),
            ];
            let docs = self.products(&filters, deadline).await?;
            let what = format!(
                "{} {} ({} tenancy) in {}",
                key.instance_type,
                key.operating_system,
                key.tenancy.price_list_name(),
                key.region
            );
            let usd = compute_price(&docs, &what)?;
            if let Ok(mut cache) = self.compute.lock() {
                cache.insert(key, usd);
            }
            Ok(usd)
        }
        .boxed()
    }

    fn volume(
        &self,
        region: &str,
        volume_type: &str,
        deadline: Deadline,
    ) -> BoxFuture<'_, Result<VolumeRates, ApiError>> {
        let key = (region.to_string(), volume_type.to_string());
        async move {
            if let Some(hit) = self.volumes.lock().ok().and_then(|c| c.get(&key).copied()) {
                return Ok(hit);
            }
            let filters = [
                ("volumeApiName", key.1.as_str()),
                ("regionCode", key.0.as_str()),
                ("locationType", "AWS Region"),
            ];
            let docs = self.products(&filters, deadline).await?;
            let rates = volume_rates(&docs, &format!("EBS {} in {}", key.1, key.0))?;
            if let Ok(mut cache) = self.volumes.lock() {
                cache.insert(key, rates);
            }
            Ok(rates)
        }
        .boxed()
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.calls.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(family: &str, unit: &str, usd: &str, begin: &str) -> String {
        serde_json::json!({
            "product": {"productFamily": family, "attributes": {"regionCode": "eu-west-1"}, "sku": "S"},
            "serviceCode": "AmazonEC2",
            "terms": {"OnDemand": {"S.JRTCKXETXF": {
                "priceDimensions": {"S.JRTCKXETXF.6YS6EN2CT7": {
                    "unit": unit, "beginRange": begin, "endRange": "Inf",
                    "pricePerUnit": {"USD": usd}, "description": "d"
                }},
                "sku": "S", "offerTermCode": "JRTCKXETXF", "termAttributes": {}
            }}},
            "version": "20261101", "publicationDate": "2026-11-01T00:00:00Z"
        })
        .to_string()
    }

    #[test]
    fn an_hourly_price_is_read_from_the_on_demand_terms() {
        let docs = [doc("Compute Instance", "Hrs", "0.0416000000", "0")];
        assert_eq!(
            compute_price(&docs, "t3.medium").unwrap(),
            Usd::parse("0.0416").unwrap()
        );
        let err = compute_price(&[], "t3.medium Linux (Shared tenancy) in eu-west-1").unwrap_err();
        assert_eq!(err.code, "NoPrice");
        assert_eq!(
            err.message,
            "the Price List has no on-demand price for t3.medium Linux (Shared tenancy) in eu-west-1"
        );
        let err = compute_price(&["{}".to_string()], "x").unwrap_err();
        assert_eq!(err.code, "MalformedPriceList");
        assert!(!err.message.contains("Error("), "{}", err.message);
    }

    #[test]
    fn volume_rates_take_storage_iops_and_throughput_and_the_first_tier() {
        let docs = [
            doc("Storage", "GB-Mo", "0.0880000000", "0"),
            doc("System Operation", "IOPS-Mo", "0.0550000000", "0"),
            doc("System Operation", "IOPS-Mo", "0.0300000000", "32000"),
            doc("Provisioned Throughput", "GiBps-mo", "40.9600000000", "0"),
        ];
        let rates = volume_rates(&docs, "EBS io2 in eu-west-1").unwrap();
        assert_eq!(rates.per_gib, Usd::parse("0.088").unwrap());
        assert_eq!(rates.per_iops, Some(Usd::parse("0.055").unwrap()));
        assert_eq!(rates.per_mibps, Some(Usd::parse("0.04").unwrap()));
        assert_eq!(
            volume_rates(&docs[1..2], "EBS io2 in eu-west-1")
                .unwrap_err()
                .code,
            "NoPrice"
        );
    }

    #[test]
    fn the_endpoint_is_the_nearest_of_the_three() {
        assert_eq!(endpoint_region("ap-southeast-2"), "ap-south-1");
        assert_eq!(endpoint_region("eu-west-1"), "eu-central-1");
        assert_eq!(endpoint_region("me-central-1"), "eu-central-1");
        assert_eq!(endpoint_region("us-west-2"), "us-east-1");
        assert_eq!(endpoint_region("sa-east-1"), "us-east-1");
    }
}
