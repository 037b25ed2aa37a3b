"""(j) Fault injection through the control API: codes, HTTP statuses, counts, seeded
probabilities, latency, "*" and clearing; errors are well-formed EC2 XML."""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET

import botocore.exceptions
import pytest
from helpers import ec2_error, raw_ec2

NS = "{http://ec2.amazonaws.com/doc/2016-11-15}"


def test_count_limited_fault_is_well_formed_ec2_xml(ec2, control):
    control.fault(action="DescribeAvailabilityZones", code="RequestLimitExceeded", count=1)
    response = raw_ec2(os.environ["EC2_ENDPOINT"], "DescribeAvailabilityZones")
    assert response.status == 503
    root = ET.fromstring(response.body)
    assert root.tag.endswith("Response")
    assert root.find(f"{NS}Errors/{NS}Error/{NS}Code").text == "RequestLimitExceeded"
    assert root.find(f"{NS}Errors/{NS}Error/{NS}Message").text
    assert root.find(f"{NS}RequestID").text
    # count=1: the next call goes through
    assert ec2.describe_availability_zones()["AvailabilityZones"]
    assert control.faults()[0]["fired"] == 1


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("RequestLimitExceeded", 503),
        ("InternalError", 500),
        ("ServiceUnavailable", 503),
        ("UnauthorizedOperation", 403),
        ("InsufficientCidrBlocks", 400),
        ("InsufficientFreeAddressesInSubnet", 400),
    ],
)
def test_sdk_sees_code_and_status(ec2, control, subnet, code, status):
    eni_id = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    control.fault(action="AssignPrivateIpAddresses", code=code, count=1)
    with ec2_error(code, status):
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=1)
    # the failed call changed nothing; the next one is served
    assert ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0].get(
        "Ipv4Prefixes", []
    ) == []
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=1)


def _pattern(ec2, calls=24):
    outcome = []
    for _ in range(calls):
        try:
            ec2.describe_availability_zones()
            outcome.append("ok")
        except botocore.exceptions.ClientError as error:
            outcome.append(error.response["Error"]["Code"])
    return outcome


def test_seeded_probability_is_deterministic(ec2, control):
    rule = dict(action="DescribeAvailabilityZones", code="RequestLimitExceeded", probability=0.5, seed=7)
    control.fault(**rule)
    first = _pattern(ec2)
    assert control("DELETE", "/faults").status == 200
    control.fault(**rule)
    second = _pattern(ec2)
    assert first == second
    assert "ok" in first and "RequestLimitExceeded" in first


def test_probability_with_count_caps_failures(ec2, control):
    control.fault(action="DescribeAvailabilityZones", code="InternalError", probability=0.9, count=3, seed=1)
    outcome = _pattern(ec2, calls=20)
    assert outcome.count("InternalError") == 3


def test_wildcard_action_and_clear(ec2, control, subnet):
    control.fault(action="*", code="UnauthorizedOperation")
    with ec2_error("UnauthorizedOperation", 403):
        ec2.describe_vpcs()
    with ec2_error("UnauthorizedOperation", 403):
        ec2.create_network_interface(SubnetId=subnet.subnet_id)
    assert control("DELETE", "/faults").status == 200
    assert control.faults() == []
    ec2.describe_vpcs()


def test_other_actions_are_untouched(ec2, control):
    control.fault(action="AssignPrivateIpAddresses", code="RequestLimitExceeded")
    ec2.describe_availability_zones()
    assert control.faults()[0]["matched"] == 0


def test_added_latency(ec2, control):
    control.fault(action="DescribeAvailabilityZones", latency_ms=300)
    start = time.monotonic()
    ec2.describe_availability_zones()  # delayed, not failed
    assert 0.3 <= time.monotonic() - start < 3


@pytest.mark.parametrize(
    "rule",
    [
        {"code": "RequestLimitExceeded"},  # no action
        {"action": "X", "probability": 2, "code": "InternalError"},
        {"action": "X", "count": -1, "code": "InternalError"},
        {"action": "X"},  # neither code nor latency
        {"action": "X", "code": "InternalError", "bogus": 1},
    ],
)
def test_malformed_rules_are_refused(control, rule):
    response = control("POST", "/faults", rule)
    assert response.status == 400
    assert "error" in response.json()
