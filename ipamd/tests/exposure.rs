//! What the daemon exposes on a node, checked on the real binary against the EC2 harness: the
//! socket is root's alone (0660, owned by the daemon's user), introspection and metrics listen
//! on loopback unless configured otherwise, no credential reaches a log line or an
//! introspection answer, and requests far larger than a plugin's are refused before they are
//! buffered, while the daemon goes on serving.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;

use common::node;
use ipamd::client::{add_request, connect, del_request};
use tokio::sync::Mutex;

/// The tests bind the default TCP ports, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The TCP sockets `pid` listens on, as (address, port), read from `/proc`: its socket inodes,
/// then the kernel's tables of this network namespace.
fn listening(pid: u32) -> BTreeSet<(String, u16)> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut out = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap().lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode
            if f.len() < 10 || f[3] != "0A" || !inodes.contains(f[9]) {
                continue;
            }
            let (addr, port) = f[1].split_once(':').unwrap();
            out.insert((addr.to_owned(), u16::from_str_radix(port, 16).unwrap()));
        }
    }
    out
}

/// 127.0.0.1 and 0.0.0.0 as /proc/net/tcp spells them (little-endian hex).
const LOOPBACK: &str = "0100007F";
const ANY: &str = "00000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_root_only_and_the_listeners_are_loopback_unless_configured() {
    let _serial = SERIAL.lock().await;
    let n = node("exposure-binds", "m5.large", "10.0.16.0/20").await;
    // ipamd's defaults: introspection and metrics on TCP, nothing said about where.
    let defaults = [
        ("INTROSPECTION_BIND_ADDRESS", ""),
        ("DISABLE_METRICS", "false"),
    ];
    let d = n.start(&defaults).await;
    let meta = std::fs::metadata(n.socket()).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660, "socket mode {:o}", meta.mode());
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(
        meta.uid(),
        me,
        "the socket is owned by the user ipamd runs as (root on a node)"
    );
    let bound = listening(d.child.id());
    assert_eq!(
        bound,
        BTreeSet::from([(LOOPBACK.to_owned(), 61678), (LOOPBACK.to_owned(), 61679)]),
        "ipamd listens only on loopback by default"
    );
    d.stop();
    // Configured otherwise (as the Helm chart does for Prometheus): every interface.
    let d = n
        .start(&[
            defaults[0],
            defaults[1],
            ("ENIPLAN_METRICS_BIND_ADDRESS", ":61678"),
        ])
        .await;
    let bound = listening(d.child.id());
    assert!(bound.contains(&(ANY.to_owned(), 61678)), "{bound:?}");
    assert!(bound.contains(&(LOOPBACK.to_owned(), 61679)), "{bound:?}");
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_reaches_a_log_line_or_an_introspection_answer() {
    let _serial = SERIAL.lock().await;
    let n = node("exposure-secrets", "m5.large", "10.0.32.0/20").await;
    let secret = "eniplanSecretKey0123456789abcdefEXPOSURE";
    let token = "eniplanSessionToken0123456789EXPOSURE";
    let d = n
        .start(&[
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_SESSION_TOKEN", token),
            ("AWS_VPC_K8S_CNI_LOGLEVEL", "debug"),
        ])
        .await;
    let mut client = connect(&n.socket()).await.unwrap();
    client
        .add_network(add_request("c-secret", "default", "web-0"))
        .await
        .unwrap();
    client
        .del_network(del_request("c-secret", "default", "web-0"))
        .await
        .unwrap();
    let mut answers = String::new();
    for path in ipamd::introspect::PATHS.iter().chain(&["/"]) {
        answers.push_str(&n.introspect(path).await.to_string());
    }
    assert!(
        answers.contains("c-secret") || answers.contains("AWS_VPC"),
        "answers were read"
    );
    d.stop();
    let log = std::fs::read_to_string(n.dir.join("ipamd.log")).unwrap();
    // Debug level: the AWS SDK's own lines too (credential loading, signing, requests).
    assert!(
        log.contains("DEBUG") && log.contains("AssignPrivateIpAddresses"),
        "{log}"
    );
    for (what, text) in [("the log", &log), ("the introspection answers", &answers)] {
        assert!(!text.contains(secret), "the secret key is in {what}");
        assert!(!text.contains(token), "the session token is in {what}");
    }
}

/// Peak resident memory of `pid`, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_far_larger_than_a_plugins_are_refused_unbuffered() {
    let _serial = SERIAL.lock().await;
    let n = node("exposure-size", "m5.large", "10.0.48.0/20").await;
    let d = n.start(&[]).await;
    let client = connect(&n.socket()).await.unwrap();
    let before = peak_rss_kib(d.child.id());
    // Eight 3 MiB requests at once: under tonic's default limit (4 MiB) they would all be
    // buffered and decoded; under ipamd's (64 KiB) each is refused from its length prefix.
    let big = "p".repeat(3 * 1024 * 1024);
    let refused = futures::future::join_all((0..8).map(|i| {
        let mut c = client.clone();
        let mut r = add_request(&format!("c-big-{i}"), "default", "x");
        r.k8s_pod_name.clone_from(&big);
        async move { c.add_network(r).await }
    }))
    .await;
    for r in &refused {
        let status = r.as_ref().expect_err("an oversized request is refused");
        assert_eq!(status.code(), tonic::Code::OutOfRange, "{status}");
        assert!(status.message().contains("65536"), "{status}");
    }
    let grown = peak_rss_kib(d.child.id()).saturating_sub(before);
    assert!(
        grown < 8 * 1024,
        "peak RSS grew {grown} KiB for 24 MiB of refused requests"
    );
    // And the daemon goes on serving plugins.
    let mut c = client.clone();
    let reply = c
        .add_network(add_request("c-small", "default", "web-1"))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.success);
    d.stop();
}
