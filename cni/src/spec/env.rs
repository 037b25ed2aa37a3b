//! The `CNI_*` environment the runtime runs the plugin with.

use std::collections::BTreeMap;

use super::error::{Code, Error};

/// The operation asked for (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Wire a container.
    Add,
    /// Undo ADD; must succeed when repeated.
    Del,
    /// Verify what ADD built.
    Check,
    /// Report the versions spoken.
    Version,
    /// Whether the plugin can serve new containers (1.1.0).
    Status,
    /// Release every attachment not listed as valid (1.1.0).
    Gc,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    /// Whether the command concerns one container (and so needs its id and interface).
    pub fn per_container(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

/// The parsed, validated environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (per-container commands).
    pub container_id: String,
    /// `CNI_NETNS`: required for ADD and CHECK; DEL may come without one.
    pub netns: Option<String>,
    /// `CNI_IFNAME` (per-container commands).
    pub ifname: String,
    /// `CNI_ARGS`, as `KEY=VALUE` pairs (`K8S_POD_NAME`, `K8S_POD_NAMESPACE`, ...).
    pub args: BTreeMap<String, String>,
    /// `CNI_PATH`, the directories plugins are looked up in.
    pub path: Vec<String>,
}

impl Env {
    /// Reads the environment from `vars` (the process's, or a test's).
    ///
    /// # Errors
    /// Code 4, naming the variable, its value and what is accepted.
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Env, Error> {
        let get = |k: &str| vars.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let invalid = |name: &str, msg: String| {
            Error::new(Code::InvalidEnvironment, format!("{name}: {msg}"))
        };
        let command_text = get("CNI_COMMAND").ok_or_else(|| {
            invalid("CNI_COMMAND", "missing".into())
                .details("one of ADD, DEL, CHECK, VERSION, STATUS, GC")
        })?;
        let command = Command::parse(command_text).ok_or_else(|| {
            invalid("CNI_COMMAND", format!("unknown command {command_text:?}"))
                .details("one of ADD, DEL, CHECK, VERSION, STATUS, GC")
        })?;
        let mut env = Env {
            command,
            container_id: String::new(),
            netns: get("CNI_NETNS").map(str::to_owned),
            ifname: String::new(),
            args: BTreeMap::new(),
            path: get("CNI_PATH")
                .map(|p| {
                    p.split(':')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        };
        if let Some(args) = get("CNI_ARGS") {
            env.args = parse_args(args).map_err(|m| invalid("CNI_ARGS", m))?;
        }
        if !command.per_container() {
            return Ok(env);
        }
        let id =
            get("CNI_CONTAINERID").ok_or_else(|| invalid("CNI_CONTAINERID", "missing".into()))?;
        if !valid_container_id(id) {
            return Err(
                invalid("CNI_CONTAINERID", format!("{id:?} is not a container id"))
                    .details("letters, digits, '_', '.' and '-', starting with a letter or digit"),
            );
        }
        id.clone_into(&mut env.container_id);
        let ifname = get("CNI_IFNAME").ok_or_else(|| invalid("CNI_IFNAME", "missing".into()))?;
        if let Err(why) = valid_ifname(ifname) {
            return Err(invalid("CNI_IFNAME", format!("{ifname:?} {why}")));
        }
        ifname.clone_into(&mut env.ifname);
        if env.netns.is_none() && command != Command::Del {
            return Err(invalid("CNI_NETNS", "missing".into())
                .details("the path of the container's network namespace"));
        }
        Ok(env)
    }

    /// A `CNI_ARGS` value, e.g. `K8S_POD_NAME`.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args.get(key).map(String::as_str)
    }
}

/// `K=V;K=V` (the spec's format; empty parts are skipped).
fn parse_args(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not KEY=VALUE"))?;
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

/// The spec: at least one character, letters, digits, `_`, `.`, `-`, not starting with a
/// punctuation character.
fn valid_container_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Linux interface names: 1–15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
fn valid_ifname(name: &str) -> Result<(), &'static str> {
    if name.len() > 15 {
        return Err("is longer than 15 characters");
    }
    if name == "." || name == ".." {
        return Err("is not an interface name");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err("contains '/', ':' or whitespace");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/abc123"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123",
        ),
    ];

    #[test]
    fn an_add_environment_to_its_fields() {
        let env = Env::from_vars(&vars(ADD)).unwrap();
        assert_eq!(env.command, Command::Add);
        assert_eq!(env.container_id, "abc123");
        assert_eq!(env.netns.as_deref(), Some("/var/run/netns/abc123"));
        assert_eq!(env.arg("K8S_POD_NAME"), Some("web-0"));
        assert_eq!(env.path, ["/opt/cni/bin", "/usr/lib/cni"]);
    }

    #[test]
    fn missing_or_bad_variables_are_code_4_naming_them() {
        for (drop, name) in [
            ("CNI_COMMAND", "CNI_COMMAND"),
            ("CNI_CONTAINERID", "CNI_CONTAINERID"),
            ("CNI_IFNAME", "CNI_IFNAME"),
            ("CNI_NETNS", "CNI_NETNS"),
        ] {
            let v: Vec<_> = ADD.iter().copied().filter(|(k, _)| *k != drop).collect();
            let e = Env::from_vars(&vars(&v)).unwrap_err();
            assert_eq!(e.code, Code::InvalidEnvironment);
            assert!(e.msg.starts_with(name), "{e:?}");
        }
        for (k, v) in [
            ("CNI_COMMAND", "CREATE"),
            ("CNI_CONTAINERID", "-abc"),
            ("CNI_CONTAINERID", "a/b"),
            ("CNI_IFNAME", "a-very-long-interface"),
            ("CNI_IFNAME", "eth/0"),
            ("CNI_ARGS", "K8S_POD_NAME"),
        ] {
            let mut m = vars(ADD);
            m.insert(k.into(), v.into());
            let e = Env::from_vars(&m).unwrap_err();
            assert_eq!(e.code, Code::InvalidEnvironment, "{k}={v}");
            assert!(e.msg.starts_with(k) && e.msg.contains(v), "{e:?}");
        }
    }

    #[test]
    fn del_may_come_without_a_netns_and_version_needs_nothing() {
        let mut m = vars(ADD);
        m.insert("CNI_COMMAND".into(), "DEL".into());
        m.remove("CNI_NETNS");
        assert_eq!(Env::from_vars(&m).unwrap().netns, None);
        let v = Env::from_vars(&vars(&[("CNI_COMMAND", "VERSION")])).unwrap();
        assert_eq!(v.command, Command::Version);
        let s = Env::from_vars(&vars(&[("CNI_COMMAND", "STATUS")])).unwrap();
        assert!(!s.command.per_container());
    }
}
