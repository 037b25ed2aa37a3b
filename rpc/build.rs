//! Generates the messages and the `rpc.CNIBackend` client and server from `proto/rpc.proto`
//! with `protox`, a protobuf compiler in Rust: no `protoc` binary is needed to build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/rpc.proto");
    let descriptors = protox::compile(["rpc.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
