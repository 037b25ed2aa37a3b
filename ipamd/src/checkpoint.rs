//! The pod-ownership checkpoint, in the AWS VPC CNI's `vpc-cni-ipam/1` format at its path, so a
//! node can move between that daemon and this one in either direction.
//!
//! Writes are atomic (temporary file in the same directory, fsync, rename, fsync of the
//! directory) and group-committed: the pool task applies every request already queued, writes
//! once, and only then acknowledges them all. An assignment is acknowledged to the CNI plugin
//! only after its write is on disk. The write runs on the pool task itself: the state directory
//! is tmpfs on a node (`/var/run/aws-node`), where a write takes microseconds, less than the two
//! thread wake-ups a writer thread cost each request (docs/benchmarks.md).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use planner::pool::PodKey;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// The only version this daemon reads and writes.
pub const VERSION: &str = "vpc-cni-ipam/1";

/// Pod metadata kept with an allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Pod namespace.
    #[serde(
        rename = "k8sPodNamespace",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub pod_namespace: String,
    /// Pod name.
    #[serde(
        rename = "k8sPodName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub pod_name: String,
    /// The pod's UID, from the ADD (`K8S_POD_UID`, which eniplan-cni sends). eniplan's addition:
    /// the reference neither writes nor reads it; empty when the plugin did not send it.
    #[serde(
        rename = "k8sPodUID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub pod_uid: String,
    /// Addresses the pod holds (1 unless multi-NIC).
    #[serde(rename = "interfacesCount", default, skip_serializing_if = "is_zero")]
    pub interfaces_count: u32,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if signature"
)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// CNI network name.
    #[serde(rename = "networkName")]
    pub network_name: String,
    /// CNI container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// CNI interface name.
    #[serde(rename = "ifName")]
    pub if_name: String,
    /// The IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    /// The IPv6 address (never written by eniplan; kept when read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// When the address was assigned, Unix nanoseconds.
    #[serde(rename = "allocationTimestamp", default)]
    pub allocation_timestamp: i64,
    /// Pod metadata.
    #[serde(default, skip_serializing_if = "is_default_metadata")]
    pub metadata: Metadata,
}

fn is_default_metadata(m: &Metadata) -> bool {
    *m == Metadata::default()
}

impl Entry {
    /// The CNI key of this entry.
    pub fn key(&self) -> PodKey {
        PodKey {
            network_name: self.network_name.clone(),
            container_id: self.container_id.clone(),
            if_name: self.if_name.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: String,
    #[serde(default)]
    allocations: Vec<Entry>,
}

/// Reads a checkpoint. A missing file is a fresh node (no entries). An unreadable file, invalid
/// JSON or another version stops start-up: silently discarding it would lose pod ownership.
pub fn load(path: &Path) -> Result<Vec<Entry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Checkpoint {
                path: path.to_owned(),
                reason: format!("cannot be read: {e}"),
            });
        }
    };
    parse(path, &text)
}

/// Parses a checkpoint's text (`path` names it in errors).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Entry>> {
    let file: File = serde_json::from_str(text).map_err(|e| Error::Checkpoint {
        path: path.to_owned(),
        // serde's message quotes an offending string whole: clip it (found by fuzzing).
        reason: format!(
            "is not valid checkpoint JSON: {}",
            clip(&e.to_string(), 200)
        ),
    })?;
    if file.version != VERSION {
        return Err(Error::Checkpoint {
            path: path.to_owned(),
            reason: format!(
                "has version {:?}; this daemon reads {VERSION:?}",
                clip(&file.version, 64)
            ),
        });
    }
    Ok(file.allocations)
}

/// `text`'s first `n` characters, marked when cut: what an error quotes of a damaged file.
fn clip(text: &str, n: usize) -> String {
    let mut s: String = text.chars().take(n).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// The bytes [`store`] writes for `entries`.
pub fn encode<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<u8> {
    let file = Borrowed {
        version: VERSION,
        allocations: entries.into_iter().collect(),
    };
    serde_json::to_vec(&file).expect("entries of strings and numbers serialise")
}

/// [`File`] by reference, for writing.
#[derive(Serialize)]
struct Borrowed<'a> {
    version: &'a str,
    allocations: Vec<&'a Entry>,
}

/// Numbers temporary files, so two writers (a dying daemon and its successor) never share one.
static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes `entries` atomically.
pub fn store(path: &Path, entries: &BTreeMap<PodKey, Entry>) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let json = encode(entries.values());
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.tmp{}.{seq}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("ipam.json"),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The checkpoint as the pool task keeps it: the entries, whether they changed since the last
/// write, and who waits for the next one.
#[derive(Debug)]
pub struct Checkpointer {
    path: PathBuf,
    entries: BTreeMap<PodKey, Entry>,
    dirty: bool,
    waiters: Vec<oneshot::Sender<std::result::Result<(), String>>>,
}

impl Checkpointer {
    /// Starts over `initial` entries, writing them once.
    pub fn start(path: PathBuf, initial: BTreeMap<PodKey, Entry>) -> Result<Checkpointer> {
        store(&path, &initial).map_err(|source| Error::Io {
            what: "cannot write checkpoint",
            path: path.clone(),
            source,
        })?;
        Ok(Checkpointer {
            path,
            entries: initial,
            dirty: false,
            waiters: Vec::new(),
        })
    }

    /// Records an allocation (durable after the next [`Checkpointer::flush`]).
    pub fn put(&mut self, key: PodKey, entry: Entry) {
        self.entries.insert(key, entry);
        self.dirty = true;
    }

    /// Forgets an allocation.
    /// Every entry, by pod key.
    pub fn entries(&self) -> &BTreeMap<PodKey, Entry> {
        &self.entries
    }

    /// Forgets an entry (written at the next flush).
    pub fn remove(&mut self, key: &PodKey) {
        self.dirty |= self.entries.remove(key).is_some();
    }

    /// Resolves once everything recorded before it is on disk (at the next flush).
    pub fn sync(&mut self) -> oneshot::Receiver<std::result::Result<(), String>> {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        rx
    }

    /// Writes what changed (once, however many changes) and answers every waiter; a failed
    /// write is answered as such and retried at the next flush.
    pub fn flush(&mut self) {
        if !self.dirty && self.waiters.is_empty() {
            return;
        }
        let result = if self.dirty {
            store(&self.path, &self.entries).map_err(|e| format!("{}: {e}", self.path.display()))
        } else {
            Ok(())
        };
        match &result {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::error!(error = %e, "checkpoint write failed"),
        }
        for w in self.waiters.drain(..) {
            let _ = w.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("eniplan-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn entry(c: &str, ip: &str) -> Entry {
        Entry {
            network_name: "aws-cni".into(),
            container_id: c.into(),
            if_name: "eth0".into(),
            ipv4: Some(ip.into()),
            ipv6: None,
            allocation_timestamp: 1_767_225_600_123_456_789,
            metadata: Metadata {
                pod_namespace: "default".into(),
                pod_name: "web-0".into(),
                pod_uid: String::new(),
                interfaces_count: 1,
            },
        }
    }

    #[test]
    fn the_pod_uid_is_kept_when_present_and_absent_otherwise() {
        let mut e = entry("c1", "10.0.0.5");
        let plain = serde_json::to_string(&e).unwrap();
        assert!(!plain.contains("k8sPodUID"), "{plain}");
        e.metadata.pod_uid = "6f1c".into();
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains(r#""k8sPodUID":"6f1c""#), "{text}");
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), e);
    }

    #[test]
    fn the_reference_format_round_trips() {
        // S-34: the exact shape the VPC CNI writes.
        let text = r#"{"version":"vpc-cni-ipam/1","allocations":[{"networkName":"aws-cni","containerID":"C1","ifName":"eth0","ipv4":"10.0.34.17","allocationTimestamp":1767225600123456789,"metadata":{"k8sPodNamespace":"default","k8sPodName":"web-0","interfacesCount":1}}]}"#;
        let d = dir("format");
        let path = d.join("ipam.json");
        std::fs::write(&path, text).unwrap();
        let entries = load(&path).unwrap();
        assert_eq!(entries, vec![entry("C1", "10.0.34.17")]);
        let map = entries.iter().map(|e| (e.key(), e.clone())).collect();
        store(&path, &map).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn missing_file_is_a_fresh_node() {
        assert!(load(&dir("missing").join("ipam.json")).unwrap().is_empty());
    }

    #[test]
    fn corrupt_or_unknown_version_stops_startup() {
        // S-36.
        let d = dir("corrupt");
        let path = d.join("ipam.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = load(&path).unwrap_err();
        assert!(
            err.to_string().contains("is not valid checkpoint JSON"),
            "{err}"
        );
        assert_eq!(err.exit(), crate::Exit::Checkpoint);
        std::fs::write(&path, r#"{"version":"vpc-cni-ipam/2","allocations":[]}"#).unwrap();
        let err = load(&path).unwrap_err();
        assert!(
            err.to_string().contains(r#"has version "vpc-cni-ipam/2""#),
            "{err}"
        );
        // The file is left alone.
        assert!(std::fs::read_to_string(&path).unwrap().contains("ipam/2"));
    }

    #[tokio::test]
    async fn one_flush_writes_every_change_and_then_acknowledges_them_all() {
        let d = dir("writer");
        let path = d.join("ipam.json");
        let mut ckpt = Checkpointer::start(path.clone(), BTreeMap::new()).unwrap();
        let mut acks = Vec::new();
        for i in 0..100 {
            let e = entry(&format!("c{i}"), &format!("10.0.0.{i}"));
            ckpt.put(e.key(), e);
            acks.push(ckpt.sync());
        }
        ckpt.remove(&entry("c7", "").key());
        let mut last = ckpt.sync();
        assert!(
            last.try_recv().is_err(),
            "no acknowledgement before the write"
        );
        assert!(
            load(&path).unwrap().is_empty(),
            "nothing written before the flush"
        );
        ckpt.flush();
        for ack in acks {
            ack.await.unwrap().unwrap();
        }
        last.await.unwrap().unwrap();
        let on_disk = load(&path).unwrap();
        assert_eq!(on_disk.len(), 99);
        assert!(!on_disk.iter().any(|e| e.container_id == "c7"));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ipam.json")]);
    }
}
