//! `ipamd-client add|del CONTAINER [--socket PATH] [--namespace NS] [--pod NAME]`: talks to the
//! daemon's socket like the CNI plugin does, for debugging and tests. `ipamd-client health
//! [--socket PATH]` asks the standard gRPC health service (the DaemonSet's probes use it).
//! Exit 0 on success (or SERVING), 1 when the daemon refused or is not serving (the gRPC status
//! is printed), 2 on usage errors.

use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: ipamd-client add|del CONTAINER_ID [--socket PATH] [--namespace NS] [--pod NAME]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(verb), Some(container)) = (args.first(), args.get(1)) else {
        return usage();
    };
    let mut socket = PathBuf::from("/var/run/aws-node/ipamd.sock");
    let (mut namespace, mut pod) = ("default".to_owned(), container.clone());
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        let Some(value) = rest.next() else {
            return usage();
        };
        match flag.as_str() {
            "--socket" => socket = PathBuf::from(value),
            "--namespace" => namespace.clone_from(value),
            "--pod" => pod.clone_from(value),
            _ => return usage(),
        }
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::from(3);
    };
    runtime.block_on(async {
        let mut client = match ipamd::client::connect(&socket).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cannot connect to {}: {e}", socket.display());
                return ExitCode::from(1);
            }
        };
        if verb == "health" {
            return match ipamd::client::health(&socket).await {
                Ok(true) => {
                    println!("SERVING");
                    ExitCode::SUCCESS
                }
                Ok(false) => {
                    println!("NOT_SERVING");
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            };
        }
        let result = match verb.as_str() {
            "add" => client
                .add_network(ipamd::client::add_request(container, &namespace, &pod))
                .await
                .map(|r| format!("{:?}", r.into_inner())),
            "del" => client
                .del_network(ipamd::client::del_request(container, &namespace, &pod))
                .await
                .map(|r| format!("{:?}", r.into_inner())),
            _ => return usage(),
        };
        match result {
            Ok(reply) => {
                println!("{reply}");
                ExitCode::SUCCESS
            }
            Err(status) => {
                eprintln!("{}: {}", status.code(), status.message());
                ExitCode::from(1)
            }
        }
    })
}
