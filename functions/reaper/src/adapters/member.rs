//! The owner-actions function's reach into a member account: it assumes the role the reaper
//! StackSet deploys there, `<ACTIONS_ROLE_NAME>-<region>` (IAM roles are global, so each
//! region's stack names its own), whose policy may only write `termination_date` on announced
//! instances of that region, and lists and tags through it. Credentials are kept per account and
//! region for ten minutes (they last fifteen): a burst of clicks costs one AssumeRole, not one each. Also reads
//! the function's two secrets, each in its own region.

use super::ec2::Ec2Fleet;
use super::{api_error, within, CallCounter};
use crate::click::token::LinkKey;
use crate::ports::{ApiError, Deadline, ErrorKind};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const REUSE_FOR: Duration = Duration::from_secs(600);

pub struct MemberAccounts {
    sdk: aws_config::SdkConfig,
    sts: aws_sdk_sts::Client,
    role_name: String,
    partition: String,
    cache: Mutex<HashMap<(String, String), (Instant, Credentials)>>,
}

impl MemberAccounts {
    pub fn new(sdk: &aws_config::SdkConfig, role_name: &str, partition: &str) -> Self {
        Self {
            sdk: sdk.clone(),
            sts: aws_sdk_sts::Client::new(sdk),
            role_name: role_name.to_string(),
            partition: partition.to_string(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The role's ARN in `account` for `region`.
    fn role_arn(&self, account: &str, region: &str) -> String {
        format!(
            "arn:{}:iam::{account}:role/{}-{region}",
            self.partition, self.role_name
        )
    }

    /// EC2 in `account` and `region`, through the actions role there.
    pub async fn fleet(
        &self,
        account: &str,
        region: &str,
        deadline: Deadline,
    ) -> Result<Ec2Fleet, ApiError> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(account.to_string(), region.to_string()))
            .filter(|(at, _)| at.elapsed() < REUSE_FOR)
            .map(|(_, c)| c.clone());
        let creds = match cached {
            Some(c) => c,
            None => {
                let c = self.assume(account, region, deadline).await?;
                self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    (account.to_string(), region.to_string()),
                    (Instant::now(), c.clone()),
                );
                c
            }
        };
        let sdk = self
            .sdk
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .region(aws_types::region::Region::new(region.to_string()))
            .build();
        Ok(Ec2Fleet::from_sdk(&sdk))
    }

    async fn assume(
        &self,
        account: &str,
        region: &str,
        deadline: Deadline,
    ) -> Result<Credentials, ApiError> {
        let out = within("AssumeRole", deadline.for_work(), async {
            self.sts
                .assume_role()
                .role_arn(self.role_arn(account, region))
                .role_session_name("ec2-reaper-actions")
                .duration_seconds(900)
                .send()
                .await
                .map_err(api_error)
        })
        .await?;
        let c = out.credentials().ok_or_else(|| {
            ApiError::new(
                "NoCredentials",
                "AssumeRole answered without credentials",
                ErrorKind::AccountWide,
            )
        })?;
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "ec2-reaper-actions",
        ))
    }
}

/// The link key that signs and checks keep buttons and links (LINK_KEY_ARN), read once at start
/// by the reaper (which signs) and by reaper-actions (which checks), within 10 s; the error names
/// the secret and why it cannot be used.
pub async fn link_key(sdk: &aws_config::SdkConfig, arn: &str) -> Result<LinkKey, String> {
    let start = Deadline::interactive(Duration::from_secs(10), Duration::from_secs(1));
    secret_string(sdk, arn, start)
        .await
        .map_err(|e| e.to_string())
        .and_then(|s| LinkKey::new(s.as_bytes()))
        .map_err(|e| format!("LINK_KEY_ARN {arn} could not be read ({e})"))
}

/// The string value of the secret `arn`, read in the secret's region.
pub async fn secret_string(
    sdk: &aws_config::SdkConfig,
    arn: &str,
    deadline: Deadline,
) -> Result<String, ApiError> {
    let client = super::secrets_client_for(sdk, &CallCounter::default(), arn);
    let out = within("GetSecretValue", deadline.for_work(), async {
        client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(api_error)
    })
    .await?;
    out.secret_string().map(str::to_string).ok_or_else(|| {
        ApiError::new(
            "NoSecretString",
            format!(
                "secret {arn} has no string value (set it with put-secret-value --secret-string)"
            ),
            ErrorKind::AccountWide,
        )
    })
}
