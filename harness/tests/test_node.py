"""The node world (node.py): an instance's ENIs as links in a namespace, its VPC's router."""

from __future__ import annotations

import json
import os
import subprocess


def ip_json(netns: str, *args: str) -> list:
    out = subprocess.run(["ip", "-n", netns, "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout or "[]")


def links(netns: str) -> dict[str, str]:
    return {l["ifname"]: l.get("address", "") for l in ip_json(netns, "link", "show")}


def vpc_routes(netns: str) -> set[str]:
    return {r["dst"] for r in ip_json(netns, "-4", "route", "show")}


def test_node_requests_are_checked(control, subnet, launch):
    assert control("POST", "/node", {"instance_id": "i-1"}).status == 400
    assert control("POST", "/node", {"name": "far-too-long", "instance_id": "i-1"}).status == 400
    assert control("POST", "/node", {"name": "x", "instance_id": "i-0000000000"}).status == 404
    instance = launch(subnet.subnet_id)["InstanceId"]
    bad = control("POST", "/node", {"name": "x", "instance_id": instance, "hotplug_delay_ms": -1})
    assert bad.status == 400 and "hotplug_delay_ms" in bad.json()["error"]
    ec2_port = int(os.environ["EC2_ENDPOINT"].rsplit(":", 1)[1].strip("/"))
    for ports in ("6443", [0], [70000], [True], [6443, 6443], [ec2_port]):
        bad = control("POST", "/node", {"name": "x", "instance_id": instance, "forward_ports": ports})
        assert bad.status == 400 and "forward_ports" in bad.json()["error"], (ports, bad.json())
    assert control("DELETE", "/node?name=nobody").status == 404


def test_enis_follow_ec2_as_links_and_routes(ec2, control, subnet, launch):
    instance = launch(subnet.subnet_id)
    name = f"py{os.getpid() % 100000}"
    reply = control("POST", "/node", {"name": name, "instance_id": instance["InstanceId"], "hotplug_delay_ms": 0})
    assert reply.status == 200, reply.json()
    node, vpc = reply.json()["netns"], reply.json()["vpc_netns"]
    try:
        primary = instance["NetworkInterfaces"][0]
        assert links(node)["eth0"] == primary["MacAddress"].lower()
        addr = ip_json(node, "-4", "addr", "show", "eth0")[0]["addr_info"][0]
        assert addr["local"] == instance["PrivateIpAddress"]
        assert {"dst": "default", "gateway": "10.0.0.1"}.items() <= ip_json(node, "route", "show")[0].items()

        eni = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]
        attachment = ec2.attach_network_interface(
            NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1
        )["AttachmentId"]
        assert links(node)["eth1"] == eni["MacAddress"].lower(), "plugged before the attach returned"
        assert not ip_json(node, "-4", "addr", "show", "eth1"), "a secondary ENI comes bare"

        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=1)
        described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])
        secondary = [a["PrivateIpAddress"] for a in described["NetworkInterfaces"][0]["PrivateIpAddresses"] if not a["Primary"]]
        assert secondary[0] in vpc_routes(vpc), "routed to the ENI by the time the call returned"
        ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni["NetworkInterfaceId"], PrivateIpAddresses=secondary)
        assert secondary[0] not in vpc_routes(vpc)

        ec2.detach_network_interface(AttachmentId=attachment)
        assert "eth1" not in links(node), "hot-unplugged"
        assert [n["name"] for n in control("GET", "/node").json()["nodes"]].count(name) == 1
    finally:
        assert control("DELETE", f"/node?name={name}").status == 200
    assert not os.path.exists(f"/run/netns/{node}")
    assert not os.path.exists(f"/run/netns/{vpc}")
