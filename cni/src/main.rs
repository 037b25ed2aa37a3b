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
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("install") {
        return install(&vars, &args[1..]);
    }
    let mut stdin = Vec::new();
    let read = std::io::stdin()
        .take(u64::try_from(MAX_STDIN).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut stdin);
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
            // Only a failure reads stdin's version again (a success was rendered in it).
            let _ = writeln!(out, "{}", e.to_json(NetConf::version_of(&stdin)));
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
    runtime.block_on(eniplan_cni::plugin::run(&env, &conf, &mut log))
}

/// `eniplan-cni install [--wait-secs N] [--keep-running]`: see `eniplan_cni::install`. Exit 0
/// installed (with `--keep-running`: installed, then stopped by SIGTERM or SIGINT), 2 a variable
/// or argument is invalid, 3 ipamd not healthy within the wait, 4 a file could not be written.
fn install(vars: &BTreeMap<String, String>, args: &[String]) -> ExitCode {
    use eniplan_cni::install::{InstallError, Settings, apply_sysctls, write_files};
    let (wait, keep_running) = match install_args(args) {
        Ok(parsed) => parsed,
        Err(msg) => return usage(&msg),
    };
    let outcome = Settings::from_vars(vars).and_then(|s| {
        apply_sysctls(&s)?;
        wait_for_ipamd(&s.socket, wait)?;
        let exe = std::env::current_exe().map_err(|source| InstallError::Io {
            path: "/proc/self/exe".into(),
            source,
        })?;
        write_files(&s, &exe)?;
        eprintln!(
            "eniplan-cni installed in {} and {}",
            s.bin_dir.display(),
            s.conf_dir.join(eniplan_cni::install::CONFLIST).display()
        );
        Ok(())
    });
    match outcome {
        Ok(()) if keep_running => until_stopped(),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                InstallError::Invalid { .. } => 2,
                InstallError::NotHealthy { .. } => 3,
                InstallError::Io { .. } => 4,
            })
        }
    }
}

/// `[--wait-secs N] [--keep-running]`, in any order.
fn install_args(args: &[String]) -> Result<(Option<std::time::Duration>, bool), String> {
    let (mut wait, mut keep_running) = (None, false);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--keep-running" => keep_running = true,
            "--wait-secs" => {
                let n = rest.next().ok_or("--wait-secs needs a number of seconds")?;
                let secs = n
                    .parse::<u64>()
                    .map_err(|_| format!("--wait-secs {n:?}: expected a number of seconds"))?;
                wait = Some(std::time::Duration::from_secs(secs));
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok((wait, keep_running))
}

fn usage(msg: &str) -> ExitCode {
    eprintln!(
        "error: {msg}\nusage: eniplan-cni install [--wait-secs N] [--keep-running]\n  \
         --wait-secs N    give up when ipamd is not healthy after N s (0 or omitted: no limit)\n  \
         --keep-running   stay up after installing until SIGTERM (a native sidecar container)"
    );
    ExitCode::from(2)
}

/// Blocks until SIGTERM or SIGINT (as a Kubernetes sidecar that has done its work: PID 1 in
/// its container, where signals without a handler are ignored), then exits 0.
fn until_stopped() -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(4);
        }
    };
    runtime.block_on(async {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("error: cannot install the SIGTERM/SIGINT handlers");
            return ExitCode::from(4);
        };
        eprintln!("eniplan-cni install: staying up until SIGTERM");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        ExitCode::SUCCESS
    })
}

/// Polls ipamd's health every 250 ms until it serves, or until `limit` (none or zero: no
/// limit, as the aws-node entrypoint; the pod's liveness probe ends a stuck start).
fn wait_for_ipamd(
    socket: &str,
    limit: Option<std::time::Duration>,
) -> Result<(), eniplan_cni::install::InstallError> {
    let start = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| eniplan_cni::install::InstallError::Io {
            path: "(runtime)".into(),
            source,
        })?;
    runtime.block_on(async {
        loop {
            if let Ok(ipamd) = eniplan_cni::ipamd::Ipamd::connect(socket).await
                && ipamd.healthy().await
            {
                return Ok(());
            }
            if let Some(limit) = limit.filter(|l| !l.is_zero())
                && start.elapsed() >= limit
            {
                return Err(eniplan_cni::install::InstallError::NotHealthy {
                    socket: socket.to_owned(),
                    waited_s: limit.as_secs(),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    })
}
