//! What comes back from AWS: IMDS answers, and EC2's XML replies as the `aws-sdk-ec2` adapter
//! converts them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use cloud::model::{CreateEni, EniFilter};
use cloud::{CloudError, Ec2, Imds, aws::AwsEc2, imds};
use planner::pool::EniId;

/// Answers IMDS paths from the input: the n-th distinct path asked gets the n-th NUL-separated
/// field (a field of one byte 0x01 is a 404, and so is every path past the last field).
struct Answers {
    fields: Mutex<Asked>,
}

/// The fields not yet handed out, and each path asked with its answer.
type Asked = (Vec<Vec<u8>>, BTreeMap<String, Option<String>>);

impl Imds for Answers {
    fn get(&self, path: &str) -> impl Future<Output = cloud::Result<Option<String>>> + Send {
        let mut state = self.fields.lock().expect("not poisoned");
        let (fields, asked) = &mut *state;
        let at = asked.len();
        let answer = asked
            .entry(path.to_owned())
            .or_insert_with(|| match fields.get(at) {
                Some(f) if f.as_slice() != [1] => Some(String::from_utf8_lossy(f).into_owned()),
                _ => None,
            })
            .clone();
        std::future::ready(Ok(answer))
    }
}

/// Runs a future that never waits (every [`Answers`] call is ready at once).
fn now<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("IMDS parsing waited on nothing"),
    }
}

/// IMDS answers to the identity and interface walks. Every path asked stays under `meta-data/`
/// with no `..` (a MAC in an answer is validated before it becomes part of a path); accepted
/// MACs are lower case, the interfaces sorted by card and device.
pub fn imds_answers(data: &[u8]) {
    let answers = Answers {
        fields: Mutex::new((
            crate::fields(data).map(<[u8]>::to_vec).collect(),
            BTreeMap::new(),
        )),
    };
    if let Ok(id) = now(imds::identity(&answers)) {
        assert!(is_mac(&id.mac), "{:?}", id.mac);
    }
    if let Ok(enis) = now(imds::interfaces(&answers)) {
        crate::accepted();
        assert!(enis.iter().all(|e| is_mac(&e.mac)));
        assert!(
            enis.windows(2)
                .all(|w| (w[0].network_card, w[0].device_number)
                    <= (w[1].network_card, w[1].device_number))
        );
    }
    let asked = &answers.fields.lock().expect("not poisoned").1;
    for path in asked.keys() {
        assert!(path.starts_with("meta-data/"), "{path:?}");
        assert!(!path.contains(".."), "{path:?}");
        assert!(
            path.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/-:.".contains(&b)),
            "{path:?}"
        );
    }
}

fn is_mac(m: &str) -> bool {
    m.len() == 17
        && m.split(':').all(|p| {
            p.len() == 2
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// The reply the replay connector gives next: status, body, and requests answered so far.
static REPLY: Mutex<(u16, Vec<u8>, u32)> = Mutex::new((200, Vec::new(), 0));

/// Answers the first request after [`REPLY`] was set with its status and body, and any later
/// one (a paginator's next page) with 500, so that every call ends.
#[derive(Debug, Clone)]
struct Replay;

impl HttpConnector for Replay {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let mut reply = REPLY.lock().expect("not poisoned");
        reply.2 += 1;
        let (status, body) = if reply.2 == 1 {
            (reply.0, SdkBody::from(reply.1.clone()))
        } else {
            (500, SdkBody::empty())
        };
        let status = StatusCode::try_from(status).expect("a valid status");
        HttpConnectorFuture::ready(Ok(HttpResponse::new(status, body)))
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    /// One adapter for every input (building the SDK's configuration costs more than a call).
    static EC2: AwsEc2 = AwsEc2::from_sdk(aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .credentials_provider(Credentials::new("AKIDFUZZ", "fuzz", None, None, "fuzz"))
            .endpoint_url("http://ec2.fuzz.invalid")
            .retry_config(RetryConfig::disabled())
            .http_client(http_client_fn(|_, _| SharedHttpConnector::new(Replay)))
            .build(),
    ));
}

/// One EC2 call (the first byte picks which) answered with the rest of the input: the second
/// byte's low bit picks the HTTP status (200 or 400), the remainder is the XML body. A 400 is
/// never read as success, and a 200 is never classified as a refusal EC2 only sends as an error
/// (throttling, limits, permissions, not found).
pub fn ec2_replies(data: &[u8]) {
    let [which, status, body @ ..] = data else {
        return;
    };
    let status = if status & 1 == 0 { 200 } else { 400 };
    *REPLY.lock().expect("not poisoned") = (status, body.to_vec(), 0);
    let eni = EniId("eni-0a1b2c3d4e5f60708".to_owned());
    let outcome: Result<(), CloudError> = EC2.with(|ec2| {
        RUNTIME.with(|rt| {
            rt.block_on(async {
                match which % 12 {
                    0 => ec2
                        .describe_instances(&["i-0123456789abcdef0".to_owned()])
                        .await
                        .map(drop),
                    1 => ec2
                        .describe_instance_types(&["m5.large".to_owned()])
                        .await
                        .map(drop),
                    2 => ec2
                        .describe_subnets(&["subnet-0a1b2c3d".to_owned()])
                        .await
                        .map(drop),
                    3 => ec2
                        .describe_network_interfaces(&EniFilter::default())
                        .await
                        .map(drop),
                    4 => ec2
                        .create_network_interface(&CreateEni {
                            subnet_id: "subnet-0a1b2c3d".to_owned(),
                            ..CreateEni::default()
                        })
                        .await
                        .map(drop),
                    5 => ec2
                        .attach_network_interface(&eni, "i-0123456789abcdef0", 1, 0)
                        .await
                        .map(drop),
                    6 => ec2.assign_private_ips(&eni, 3).await.map(drop),
                    7 => ec2.assign_prefixes(&eni, 1).await.map(drop),
                    8 => {
                        ec2.unassign_private_ips(&eni, &["10.0.0.5".parse().expect("an address")])
                            .await
                    }
                    9 => {
                        ec2.detach_network_interface("eni-attach-0a1b2c3d", false)
                            .await
                    }
                    10 => ec2.delete_network_interface(&eni).await,
                    _ => {
                        ec2.set_delete_on_termination(&eni, "eni-attach-0a1b2c3d", true)
                            .await
                    }
                }
            })
        })
    });
    if outcome.is_ok() {
        crate::accepted();
    }
    match (status, outcome) {
        (400, Ok(())) => panic!("an HTTP 400 was read as success"),
        (
            200,
            Err(
                e @ (CloudError::Throttled { .. }
                | CloudError::Unauthorized { .. }
                | CloudError::InsufficientCidrBlocks { .. }
                | CloudError::InsufficientFreeAddresses { .. }
                | CloudError::IpLimitExceeded { .. }
                | CloudError::AttachmentLimitExceeded { .. }
                | CloudError::NotFound { .. }),
            ),
        ) => panic!("an HTTP 200 was classified as {e}"),
        _ => {}
    }
}
