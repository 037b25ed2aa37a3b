//! A small driver for the `iptables` and `iptables-restore` commands (decision 0008). A node's
//! rules live in one of two backends, nf_tables or legacy, and every writer must use the one
//! kube-proxy and the kubelet use, or two rule sets apply at once. ipamd's image carries both
//! (`iptables-nft`, `iptables-legacy`); [`Iptables::resolve`] picks one as kube-proxy's
//! iptables wrapper does: the backend that already holds more rules, nf_tables on a tie
//! (`ENIPLAN_IPTABLES_MODE` forces one). Rules are argument lists as `iptables -A CHAIN` takes
//! them; `-w` waits for the xtables lock other writers on the node hold.

use std::process::Output;

use crate::error::{Error, Result};

/// A rule: the arguments after `-A CHAIN`.
pub type Rule = Vec<String>;

/// Builds a [`Rule`] from words.
pub fn rule(words: &[&str]) -> Rule {
    words.iter().map(|w| (*w).to_owned()).collect()
}

fn failed(what: &str, out: &Output) -> Error {
    Error::HostNetwork {
        what: what.to_owned(),
        reason: format!(
            "{} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ),
    }
}

/// `ENIPLAN_IPTABLES_MODE`: which backend ipamd writes its rules to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The one the node already uses (more rules), nf_tables on a tie (the default).
    #[default]
    Auto,
    /// nf_tables (`iptables-nft`).
    Nft,
    /// The legacy tables (`iptables-legacy`).
    Legacy,
}

/// A backend: the commands that speak it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iptables {
    /// `iptables`, `iptables-nft` or `iptables-legacy`.
    pub cmd: &'static str,
    /// The matching `-restore` command.
    pub restore: &'static str,
}

impl Iptables {
    /// nf_tables.
    pub const NFT: Iptables = Iptables {
        cmd: "iptables-nft",
        restore: "iptables-nft-restore",
    };
    /// The legacy tables.
    pub const LEGACY: Iptables = Iptables {
        cmd: "iptables-legacy",
        restore: "iptables-legacy-restore",
    };
    /// Whatever `iptables` is on a host that has neither named command.
    pub const PLAIN: Iptables = Iptables {
        cmd: "iptables",
        restore: "iptables-restore",
    };

    /// The backend for `mode`. `Auto` counts the rules each backend holds (`iptables-nft-save`,
    /// `iptables-legacy-save`): legacy when it holds more, nf_tables otherwise; when neither
    /// command exists, plain `iptables`.
    pub async fn resolve(mode: Mode) -> Iptables {
        match mode {
            Mode::Nft => Iptables::NFT,
            Mode::Legacy => Iptables::LEGACY,
            Mode::Auto => {
                let nft = count_rules("iptables-nft-save").await;
                let legacy = count_rules("iptables-legacy-save").await;
                let chosen = match (nft, legacy) {
                    (None, None) => Iptables::PLAIN,
                    (Some(n), Some(l)) if l > n => Iptables::LEGACY,
                    (None, Some(_)) => Iptables::LEGACY,
                    _ => Iptables::NFT,
                };
                tracing::info!(
                    backend = chosen.cmd,
                    nft_rules = ?nft,
                    legacy_rules = ?legacy,
                    "iptables backend chosen by the rules already on the node"
                );
                chosen
            }
        }
    }

    async fn run(&self, args: &[&str]) -> Result<Output> {
        tokio::process::Command::new(self.cmd)
            .arg("-w")
            .args(args)
            .output()
            .await
            .map_err(|e| Error::HostNetwork {
                what: format!("running {} {}", self.cmd, args.join(" ")),
                reason: format!("{e} (is iptables installed on the node?)"),
            })
    }
}

/// How many rules (`-A` lines) `save` prints, or `None` when it cannot run.
async fn count_rules(save: &str) -> Option<usize> {
    let out = tokio::process::Command::new(save)
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("-A "))
            .count()
    })
}

fn with<'a>(head: &[&'a str], rule: &'a [String]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(rule.iter().map(String::as_str))
        .collect()
}

/// A word as `iptables-restore` reads it: quoted when it holds a space.
fn restore_word(w: &str) -> String {
    if w.contains(' ') || w.is_empty() {
        format!("\"{w}\"")
    } else {
        w.to_owned()
    }
}

/// The `iptables-restore --noflush` input that replaces `chain`'s rules with `rules` (declaring
/// a chain flushes it, creating it when missing).
pub fn restore_input(table: &str, chain: &str, rules: &[Rule]) -> String {
    let mut s = format!("*{table}\n:{chain} - [0:0]\n");
    for r in rules {
        let words: Vec<String> = r.iter().map(|w| restore_word(w)).collect();
        s.push_str("-A ");
        s.push_str(chain);
        s.push(' ');
        s.push_str(&words.join(" "));
        s.push('\n');
    }
    s.push_str("COMMIT\n");
    s
}

impl Iptables {
    /// Whether `rule` is in `chain` of `table` (`iptables -C`).
    ///
    /// # Errors
    /// [`Error::HostNetwork`] when iptables cannot answer (exit codes other than 0 and 1).
    pub async fn exists(&self, table: &str, chain: &str, rule: &[String]) -> Result<bool> {
        let out = self.run(&with(&["-t", table, "-C", chain], rule)).await?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            // A rule jumping to a chain that does not exist cannot be there either.
            Some(2) if String::from_utf8_lossy(&out.stderr).contains("does not exist") => Ok(false),
            _ => Err(failed(&format!("checking a rule of {table}/{chain}"), &out)),
        }
    }

    /// The `-A` lines of a chain, or `None` when the chain does not exist.
    ///
    /// # Errors
    /// [`Error::HostNetwork`] when iptables cannot run.
    pub async fn chain_rules(&self, table: &str, chain: &str) -> Result<Option<Vec<String>>> {
        let out = self.run(&["-t", table, "-S", chain]).await?;
        if !out.status.success() {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("-A "))
                .map(str::to_owned)
                .collect(),
        ))
    }

    /// Makes `chain` hold exactly `rules`, in order, in one atomic `iptables-restore`; leaves it
    /// untouched when it already does. Returns whether it wrote.
    ///
    /// # Errors
    /// [`Error::HostNetwork`] with iptables' message.
    pub async fn set_chain(&self, table: &str, chain: &str, rules: &[Rule]) -> Result<bool> {
        if let Some(lines) = self.chain_rules(table, chain).await?
            && lines.len() == rules.len()
        {
            let mut all = true;
            for r in rules {
                if !self.exists(table, chain, r).await? {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(false);
            }
        }
        let input = restore_input(table, chain, rules);
        let mut child = tokio::process::Command::new(self.restore)
            .args(["-w", "--noflush"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| Error::HostNetwork {
                what: format!("running {} for {table}/{chain}", self.restore),
                reason: format!("{e} (is iptables installed on the node?)"),
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt as _;
            stdin
                .write_all(input.as_bytes())
                .await
                .map_err(|e| Error::HostNetwork {
                    what: format!("writing iptables-restore's input for {table}/{chain}"),
                    reason: e.to_string(),
                })?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| Error::HostNetwork {
                what: format!("waiting for iptables-restore for {table}/{chain}"),
                reason: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(failed(&format!("writing {table}/{chain}"), &out));
        }
        Ok(true)
    }

    /// Appends `rule` to `chain` unless it is there. Returns whether it wrote.
    ///
    /// # Errors
    /// [`Error::HostNetwork`] with iptables' message.
    pub async fn ensure(&self, table: &str, chain: &str, rule: &[String]) -> Result<bool> {
        if self.exists(table, chain, rule).await? {
            return Ok(false);
        }
        let out = self.run(&with(&["-t", table, "-A", chain], rule)).await?;
        if !out.status.success() {
            return Err(failed(&format!("appending to {table}/{chain}"), &out));
        }
        Ok(true)
    }

    /// Deletes `rule` from `chain` if it is there (every copy).
    ///
    /// # Errors
    /// [`Error::HostNetwork`] with iptables' message.
    pub async fn remove(&self, table: &str, chain: &str, rule: &[String]) -> Result<()> {
        while self.exists(table, chain, rule).await? {
            let out = self.run(&with(&["-t", table, "-D", chain], rule)).await?;
            if !out.status.success() {
                return Err(failed(&format!("deleting from {table}/{chain}"), &out));
            }
        }
        Ok(())
    }

    /// Flushes and deletes `chain` if it exists (nothing may jump to it any more).
    ///
    /// # Errors
    /// [`Error::HostNetwork`] with iptables' message.
    pub async fn remove_chain(&self, table: &str, chain: &str) -> Result<()> {
        if self.chain_rules(table, chain).await?.is_none() {
            return Ok(());
        }
        for flag in ["-F", "-X"] {
            let out = self.run(&["-t", table, flag, chain]).await?;
            if !out.status.success() {
                return Err(failed(&format!("removing {table}/{chain}"), &out));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_input_quotes_comments_and_declares_the_chain() {
        let input = restore_input(
            "nat",
            "AWS-SNAT-CHAIN-0",
            &[rule(&[
                "-d",
                "10.0.0.0/16",
                "-m",
                "comment",
                "--comment",
                "AWS SNAT CHAIN",
                "-j",
                "RETURN",
            ])],
        );
        assert_eq!(
            input,
            "*nat\n:AWS-SNAT-CHAIN-0 - [0:0]\n-A AWS-SNAT-CHAIN-0 -d 10.0.0.0/16 -m comment --comment \"AWS SNAT CHAIN\" -j RETURN\nCOMMIT\n"
        );
    }
}
