"""Every rendered object against the Kubernetes API's schemas (kubernetes-validate, strict: an
unknown field is an error) of the oldest and newest supported versions, and the ENIConfigs
against the CRD's own openAPIV3Schema."""

from __future__ import annotations

import copy
import functools

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest

import render
from conftest import VALUE_SETS, load_yaml_all

# The oldest: native sidecars (restartPolicy: Always on an init container) are on by default
# from 1.29 (Chart.yaml's kubeVersion). The newest: the newest kubernetes-validate ships.
OLDEST, NEWEST = "1.29", "1.37"

# kubernetes-validate reads the 1.8 MB definitions file again for every object; read it once.
kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(
    kubernetes_validate.utils.schema_contents)


def test_the_newest_version_is_the_newest_shipped():
    utils = kubernetes_validate.utils
    assert utils.major_minor(utils.latest_version()) == NEWEST


def validate(obj: dict, version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_object_is_valid(renders, name, version):
    checked = 0
    for obj in renders[name].objects:
        if obj["kind"] == "ENIConfig":
            continue  # a custom resource: its CRD's schema is checked below
        validate(obj, version)
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
def test_a_broken_object_is_rejected(renders, version):
    ds = copy.deepcopy(renders["default"].one("DaemonSet"))
    ds["spec"]["template"]["spec"]["initContainers"][0]["restartPolicy"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(ds, version)
    ds = copy.deepcopy(renders["default"].one("DaemonSet"))
    ds["spec"]["template"]["spec"]["hostNetwrok"] = True  # strict: unknown fields fail
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(ds, version)


@functools.cache
def eniconfig_schema() -> dict:
    (crd,) = load_yaml_all(render.CHART / "crds" / "eniconfigs.yaml")
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def validate_eniconfig(obj: dict) -> None:
    # openAPIV3Schema is JSON Schema but for `nullable` (status: null is allowed) and x-
    # extensions; jsonschema ignores unknown keywords, and ENIConfigs have no status.
    jsonschema.Draft7Validator(eniconfig_schema()).validate(obj)


def test_rendered_eniconfigs_match_the_crd(renders):
    configs = renders["custom-networking"].all("ENIConfig")
    assert configs
    for c in configs:
        assert c["apiVersion"] == "crd.k8s.amazonaws.com/v1alpha1"
        validate_eniconfig(c)


def test_a_bad_eniconfig_is_rejected(renders):
    good = renders["custom-networking"].all("ENIConfig")[0]
    for bad_spec in [{"securityGroups": ["sg-0123"]},  # no subnet
                     {"subnet": ["subnet-0123"]},       # not a string
                     {"subnet": "subnet-0123", "securityGroups": "sg-0123"}]:
        bad = dict(good, spec=bad_spec)
        with pytest.raises(jsonschema.ValidationError):
            validate_eniconfig(bad)
    with pytest.raises(jsonschema.ValidationError):
        validate_eniconfig({k: v for k, v in good.items() if k != "spec"})
