"""The per-instance IMDSv2 double: token protocol, paths, live state."""

from __future__ import annotations

import json

import pytest
from helpers import http

TTL = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "X-aws-ec2-metadata-token"


class Imds:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.token = self.new_token()

    def new_token(self, ttl: str = "21600") -> str:
        response = http("PUT", self.endpoint + "/latest/api/token", headers={TTL: ttl})
        assert response.status == 200, response.body
        return response.body

    def get(self, path: str):
        return http("GET", self.endpoint + "/latest/" + path, headers={TOKEN: self.token})

    def text(self, path: str) -> str:
        response = self.get(path)
        assert response.status == 200, (path, response.status, response.body)
        return response.body


@pytest.fixture
def node(ec2, control, subnet, launch):
    instance = launch(subnet.subnet_id, "m5.large")
    return instance, Imds(control.imds(instance["InstanceId"]))


def test_token_protocol(control, node):
    instance, imds = node
    url = imds.endpoint + "/latest/api/token"
    ok = http("PUT", url, headers={TTL: "60"})
    assert ok.status == 200 and ok.headers[TTL] == "60" and ok.body
    assert http("PUT", url).status == 400  # TTL header is required
    assert http("PUT", url, headers={TTL: "0"}).status == 400
    assert http("PUT", url, headers={TTL: "21601"}).status == 400
    assert http("PUT", url, headers={TTL: "abc"}).status == 400
    assert http("PUT", url, headers={TTL: "60", "X-Forwarded-For": "10.0.0.9"}).status == 403

    path = imds.endpoint + "/latest/meta-data/instance-id"
    assert http("GET", path).status == 401  # IMDSv1: no token
    assert http("GET", path, headers={TOKEN: "forged"}).status == 401
    assert http("GET", path, headers={TOKEN: ok.body}).body == instance["InstanceId"]


def test_tokens_expire():
    # The token store's clock is injected: expiry is tested without waiting.
    from eniplan_harness.imds import TokenStore

    now = [1000.0]
    store = TokenStore(clock=lambda: now[0])
    short = store.issue(1)
    assert store.valid(short)
    now[0] += 0.999
    assert store.valid(short)
    now[0] += 0.002
    assert not store.valid(short)
    assert not store.valid("forged") and not store.valid(None)


def test_instance_paths(ec2, node, subnet):
    instance, imds = node
    primary = instance["NetworkInterfaces"][0]
    assert imds.text("meta-data/instance-id") == instance["InstanceId"]
    assert imds.text("meta-data/instance-type") == "m5.large"
    assert imds.text("meta-data/local-ipv4") == instance["PrivateIpAddress"] == "10.0.0.4"
    assert imds.text("meta-data/mac") == primary["MacAddress"]
    assert imds.text("meta-data/placement/availability-zone") == "us-west-2a"
    assert imds.text("meta-data/placement/region") == "us-west-2"
    listing = imds.text("meta-data/").splitlines()
    assert {"instance-id", "local-ipv4", "mac", "network/", "placement/"} <= set(listing)

    mac = primary["MacAddress"]
    base = f"meta-data/network/interfaces/macs/{mac}/"
    assert imds.text("meta-data/network/interfaces/macs/") == f"{mac}/"
    assert {"device-number", "interface-id", "local-ipv4s", "subnet-id", "vpc-ipv4-cidr-blocks"} <= set(
        imds.text(base).splitlines()
    )
    assert imds.text(base + "device-number") == "0"
    assert imds.text(base + "network-card") == "0"
    assert imds.text(base + "interface-id") == primary["NetworkInterfaceId"]
    assert imds.text(base + "subnet-id") == subnet.subnet_id
    assert imds.text(base + "subnet-ipv4-cidr-block") == "10.0.0.0/24"
    assert imds.text(base + "vpc-id") == subnet.vpc_id
    assert imds.text(base + "vpc-ipv4-cidr-block") == "10.0.0.0/16"
    assert imds.text(base + "vpc-ipv4-cidr-blocks") == "10.0.0.0/16"
    assert imds.text(base + "security-group-ids").splitlines() == [g["GroupId"] for g in primary["Groups"]]
    assert imds.text(base + "local-ipv4s") == "10.0.0.4"
    assert imds.get(base + "ipv4-prefix").status == 404  # no prefixes yet, as real IMDS

    document = json.loads(imds.text("dynamic/instance-identity/document"))
    assert document["instanceId"] == instance["InstanceId"]
    assert document["instanceType"] == "m5.large"
    assert document["region"] == "us-west-2"
    assert document["availabilityZone"] == "us-west-2a"
    assert document["privateIp"] == "10.0.0.4"
    assert document["accountId"] == "000000000000"

    assert imds.get("meta-data/no-such-thing").status == 404
    assert imds.get(f"meta-data/network/interfaces/macs/{mac}/nope").status == 404
    assert imds.get("meta-data/network/interfaces/macs/02:00:00:00:00:00/").status == 404


def test_live_state(ec2, node, subnet):
    instance, imds = node
    primary = instance["NetworkInterfaces"][0]
    base = f"meta-data/network/interfaces/macs/{primary['MacAddress']}/"
    ec2.assign_private_ip_addresses(NetworkInterfaceId=primary["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=2)
    assert imds.text(base + "local-ipv4s").splitlines() == ["10.0.0.4", "10.0.0.5", "10.0.0.6"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=primary["NetworkInterfaceId"], Ipv4PrefixCount=2)
    assert imds.text(base + "ipv4-prefix").splitlines() == ["10.0.0.16/28", "10.0.0.32/28"]

    second = ec2.create_network_interface(SubnetId=subnet.subnet_id, SecondaryPrivateIpAddressCount=1)[
        "NetworkInterface"
    ]
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=second["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1
    )
    macs = imds.text("meta-data/network/interfaces/macs/").splitlines()
    assert macs == [f"{primary['MacAddress']}/", f"{second['MacAddress']}/"]
    other = f"meta-data/network/interfaces/macs/{second['MacAddress']}/"
    assert imds.text(other + "device-number") == "1"
    assert imds.text(other + "interface-id") == second["NetworkInterfaceId"]
    assert imds.text(other + "local-ipv4s").splitlines() == [a["PrivateIpAddress"] for a in second["PrivateIpAddresses"]]

    ec2.detach_network_interface(AttachmentId=attachment["AttachmentId"])
    assert imds.text("meta-data/network/interfaces/macs/").splitlines() == [f"{primary['MacAddress']}/"]
    assert imds.get(other + "device-number").status == 404


def test_listener_is_reused_and_unknown_instances_refused(control, node):
    instance, imds = node
    assert control.imds(instance["InstanceId"]) == imds.endpoint
    assert control("POST", "/imds", {"instance_id": "i-00000000000000000"}).status == 404
    assert control("POST", "/imds", {}).status == 400
