//! `eniplan-cni`: the CNI plugin binary. The runtime runs it once per pod and command, with the
//! `CNI_*` environment and the network configuration on stdin; the result (or the spec's error
//! object) goes to stdout, logs to the configured file.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use eniplan_cni::log::Log;
use eniplan_cni::spec::{Code, Command, Env, Error, MAX_STDIN, NetConf, Version, version_reply};

fn main() -> ExitCode {
    let vars: BTreeMap<String, String> = std::env::vars().collect();
    let mut stdin = Vec::new();
    let read = std::io::stdin()
        .take(u64::try_from(MAX_STDIN).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut stdin);
    let version = NetConf::version_of(&stdin);
    let outcome = match read {
        Err(e) => Err(Error::new(Code::Io, format!("reading stdin: {e}"))),
        Ok(_) => run(&vars, &stdin),
    };
    let mut out = std::io::stdout().lock();
    match outcome {
        Ok(Some(json)) => {
            let _ = writeln!(out, "{json}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(out, "{}", e.to_json(version));
            ExitCode::FAILURE
        }
    }
}

fn run(vars: &BTreeMap<String, String>, stdin: &[u8]) -> Result<Option<serde_json::Value>, Error> {
    let env = Env::from_vars(vars)?;
    if env.command == Command::Version {
        // VERSION's stdin holds only a cniVersion, which may be one this plugin does not speak.
        let asked = serde_json::from_slice::<serde_json::Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(Version::parse))
            .and_then(Result::ok);
        return Ok(Some(version_reply(asked)));
    }
    let conf = NetConf::parse(stdin)?;
    let mut log = Log::open(&conf.log_file, conf.log_level);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(Code::Io, format!("starting the runtime: {e}")))?;
    let _ = Log::none();
    runtime.block_on(eniplan_cni::plugin::run(&env, &conf, &mut log))
}
