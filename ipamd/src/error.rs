//! The daemon's one error type, and how each maps to an exit code.

use std::path::PathBuf;

use thiserror::Error;

/// Why the daemon could not start or had to stop.
#[derive(Debug, Error)]
pub enum Error {
    /// A configuration variable is invalid.
    #[error("invalid {name}={value:?}: expected {expected}")]
    Config {
        /// The variable.
        name: String,
        /// The value as given.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// A pool setting is invalid (the planner's validation).
    #[error(transparent)]
    Pool(#[from] planner::Error),
    /// EC2 or IMDS failed during start-up.
    #[error("{what}: {source}")]
    Cloud {
        /// What the daemon was doing.
        what: String,
        /// The classified failure.
        source: cloud::CloudError,
    },
    /// The checkpoint file is unreadable, corrupt or of an unknown version.
    #[error(
        "checkpoint {path}: {reason}; move it aside only if you accept losing pod ownership records"
    )]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file or socket operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the daemon was doing.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Start-up could not make the node usable (e.g. custom networking without any pod ENI).
    #[error("start-up failed: {0}")]
    Startup(String),
    /// The node's host networking (ENI links, route tables, rules, SNAT) could not be set up.
    #[error("host networking: {what}: {reason}")]
    HostNetwork {
        /// What the daemon was doing (naming the link, table or chain).
        what: String,
        /// The kernel's or iptables' answer.
        reason: String,
    },
    /// No way to reach the Kubernetes API (neither `KUBECONFIG` nor the in-cluster service
    /// account), while `MY_NODE_NAME` asks for it.
    #[error("Kubernetes API: {what}: {reason}")]
    Kubernetes {
        /// What the daemon was doing.
        what: String,
        /// The client's answer.
        reason: String,
    },
    /// Another process (aws-node, or a second ipamd) answers on the daemon's socket.
    #[error(
        "another process already serves {path} (aws-node, or a second ipamd): eniplan replaces \
         aws-node, it cannot run beside it; remove aws-node from this node first (docs/install.md, \
         \"4b. Replace aws-node in place\"), or give this ipamd another ENIPLAN_STATE_DIR"
    )]
    SocketInUse {
        /// The socket.
        path: PathBuf,
    },
}

/// The daemon's documented exit codes (docs/ipamd.md, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Stopped by a second SIGTERM or a SIGINT.
    Success = 0,
    /// A configuration variable (or a pool setting) is invalid.
    Config = 2,
    /// The checkpoint is unreadable, corrupt or of an unknown version; it was left in place.
    Checkpoint = 3,
    /// EC2 or IMDS failed during start-up (after the client's retries).
    Cloud = 4,
    /// A file, socket or the async runtime could not be set up.
    Io = 5,
    /// Start-up could not make the node usable.
    Startup = 6,
    /// The primary ENI's host networking (its link, rp_filter, SNAT and connmark rules) could
    /// not be set up.
    HostNetwork = 7,
    /// `MY_NODE_NAME` is set but no Kubernetes client configuration was found.
    Kubernetes = 8,
    /// Another process already serves the daemon's socket; nothing was changed.
    SocketInUse = 9,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

impl Error {
    /// The exit code this error stops the daemon with.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Config { .. } | Error::Pool(_) => Exit::Config,
            Error::Checkpoint { .. } => Exit::Checkpoint,
            Error::Cloud { .. } => Exit::Cloud,
            Error::Io { .. } => Exit::Io,
            Error::Startup(_) => Exit::Startup,
            Error::HostNetwork { .. } => Exit::HostNetwork,
            Error::Kubernetes { .. } => Exit::Kubernetes,
            Error::SocketInUse { .. } => Exit::SocketInUse,
        }
    }
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;
