//! The Kubernetes client: kube's default stack (`KUBECONFIG` for people running ipamd by hand,
//! else the in-cluster service account, whose token kube re-reads as it rotates), with a
//! client-side rate limit and a metric per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response, Uri};
use kube::Client;
use kube::client::ClientBuilder;
use tower::limit::RateLimitLayer;
use tower::{Layer, Service};

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Requests per second the client sends at most (client-go's default burst), so a watch that
/// fails over and over cannot hammer the API server.
pub const REQUESTS_PER_SECOND: u64 = 10;

/// `(verb, resource)` of an API request, as the API server's audit log names them: `watch`,
/// `list` or `get` for reads; `pods`, `nodes/status`, `eniconfigs`.
///
/// ```
/// use http::{Method, Uri};
/// use ipamd::k8s::client::classify;
/// let u = |s: &str| s.parse::<Uri>().unwrap();
/// assert_eq!(classify(&Method::GET, &u("/api/v1/pods?fieldSelector=spec.nodeName%3Dn&watch=true")), ("watch", "pods".into()));
/// assert_eq!(classify(&Method::GET, &u("/api/v1/nodes?fieldSelector=metadata.name%3Dn")), ("list", "nodes".into()));
/// assert_eq!(classify(&Method::GET, &u("/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs/a")), ("get", "eniconfigs".into()));
/// assert_eq!(classify(&Method::POST, &u("/apis/events.k8s.io/v1/namespaces/default/events")), ("create", "events".into()));
/// assert_eq!(classify(&Method::PATCH, &u("/api/v1/nodes/n/status")), ("patch", "nodes/status".into()));
/// ```
pub fn classify(method: &Method, uri: &Uri) -> (&'static str, String) {
    let parts: Vec<&str> = uri.path().split('/').filter(|p| !p.is_empty()).collect();
    let mut rest: &[&str] = match parts.as_slice() {
        ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
        _ => &[],
    };
    if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        rest = &rest[2..];
    }
    let resource = match rest {
        [] => "discovery".to_owned(),
        [r, _, sub, ..] => format!("{r}/{sub}"),
        [r, ..] => (*r).to_owned(),
    };
    let watch = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match *method {
        Method::GET if watch => "watch",
        Method::GET if rest.len() <= 1 => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    };
    (verb, resource)
}

/// Counts every request in `eniplan_kube_requests_total{verb, resource, code}`.
#[derive(Clone)]
struct Observe(Arc<Metrics>);

impl<S> Layer<S> for Observe {
    type Service = Observed<S>;
    fn layer(&self, inner: S) -> Observed<S> {
        Observed {
            inner,
            metrics: Arc::clone(&self.0),
        }
    }
}

struct Observed<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> Service<Request<B>> for Observed<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (verb, resource) = classify(req.method(), req.uri());
        let metrics = Arc::clone(&self.metrics);
        let call = self.inner.call(req);
        Box::pin(async move {
            let r = call.await;
            let code = match &r {
                Ok(resp) => resp.status().as_u16().to_string(),
                Err(_) => "error".to_owned(),
            };
            metrics
                .kube_requests
                .with_label_values(&[verb, &resource, &code])
                .inc();
            r
        })
    }
}

/// A client from `KUBECONFIG` or the in-cluster service account.
pub async fn connect(metrics: &Arc<Metrics>) -> Result<Client> {
    let err = |what: &str| {
        let what = what.to_owned();
        move |e: &dyn std::fmt::Display| Error::Kubernetes {
            what: what.clone(),
            reason: e.to_string(),
        }
    };
    let config = kube::Config::infer().await.map_err(|e| {
        err("no client configuration (set KUBECONFIG, or run in a pod with a service account)")(&e)
    })?;
    let builder = ClientBuilder::try_from(config).map_err(|e| err("building the client")(&e))?;
    Ok(builder
        .with_layer(&RateLimitLayer::new(
            REQUESTS_PER_SECOND,
            Duration::from_secs(1),
        ))
        .with_layer(&Observe(Arc::clone(metrics)))
        .build())
}
