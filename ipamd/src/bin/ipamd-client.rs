//! `ipamd-client`: talks to the daemon's socket like the CNI plugin does, for probes, debugging
//! and tests.
//!
//! * `ipamd-client health [--socket PATH]` asks the standard gRPC health service; the
//!   DaemonSet's readiness and liveness probes run exactly this.
//! * `ipamd-client add CONTAINER_ID [--namespace NS] [--pod NAME]` and `del …` send an
//!   AddNetwork / DelNetwork as the plugin builds them.
//!
//! The socket is `--socket`, else `ipamd.sock` in `$ENIPLAN_STATE_DIR` (the daemon's own
//! variable, so a probe run inside the daemon's container finds the socket the daemon made),
//! else `/var/run/aws-node/ipamd.sock`.
//!
//! Exit codes (docs/ipamd.md): 0 success (SERVING), 1 the daemon refused or is not serving (the
//! gRPC status is printed), 2 usage error, 3 the client could not start.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The daemon's default state directory, as in `ipamd`'s configuration.
const DEFAULT_STATE_DIR: &str = "/var/run/aws-node";

#[derive(Debug, Parser)]
#[command(
    name = "ipamd-client",
    version,
    about = "Talk to eniplan's ipamd over its socket"
)]
struct Cli {
    /// The daemon's gRPC socket [default: $ENIPLAN_STATE_DIR/ipamd.sock, else
    /// /var/run/aws-node/ipamd.sock].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Exit 0 if the daemon is serving pods (what the probes run).
    Health,
    /// Ask for an address for a container, as the CNI plugin's ADD does.
    Add(PodArgs),
    /// Release a container's address, as the CNI plugin's DEL does.
    Del(PodArgs),
}

#[derive(Debug, clap::Args)]
struct PodArgs {
    /// The container (sandbox) id: the key of the address.
    container_id: String,
    /// The pod's namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The pod's name [default: the container id].
    #[arg(long)]
    pod: Option<String>,
}

/// Documented exit codes.
#[derive(Debug, Clone, Copy)]
enum Exit {
    Success = 0,
    Refused = 1,
    CannotStart = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

fn socket_path(cli: &Cli) -> PathBuf {
    cli.socket.clone().unwrap_or_else(|| {
        std::env::var_os("ENIPLAN_STATE_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from)
            .join("ipamd.sock")
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // clap prints usage errors itself and exits 2
    let socket = socket_path(&cli);
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        eprintln!("ipamd-client: cannot start the async runtime");
        return Exit::CannotStart.into();
    };
    runtime.block_on(run(&cli.command, &socket)).into()
}

async fn run(command: &Command, socket: &std::path::Path) -> Exit {
    match command {
        Command::Health => health(socket).await,
        Command::Add(p) => pod_call(socket, p, true).await,
        Command::Del(p) => pod_call(socket, p, false).await,
    }
}

async fn health(socket: &std::path::Path) -> Exit {
    match ipamd::client::health(socket).await {
        Ok(true) => {
            println!("SERVING");
            Exit::Success
        }
        Ok(false) => {
            println!("NOT_SERVING");
            Exit::Refused
        }
        Err(e) => {
            eprintln!("ipamd-client: {e}");
            Exit::Refused
        }
    }
}

async fn pod_call(socket: &std::path::Path, p: &PodArgs, add: bool) -> Exit {
    let mut client = match ipamd::client::connect(socket).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ipamd-client: cannot connect to {}: {e}", socket.display());
            return Exit::Refused;
        }
    };
    let pod = p.pod.as_deref().unwrap_or(&p.container_id);
    let result = if add {
        client
            .add_network(ipamd::client::add_request(
                &p.container_id,
                &p.namespace,
                pod,
            ))
            .await
            .map(|r| format!("{:?}", r.into_inner()))
    } else {
        client
            .del_network(ipamd::client::del_request(
                &p.container_id,
                &p.namespace,
                pod,
            ))
            .await
            .map(|r| format!("{:?}", r.into_inner()))
    };
    match result {
        Ok(reply) => {
            println!("{reply}");
            Exit::Success
        }
        Err(status) => {
            eprintln!("ipamd-client: {}: {}", status.code(), status.message());
            Exit::Refused
        }
    }
}
