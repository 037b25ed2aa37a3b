"""Helm lint, and what each value set must render (charts/eniplan/ci/*-values.yaml)."""

from __future__ import annotations

import re

import helm_python as helm
import pytest

import render
from conftest import VALUE_SETS, values_of

PROBE = ["/usr/local/bin/ipamd-client", "health"]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_chart_lints_strictly(name):
    report = helm.lint(render.CHART, values_of(name) or None, strict=True,
                       namespace=render.NAMESPACE, kube_version="v1.29.0")
    # Severity 1 is information ("icon is recommended"); 2 warning, 3 error.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


def test_schema_rejects_what_ipamd_would_refuse():
    with helm.Chart.load(render.CHART) as chart:
        for bad in [
            {"env": {"ENABLE_PREFIX_DELEGATION": "yes"}},  # ParseBool refuses it; ipamd exits 2
            {"env": {"WARM_IP_TARGET": "-1"}},
            {"env": {"MY_NODE_NAME": "x"}},  # the chart sets it from spec.nodeName
            {"eniConfig": {"subnets": {"us-west-2a": {"id": "sg-0123"}}}},
            {"tolerashuns": []},
        ]:
            with pytest.raises(helm.HelmValuesError):
                chart.render(bad, name=render.RELEASE, namespace=render.NAMESPACE)


def test_aws_vpc_cnis_crd_value_is_refused_by_name():
    # README, "Values": crd.create: false is `helm install --skip-crds` here.
    with helm.Chart.load(render.CHART) as chart:
        with pytest.raises(helm.HelmValuesError, match="additional properties 'crd' not allowed"):
            chart.render({"crd": {"create": False}}, name=render.RELEASE,
                         namespace=render.NAMESPACE)
    readme = (render.CHART / "README.md").read_text()
    assert re.search(r"^\| no `crd\.create` \|.*`helm install --skip-crds`.*"
                     r"`additional properties 'crd' not allowed`", readme, re.M)


def test_eniconfig_values_must_name_subnets_and_zones_of_the_region():
    with helm.Chart.load(render.CHART) as chart:
        for bad in [
            {"eniConfig": {"create": True}},
            {"eniConfig": {"create": True, "region": "us-west-2",
                           "subnets": {"us-east-1a": {"id": "subnet-0123"}}}},
        ]:
            with pytest.raises(helm.HelmRenderError):
                chart.render(bad, name=render.RELEASE, namespace=render.NAMESPACE)


def test_defaults(renders):
    r = renders["default"]
    assert [o["kind"] for o in r.objects] == [
        "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
        "DaemonSet"]
    ds = r.one("DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert ds["metadata"]["namespace"] == "kube-system"
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}}
    assert pod["hostNetwork"] is True
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["serviceAccountName"] == r.one("ServiceAccount")["metadata"]["name"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    (term,) = terms["nodeSelectorTerms"]
    exprs = {e["key"]: (e["operator"], e["values"]) for e in term["matchExpressions"]}
    assert exprs == {"kubernetes.io/os": ("In", ["linux"]),
                     "eks.amazonaws.com/compute-type": ("NotIn", ["fargate", "hybrid", "auto"])}

    ipamd = r.container("ipamd")
    assert ipamd["image"] == "eniplan/eniplan:0.1.0"
    assert ipamd["command"] == ["/usr/local/bin/ipamd"]
    assert ipamd["ports"] == [{"name": "metrics", "containerPort": 61678, "protocol": "TCP"}]
    assert ipamd["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
    node_name = {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert {"name": "MY_NODE_NAME", "valueFrom": node_name} in ipamd["env"]
    env = r.env("ipamd")
    assert "INTROSPECTION_BIND_ADDRESS" not in env, "introspection stays on its loopback default"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert ipamd[probe]["exec"]["command"] == PROBE
    startup = ipamd["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 240, "covers pre-scaling"
    mounts = {m["mountPath"]: m["name"] for m in ipamd["volumeMounts"]}
    assert mounts == {"/var/run/aws-node": "run-dir", "/run/xtables.lock": "xtables-lock"}


def test_the_installer_is_a_native_sidecar_on_the_hosts_cni_directories(renders):
    r = renders["default"]
    pod = r.one("DaemonSet")["spec"]["template"]["spec"]
    (install,) = pod["initContainers"]
    assert install["name"] == "eniplan-cni-install"
    assert install["restartPolicy"] == "Always"
    assert install["command"] == ["/usr/local/bin/eniplan-cni", "install", "--keep-running"]
    assert install["image"] == r.container("ipamd")["image"]
    volumes = {v["name"]: v["hostPath"] for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]]["path"] for m in install["volumeMounts"]}
    assert mounts == {"/host/opt/cni/bin": "/opt/cni/bin", "/host/etc/cni/net.d": "/etc/cni/net.d",
                      "/var/run/aws-node": "/var/run/aws-node",
                      "/var/log/aws-routed-eni": "/var/log/aws-routed-eni"}
    assert volumes["xtables-lock"]["type"] == "FileOrCreate"
    env = r.env("eniplan-cni-install")
    assert env["HOST_CNI_BIN_PATH"] == "/host/opt/cni/bin"
    assert env["HOST_CNI_CONFDIR_PATH"] == "/host/etc/cni/net.d"
    # The MTU and veth prefix are ipamd's and the plugin's alike: both come from `env`.
    for shared in ("AWS_VPC_ENI_MTU", "AWS_VPC_K8S_CNI_VETHPREFIX"):
        assert env[shared] == r.env("ipamd")[shared]


def test_security_groups_for_pods(renders):
    r = renders["security-groups-for-pods"]
    assert r.env("ipamd")["ENABLE_POD_ENI"] == "true"
    # The mode is ipamd's (the local rule) and the plugin's (its conflist) alike.
    for c in ("ipamd", "eniplan-cni-install"):
        assert r.env(c)["POD_SECURITY_GROUP_ENFORCING_MODE"] == "standard"
    assert r.env("eniplan-cni-install")["DISABLE_TCP_EARLY_DEMUX"] == "true"
    (install,) = r.one("DaemonSet")["spec"]["template"]["spec"]["initContainers"]
    assert install["securityContext"]["privileged"] is True
    # Elsewhere the installer holds no privilege at all.
    (plain,) = renders["default"].one("DaemonSet")["spec"]["template"]["spec"]["initContainers"]
    assert "privileged" not in plain["securityContext"]
    assert plain["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_prefix_delegation(renders):
    r = renders["prefix-delegation"]
    env = r.env("ipamd")
    assert env["ENABLE_PREFIX_DELEGATION"] == "true"
    assert env["WARM_PREFIX_TARGET"] == "2"
    # init.env reaches only the installer, over the value it would take from env.
    assert r.env("eniplan-cni-install")["AWS_VPC_K8S_PLUGIN_LOG_LEVEL"] == "Info"
    assert env["AWS_VPC_K8S_PLUGIN_LOG_LEVEL"] == "Debug"
    assert not r.all("ENIConfig")


def test_irsa_annotation_lands_on_the_service_account(renders):
    r = renders["irsa"]
    sa = r.one("ServiceAccount")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::111122223333:role/eniplan-ipamd")
    binding = r.one("ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": "kube-system"}]
    assert "annotations" not in renders["default"].one("ServiceAccount")["metadata"]


def test_custom_networking(renders):
    r = renders["custom-networking"]
    env = r.env("ipamd")
    assert env["AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"] == "true"
    assert env["ENI_CONFIG_LABEL_DEF"] == "topology.kubernetes.io/zone"
    configs = {c["metadata"]["name"]: c for c in r.all("ENIConfig")}
    assert sorted(configs) == ["us-west-2a", "us-west-2b", "us-west-2c"]
    for name, c in configs.items():
        assert c["apiVersion"] == "crd.k8s.amazonaws.com/v1alpha1"
        assert "namespace" not in c["metadata"], "ENIConfig is cluster-scoped"
        wanted = r.values["eniConfig"]["subnets"][name]
        assert c["spec"]["subnet"] == wanted["id"]
        assert c["spec"].get("securityGroups") == wanted.get("securityGroups")


def test_adopting_aws_node_keeps_its_name_and_selector(renders):
    r = renders["adopt-aws-node"]
    ds = r.one("DaemonSet")
    assert ds["metadata"]["name"] == "aws-node"
    assert ds["spec"]["selector"] == {"matchLabels": {"k8s-app": "aws-node"}}
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert labels["k8s-app"] == "aws-node" and labels["team"] == "platform"
    assert ds["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "61678"
    assert r.one("ClusterRoleBinding")["subjects"][0]["name"] == "aws-node"


def test_a_new_node_group_gets_eniplan_only_where_labelled(renders):
    # docs/install.md, "Install on a new node group".
    r = renders["new-node-group"]
    spec = r.one("DaemonSet")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"eniplan.io/cni": "eniplan"}
    images = {c["image"] for c in spec["containers"] + spec["initContainers"]}
    assert images == {"111122223333.dkr.ecr.us-west-2.amazonaws.com/eniplan:0.1.0"}
    assert "nodeSelector" not in renders["default"].one("DaemonSet")["spec"]["template"]["spec"]
