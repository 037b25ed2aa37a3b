//! A small driver for the `iptables` and `iptables-restore` commands (decision 0008): whatever
//! backend the node uses (nf_tables or legacy), the command speaks it, as for kube-proxy and the
//! VPC CNI. Rules are argument lists as `iptables -A CHAIN` takes them; `-w` waits for the
//! xtables lock other writers on the node hold.

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

async fn iptables(args: &[&str]) -> Result<Output> {
    tokio::process::Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .await
        .map_err(|e| Error::HostNetwork {
            what: format!("running iptables {}", args.join(" ")),
            reason: format!("{e} (is iptables installed on the node?)"),
        })
}

fn with<'a>(head: &[&'a str], rule: &'a [String]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(rule.iter().map(String::as_str))
        .collect()
}

/// Whether `rule` is in `chain` of `table` (`iptables -C`).
///
/// # Errors
/// [`Error::HostNetwork`] when iptables cannot answer (exit codes other than 0 and 1).
pub async fn exists(table: &str, chain: &str, rule: &[String]) -> Result<bool> {
    let out = iptables(&with(&["-t", table, "-C", chain], rule)).await?;
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
pub async fn chain_rules(table: &str, chain: &str) -> Result<Option<Vec<String>>> {
    let out = iptables(&["-t", table, "-S", chain]).await?;
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

/// Makes `chain` hold exactly `rules`, in order, in one atomic `iptables-restore`; leaves it
/// untouched when it already does. Returns whether it wrote.
///
/// # Errors
/// [`Error::HostNetwork`] with iptables' message.
pub async fn set_chain(table: &str, chain: &str, rules: &[Rule]) -> Result<bool> {
    if let Some(lines) = chain_rules(table, chain).await?
        && lines.len() == rules.len()
    {
        let mut all = true;
        for r in rules {
            if !exists(table, chain, r).await? {
                all = false;
                break;
            }
        }
        if all {
            return Ok(false);
        }
    }
    let input = restore_input(table, chain, rules);
    let mut child = tokio::process::Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::HostNetwork {
            what: format!("running iptables-restore for {table}/{chain}"),
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
pub async fn ensure(table: &str, chain: &str, rule: &[String]) -> Result<bool> {
    if exists(table, chain, rule).await? {
        return Ok(false);
    }
    let out = iptables(&with(&["-t", table, "-A", chain], rule)).await?;
    if !out.status.success() {
        return Err(failed(&format!("appending to {table}/{chain}"), &out));
    }
    Ok(true)
}

/// Deletes `rule` from `chain` if it is there (every copy).
///
/// # Errors
/// [`Error::HostNetwork`] with iptables' message.
pub async fn remove(table: &str, chain: &str, rule: &[String]) -> Result<()> {
    while exists(table, chain, rule).await? {
        let out = iptables(&with(&["-t", table, "-D", chain], rule)).await?;
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
pub async fn remove_chain(table: &str, chain: &str) -> Result<()> {
    if chain_rules(table, chain).await?.is_none() {
        return Ok(());
    }
    for flag in ["-F", "-X"] {
        let out = iptables(&["-t", table, flag, chain]).await?;
        if !out.status.success() {
            return Err(failed(&format!("removing {table}/{chain}"), &out));
        }
    }
    Ok(())
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
