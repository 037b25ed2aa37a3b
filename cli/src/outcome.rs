//! What a command hands back to `main`: its output, or why it failed. A leaf module: the
//! commands build these values, `main` writes them and maps failures to exit codes.

/// What a command produced: the text for stdout and the notes for stderr.
#[derive(Debug, Default)]
pub struct CommandOutput {
    /// Written to stdout in one piece, only after the whole command succeeded.
    pub stdout: String,
    /// Written to stderr, one `note: ` line each.
    pub notes: Vec<String>,
    /// The command ran but its answer is negative (a CI gate failed): exit 1 after writing.
    pub negative: bool,
}

/// Why a command failed, and so which exit code it gets.
#[derive(Debug)]
pub enum CommandError {
    /// Bad input the core refused (exit 2).
    Planner(planner::Error),
    /// A spec, layout or value capacity planning refused (exit 2).
    Capacity(capacity::Error),
    /// Flags that do not go together, or a value the command refused (exit 2).
    Usage(String),
    /// A valid question with an empty answer (exit 1).
    NoMatch(String),
    /// Serialising output, writing a file or calling EC2 failed (exit 3).
    Internal(String),
}

impl From<planner::Error> for CommandError {
    fn from(e: planner::Error) -> Self {
        CommandError::Planner(e)
    }
}

impl From<capacity::Error> for CommandError {
    fn from(e: capacity::Error) -> Self {
        CommandError::Capacity(e)
    }
}
