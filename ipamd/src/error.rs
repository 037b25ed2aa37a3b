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
}

impl Error {
    /// The documented exit code (docs/ipamd.md): 2 configuration, 3 checkpoint, 4 EC2/IMDS,
    /// 5 I/O, 6 start-up.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. } | Error::Pool(_) => 2,
            Error::Checkpoint { .. } => 3,
            Error::Cloud { .. } => 4,
            Error::Io { .. } => 5,
            Error::Startup(_) => 6,
        }
    }
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;
