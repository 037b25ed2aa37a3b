//! The plugin's log: one JSON object per line, appended to `pluginLogFile` (or written to
//! stderr); never to stdout, which carries the result.

use std::io::Write as _;

use crate::spec::LogLevel;

/// Where log lines go, and from which level.
pub struct Log {
    file: Option<std::fs::File>,
    to_stderr: bool,
    level: LogLevel,
}

/// The mode of a log file the plugin creates (`OpenOptions::mode` is still masked by the umask,
/// which can only take bits away).
pub const LOG_MODE: u32 = 0o640;

impl Log {
    /// Opens `path` for appending (creating its directory); `stderr` logs to stderr. A log that
    /// cannot be opened is not a reason to fail a pod: lines go to stderr instead. A new file is
    /// created 0640 whatever the umask (the runtime may run plugins with umask 0): it names
    /// every pod and address on the node, and nobody but root should write to it.
    pub fn open(path: &str, level: LogLevel) -> Log {
        if path == "stderr" {
            return Log {
                file: None,
                to_stderr: true,
                level,
            };
        }
        let file = std::path::Path::new(path)
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                use std::os::unix::fs::OpenOptionsExt as _;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(LOG_MODE)
                    .open(path)
            });
        match file {
            Ok(f) => Log {
                file: Some(f),
                to_stderr: false,
                level,
            },
            Err(_) => Log {
                file: None,
                to_stderr: true,
                level,
            },
        }
    }

    /// Writes one line at `level` with `fields`.
    pub fn line(&mut self, level: LogLevel, msg: &str, fields: serde_json::Value) {
        if level < self.level {
            return;
        }
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut obj = serde_json::json!({
            "ts": ts,
            "level": format!("{level:?}").to_ascii_lowercase(),
            "msg": msg,
        });
        if let (Some(o), serde_json::Value::Object(extra)) = (obj.as_object_mut(), fields) {
            o.extend(extra);
        }
        let mut text = obj.to_string();
        text.push('\n');
        if let Some(f) = &mut self.file {
            let _ = f.write_all(text.as_bytes());
        } else if self.to_stderr {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
}
