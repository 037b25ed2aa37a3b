//! Generates the gRPC service code for `rpc.CNIBackend` (the AWS VPC CNI's CNI-facing API) from
//! hand-written message types in `src/rpc.rs`: no `.proto` compiler is needed.

fn main() {
    let method = |name: &str, route: &str, input: &str, output: &str| {
        tonic_build::manual::Method::builder()
            .name(name)
            .route_name(route)
            .input_type(format!("crate::rpc::{input}"))
            .output_type(format!("crate::rpc::{output}"))
            .codec_path("tonic_prost::ProstCodec")
            .build()
    };
    let service = tonic_build::manual::Service::builder()
        .name("CNIBackend")
        .package("rpc")
        .method(method(
            "add_network",
            "AddNetwork",
            "AddNetworkRequest",
            "AddNetworkReply",
        ))
        .method(method(
            "del_network",
            "DelNetwork",
            "DelNetworkRequest",
            "DelNetworkReply",
        ))
        .build();
    tonic_build::manual::Builder::new().compile(&[service]);
}
