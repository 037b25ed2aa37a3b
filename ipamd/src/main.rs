//! `ipamd`: the node daemon. Reads its configuration from the environment once, connects to
//! IMDS and EC2, and runs until SIGTERM (stop growing, keep serving) and a second SIGTERM or
//! SIGINT (exit). Exit codes are documented in docs/ipamd.md.

use std::process::ExitCode;

use cloud::aws::{AwsEc2, AwsImds, AwsSettings};
use ipamd::config::Config;
use ipamd::{Error, Exit, Stage};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// What `ipamd --help` prints.
const HELP: &str = "\
ipamd: eniplan's node daemon (warm pools of ENI addresses for pods, served to eniplan-cni)

usage: ipamd            run; every setting is an environment variable (docs/configuration.md)
       ipamd --version  print the version
       ipamd --help     print this

exit codes: docs/ipamd.md, \"Exit codes\"";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => {}
        ["--version" | "-V"] => {
            println!("ipamd {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        ["--help" | "-h"] => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!(
                "ipamd: unexpected arguments {args:?}; settings are environment variables\n\n{HELP}"
            );
            return Exit::Config.into();
        }
    }
    let vars = std::env::vars().collect();
    let config = match Config::from_vars(&vars) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ipamd: {e}");
            return e.exit().into();
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(match config.log_level.as_str() {
        "fatal" => "error",
        other => other,
    })
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a container's log file gets plain lines.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One thread: the daemon's work is small and mostly waiting; a request's hand-offs (socket
    // task → pool loop → reply) stay on one thread instead of waking another (docs/benchmarks.md).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ipamd: cannot start the runtime: {e}");
            return Exit::Io.into();
        }
    };
    match runtime.block_on(daemon(config)) {
        Ok(()) => Exit::Success.into(),
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ipamd: {e}");
            e.exit().into()
        }
    }
}

async fn daemon(config: Config) -> Result<(), Error> {
    let imds = AwsImds::new(&AwsSettings {
        imds_endpoint: config.imds_endpoint.clone(),
        ..AwsSettings::default()
    })
    .map_err(|source| Error::Cloud {
        what: "configuring IMDS".into(),
        source,
    })?;
    let region = match &config.region {
        Some(r) => r.clone(),
        None => {
            cloud::imds::identity(&imds)
                .await
                .map_err(|source| Error::Cloud {
                    what: "reading the region from IMDS".into(),
                    source,
                })?
                .region
        }
    };
    let ec2 = AwsEc2::new(&AwsSettings {
        region: Some(region),
        ec2_endpoint: config.ec2_endpoint.clone(),
        imds_endpoint: None,
        static_credentials: None,
        attempt_timeout: Some(config.http_timeout),
    })
    .await
    .map_err(|source| Error::Cloud {
        what: "configuring EC2".into(),
        source,
    })?;
    let (stage_tx, stage_rx) = watch::channel(Stage::Running);
    let mut term = signal(SignalKind::terminate()).map_err(|source| Error::Io {
        what: "cannot handle",
        path: "SIGTERM".into(),
        source,
    })?;
    let mut int = signal(SignalKind::interrupt()).map_err(|source| Error::Io {
        what: "cannot handle",
        path: "SIGINT".into(),
        source,
    })?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {
                let _ = stage_tx.send(Stage::Terminating);
                tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            }
            _ = int.recv() => {}
        }
        let _ = stage_tx.send(Stage::Exit);
    });
    ipamd::run(config, ec2, imds, stage_rx).await
}
