//! `kube-fake`: runs the fake API server until interrupted, for trying eniplan by hand.
//!
//! ```text
//! kube-fake [PORT] [KUBECONFIG-PATH]
//! ```
//! Prints the server's URL; with a path, writes a kubeconfig there (`KUBECONFIG=PATH kubectl
//! get nodes`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port = match args.next() {
        Some(p) => p.parse().map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("kube-fake: {p:?} is not a port number; usage: kube-fake [PORT] [KUBECONFIG-PATH]"))
        })?,
        None => 0,
    };
    let fake = kube_fake::FakeApi::start_with(kube_fake::Options {
        port,
        ..kube_fake::Options::default()
    })
    .await?;
    if let Some(path) = args.next() {
        fake.write_kubeconfig(std::path::Path::new(&path))?;
    }
    println!("{}", fake.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
