"""deploy/ in step with the chart: deploy/eniplan.yaml is the default render, the chart's
ClusterRole grants exactly deploy/rbac.yaml's rules (the role the daemon's tests run under),
the chart's CRD is deploy/crds/eniconfigs.yaml byte for byte, and every variable the chart sets
is one eniplan reads."""

from __future__ import annotations

import difflib
import re

import render
from conftest import load_yaml_all


def test_deploy_eniplan_yaml_is_a_fresh_render():
    committed, fresh = render.DEPLOY.read_text(), render.deploy_text()
    diff = difflib.unified_diff(committed.splitlines(), fresh.splitlines(),
                                "deploy/eniplan.yaml", "fresh render", lineterm="")
    assert committed == fresh, (
        "deploy/eniplan.yaml differs from the chart's default render; run scripts/render-deploy\n"
        + "\n".join(list(diff)[:60]))


def test_the_cluster_role_is_deploy_rbac_yaml(renders):
    (wanted,) = [o for o in load_yaml_all(render.ROOT / "deploy" / "rbac.yaml")
                 if o["kind"] == "ClusterRole"]
    for r in renders.values():
        assert r.one("ClusterRole")["rules"] == wanted["rules"], r.name


def test_the_chart_crd_is_deploy_crd():
    chart = (render.CHART / "crds" / "eniconfigs.yaml").read_bytes()
    assert chart == (render.ROOT / "deploy" / "crds" / "eniconfigs.yaml").read_bytes(), (
        "charts/eniplan/crds/eniconfigs.yaml must be deploy/crds/eniconfigs.yaml: "
        "cargo xtask gen-crds writes both")


def documented_variables() -> set[str]:
    docs = "".join((render.ROOT / "docs" / f).read_text() for f in ("configuration.md", "cni.md"))
    return set(re.findall(r"`([A-Z][A-Za-z0-9_]+)`", docs))


def test_every_variable_set_is_one_eniplan_reads(renders):
    known = documented_variables()
    for r in renders.values():
        for container in ("ipamd", "eniplan-cni-install"):
            unknown = set(r.env(container)) - known
            assert not unknown, (
                f"{r.name}/{container}: not in docs/configuration.md or cni.md: {unknown}")
