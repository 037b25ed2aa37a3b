//! What ipamd reads from outside: its checkpoint, gRPC messages on its socket (and the socket's
//! HTTP/2 bytes, which the `:authority` normaliser parses), and its environment.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use eniplan_rpc::{AddNetworkRequest, DelNetworkRequest};
use ipamd::authority::Rewriter;
use ipamd::checkpoint;
use planner::pool::{EniId, Input, ObservedEni, PodKey, Pool, PoolConfig, Time};
use prost::Message as _;

const CHECKPOINT: &str = "/var/run/aws-node/ipam.json";

/// A checkpoint file's text, as start-up reads it.
///
/// * A refusal is a checkpoint error naming the file, short whatever the input's size.
/// * Accepted entries written back as ipamd writes them read back equal.
/// * Restored into a node (secondary IPs, and again with /28 prefixes), every entry kept is one
///   of the file's, the pool holds exactly the kept pods at exactly their entries' addresses,
///   and no address is held twice: the rewritten checkpoint and the pool agree.
pub fn checkpoint(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // `load` reads a string: not UTF-8 is an I/O refusal before parsing
    };
    let path = Path::new(CHECKPOINT);
    let entries = match checkpoint::parse(path, text) {
        Err(e) => {
            let shown = e.to_string();
            assert!(matches!(e, ipamd::Error::Checkpoint { .. }), "{shown}");
            assert!(shown.contains(CHECKPOINT), "{shown}");
            assert!(shown.len() < 1024, "an error of {} bytes", shown.len());
            return;
        }
        Ok(entries) => entries,
    };
    crate::accepted();
    let written = checkpoint::encode(&entries);
    let reread = checkpoint::parse(path, std::str::from_utf8(&written).expect("JSON is UTF-8"))
        .expect("what ipamd writes, it reads");
    assert_eq!(
        reread, entries,
        "writing and reading back changed the entries"
    );
    for prefixes in [false, true] {
        let mut pool = node(prefixes);
        let kept = ipamd::driver::restore(&mut pool, &entries);
        let held: BTreeMap<PodKey, Ipv4Addr> = pool.pods().map(|(k, ip)| (k.clone(), ip)).collect();
        assert_eq!(held.len(), kept.len(), "pool {held:?}, kept {kept:?}");
        for (key, entry) in &kept {
            assert!(
                entries.contains(entry),
                "kept an entry the file did not hold"
            );
            assert_eq!(entry.key(), *key);
            let ip: Ipv4Addr = entry
                .ipv4
                .as_deref()
                .unwrap_or("")
                .parse()
                .expect("kept entries have an address");
            assert_eq!(
                held.get(key),
                Some(&ip),
                "the pool and the checkpoint disagree on {key}"
            );
        }
        let distinct: BTreeSet<&Ipv4Addr> = held.values().collect();
        assert_eq!(distinct.len(), held.len(), "an address held twice");
    }
}

/// An m5.large with two ENIs: 10.0.{0,1}.4 primaries and ten secondaries each (.5 to .14), or
/// with two /28s each (10.0.{0,1}.16/28 and .32/28).
fn node(prefixes: bool) -> Pool {
    let config = PoolConfig {
        prefix_delegation: prefixes,
        disable_provisioning: true,
        ..PoolConfig::default()
    };
    let limits = planner::catalogue::lookup("m5.large").expect("m5.large is catalogued");
    let mut pool = Pool::new(limits, config);
    let enis = (0u8..2)
        .map(|d| ObservedEni {
            id: EniId(format!("eni-{d}")),
            device: u32::from(d),
            primary_ip: Ipv4Addr::new(10, 0, d, 4),
            ips: if prefixes {
                Vec::new()
            } else {
                (5..15).map(|h| Ipv4Addr::new(10, 0, d, h)).collect()
            },
            prefixes: if prefixes {
                vec![
                    format!("10.0.{d}.16/28").parse().expect("a prefix"),
                    format!("10.0.{d}.32/28").parse().expect("a prefix"),
                ]
            } else {
                Vec::new()
            },
            trunk: false,
            unmanaged: false,
        })
        .collect();
    pool.step(Time(0), Input::Observed { enis });
    pool
}

/// AddNetwork and DelNetwork messages as the server decodes them (the first byte picks which):
/// a decoded message re-encodes to one that decodes equal; the server's key check accepts it
/// exactly when network name, container id and interface name are all given, and names the
/// missing one otherwise; the client-version check never accepts a version it then cannot
/// print; the DEL reason label is one of three values whatever the client sends.
pub fn rpc_messages(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let (network, container, ifname, client) = if which % 2 == 0 {
        let Ok(r) = AddNetworkRequest::decode(body) else {
            return;
        };
        assert_eq!(
            AddNetworkRequest::decode(r.encode_to_vec().as_slice()).ok(),
            Some(r.clone())
        );
        (r.network_name, r.container_id, r.if_name, r.client_version)
    } else {
        let Ok(r) = DelNetworkRequest::decode(body) else {
            return;
        };
        assert_eq!(
            DelNetworkRequest::decode(r.encode_to_vec().as_slice()).ok(),
            Some(r.clone())
        );
        let label = ipamd::server::del_reason(&r.reason);
        assert!(["PodDeleted", "SetupNSFailed", "other"].contains(&label));
        (r.network_name, r.container_id, r.if_name, r.client_version)
    };
    let complete = !network.is_empty() && !container.is_empty() && !ifname.is_empty();
    match ipamd::server::key(network.clone(), container.clone(), ifname.clone()) {
        Ok(key) => {
            crate::accepted();
            assert!(complete);
            assert_eq!(
                (key.network_name, key.container_id, key.if_name),
                (network, container, ifname)
            );
        }
        Err(status) => {
            assert!(!complete);
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
        }
    }
    if let Err(why) = eniplan_rpc::check_client_version(&client, env!("CARGO_PKG_VERSION")) {
        assert!(!why.is_empty());
    }
}

/// The socket's client-to-server bytes through the `:authority` normaliser (after the HTTP/2
/// preface, which every client sends first): the same bytes give the same output and the same
/// verdict however the socket splits them (the first byte picks the read size), the output is
/// never more than the input plus what re-encoding the bounded header blocks adds.
pub fn socket_authority(data: &[u8]) {
    let Some((&size, frames)) = data.split_first() else {
        return;
    };
    let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    input.extend_from_slice(frames);
    let whole = feed(&input, input.len());
    let pieces = feed(&input, usize::from(size % 64) + 1);
    assert_eq!(
        whole, pieces,
        "the output depends on how the bytes were read"
    );
    if let (Ok(out), _) = &whole {
        crate::accepted();
        // Each frame of at least 9 bytes becomes at most one re-encoded block, each bounded.
        let bound = input.len() + input.len() / 9 * (ipamd::authority::MAX_DECODED + 64);
        assert!(
            out.len() <= bound,
            "{} bytes out of {}",
            out.len(),
            input.len()
        );
    }
}

/// Feeds `input` in `chunk`-sized reads: the output (or the error's kind), and whether any
/// authority was rewritten.
fn feed(input: &[u8], chunk: usize) -> (Result<Vec<u8>, std::io::ErrorKind>, bool) {
    let mut r = Rewriter::default();
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        if let Err(e) = r.feed(piece, &mut out) {
            return (Err(e.kind()), r.rewrote);
        }
    }
    (Ok(out), r.rewrote)
}

/// The daemon's environment: lines of `NAME=VALUE`, where a name given as a number picks one of
/// the variables ipamd reads (so the fuzzer reaches them all). Parsing is deterministic,
/// unread variables change nothing, and a refusal names one of ipamd's variables (the one set
/// wrong, with its value as given, or one another setting requires), which is what `main`
/// prints before exiting 2.
pub fn env(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let names: Vec<&str> = ipamd::config::DAEMON_VARIABLES
        .iter()
        .copied()
        .chain(planner::pool::VARIABLES.iter().map(|v| v.0))
        .collect();
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = match name.parse::<usize>() {
            Ok(i) => names[i % names.len()].to_owned(),
            Err(_) => name.to_owned(),
        };
        vars.insert(name, value.to_owned());
    }
    let parsed = ipamd::config::Config::from_vars(&vars);
    let mut with_noise = vars.clone();
    with_noise.insert("ENIPLAN_FUZZ_UNREAD".to_owned(), "x".to_owned());
    with_noise.insert("PATH".to_owned(), "/usr/bin".to_owned());
    let again = ipamd::config::Config::from_vars(&with_noise);
    match (&parsed, &again) {
        (Ok(a), Ok(b)) => {
            crate::accepted();
            assert_eq!(a, b, "an unread variable changed the configuration");
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("an unread variable changed the verdict: {parsed:?} / {again:?}"),
    }
    if let Err(ipamd::Error::Config { name, value, .. }) = &parsed {
        // A variable the user can look up: the one set wrong, or one another setting requires.
        assert!(
            names.contains(&name.as_str()),
            "the error names {name:?}, no variable of ipamd's"
        );
        if let Some(given) = vars.get(name) {
            // As given, give or take the case the parser folds it to.
            assert!(
                given.to_lowercase().contains(&value.to_lowercase()),
                "{name}: the error shows {value:?}, not {given:?}"
            );
        }
    }
}
