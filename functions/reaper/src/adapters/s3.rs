//! The report archive (SPEC §8): one S3 object per run, the whole report, never trimmed.
//!
//! The object is written with `delivery.s3` already set to its own address, so the S3 copy and
//! the report the run returns are the same document when the write succeeds. `app::deliver`
//! writes it before Slack (so Slack links only a copy that exists) and again after Slack and the
//! owner notices, so their outcome is in the archived copy too. When the first write fails, the
//! returned report says so (`delivery.s3 = null`, an `s3: ...` line in `errors`).

use super::{api_error, within, CallCounter};
use crate::ports::{Archive, ArchiveError, Deadline};
use aws_sdk_s3::primitives::ByteStream;

/// The S3 report archive: one object per run, the whole report, never trimmed.
#[derive(Debug, Clone)]
pub struct S3Archive {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Archive {
    /// An S3 client whose calls are counted on `calls` (the run's API-call report).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, calls: &CallCounter, bucket: String) -> Self {
        Self {
            client: super::s3_client(sdk, calls),
            bucket,
        }
    }
}

impl S3Archive {
    /// One small JSON document under `key` within `limit` (an owner action's record: the
    /// person who clicked is waiting, so it gets what is left of Slack's 3 s, not a sink's share).
    pub async fn put_within(
        &self,
        key: &str,
        body: Vec<u8>,
        limit: std::time::Duration,
    ) -> Result<(), ArchiveError> {
        self.put_as(key, body, "application/json", None, Some(limit))
            .await
    }

    /// One PutObject of `body` as `content_type`, within `limit`.
    async fn put_as(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        encoding: Option<&str>,
        limit: Option<std::time::Duration>,
    ) -> Result<(), ArchiveError> {
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_content_encoding(encoding.map(str::to_string))
            .body(ByteStream::from(body))
            .send();
        within("PutObject", limit, async { put.await.map_err(api_error) })
            .await
            .map(drop)
            .map_err(ArchiveError::Refused)
    }
}

impl Archive for S3Archive {
    /// `s3://<bucket>/<key>`: known before the write, so the Slack message can link to it.
    fn address(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    async fn put(&self, key: &str, body: Vec<u8>, deadline: Deadline) -> Result<(), ArchiveError> {
        self.put_as(key, body, "application/json", None, deadline.for_sink())
            .await
    }

    async fn put_records(
        &self,
        key: &str,
        body: Vec<u8>,
        deadline: Deadline,
    ) -> Result<(), ArchiveError> {
        use crate::report::evidence::{CONTENT_ENCODING, CONTENT_TYPE};
        self.put_as(
            key,
            body,
            CONTENT_TYPE,
            Some(CONTENT_ENCODING),
            deadline.for_sink(),
        )
        .await
    }

    /// A missing key is `None` (S3 says NoSuchKey only to a role that may list the bucket; to
    /// this one it says AccessDenied, which is reported as it is).
    async fn get(&self, key: &str, deadline: Deadline) -> Result<Option<Vec<u8>>, ArchiveError> {
        let get = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send();
        within("GetObject", deadline.for_sink(), async {
            match get.await {
                Ok(out) => out
                    .body
                    .collect()
                    .await
                    .map(|b| Some(b.to_vec()))
                    .map_err(|e| {
                        crate::ports::ApiError::new(
                            "ReadError",
                            format!("the object's body was cut off: {e}"),
                            crate::ports::ErrorKind::Transient,
                        )
                    }),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                Err(e) => Err(api_error(e)),
            }
        })
        .await
        .map_err(ArchiveError::Refused)
    }
}

/// The evidence store in S3 (`reaperctl report`): every call within `CALL_TIMEOUT`.
#[derive(Debug, Clone)]
pub struct S3Evidence {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Keys are `<root><key>` (the `/PREFIX` of `s3://BUCKET/PREFIX`, with its `/`).
    root: String,
}

/// The longest one S3 call of `reaperctl report` may take.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl S3Evidence {
    pub fn from_sdk(
        sdk: &aws_config::SdkConfig,
        calls: &CallCounter,
        bucket: String,
        prefix: &str,
    ) -> Self {
        let prefix = prefix.trim_matches('/');
        Self {
            client: super::s3_client(sdk, calls),
            bucket,
            root: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        }
    }

    /// Every page of a listing under `prefix` with `/` as delimiter: folders and keys.
    async fn list(&self, prefix: &str) -> Result<(Vec<String>, Vec<String>), String> {
        let full = format!("{}{prefix}", self.root);
        let mut folders = Vec::new();
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let call = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full)
                .delimiter("/")
                .set_continuation_token(token.take())
                .send();
            let page = within("ListObjectsV2", Some(CALL_TIMEOUT), async {
                call.await.map_err(api_error)
            })
            .await
            .map_err(|e| format!("listing s3://{}/{full}: {e}", self.bucket))?;
            for p in page.common_prefixes() {
                if let Some(name) = p.prefix().and_then(|p| p.strip_prefix(&full)) {
                    folders.push(name.trim_end_matches('/').to_string());
                }
            }
            for o in page.contents() {
                if let Some(key) = o.key().and_then(|k| k.strip_prefix(&self.root)) {
                    keys.push(key.to_string());
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        Ok((folders, keys))
    }
}

impl crate::ports::EvidenceStore for S3Evidence {
    async fn folders(&self, prefix: &str) -> Result<Vec<String>, String> {
        Ok(self.list(prefix).await?.0)
    }

    async fn files(&self, prefix: &str) -> Result<Vec<String>, String> {
        Ok(self.list(prefix).await?.1)
    }

    async fn read(&self, key: &str) -> Result<Vec<u8>, String> {
        let full = format!("{}{key}", self.root);
        let get = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send();
        within("GetObject", Some(CALL_TIMEOUT), async {
            let out = get.await.map_err(api_error)?;
            out.body.collect().await.map(|b| b.to_vec()).map_err(|e| {
                crate::ports::ApiError::new(
                    "ReadError",
                    format!("the object's body was cut off: {e}"),
                    crate::ports::ErrorKind::Transient,
                )
            })
        })
        .await
        .map_err(|e| format!("reading s3://{}/{full}: {e}", self.bucket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::VerdictKind;
    use crate::report::RunReport;
    use crate::report::{InstanceReport, Mode, Outcome};
    use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
    use aws_sdk_s3::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;
    use chrono::{TimeZone, Utc};
    use std::sync::{Arc, Mutex};

    /// Bucket, key, content type and body of one PutObject.
    type Put = (String, String, Option<String>, Vec<u8>);

    fn report() -> RunReport {
        let started = Utc.with_ymd_and_hms(2030, 3, 7, 23, 59, 58).unwrap();
        let mut r = RunReport::new(
            "0b6c3c1e-5f0e-4c2b-9a53-7f1d2a9e8c41".into(),
            "123456789012".into(),
            "eu-west-1".into(),
            Mode::Live,
            crate::report::TriggerKind::Schedule,
            started,
        );
        r.finished_at = started + chrono::TimeDelta::seconds(3);
        r.instances.push(InstanceReport {
            id: "i-0123456789abcdef0".into(),
            name: Some("web <1> & co".into()),
            owner: Some("alice@example.com".into()),
            state: crate::policy::InstanceState::Running,
            verdict: VerdictKind::Terminate,
            reason: "termination_date 2030-03-01T00:00:00Z has passed".into(),
            termination_date: "2030-03-01T00:00:00Z".parse().ok(),
            bound: false,
            heads_up: false,
            outcome: Some(Outcome::Done),
            error: None,
            notice: None,
            saving: None,
        });
        r.counts.verdicts.insert(VerdictKind::Terminate, 1);
        r.counts.outcomes.insert(Outcome::Done, 1);
        r.delivery.slack = Some(crate::report::SlackStatus::Sent);
        r
    }

    #[test]
    fn key_is_account_region_utc_date_and_run_id() {
        let mut r = report();
        assert_eq!(
            r.archive_key(),
            "reports/123456789012/eu-west-1/2030/03/07/0b6c3c1e-5f0e-4c2b-9a53-7f1d2a9e8c41.json"
        );
        // The date is the start's, in UTC, zero-padded.
        r.started_at = Utc.with_ymd_and_hms(2031, 12, 1, 0, 0, 0).unwrap();
        assert!(r.archive_key().contains("/2031/12/01/"));
    }

    #[tokio::test]
    async fn the_whole_report_is_put_as_json_and_equals_the_returned_report() {
        let seen: Arc<Mutex<Vec<Put>>> = Arc::default();
        // One rule per put: the report, then the records.
        let recording = || {
            let sink = seen.clone();
            mock!(Client::put_object).then_compute_output(move |req| {
                sink.lock().unwrap().push((
                    req.bucket().unwrap_or_default().to_string(),
                    req.key().unwrap_or_default().to_string(),
                    req.content_type().map(str::to_string),
                    req.body().bytes().unwrap_or_default().to_vec(),
                ));
                PutObjectOutput::builder().build()
            })
        };
        let (put, put_records) = (recording(), recording());
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&put, &put_records]);
        let archive = S3Archive {
            client,
            bucket: "reaper-reports".into(),
        };
        let r = report();
        archive
            .put(
                &r.archive_key(),
                serde_json::to_vec(&r).unwrap(),
                Deadline::NONE,
            )
            .await
            .unwrap();

        assert_eq!(put.num_calls(), 1);
        let key = r.archive_key();
        assert_eq!(
            archive.address(&r.archive_key()),
            format!("s3://reaper-reports/{key}")
        );
        let first = seen.lock().unwrap()[0].clone();
        let (bucket, put_key, content_type, body) = &first;
        assert_eq!(bucket, "reaper-reports");
        assert_eq!(put_key, &key);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let archived: RunReport = serde_json::from_slice(body).unwrap();
        assert_eq!(archived, r, "the S3 copy is the returned report");

        // The run's records (docs/EVIDENCE.md): JSON lines, under their own key and type.
        let records = crate::report::evidence::render(&r);
        let key = crate::report::evidence::key(&r);
        archive
            .put_records(&key, records.clone(), Deadline::NONE)
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        let (_, put_key, content_type, body) = &seen[1];
        assert_eq!(put_key, &key);
        assert_eq!(content_type.as_deref(), Some("application/x-ndjson"));
        assert_eq!(body, &records);
    }

    #[tokio::test]
    async fn a_failed_write_says_why() {
        let denied = mock!(Client::put_object).then_error(|| {
            PutObjectError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("User is not authorized to perform: s3:PutObject")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&denied]);
        let archive = S3Archive {
            client,
            bucket: "reaper-reports".into(),
        };
        assert_eq!(
            archive
                .put(
                    &report().archive_key(),
                    serde_json::to_vec(&report()).unwrap(),
                    Deadline::NONE
                )
                .await
                .map_err(|e| e.to_string()),
            Err("AccessDenied: User is not authorized to perform: s3:PutObject".into())
        );
    }

    /// README.md shows an S3 copy; it must stay one the reaper writes and reads.
    #[test]
    fn the_documented_example_is_a_real_report() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let doc = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (moved? update this test)", path.display()));
        let start = doc.find("```json\n").expect("a ```json example") + "```json\n".len();
        let end = start + doc[start..].find("\n```").expect("the example's end");
        let example: serde_json::Value = serde_json::from_str(&doc[start..end]).unwrap();
        let report: RunReport = serde_json::from_value(example.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            example,
            "no field missing or extra"
        );
        assert_eq!(
            report.delivery.s3,
            Some(format!(
                "s3://reaper-reports-123456789012/{}",
                report.archive_key()
            ))
        );
    }
}
