//! Bad Kubernetes settings, as a user meets them: the real binary, its message and exit code.

use std::process::Command;

fn ipamd(env: &[(&str, &str)]) -> (Option<i32>, String) {
    // One directory per call: the tests run in parallel.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("eniplan-kubecfg-{}-{call}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipamd"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &dir) // no ~/.kube/config
        .env("ENIPLAN_STATE_DIR", &dir)
        .env("ENIPLAN_HOST_NETWORKING", "false")
        .env("AWS_REGION", "us-west-2")
        .env("AWS_EC2_ENDPOINT", "http://127.0.0.1:9") // never reached
        .env("ENIPLAN_IMDS_ENDPOINT", "http://127.0.0.1:9")
        .env("DISABLE_INTROSPECTION", "true")
        .env("DISABLE_METRICS", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_node_name_without_any_kubernetes_client_configuration_exits_8() {
    let (code, err) = ipamd(&[("MY_NODE_NAME", "n1")]);
    assert_eq!(code, Some(8), "{err}");
    assert!(
        err.contains("KUBECONFIG") && err.contains("service account"),
        "{err}"
    );
}

#[test]
fn custom_networking_without_a_node_name_exits_2_naming_the_variable() {
    let (code, err) = ipamd(&[("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "true")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("MY_NODE_NAME"), "{err}");
}

#[test]
fn an_eniconfig_key_that_is_no_label_key_exits_2() {
    let (code, err) = ipamd(&[
        ("MY_NODE_NAME", "n1"),
        ("ENI_CONFIG_LABEL_DEF", "zone, region"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("ENI_CONFIG_LABEL_DEF") && err.contains("zone, region"),
        "{err}"
    );
}

#[test]
fn enable_pod_eni_without_a_node_name_exits_2_naming_the_variable() {
    let (code, err) = ipamd(&[("ENABLE_POD_ENI", "true")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("MY_NODE_NAME") && err.contains("ENABLE_POD_ENI"),
        "{err}"
    );
}
