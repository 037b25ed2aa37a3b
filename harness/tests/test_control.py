"""Control API: health, and POST /reset (which wipes everything, so it runs last)."""

from __future__ import annotations

import os

import pytest
from helpers import http


def test_health_lists_the_patches(control):
    health = control("GET", "/health")
    assert health.status == 200
    body = health.json()
    assert body["status"] == "ok"
    assert "localstack.aws.skeleton.Skeleton.dispatch_request" in body["patches"]
    assert any(p.endswith("NetworkInterfaceBackend.create_network_interface") for p in body["patches"])


def test_unknown_route(control):
    assert control("GET", "/nope").status == 404


def test_everything_listens_on_loopback_only(control):
    for url in (os.environ["EC2_ENDPOINT"], control.base):
        assert url.startswith("http://127.0.0.1:")


@pytest.mark.wipes_state
def test_reset_wipes_ec2_state(ec2, control, subnet, launch):
    instance = launch(subnet.subnet_id)
    endpoint = control.imds(instance["InstanceId"])
    control.fault(action="DescribeRegions", code="InternalError")
    assert control("POST", "/reset").status == 200

    vpcs = ec2.describe_vpcs()["Vpcs"]
    assert subnet.vpc_id not in {v["VpcId"] for v in vpcs}
    assert [v["IsDefault"] for v in vpcs] == [True]  # only the default VPC, recreated
    assert ec2.describe_instances()["Reservations"] == []
    assert ec2.describe_network_interfaces()["NetworkInterfaces"] == []
    assert control.faults() == []
    ec2.describe_regions()
    assert control("GET", "/imds").json()["listeners"] == {}
    with pytest.raises(OSError):  # the listener is gone
        http("PUT", endpoint + "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
