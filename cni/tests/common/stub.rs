//! A stand-in for ipamd's gRPC service where the real daemon cannot run (the VM of the VLAN
//! test has no EC2, IMDS or Kubernetes API): it answers each pod's ADD from a table given by
//! the test — the answers the real ipamd gives, which `ipamd/tests/branch_pods.rs` checks
//! against the harness and the resource-controller double — and records every call.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ipamd::rpc::cni_backend_server::{CniBackend, CniBackendServer};
use ipamd::rpc::{
    AddNetworkReply, AddNetworkRequest, CheckNetworkReply, CheckNetworkRequest, DelNetworkReply,
    DelNetworkRequest, GarbageCollectReply, GarbageCollectRequest, IpAllocationMetadata,
};
use tonic::{Request, Response, Status};

/// What the stub answers and what it was asked.
#[derive(Debug, Default)]
pub struct Book {
    /// ADD answers by pod name.
    pub answers: BTreeMap<String, AddNetworkReply>,
    /// DEL answers by pod name (absent: "datastore: unknown pod").
    pub del_answers: BTreeMap<String, DelNetworkReply>,
    /// Every call, as `"<method> <pod> <reason>"`.
    pub calls: Vec<String>,
}

/// The running stub; its task ends with the runtime.
#[derive(Clone)]
pub struct Stub(pub Arc<Mutex<Book>>);

impl Stub {
    /// Serves on `socket` (replacing a leftover file), on the current runtime.
    pub fn serve(socket: &Path, book: Book) -> Stub {
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket).expect("bind the stub's socket");
        let stub = Stub(Arc::new(Mutex::new(book)));
        let service = CniBackendServer::new(stub.clone());
        let (_, health) = tonic_health::server::health_reporter();
        tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(health)
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        stub
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().calls.clone()
    }
}

/// A branch-ENI pod's answer, as ipamd gives it.
pub fn branch_reply(ip: &str, vlan: i32, mac: &str, gateway: &str, parent: u32) -> AddNetworkReply {
    AddNetworkReply {
        success: true,
        ip_allocation_metadata: vec![IpAllocationMetadata {
            ipv4_addr: ip.to_owned(),
            ipv6_addr: String::new(),
            device_number: -1,
            route_table_id: 0,
        }],
        vpc_v4_cidrs: vec!["10.0.0.0/16".to_owned()],
        pod_vlan_id: vlan,
        pod_eni_mac: mac.to_owned(),
        pod_eni_subnet_gw: gateway.to_owned(),
        parent_if_index: i32::try_from(parent).unwrap(),
        ..AddNetworkReply::default()
    }
}

/// A pool pod's answer on the primary ENI (main table).
pub fn pool_reply(ip: &str) -> AddNetworkReply {
    AddNetworkReply {
        success: true,
        ip_allocation_metadata: vec![IpAllocationMetadata {
            ipv4_addr: ip.to_owned(),
            ipv6_addr: String::new(),
            device_number: 0,
            route_table_id: 254,
        }],
        vpc_v4_cidrs: vec!["10.0.0.0/16".to_owned()],
        ..AddNetworkReply::default()
    }
}

#[tonic::async_trait]
impl CniBackend for Stub {
    async fn add_network(
        &self,
        request: Request<AddNetworkRequest>,
    ) -> Result<Response<AddNetworkReply>, Status> {
        let r = request.into_inner();
        let mut book = self.0.lock().unwrap();
        book.calls.push(format!("add {}", r.k8s_pod_name));
        book.answers
            .get(&r.k8s_pod_name)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::resource_exhausted(format!("no answer for {}", r.k8s_pod_name)))
    }

    async fn del_network(
        &self,
        request: Request<DelNetworkRequest>,
    ) -> Result<Response<DelNetworkReply>, Status> {
        let r = request.into_inner();
        let mut book = self.0.lock().unwrap();
        book.calls
            .push(format!("del {} {}", r.k8s_pod_name, r.reason));
        book.del_answers
            .get(&r.k8s_pod_name)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found("datastore: unknown pod"))
    }

    async fn check_network(
        &self,
        request: Request<CheckNetworkRequest>,
    ) -> Result<Response<CheckNetworkReply>, Status> {
        let r = request.into_inner();
        let mut book = self.0.lock().unwrap();
        book.calls.push(format!("check {}", r.container_id));
        Ok(Response::new(CheckNetworkReply::default()))
    }

    async fn garbage_collect(
        &self,
        _: Request<GarbageCollectRequest>,
    ) -> Result<Response<GarbageCollectReply>, Status> {
        self.0.lock().unwrap().calls.push("gc".to_owned());
        Ok(Response::new(GarbageCollectReply::default()))
    }
}
