//! A stand-in for the AWS Price List Query API on loopback (moto has none): it speaks the real
//! protocol (awsJson1_1, `X-Amz-Target: AWSPriceListService.GetProducts`) and answers as AWS
//! documents it — `{"FormatVersion":"aws_v1","PriceList":["<product JSON as a string>",...],
//! "NextToken":...}` — from product documents shaped like the real ones (attributes, terms with
//! OnDemand and Reserved offers, price dimensions), recorded for a handful of types, regions,
//! platforms and EBS volume types. Filters are `TERM_MATCH` on the products' attributes; anything
//! else is refused with a `ValidationException` that names it, so a client that asks for more
//! fails loudly.
//!
//! Point the reaper at it with `AWS_ENDPOINT_URL_PRICING` ([`PriceListStub::url`]).

use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;
use tiny_http::{Header, Response, Server};

/// How the stub answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PricingMode {
    /// The recorded products.
    Ok,
    /// Every call: `AccessDeniedException` (an SCP or a role without `pricing:GetProducts`).
    Denied,
}

/// A compute product: (instance type, region, operatingSystem, preInstalledSw, tenancy, USD/h).
pub const COMPUTE: &[(&str, &str, &str, &str, &str, &str)] = &[
    (
        "t3.micro",
        "us-west-2",
        "Linux",
        "NA",
        "Shared",
        "0.0104000000",
    ),
    (
        "t3.medium",
        "us-west-2",
        "Linux",
        "NA",
        "Shared",
        "0.0416000000",
    ),
    (
        "t3.medium",
        "us-west-2",
        "Windows",
        "NA",
        "Shared",
        "0.0600000000",
    ),
    (
        "m5.large",
        "us-west-2",
        "Linux",
        "NA",
        "Shared",
        "0.0960000000",
    ),
    (
        "m5.large",
        "us-west-2",
        "Linux",
        "NA",
        "Dedicated",
        "0.1060000000",
    ),
    (
        "m5.large",
        "us-west-2",
        "Windows",
        "NA",
        "Shared",
        "0.1880000000",
    ),
    (
        "m5.large",
        "us-west-2",
        "Windows",
        "SQL Std",
        "Shared",
        "0.6680000000",
    ),
    (
        "c5.xlarge",
        "us-west-2",
        "RHEL",
        "NA",
        "Shared",
        "0.2300000000",
    ),
    (
        "t3.micro",
        "eu-west-1",
        "Linux",
        "NA",
        "Shared",
        "0.0114000000",
    ),
    (
        "t3.micro",
        "eu-west-1",
        "Windows",
        "NA",
        "Shared",
        "0.0206000000",
    ),
    // The bench's fake fleet (`fake_ec2::INSTANCE_TYPES`): eu-west-1 on-demand Linux.
    (
        "m5.large",
        "eu-west-1",
        "Linux",
        "NA",
        "Shared",
        "0.1070000000",
    ),
    (
        "c5.xlarge",
        "eu-west-1",
        "Linux",
        "NA",
        "Shared",
        "0.1920000000",
    ),
    (
        "t3.medium",
        "eu-west-1",
        "Linux",
        "NA",
        "Shared",
        "0.0456000000",
    ),
    (
        "m5.large",
        "eu-central-1",
        "Linux",
        "NA",
        "Shared",
        "0.1150000000",
    ),
];

/// An EBS product: (volumeApiName, region, productFamily, unit, beginRange, USD).
pub const EBS: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("gp2", "us-west-2", "Storage", "GB-Mo", "0", "0.1000000000"),
    ("gp3", "us-west-2", "Storage", "GB-Mo", "0", "0.0800000000"),
    (
        "gp3",
        "us-west-2",
        "System Operation",
        "IOPS-Mo",
        "0",
        "0.0050000000",
    ),
    (
        "gp3",
        "us-west-2",
        "Provisioned Throughput",
        "GiBps-mo",
        "0",
        "40.9600000000",
    ),
    ("io2", "us-west-2", "Storage", "GB-Mo", "0", "0.1250000000"),
    (
        "io2",
        "us-west-2",
        "System Operation",
        "IOPS-Mo",
        "0",
        "0.0650000000",
    ),
    (
        "io2",
        "us-west-2",
        "System Operation",
        "IOPS-Mo",
        "32000",
        "0.0455000000",
    ),
    (
        "standard",
        "us-west-2",
        "Storage",
        "GB-Mo",
        "0",
        "0.0500000000",
    ),
    (
        "standard",
        "us-west-2",
        "System Operation",
        "IOs",
        "0",
        "0.0000000500",
    ),
    ("gp3", "eu-west-1", "Storage", "GB-Mo", "0", "0.0880000000"),
    ("gp2", "eu-west-1", "Storage", "GB-Mo", "0", "0.1100000000"),
];

fn location(region: &str) -> &'static str {
    match region {
        "us-west-2" => "US West (Oregon)",
        "eu-west-1" => "EU (Ireland)",
        "eu-central-1" => "EU (Frankfurt)",
        _ => "US East (N. Virginia)",
    }
}

/// A product document as GetProducts returns it (one `PriceList` entry, before it is
/// serialised to a string): a Reserved offer beside the OnDemand one, as AWS sends both.
fn document(
    sku: &str,
    family: &str,
    attributes: Value,
    unit: &str,
    begin: &str,
    usd: &str,
) -> Value {
    let od = format!("{sku}.JRTCKXETXF");
    let ri = format!("{sku}.4NA7Y494T4");
    json!({
        "product": {"productFamily": family, "attributes": attributes, "sku": sku},
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {od.clone(): {
                "priceDimensions": {format!("{od}.6YS6EN2CT7"): {
                    "unit": unit, "endRange": "Inf", "description": format!("${usd} per {unit}"),
                    "appliesTo": [], "rateCode": format!("{od}.6YS6EN2CT7"), "beginRange": begin,
                    "pricePerUnit": {"USD": usd}
                }},
                "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "JRTCKXETXF",
                "termAttributes": {}
            }},
            "Reserved": {ri.clone(): {
                "priceDimensions": {format!("{ri}.6YS6EN2CT7"): {
                    "unit": unit, "endRange": "Inf", "description": "Reserved, 1 yr, no upfront",
                    "appliesTo": [], "rateCode": format!("{ri}.6YS6EN2CT7"), "beginRange": begin,
                    "pricePerUnit": {"USD": "0.0010000000"}
                }},
                "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "4NA7Y494T4",
                "termAttributes": {"LeaseContractLength": "1yr", "OfferingClass": "standard",
                    "PurchaseOption": "No Upfront"}
            }}
        },
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z"
    })
}

/// Every recorded product.
pub fn products() -> Vec<Value> {
    let mut out = Vec::new();
    for (n, (ty, region, os, sw, tenancy, usd)) in COMPUTE.iter().enumerate() {
        // The unused-capacity-reservation twin of every product, which `capacitystatus` filters
        // out: a client that forgets the filter sees two prices.
        for (status, price) in [
            ("Used", *usd),
            ("UnusedCapacityReservation", "9.9990000000"),
        ] {
            let attributes = json!({
                "instanceType": ty, "regionCode": region, "location": location(region),
                "locationType": "AWS Region", "operatingSystem": os, "preInstalledSw": sw,
                "tenancy": tenancy, "capacitystatus": status,
                "licenseModel": "No License required", "servicecode": "AmazonEC2",
                "usagetype": format!("USW2-BoxUsage:{ty}"), "operation": "RunInstances",
                "vcpu": "2", "memory": "8 GiB", "currentGeneration": "Yes"
            });
            out.push(document(
                &format!("C{n:03}{}", &status[..1]),
                "Compute Instance",
                attributes,
                "Hrs",
                "0",
                price,
            ));
        }
    }
    for (n, (api, region, family, unit, begin, usd)) in EBS.iter().enumerate() {
        let attributes = json!({
            "volumeApiName": api, "regionCode": region, "location": location(region),
            "locationType": "AWS Region", "servicecode": "AmazonEC2",
            "usagetype": format!("EBS:{family}.{api}")
        });
        out.push(document(
            &format!("E{n:03}"),
            family,
            attributes,
            unit,
            begin,
            usd,
        ));
    }
    out
}

/// One GetProducts request as the stub received it.
#[derive(Debug, Clone, PartialEq)]
pub struct PricingRequest {
    pub target: String,
    pub body: Value,
}

#[derive(Default)]
struct State {
    requests: Vec<PricingRequest>,
    shutdown: bool,
}

/// The stub, on `127.0.0.1:<free port>`, in a background thread; stopped on drop.
pub struct PriceListStub {
    state: Arc<Mutex<State>>,
    port: u16,
    acceptor: Option<JoinHandle<()>>,
}

impl PriceListStub {
    /// Starts the stub; panics (the test cannot go on) when it cannot listen.
    pub fn start(mode: PricingMode) -> PriceListStub {
        let server = Server::http("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("reaper-e2e: cannot start the Price List stub: {e}"));
        let port = server
            .server_addr()
            .to_ip()
            .expect("a TCP listener has an IP address")
            .port();
        let state: Arc<Mutex<State>> = Arc::default();
        let products: Vec<Value> = products();
        let acceptor = {
            let state = Arc::clone(&state);
            thread::Builder::new()
                .name("pricing-stub".into())
                .spawn(move || serve(server, state, mode, products))
                .expect("spawn the Price List stub thread")
        };
        PriceListStub {
            state,
            port,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_PRICING`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<PricingRequest> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for PriceListStub {
    fn drop(&mut self) {
        self.lock().shutdown = true;
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn serve(server: Server, state: Arc<Mutex<State>>, mode: PricingMode, products: Vec<Value>) {
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if lock().shutdown {
            return;
        }
        let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        let header = |name: &'static str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.as_str().to_string())
        };
        let target = header("X-Amz-Target").unwrap_or_default();
        let content_type = header("Content-Type").unwrap_or_default();
        let mut raw = String::new();
        let _ = std::io::Read::read_to_string(request.as_reader(), &mut raw);
        let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
        lock().requests.push(PricingRequest {
            target: target.clone(),
            body: body.clone(),
        });
        let (status, answer) = if content_type != "application/x-amz-json-1.1" {
            error(
                "SerializationException",
                &format!("Content-Type {content_type:?} is not application/x-amz-json-1.1"),
            )
        } else if target != "AWSPriceListService.GetProducts" {
            error(
                "UnknownOperationException",
                &format!("the stub answers AWSPriceListService.GetProducts, not {target:?}"),
            )
        } else if mode == PricingMode::Denied {
            (
                400,
                json!({"__type": "AccessDeniedException",
                    "Message": "User: arn:aws:sts::123456789012:assumed-role/reaper/fn is not authorized to perform: pricing:GetProducts with an explicit deny in a service control policy"}),
            )
        } else {
            get_products(&body, &products)
        };
        let response = Response::from_string(answer.to_string())
            .with_status_code(status)
            .with_header(
                Header::from_bytes("Content-Type", "application/x-amz-json-1.1")
                    .expect("a valid header"),
            )
            .with_header(
                Header::from_bytes("x-amzn-RequestId", uuid::Uuid::new_v4().to_string())
                    .expect("a valid header"),
            );
        let _ = request.respond(response);
    }
}

fn error(code: &str, message: &str) -> (u16, Value) {
    (400, json!({"__type": code, "Message": message}))
}

/// GetProducts over the recorded products: TERM_MATCH filters, MaxResults, NextToken (the index
/// of the next product, as an opaque string).
fn get_products(body: &Value, products: &[Value]) -> (u16, Value) {
    if body["ServiceCode"] != "AmazonEC2" {
        return error(
            "ValidationException",
            &format!("the stub holds AmazonEC2 only, not {}", body["ServiceCode"]),
        );
    }
    if !matches!(body["FormatVersion"].as_str(), None | Some("aws_v1")) {
        return error("ValidationException", "FormatVersion must be aws_v1");
    }
    let mut filters = Vec::new();
    for f in body["Filters"].as_array().into_iter().flatten() {
        if f["Type"] != "TERM_MATCH" {
            return error(
                "ValidationException",
                &format!(
                    "the stub understands TERM_MATCH filters only, not {}",
                    f["Type"]
                ),
            );
        }
        let (Some(field), Some(value)) = (f["Field"].as_str(), f["Value"].as_str()) else {
            return error("ValidationException", "a filter needs Field and Value");
        };
        filters.push((field, value));
    }
    let matching: Vec<&Value> = products
        .iter()
        .filter(|p| {
            filters
                .iter()
                .all(|(field, value)| p["product"]["attributes"][*field].as_str() == Some(*value))
        })
        .collect();
    let max = body["MaxResults"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    let start: usize = match body["NextToken"].as_str() {
        None => 0,
        Some(t) => match t.strip_prefix("stub-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return error("InvalidNextTokenException", "unknown NextToken"),
        },
    };
    let page: Vec<String> = matching
        .iter()
        .skip(start)
        .take(max)
        .map(|p| p.to_string())
        .collect();
    let mut answer = json!({"FormatVersion": "aws_v1", "PriceList": page});
    if start + max < matching.len() {
        answer["NextToken"] = json!(format!("stub-{}", start + max));
    }
    (200, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn term_match_filters_select_one_product_and_pages_follow_next_token() {
        let products = products();
        let body = json!({"ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1", "Filters": [
            {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "m5.large"},
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-west-2"},
            {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
            {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
            {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
            {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"}]});
        let (status, answer) = get_products(&body, &products);
        assert_eq!(status, 200);
        let list = answer["PriceList"].as_array().unwrap();
        assert_eq!(list.len(), 1);
        let doc: Value = serde_json::from_str(list[0].as_str().unwrap()).unwrap();
        let od = doc["terms"]["OnDemand"].as_object().unwrap();
        let dim = od.values().next().unwrap()["priceDimensions"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone();
        assert_eq!(dim["pricePerUnit"]["USD"], "0.0960000000");
        let all = json!({"ServiceCode": "AmazonEC2", "MaxResults": 3});
        let (_, first) = get_products(&all, &products);
        assert_eq!(first["NextToken"], "stub-3");
        let (status, bad) = get_products(
            &json!({"ServiceCode": "AmazonEC2", "Filters": [{"Type": "CONTAINS", "Field": "x", "Value": "y"}]}),
            &products,
        );
        assert_eq!(
            (status, bad["__type"].as_str()),
            (400, Some("ValidationException"))
        );
    }
}
