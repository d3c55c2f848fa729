//! Seeding instances in moto through the real SDK, for tests, the demo and the bench.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

/// Runs `count` instances (one reservation) with these tags; returns their ids. Panics with the
/// SDK's error: a test cannot go on without its fleet.
pub async fn launch(ec2: &aws_sdk_ec2::Client, count: i32, tags: &[(&str, &str)]) -> Vec<String> {
    let mut req = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(count)
        .max_count(count);
    // moto (like EC2) refuses a tag specification without tags.
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        req = req.tag_specifications(spec.build());
    }
    let out = req.send().await.unwrap_or_else(|e| {
        panic!(
            "RunInstances: {}",
            aws_sdk_ec2::error::DisplayErrorContext(e)
        )
    });
    out.instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect()
}

/// The value of tag `key` on instance `id` as moto holds it now (empty when absent).
pub async fn tag_of(ec2: &aws_sdk_ec2::Client, id: &str, key: &str) -> String {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "DescribeInstances {id}: {}",
                aws_sdk_ec2::error::DisplayErrorContext(e)
            )
        });
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .flat_map(|i| i.tags())
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
        .unwrap_or_default()
        .to_string()
}
