//! The CNI-facing gRPC API, `rpc.CNIBackend`: generated from `rpc/proto/rpc.proto` in the
//! `eniplan-rpc` crate (shared with the CNI plugin) and re-exported here.

pub use eniplan_rpc::*;
