//! Owner e-mail end to end (SPEC §8): notices grouped per owner, rendered, and sent through the
//! real SES v2 SDK to moto server, then read back from moto's sent-message store.
//!
//! moto keeps one body per message: the HTML part when a message has both (the text part is
//! proved by the golden file `notice_email.txt`).

use chrono::{DateTime, TimeZone, Utc};
use reaper::adapters::ses::Mailer;
use reaper::adapters::CallCounter;
use reaper::render::notice::{
    group, render_email, EmailContext, NoticeEvent, NoticeItem, OwnerAddress, OwnerNotice,
};
use reaper_e2e::{net, Moto};
use serde_json::Value;
use std::time::Duration;

const REGION: &str = "eu-west-1";
const FROM: &str = "reaper@example.com";

/// One message as moto recorded it.
#[derive(Debug)]
struct Sent {
    source: String,
    to: Vec<String>,
    subject: String,
    body: String,
}

/// What moto says was sent: `GET /moto-api/data.json`, the SES store (which SES v2 shares).
fn sent(moto: &Moto) -> Vec<Sent> {
    let url = format!("{}/moto-api/data.json", moto.endpoint());
    let text = net::agent(Duration::from_secs(10))
        .get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap();
    let data: Value = serde_json::from_str(&text).unwrap();
    data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| Sent {
            source: m["source"].as_str().unwrap_or_default().to_string(),
            to: m["destinations"]["ToAddresses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            subject: m["subject"].as_str().unwrap_or_default().to_string(),
            body: m["body"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// Verifies `identity` the way an operator would, through the SES v2 API.
async fn verify(moto: &Moto, identity: &str) {
    aws_sdk_sesv2::Client::new(&moto.sdk_config(REGION))
        .create_email_identity()
        .email_identity(identity)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "CreateEmailIdentity {identity}: {}",
                aws_sdk_sesv2::error::DisplayErrorContext(e)
            )
        });
}

fn at(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 3, d, h, 0, 0).unwrap()
}

fn item(id: &str, name: Option<&str>, event: NoticeEvent) -> NoticeItem {
    NoticeItem {
        id: id.into(),
        name: name.map(str::to_string),
        region: REGION.into(),
        event,
        saves: None,
    }
}

fn ctx() -> EmailContext {
    EmailContext {
        account: Moto::ACCOUNT_ID.into(),
        run_id: "e2e-notices".into(),
        now: at(7, 9),
        owner_tag: "owner".into(),
        keeps: None,
    }
}

/// Two e-mail owners (one written two ways), a Slack member and a plain name.
fn notices() -> Vec<OwnerNotice> {
    let stop = || NoticeEvent::Stopped {
        reason: "no termination_date or lifetime tag".into(),
    };
    group([
        (
            "alice@example.com".to_string(),
            item(
                "i-0a1b2c3d4e5f60718",
                Some("web <1> & co"),
                NoticeEvent::WillTerminate {
                    at: at(8, 6),
                    bound: false,
                },
            ),
        ),
        (
            "bob@example.org".to_string(),
            item("i-0b0b0b0b0b0b0b0b0", Some("build"), stop()),
        ),
        (
            "Alice@Example.com".to_string(),
            item("i-0c0ffee0c0ffee000", None, stop()),
        ),
        (
            "U024BE7LH".to_string(),
            item("i-0d0d0d0d0d0d0d0d0", None, stop()),
        ),
        (
            "team-data".to_string(),
            item("i-0e0e0e0e0e0e0e0e0", None, stop()),
        ),
    ])
}

/// Sends every e-mail owner's notice; returns (owner address, rendered e-mail) of each.
async fn send_all(
    mailer: &Mailer,
    notices: &[OwnerNotice],
) -> Vec<(String, reaper::render::notice::Email)> {
    let mut out = Vec::new();
    for n in notices {
        if let OwnerAddress::Email(to) = &n.address {
            let email = render_email(n, &ctx()).payload;
            mailer
                .send(to, &email)
                .await
                .unwrap_or_else(|e| panic!("send to {to}: {e}"));
            out.push((to.clone(), email));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn one_email_per_owner_is_sent_and_read_back() {
    let moto = Moto::start();
    verify(&moto, FROM).await;
    let calls = CallCounter::default();
    let mailer = Mailer::from_sdk_counted(&moto.sdk_config(REGION), FROM.into(), &calls);

    let notices = notices();
    let mailed = send_all(&mailer, &notices).await;
    assert_eq!(
        mailed.iter().map(|(to, _)| to.as_str()).collect::<Vec<_>>(),
        ["alice@example.com", "bob@example.org"],
        "the Slack member and the plain name get no e-mail"
    );

    let messages = sent(&moto);
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(calls.snapshot().get("SendEmail"), Some(&2));
    for (to, email) in &mailed {
        let got: Vec<&Sent> = messages.iter().filter(|m| m.to == [to.clone()]).collect();
        assert_eq!(got.len(), 1, "one message for {to}: {messages:#?}");
        let m = got[0];
        assert_eq!(m.source, FROM);
        assert_eq!(m.subject, email.subject);
        assert_eq!(m.body, email.html, "the HTML part arrives as rendered");
    }

    let alice = messages
        .iter()
        .find(|m| m.to == ["alice@example.com"])
        .unwrap();
    // Both of her instances, under either spelling of her address, in one message.
    assert!(alice
        .body
        .contains("reaperctl extend i-0a1b2c3d4e5f60718 --by 3d --region eu-west-1"));
    assert!(alice.body.contains(
        "aws ec2 create-tags --region eu-west-1 --resources i-0a1b2c3d4e5f60718 \
         --tags Key=termination_date,Value=2030-03-11T06:00:00Z"
    ));
    assert!(alice
        .body
        .contains("aws ec2 start-instances --region eu-west-1 --instance-ids i-0c0ffee0c0ffee000"));
    assert!(
        alice.body.contains("web &lt;1&gt; &amp; co"),
        "the Name is escaped"
    );
    assert_eq!(
        alice.subject,
        "EC2 reaper, account 123456789012: your instances: 1 to be terminated soon, 1 stopped"
    );
    // Nobody hears about someone else's instances.
    assert!(!alice.body.contains("i-0b0b0b0b0b0b0b0b0"));
    let bob = messages
        .iter()
        .find(|m| m.to == ["bob@example.org"])
        .unwrap();
    assert!(bob
        .body
        .contains("Stopped: no termination_date or lifetime tag."));
    for other in [
        "i-0a1b2c3d4e5f60718",
        "i-0c0ffee0c0ffee000",
        "i-0d0d0d0d0d0d0d0d0",
        "i-0e0e0e0e0e0e0e0e0",
    ] {
        assert!(!bob.body.contains(other), "{other} in bob's e-mail");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unverified_sender_fails_with_a_clear_error_and_sends_nothing() {
    let moto = Moto::start();
    verify(&moto, FROM).await;
    let unverified = "nobody@unverified.example";
    let mailer = Mailer::from_sdk(&moto.sdk_config(REGION), unverified.into());
    let notices = notices();
    let alice = notices
        .iter()
        .find(|n| n.owner == "alice@example.com")
        .unwrap();

    let err = mailer
        .send("alice@example.com", &render_email(alice, &ctx()).payload)
        .await
        .unwrap_err();
    assert_eq!(err.code, "MessageRejected", "{err}");
    assert!(
        err.message.contains("not verified") && err.message.contains(unverified),
        "the error says what is wrong and with which identity: {err}"
    );
    assert!(sent(&moto).is_empty());

    // The failure is the identity's, not the message's: once verified, the same send works
    // (which is what the next run's retry of an un-marked notice will do).
    verify(&moto, unverified).await;
    mailer
        .send("alice@example.com", &render_email(alice, &ctx()).payload)
        .await
        .unwrap();
    assert_eq!(sent(&moto).len(), 1);
}
