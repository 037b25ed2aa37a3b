"""Helpers shared by the harness tests (imported as `helpers`; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import botocore.exceptions
import pytest

REGION = "us-west-2"
AMI = "ami-ekslinux"  # moto's built-in "amazon-eks-node-linux" image


@dataclass
class HttpResponse:
    status: int
    body: str
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, data: bytes | None = None
) -> HttpResponse:
    """Plain urllib request (JSON `body` or raw `data`); HTTP errors are returned, not raised."""
    if body is not None:
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return HttpResponse(response.status, response.read().decode(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return HttpResponse(error.code, error.read().decode(), dict(error.headers))


class Control:
    """The harness control API."""

    def __init__(self, base: str) -> None:
        self.base = base

    def __call__(self, method: str, path: str, body: Any = None) -> HttpResponse:
        return http(method, self.base + path, body)

    def fault(self, **rule: Any) -> dict:
        response = self("POST", "/faults", rule)
        assert response.status == 200, response.body
        return response.json()

    def faults(self) -> list[dict]:
        return self("GET", "/faults").json()["rules"]

    def imds(self, instance_id: str) -> str:
        response = self("POST", "/imds", {"instance_id": instance_id})
        assert response.status == 200, response.body
        return response.json()["endpoint"]


@dataclass
class Net:
    vpc_id: str
    subnet_id: str
    cidr: str


@contextlib.contextmanager
def ec2_error(code: str, status: int = 400) -> Iterator[None]:
    """Expect a botocore ClientError with this EC2 error code and HTTP status."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        yield
    error = info.value.response
    assert error["Error"]["Code"] == code, error["Error"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status


def raw_ec2(endpoint: str, action: str, **params: str) -> HttpResponse:
    """An unsigned EC2 Query request over plain HTTP; LocalStack reads the region from the
    Authorization header's credential scope and does not verify the signature."""
    form = "&".join([f"Action={action}", "Version=2016-11-15", *(f"{k}={v}" for k, v in params.items())])
    return http(
        "POST",
        endpoint.rstrip("/") + "/",
        data=form.encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-west-2/ec2/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
    )


def available(ec2: Any, subnet_id: str) -> int:
    return ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["AvailableIpAddressCount"]


def enis_in(ec2: Any, subnet_id: str) -> list[dict]:
    return ec2.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": [subnet_id]}])[
        "NetworkInterfaces"
    ]


def eni(ec2: Any, eni_id: str) -> dict:
    return ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]


def ips_of(eni_description: dict) -> list[str]:
    return [a["PrivateIpAddress"] for a in eni_description["PrivateIpAddresses"]]


def prefixes_of(eni_description: dict) -> list[str]:
    return [p["Ipv4Prefix"] for p in eni_description.get("Ipv4Prefixes", [])]
