"""docs/install.md's commands against what the other checks exercise: the `helm install` of "4a"
sets exactly charts/eniplan/ci/new-node-group-values.yaml (which the chart checks render and
validate), its `kubectl patch` of aws-node applies to EKS's aws-node DaemonSet
(fixtures/aws-node-daemonset.yaml) and splits the nodes between aws-node and eniplan as the
page says, and every install.md section the daemon's messages cite is a heading of the page."""

from __future__ import annotations

import copy
import json
import re
import shlex

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

import render
from conftest import values_of

INSTALL_MD = render.ROOT / "docs" / "install.md"
AWS_NODE = render.ROOT / "deploy" / "tests" / "fixtures" / "aws-node-daemonset.yaml"
NEW_NODE_GROUP = "## 4a. Install on a new node group"


def section(heading: str) -> str:
    """The text under a `## ` heading of install.md, up to the next `## ` heading."""
    text = INSTALL_MD.read_text()
    start = text.find(f"\n{heading}")
    assert start >= 0, f"docs/install.md has no heading {heading!r}"
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def console_commands(text: str) -> list[list[str]]:
    """The `$ ` commands of the ```console blocks in text, as the shell splits them: a command
    goes on over `\\` line ends and open quotes; other lines are output; `#` comments dropped."""
    commands = []
    for block in re.findall(r"^```console\n(.*?)^```", text, re.S | re.M):
        pending = None
        for line in block.splitlines():
            if pending is not None:
                pending += "\n" + line
            elif line.startswith("$ "):
                pending = line[2:]
            else:
                continue  # output
            if pending.endswith("\\"):
                continue
            try:
                words = shlex.split(pending.replace("\\\n", ""))
            except ValueError:
                continue  # an open quote: the command goes on on the next line
            pending = None
            comment = [i for i, w in enumerate(words) if w.startswith("#")]
            words = words[:comment[0]] if comment else words
            if words:
                commands.append(words)
        assert pending is None, f"unfinished command in docs/install.md: {pending!r}"
    return commands


def one_command(text: str, *prefix: str) -> list[str]:
    found = [c for c in console_commands(text) if c[:len(prefix)] == list(prefix)]
    assert len(found) == 1, f"{' '.join(prefix)}: {len(found)} commands in the section"
    return found[0]


# Helm merges --set-json, --set, --set-string and --set-literal in this order, over -f files.
SET_FLAGS = {"--set-json": helm.parse_set_json, "--set": helm.parse_set_string,
             "--set-string": helm.parse_set_string_values, "--set-literal": helm.parse_set_literal}
VALUE_FLAGS = {"--namespace", "-n", "-f", "--values", *SET_FLAGS}


def merge(into: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = v


def helm_install(words: list[str]) -> tuple[list[str], dict[str, list[str]], dict]:
    """(positional arguments, flag -> its values, the values the --set flags give)."""
    assert words[:2] == ["helm", "install"], words
    positional, flags = [], {}
    rest = iter(words[2:])
    for w in rest:
        if not w.startswith("-"):
            positional.append(w)
            continue
        name, eq, value = w.partition("=")
        assert name in VALUE_FLAGS, f"teach this test the helm flag {name} (docs/install.md)"
        flags.setdefault(name, []).append(value if eq else next(rest))
    values: dict = {}
    for flag, parse in SET_FLAGS.items():
        for expression in flags.get(flag, []):
            merge(values, parse(expression))
    return positional, flags, values


def test_console_commands_are_split_like_the_shell():
    text = ("```console\n$ a 'b\nc' \\\n    --d \"e\\.f\"=g   # comment\n"
            "output line\n$ # only a comment\n$ h\n```\n")
    assert console_commands(text) == [["a", "b\nc", "--d", "e\\.f=g"], ["h"]]


def new_node_group_install() -> tuple[list[str], dict[str, list[str]], dict]:
    return helm_install(one_command(section(NEW_NODE_GROUP), "helm", "install"))


def test_the_new_node_group_helm_install_sets_the_ci_values():
    positional, flags, values = new_node_group_install()
    assert positional == [render.RELEASE, "charts/eniplan"]
    assert (flags.get("--namespace") or flags.get("-n")) == [render.NAMESPACE]
    ci = values_of("new-node-group")
    assert values == ci, (
        "docs/install.md (4a) and charts/eniplan/ci/new-node-group-values.yaml must set the "
        f"same values:\n  install.md: {values}\n  ci values:  {ci}")


def eniplan_label() -> tuple[str, str]:
    (item,) = new_node_group_install()[2]["nodeSelector"].items()
    return item


def test_every_label_the_page_tells_you_to_set_is_the_node_selector():
    key, value = eniplan_label()
    text = INSTALL_MD.read_text()
    mentions = re.findall(rf"{re.escape(key)}=([\w.-]+)", text)
    assert len(mentions) >= 2 and set(mentions) == {value}, mentions


# RFC 6902, the operations a doc might use (kubectl patch --type json).
def _pointer(path: str) -> list[str]:
    assert path.startswith("/"), path
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _step(node, key: str):
    if isinstance(node, list):
        return node[int(key)]
    return node[key]  # a missing member is an error, as in kubectl


def json_patch(doc, ops: list[dict]):
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        parent = doc
        for key in parents:
            parent = _step(parent, key)
        kind = op["op"]
        if kind == "test":
            assert _step(parent, last) == op["value"], op
        elif kind == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif kind in ("add", "replace"):
            value = copy.deepcopy(op["value"])
            if isinstance(parent, list):
                if last == "-" and kind == "add":
                    parent.append(value)
                elif kind == "add":
                    assert 0 <= int(last) <= len(parent), op
                    parent.insert(int(last), value)
                else:
                    _step(parent, last)
                    parent[int(last)] = value
            else:
                if kind == "replace":
                    _step(parent, last)
                parent[last] = value
        else:
            raise AssertionError(f"teach json_patch the op {kind!r}")
    return doc


def test_json_patch_follows_rfc_6902():
    doc = {"a": {"b": [1, 2]}, "c~/d": 0}
    assert json_patch(doc, [{"op": "add", "path": "/a/b/-", "value": 3},
                            {"op": "add", "path": "/a/b/0", "value": 0},
                            {"op": "replace", "path": "/c~0~1d", "value": 1},
                            {"op": "remove", "path": "/a/b/1"}]) == {
        "a": {"b": [0, 2, 3]}, "c~/d": 1}
    assert doc == {"a": {"b": [1, 2]}, "c~/d": 0}
    for bad in [{"op": "add", "path": "/x/y", "value": 1},
                {"op": "replace", "path": "/a/z", "value": 1},
                {"op": "test", "path": "/c~0~1d", "value": 1}]:
        with pytest.raises((KeyError, AssertionError)):
            json_patch(doc, [bad])


def schedules_on(daemonset: dict, labels: dict[str, str]) -> bool:
    """Whether the DaemonSet's pods fit a node with these labels (taints aside: both tolerate
    every taint): nodeSelector, and any one required node-affinity term, as the scheduler."""
    spec = daemonset["spec"]["template"]["spec"]
    if any(labels.get(k) != v for k, v in spec.get("nodeSelector", {}).items()):
        return False
    required = (spec.get("affinity", {}).get("nodeAffinity", {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True

    def matches(e: dict) -> bool:
        op, key = e["operator"], e["key"]
        if op == "In":
            return key in labels and labels[key] in e["values"]
        if op == "NotIn":
            return key not in labels or labels[key] not in e["values"]
        if op == "Exists":
            return key in labels
        if op == "DoesNotExist":
            return key not in labels
        raise AssertionError(f"teach schedules_on the operator {op}")

    return any(term.get("matchExpressions") and all(map(matches, term["matchExpressions"]))
               for term in required["nodeSelectorTerms"])


def test_the_aws_node_patch_keeps_aws_node_off_the_nodes_labelled_for_eniplan(renders):
    words = one_command(section(NEW_NODE_GROUP), "kubectl", "-n", "kube-system", "patch",
                        "daemonset", "aws-node")
    assert words[words.index("--type") + 1] == "json"
    ops = json.loads(words[words.index("-p") + 1])
    (aws_node,) = yaml.safe_load_all(AWS_NODE.read_text())
    patched = json_patch(aws_node, ops)
    kubernetes_validate.validate(patched, "1.29", strict=True)

    # The patch adds one expression to the one term, and changes nothing else.
    terms = patched["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert len(terms) == 1, "with more terms (ORed), a NotIn in the first would not be enough"
    added = terms[0]["matchExpressions"].pop()
    assert patched == aws_node
    key, value = eniplan_label()
    assert added == {"key": key, "operator": "NotIn", "values": [value]}
    patched = json_patch(aws_node, ops)

    eniplan = renders["new-node-group"].one("DaemonSet")
    ec2 = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    nodes = {  # an unlabelled node is also what a rollback leaves (the label removed)
        "existing node": ec2,
        "new node group": {**ec2, key: value},
        "new node group, Graviton": {**ec2, "kubernetes.io/arch": "arm64", key: value},
    }
    want = {"existing node": "aws-node", "new node group": "eniplan",
            "new node group, Graviton": "eniplan"}
    got = {}
    for name, labels in nodes.items():
        assert schedules_on(aws_node, labels), f"{name}: aws-node runs there before the patch"
        on = [n for n, ds in (("aws-node", patched), ("eniplan", eniplan))
              if schedules_on(ds, labels)]
        assert len(on) == 1, f"{name}: exactly one CNI, not {on}"
        got[name] = on[0]
    assert got == want
    fargate = {**ec2, "eks.amazonaws.com/compute-type": "fargate", key: value}
    assert not schedules_on(patched, fargate) and not schedules_on(eniplan, fargate)


def rust_sources() -> str:
    """The crates' sources with Rust's `\\` line continuations joined."""
    text = "".join(p.read_text() for p in sorted(render.ROOT.glob("*/src/**/*.rs")))
    return re.sub(r"\\\n\s*", "", text)


def test_every_install_md_section_a_message_cites_is_a_heading():
    cited = set(re.findall(r'docs/install\.md, \\"([^"\\]+)\\"', rust_sources()))
    assert cited, "ipamd's socket-in-use message cites a section of docs/install.md"
    headings = set(re.findall(r"^#+ (.+?)\s*$", INSTALL_MD.read_text(), re.M))
    assert cited <= headings, f"not headings of docs/install.md: {cited - headings}"
