"""Shared fixtures: each value set is rendered once per session, and checkov runs once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import render

CI_DIR = render.CHART / "ci"
# The value sets: the chart's defaults, then every charts/eniplan/ci/*-values.yaml by name
# (adopt-aws-node, custom-networking, irsa, prefix-delegation).
VALUE_SETS = ["default"] + sorted(
    p.name.removesuffix("-values.yaml") for p in CI_DIR.glob("*-values.yaml"))


@dataclass(frozen=True)
class Rendered:
    name: str
    values: dict
    docs: list[render.Document]

    @property
    def objects(self) -> list[dict]:
        return [d.object for d in self.docs]

    def one(self, kind: str) -> dict:
        found = [o for o in self.objects if o["kind"] == kind]
        assert len(found) == 1, f"{self.name}: {len(found)} {kind} objects"
        return found[0]

    def all(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def container(self, name: str) -> dict:
        spec = self.one("DaemonSet")["spec"]["template"]["spec"]
        containers = spec.get("initContainers", []) + spec["containers"]
        found = [c for c in containers if c["name"] == name]
        assert len(found) == 1, f"{self.name}: container {name}"
        return found[0]

    def env(self, container: str) -> dict[str, str]:
        """The container's literal variables (valueFrom ones map to None)."""
        return {e["name"]: e.get("value") for e in self.container(container).get("env", [])}


def values_of(name: str) -> dict:
    return {} if name == "default" else render.values_file(CI_DIR / f"{name}-values.yaml")


@pytest.fixture(scope="session")
def renders() -> dict[str, Rendered]:
    return {n: Rendered(n, values_of(n), render.render(values_of(n) or None)) for n in VALUE_SETS}


@pytest.fixture(scope="session")
def render_dir(renders, tmp_path_factory) -> Path:
    """Every value set's render as <name>.yaml in one directory (for yamllint and checkov)."""
    d = tmp_path_factory.mktemp("rendered")
    for name, r in renders.items():
        (d / f"{name}.yaml").write_text(render.manifest(r.docs))
    return d


@pytest.fixture(scope="session")
def checkov_failures(render_dir) -> dict[str, set[str]]:
    """Check ID -> the failing resources ("<value set>: <kind>.<namespace>.<name>"), from one
    offline checkov run (no skip list: the test compares with it) over every render."""
    checkov = Path(sys.executable).with_name("checkov")
    env = dict(os.environ, LOG_LEVEL="WARNING")
    out = subprocess.run(
        [str(checkov), "--directory", str(render_dir), "--framework", "kubernetes",
         "--skip-download", "--output", "json", "--compact", "--quiet"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    # Exit 1 means "findings"; anything else with no JSON is checkov failing to run.
    assert out.returncode in (0, 1), out.stderr[-3000:]
    reports = json.loads(out.stdout) if out.stdout.strip() else []
    if isinstance(reports, dict):
        reports = [reports]
    failures: dict[str, set[str]] = {}
    for report in reports:
        if report.get("check_type", "kubernetes") != "kubernetes":
            continue
        for f in report.get("results", {}).get("failed_checks", []):
            where = f"{Path(f['file_path']).stem}: {f['resource']}"
            failures.setdefault(f["check_id"], set()).add(where)
    return failures


def load_yaml_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
