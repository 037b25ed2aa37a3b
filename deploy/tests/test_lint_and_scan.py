"""yamllint over the chart's YAML, deploy/ and every render; checkov (offline) over every render,
where each finding must be one charts/eniplan/.checkov.yaml skips and the chart's README
justifies."""

from __future__ import annotations

import re

import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

import render

CONFIG = YamlLintConfig(file=str(render.ROOT / ".yamllint.yaml"))
SKIP_FILE = render.CHART / ".checkov.yaml"
README = render.CHART / "README.md"


def lint(path) -> list[str]:
    problems = linter.run(path.read_text(), CONFIG, str(path))
    return [f"{path}:{p.line}:{p.column}: {p.desc} ({p.rule})" for p in problems]


def test_yamllint(render_dir):
    files = [render.CHART / "Chart.yaml", render.CHART / "values.yaml", SKIP_FILE,
             *sorted((render.CHART / "ci").glob("*.yaml")),
             *sorted((render.CHART / "crds").glob("*.yaml")),
             *sorted((render.ROOT / "deploy").glob("*.yaml")),
             *sorted((render.ROOT / "deploy" / "crds").glob("*.yaml")),
             *sorted((render.ROOT / "deploy" / "tests" / "fixtures").glob("*.yaml")),
             *sorted(render_dir.glob("*.yaml"))]
    assert len(files) >= 12
    problems = [p for f in files for p in lint(f)]
    assert not problems, "\n".join(problems)


def test_yamllint_can_fail(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\na: 2\nb:   [x,y]\n")
    assert lint(bad)


def skip_list() -> list[str]:
    return yaml.safe_load(SKIP_FILE.read_text())["skip-check"]


def test_every_checkov_finding_is_a_justified_skip(checkov_failures):
    unjustified = {c: sorted(w) for c, w in checkov_failures.items() if c not in skip_list()}
    assert not unjustified, (
        f"checkov findings not in {SKIP_FILE.name}: fix them, or skip and justify them there "
        f"and in README.md: {unjustified}")


def test_every_skip_is_still_needed(checkov_failures):
    stale = [c for c in skip_list() if c not in checkov_failures]
    assert not stale, f"{SKIP_FILE.name} skips checks that pass now; remove them: {stale}"


def test_every_skip_is_justified_in_the_readme():
    # A row of the README's checkov table: | `CKV_K8S_19` | what | why |
    row = r"^\| `(CKV2?_K8S_\d+)` \|[^|]+\| *([^|]*?) *\|$"
    rows = dict(re.findall(row, README.read_text(), re.M))
    assert sorted(rows) == sorted(skip_list())
    assert all(len(why) > 30 for why in rows.values()), rows
