"""Pure unit tests of the address arithmetic and the fault rules (no server involved)."""

from __future__ import annotations

import pytest
from eniplan_harness import ipam
from eniplan_harness.faults import FaultRegistry, FaultRule, FaultSpecError


def ints(*ips):
    return {ipam.ip_to_int(ip) for ip in ips}


def test_usable_range_excludes_five_reserved_addresses():
    space = ipam.SubnetSpace.from_cidr("10.0.0.0/28")
    assert space.usable_count == 11
    assert ipam.int_to_ip(space.first_usable) == "10.0.0.4"
    assert ipam.int_to_ip(space.last_usable) == "10.0.0.14"
    assert space.lowest_free(12, set()) is None
    assert [ipam.int_to_ip(v) for v in space.lowest_free(2, ints("10.0.0.4", "10.0.0.6"))] == ["10.0.0.5", "10.0.0.7"]


def test_prefixes_are_aligned_free_and_inside_usable_range():
    space = ipam.SubnetSpace.from_cidr("10.0.0.0/26")
    assert [ipam.prefix_to_str(b) for b in space.free_prefixes(set())] == ["10.0.0.16/28", "10.0.0.32/28"]
    assert [ipam.prefix_to_str(b) for b in space.free_prefixes(ints("10.0.0.33"))] == ["10.0.0.16/28"]
    assert space.lowest_free_prefixes(3, set()) is None
    assert list(ipam.SubnetSpace.from_cidr("10.0.0.0/27").free_prefixes(set())) == []


def test_parse_prefix_requires_aligned_slash_28():
    assert ipam.prefix_to_str(ipam.parse_prefix("10.0.0.16/28")) == "10.0.0.16/28"
    for bad in ("10.0.0.17/28", "10.0.0.16/27", "10.0.0.16", "nonsense"):
        with pytest.raises(ValueError):
            ipam.parse_prefix(bad)


def test_fault_rules_count_probability_and_latency():
    registry = FaultRegistry()
    registry.add(FaultRule.from_json({"action": "*", "latency_ms": 5}))
    registry.add(FaultRule.from_json({"action": "A", "code": "RequestLimitExceeded", "count": 2}))
    delays_and_faults = [registry.decide("A") for _ in range(3)]
    assert [f.status if f else None for _, f in delays_and_faults] == [503, 503, None]
    assert all(delay == 0.005 for delay, _ in delays_and_faults)
    assert registry.decide("B") == (0.005, None)
    registry.clear()
    assert registry.decide("A") == (0.0, None)


def test_seeded_rules_repeat():
    def run():
        rule = FaultRule.from_json({"action": "A", "code": "InternalError", "probability": 0.3, "seed": 42})
        return [rule.roll() for _ in range(50)]

    assert run() == run()
    assert 0 < sum(run()) < 50


def test_status_override_and_validation():
    assert FaultRule.from_json({"action": "A", "code": "Throttling", "status": 429}).http_status == 429
    assert FaultRule.from_json({"action": "A", "code": "SomethingElse"}).http_status == 400
    with pytest.raises(FaultSpecError):
        FaultRule.from_json({"action": "A", "code": "X", "latency_ms": -1})


def test_patch_layer_fails_loudly_when_moto_changes(tmp_path):
    """A missing or reshaped moto symbol stops the launcher instead of serving unpatched EC2."""
    import os
    import subprocess
    import sys

    script = (
        "import moto.ec2.models.subnets as m\n"
        "def request_ip(self, address, instance): pass\n"
        "m.Subnet.request_ip = request_ip\n"
        "from eniplan_harness import patches\n"
        "patches.apply()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ), cwd=tmp_path
    )
    assert result.returncode != 0
    assert "PatchError" in result.stderr and "Subnet.request_ip" in result.stderr


def test_patch_layer_fails_loudly_when_moto_gains_a_trunk_action(tmp_path):
    """An action the layer adds (k) that moto now implements itself must be reviewed, not shadowed."""
    import os
    import subprocess
    import sys

    script = (
        "from moto.ec2.responses import EC2Response\n"
        "EC2Response.associate_trunk_interface = lambda self: None\n"
        "from eniplan_harness import patches\n"
        "patches.apply()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ), cwd=tmp_path
    )
    assert result.returncode != 0
    assert "PatchError" in result.stderr and "associate_trunk_interface" in result.stderr


def test_only_static_catalogue_reads_skip_the_state_lock():
    """Catalogue reads (seconds in moto) must not stall IMDS; everything stateful stays atomic."""
    from eniplan_harness.patches import needs_state_lock

    for action in ("DescribeImages", "DescribeInstanceTypes", "DescribeAvailabilityZones"):
        assert not needs_state_lock(action), action
    for action in (
        "RunInstances",
        "DescribeInstances",
        "DescribeNetworkInterfaces",
        "AssignPrivateIpAddresses",
        "CreateNetworkInterface",
        "DescribeSubnets",
    ):
        assert needs_state_lock(action), action
