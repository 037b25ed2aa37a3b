//! Watch streams: newline-delimited JSON events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`,
//! `ERROR`) from a resource version on, filtered by namespace and selectors the way the API
//! server filters them (an object that stops matching is `DELETED` for that watch).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::header;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::Shared;
use crate::error::ApiError;
use crate::resources::Kind;
use crate::select::{FieldSelector, LabelSelector};
use crate::store::Change;

/// What a watch asked for.
pub struct Spec {
    /// The type.
    pub kind: Kind,
    /// One namespace, or all.
    pub ns: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `resourceVersion` as given.
    pub rv: String,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents` (streaming lists).
    pub initial_events: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
}

impl Spec {
    fn matches(&self, o: &Value) -> bool {
        self.ns
            .as_deref()
            .is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
            && self.labels.matches(o)
            && self.fields.matches(o)
    }

    /// The event this watch sees for a change, if any.
    fn event(&self, c: &Change) -> Option<Value> {
        let was = c.old.as_ref().is_some_and(|o| self.matches(o));
        let is = c.new.as_ref().is_some_and(|o| self.matches(o));
        let (kind, object) = match (was, is, &c.new) {
            (false, true, Some(n)) => ("ADDED", n.clone()),
            (true, true, Some(n)) => ("MODIFIED", n.clone()),
            (true, false, Some(n)) => {
                // Still there, no longer selected: this watch sees it go.
                let mut n = n.clone();
                n["metadata"]["resourceVersion"] = c.rv.to_string().into();
                ("DELETED", n)
            }
            (true, false, None) => ("DELETED", c.old.clone()?),
            _ => return None,
        };
        Some(json!({"type": kind, "object": object}))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {"kind": self.kind.kind, "apiVersion": self.kind.api_version(), "metadata": meta}})
    }
}

#[allow(clippy::unnecessary_wraps)] // the body stream's item type
fn line(v: &Value) -> Result<Bytes, Infallible> {
    let mut s = v.to_string();
    s.push('\n');
    Ok(Bytes::from(s))
}

/// Starts a watch: the response streams until the timeout, a fault drops it, or the client goes.
pub fn start(shared: &Arc<Shared>, spec: Spec) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let mut initial = Vec::new();
    let (past, live, start) = {
        let store = shared.store.lock().expect("store");
        let from_now = spec.rv.is_empty() || spec.rv == "0" || spec.initial_events;
        let start = if from_now {
            store.rv()
        } else {
            spec.rv.parse().unwrap_or(0)
        };
        let expired = shared.faults.take_expire() || (!from_now && start < store.compacted());
        if expired {
            let e = ApiError::expired(start, store.compacted().max(store.rv()));
            initial.push(json!({"type": "ERROR", "object": e.status()}));
            (Vec::new(), None, start)
        } else {
            if from_now {
                for o in store
                    .objects(&spec.kind, spec.ns.as_deref())
                    .filter(|o| spec.matches(o))
                {
                    initial.push(json!({"type": "ADDED", "object": o}));
                }
                if spec.initial_events {
                    initial.push(spec.bookmark(start, true));
                }
            }
            let (past, live) = store.since(&spec.kind.key(), start);
            (past, Some(live), start)
        }
    };
    let mut kill = shared.faults.kill.subscribe();
    let every = shared.bookmark_every;
    tokio::spawn(async move {
        let mut last = start;
        for e in &initial {
            if tx.send(line(e)).await.is_err() {
                return;
            }
        }
        let Some(mut live) = live else { return };
        for c in past {
            last = c.rv;
            if let Some(e) = spec.event(&c)
                && tx.send(line(&e)).await.is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(spec.timeout.unwrap_or(Duration::from_hours(1)));
        tokio::pin!(deadline);
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = &mut deadline => return,
                _ = kill.changed() => return,
                () = tx.closed() => return,
                _ = ticks.tick(), if spec.bookmarks => {
                    if tx.send(line(&spec.bookmark(last, false))).await.is_err() {
                        return;
                    }
                }
                c = live.recv() => match c {
                    Ok(c) if c.rv > last => {
                        // Every change up to here has been seen, of any type (for bookmarks).
                        last = c.rv;
                        if c.kind == spec.kind.key()
                            && let Some(e) = spec.event(&c)
                            && tx.send(line(&e)).await.is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // A watcher too slow to keep up is closed, as the API server does.
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let mut r = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    r
}
