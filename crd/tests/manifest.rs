//! The shipped CRD manifest is the Rust type's, and the type reads ENIConfigs as users write
//! them.

use eniplan_crd::{CNINODE_HEADER, ENIConfig, Error, MANIFEST_HEADER, cninode_crd, eniconfig_crd};

/// The manifest as `cargo xtask gen-crds` writes it.
fn eniconfig_crd_yaml() -> String {
    format!(
        "{MANIFEST_HEADER}{}",
        serde_norway::to_string(&eniconfig_crd()).unwrap()
    )
}

#[test]
fn the_shipped_crds_are_the_one_the_type_generates() {
    // deploy/ for kubectl, and the Helm chart's crds/ directory.
    for path in [
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/crds/eniconfigs.yaml"
        ),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../charts/eniplan/crds/eniconfigs.yaml"
        ),
    ] {
        let shipped = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            shipped == eniconfig_crd_yaml(),
            "{path} differs from the ENIConfig type: run `cargo xtask gen-crds`"
        );
    }
}

#[test]
fn the_cninode_fixture_is_the_one_the_type_generates() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../harness/kube/crds/cninodes.yaml"
    );
    let shipped = std::fs::read_to_string(path).unwrap_or_default();
    let want = format!(
        "{CNINODE_HEADER}{}",
        serde_norway::to_string(&cninode_crd()).unwrap()
    );
    assert!(
        shipped == want,
        "{path} differs from the CNINode type: run `cargo xtask gen-crds`"
    );
    let crd: serde_json::Value = serde_norway::from_str(&want).unwrap();
    assert_eq!(crd["metadata"]["name"], "cninodes.vpcresources.k8s.aws");
    assert_eq!(crd["spec"]["scope"], "Cluster");
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_json::json!(["cnd"])
    );
    let features = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["features"];
    assert_eq!(features["items"]["required"], serde_json::json!(["name"]));
}

#[test]
fn the_crd_is_upstreams_shape() {
    let crd: serde_json::Value = serde_norway::from_str(&eniconfig_crd_yaml()).unwrap();
    assert_eq!(crd["metadata"]["name"], "eniconfigs.crd.k8s.amazonaws.com");
    assert_eq!(crd["spec"]["scope"], "Cluster");
    assert_eq!(crd["spec"]["names"]["kind"], "ENIConfig");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    let schema = &version["schema"]["openAPIV3Schema"];
    assert_eq!(schema["x-kubernetes-preserve-unknown-fields"], true);
    let spec = &schema["properties"]["spec"];
    assert_eq!(spec["required"], serde_json::json!(["subnet"]));
    assert_eq!(spec["properties"]["securityGroups"]["type"], "array");
    assert_eq!(schema["properties"]["status"]["type"], "object");
}

fn parse(yaml: &str) -> ENIConfig {
    serde_norway::from_str(yaml).unwrap()
}

#[test]
fn eniconfigs_as_users_write_them_load_and_validate() {
    let ok = parse(
        "apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata:\n  name: us-west-2a\nspec:\n  subnet: subnet-0123456789abcdef0\n  securityGroups:\n  - sg-0a1b2c3d\n",
    );
    assert_eq!(ok.name(), "us-west-2a");
    assert_eq!(ok.spec.security_groups, vec!["sg-0a1b2c3d"]);
    assert_eq!(ok.validate(), Ok(()));
    let no_groups = parse(
        "apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata:\n  name: default\nspec:\n  subnet: subnet-0a1b2c3d\n",
    );
    assert!(no_groups.spec.security_groups.is_empty());
    assert_eq!(no_groups.validate(), Ok(()));
}

#[test]
fn a_bad_eniconfig_is_refused_naming_the_object_and_the_value() {
    let bad_subnet = parse(
        "apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata:\n  name: az1\nspec:\n  subnet: subnet-for-az1\n",
    );
    let e = bad_subnet.validate().unwrap_err();
    assert!(matches!(e, Error::Subnet { .. }));
    let text = e.to_string();
    assert!(
        text.contains("az1") && text.contains("\"subnet-for-az1\""),
        "{text}"
    );

    let bad_group = parse(
        "apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata:\n  name: az2\nspec:\n  subnet: subnet-0a1b2c3d\n  securityGroups: [sg-0a1b2c3d, web]\n",
    );
    assert_eq!(
        bad_group.validate(),
        Err(Error::SecurityGroup {
            name: "az2".into(),
            index: 1,
            value: "web".into()
        })
    );
    let many: Vec<String> = (0..17).map(|i| format!("sg-{i:08x}")).collect();
    let mut too_many = bad_group.clone();
    too_many.spec.security_groups = many;
    assert!(matches!(
        too_many.validate(),
        Err(Error::TooManySecurityGroups { count: 17, .. })
    ));
    // No subnet at all is the CRD's required field: the object does not load.
    let missing: Result<ENIConfig, _> = serde_norway::from_str(
        "apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata:\n  name: az3\nspec: {}\n",
    );
    assert!(missing.unwrap_err().to_string().contains("subnet"));
}
