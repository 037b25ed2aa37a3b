"""Structure of terraform/ that `terraform validate` would not catch (and that cannot run
here: it needs the providers). Run by scripts/check-terraform, offline."""

import re
from pathlib import Path

import hcl2
import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
MODULE = TERRAFORM / "modules" / "eniplan"
EXAMPLE = TERRAFORM / "examples" / "custom-networking"
# `eniplan layout --format terraform` output: a module without a terraform block, by design.
GENERATED = EXAMPLE / "layout"
SNAPSHOT = REPO / "cli" / "tests" / "snapshots" / "cli__layout_terraform.snap"

OPTIONS = hcl2.SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)
TF_FILES = sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)


def parse(path):
    with open(path) as f:
        return hcl2.load(f, serialization_options=OPTIONS)


def blocks(directory, kind):
    """(labels..., body) of every `kind` block in the .tf files of `directory`."""
    out = []
    for path in sorted(directory.glob("*.tf")):
        for entry in parse(path).get(kind, []):
            if kind in ("resource", "data"):
                for type_, named in entry.items():
                    for name, body in named.items():
                        out.append((type_, name, body))
            elif kind in ("variable", "output", "module"):
                for name, body in entry.items():
                    out.append((name, body))
            else:
                out.append((entry,))
    return out


def one(directory, kind, type_, name):
    found = [b for t, n, b in blocks(directory, kind) if (t, n) == (type_, name)]
    assert len(found) == 1, f"{directory.relative_to(REPO)}: {kind} {type_}.{name}"
    return found[0]


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_file_parses(path):
    assert parse(path), f"{path} is empty"


def test_providers_are_pinned():
    pinned = {}
    for directory in sorted({p.parent for p in TF_FILES}):
        settings = blocks(directory, "terraform")
        if not settings:
            continue
        (terraform,) = settings[0]
        where = directory.relative_to(REPO)
        assert re.fullmatch(r">= [\d.]+, < [\d.]+", terraform["required_version"]), where
        (providers,) = terraform["required_providers"]
        for name in ("aws", "kubernetes"):
            assert providers[name]["source"] == f"hashicorp/{name}", (where, name)
            # A floor and a ceiling: a new major version is a decision, not an upgrade.
            assert re.fullmatch(r">= [\d.]+, < [\d.]+", providers[name]["version"]), (where, name)
        used = {t.split("_")[0] for t, _, _ in blocks(directory, "resource") + blocks(directory, "data")}
        assert used <= set(providers), f"{where} uses providers it does not pin: {used - set(providers)}"
        pinned[directory] = providers
    assert set(pinned) == {MODULE, EXAMPLE}
    assert pinned[MODULE] == pinned[EXAMPLE], "the example pins other versions than the module"
    # Only the generated layout has no terraform block (Terraform then takes hashicorp/aws).
    bare = {p.parent for p in TF_FILES} - set(pinned)
    assert bare == {GENERATED}, bare


def test_every_variable_has_a_type_and_a_description():
    for directory in sorted({p.parent for p in TF_FILES}):
        for name, body in blocks(directory, "variable"):
            where = f"{directory.relative_to(REPO)}: variable {name}"
            assert body.get("type"), f"{where} has no type"
            assert len(body.get("description", "")) > 10, f"{where} has no description"


def test_the_policy_is_docs_iam_policy_json():
    (local,) = [b for (b,) in blocks(MODULE, "locals") if "ipamd_policy" in b]
    expression = local["ipamd_policy"]
    match = re.search(r'file\("\$\{path\.module\}/([^"]+)"\)', expression)
    assert match, f"the module's policy is not read from a file: {expression}"
    assert (MODULE / match.group(1)).resolve() == REPO / "docs" / "iam-policy.json"
    policy = one(MODULE, "resource", "aws_iam_policy", "ipamd")
    assert policy["policy"] == "${local.ipamd_policy}"
    attach = one(MODULE, "resource", "aws_iam_role_policy_attachment", "ipamd")
    assert attach["policy_arn"] == "${aws_iam_policy.ipamd.arn}"
    for path in TF_FILES:
        assert "ec2:" not in path.read_text(), f"{path}: EC2 actions belong in docs/iam-policy.json"


def test_the_identities_trust_only_ipamds_service_account():
    pod_identity = one(MODULE, "data", "aws_iam_policy_document", "pod_identity")["statement"][0]
    assert sorted(pod_identity["actions"]) == ["sts:AssumeRole", "sts:TagSession"]
    assert pod_identity["principals"][0]["identifiers"] == ["pods.eks.amazonaws.com"]
    keys = {c["variable"]: c["values"] for c in pod_identity["condition"]}
    assert keys["aws:RequestTag/kubernetes-service-account"] == ["${var.service_account.name}"]
    assert keys["aws:RequestTag/kubernetes-namespace"] == ["${var.service_account.namespace}"]
    irsa = one(MODULE, "data", "aws_iam_policy_document", "irsa")["statement"][0]
    assert irsa["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    subjects = [c["values"] for c in irsa["condition"] if c["variable"].endswith(":sub")]
    assert subjects == [
        ["system:serviceaccount:${var.service_account.namespace}:${var.service_account.name}"]
    ]
    association = one(MODULE, "resource", "aws_eks_pod_identity_association", "ipamd")
    assert association["service_account"] == "${var.service_account.name}"
    # The default is the service account deploy/ installs: a role trusting another one would
    # leave ipamd without credentials.
    (default,) = [b["default"] for n, b in blocks(MODULE, "variable") if n == "service_account"]
    assert (default["namespace"], default["name"]) in deployed_service_accounts()


def deployed_service_accounts():
    """(namespace, name) of each ServiceAccount in the manifests of deploy/."""
    found = set()
    for path in sorted((REPO / "deploy").glob("*.yaml")):
        for doc in path.read_text().split("\n---"):
            if re.search(r"^kind: ServiceAccount$", doc, re.M):
                name = re.search(r"^  name: (\S+)$", doc, re.M).group(1)
                namespace = re.search(r"^  namespace: (\S+)$", doc, re.M).group(1)
                found.add((namespace, name))
    assert found, "deploy/ installs no ServiceAccount"
    return found


def tag_keys(expression):
    """Keys of the object literal in `merge(var.tags, { ... })`."""
    literal = expression.split("merge(var.tags, {", 1)[1]
    return set(re.findall(r'(?:^|, )"?([\w./-]+)"? = ', literal))


def test_subnet_tags_are_the_ones_eniplan_layout_writes():
    module = tag_keys(one(MODULE, "resource", "aws_subnet", "pods")["tags"])
    generated = [b["tags"] for t, _, b in blocks(GENERATED, "resource") if t == "aws_subnet"]
    assert generated, "the generated layout has no aws_subnet"
    for tags in generated:
        assert set(tags) == module, f"module tags {module}, eniplan layout writes {set(tags)}"


def test_the_generated_layout_is_what_eniplan_layout_prints():
    # The snapshot is the CLI's output (cli/tests/cli.rs checks it); the committed file is the
    # same after `terraform fmt`, which only moves whitespace.
    stdout = SNAPSHOT.read_text().split("----- stdout -----\n", 1)[1].split("----- stderr -----")[0]
    committed = (GENERATED / "main.tf").read_text()
    assert committed.split() == stdout.split(), (
        "terraform/examples/custom-networking/layout/main.tf is stale: regenerate it "
        "(terraform/README.md, Example)"
    )


def test_the_eniconfigs_are_objects_of_the_crd():
    crd = (REPO / "deploy" / "crds" / "eniconfigs.yaml").read_text()
    group = re.search(r"^  group: (\S+)$", crd, re.M).group(1)
    versions = re.findall(r"^  - name: (\S+)$", crd, re.M)
    manifest = one(MODULE, "resource", "kubernetes_manifest", "eniconfig")["manifest"]
    assert manifest["apiVersion"] in [f"{group}/{v}" for v in versions]
    assert manifest["kind"] == re.search(r"^    kind: (\S+)$", crd, re.M).group(1)
    assert set(manifest["spec"]) == {"subnet", "securityGroups"}
    assert manifest["metadata"]["name"] == "${each.key}", "ENIConfigs are named after the zone"
