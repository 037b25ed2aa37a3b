"""Fixtures for the harness's own tests. Run through `harness/test`, which exports
EC2_ENDPOINT and HARNESS_CONTROL from `harness/up`.

Isolation: every test builds its own VPC and subnet (overlapping CIDRs in different VPCs
are allowed, as on AWS) and only looks at resources inside them; fault rules are cleared
after each test. The one test that resets the whole backend runs last.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.config
import pytest
from helpers import AMI, REGION, Control, Net


def _require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set; run the suite with harness/test", returncode=2)
    return value


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "wipes_state: resets the whole EC2 backend; runs last")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `wipes_state` (POST /reset) run after all others (stable sort)."""
    items.sort(key=lambda item: item.get_closest_marker("wipes_state") is not None)


@pytest.fixture(scope="session")
def ec2() -> Any:
    """boto3 EC2 client without retries, so every injected fault is visible."""
    return boto3.client(
        "ec2",
        endpoint_url=_require_env("EC2_ENDPOINT"),
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture(scope="session")
def control() -> Control:
    return Control(_require_env("HARNESS_CONTROL"))


@pytest.fixture(autouse=True)
def _clear_faults(control: Control) -> Iterator[None]:
    yield
    assert control("DELETE", "/faults").status == 200
    assert control("DELETE", "/consistency").status == 200


@pytest.fixture
def make_subnet(ec2: Any) -> Callable[..., Net]:
    def make(cidr: str = "10.0.0.0/24", vpc_cidr: str = "10.0.0.0/16", az: str = "us-west-2a") -> Net:
        vpc_id = ec2.create_vpc(CidrBlock=vpc_cidr)["Vpc"]["VpcId"]
        subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
        return Net(vpc_id, subnet_id, cidr)

    return make


@pytest.fixture
def subnet(make_subnet: Callable[..., Net]) -> Net:
    """A fresh /24 (10.0.0.0/24) in a fresh VPC."""
    return make_subnet()


@pytest.fixture
def launch(ec2: Any) -> Callable[..., dict]:
    """Run instances in a subnet; returns the first instance description."""

    def run(subnet_id: str, instance_type: str = "m5.large", count: int = 1) -> dict:
        return ec2.run_instances(
            ImageId=AMI, InstanceType=instance_type, MinCount=count, MaxCount=count, SubnetId=subnet_id
        )["Instances"][0]

    return run
