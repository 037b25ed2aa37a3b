"""(m) EC2's eventual consistency as injected through POST /consistency: Describe lagging
assigns and attaches, attachments stuck `attaching`, an IMDS that answers from the past."""

from __future__ import annotations

import time

import pytest
from helpers import eni
from test_imds import Imds

DEADLINE = 20.0  # seconds; the lags set here are 1.5 s


def until(what: str, check):
    """Polls `check` until it holds, failing after DEADLINE (a wait on a condition)."""
    end = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < end, f"not within {DEADLINE} s: {what}"
        time.sleep(0.05)


def consistency(control, **settings) -> dict:
    response = control("POST", "/consistency", settings)
    assert response.status == 200, response.body
    return response.json()


@pytest.fixture
def instance(subnet, launch):
    return launch(subnet.subnet_id, "m5.large")


def attached_to(ec2, instance_id: str) -> list[str]:
    described = ec2.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])
    return sorted(e["NetworkInterfaceId"] for e in described["NetworkInterfaces"])


def test_describe_lags_an_assign_and_an_attach(ec2, control, subnet, instance):
    consistency(control, describe_lag_ms=1500)
    new = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    granted = ec2.assign_private_ip_addresses(NetworkInterfaceId=new, SecondaryPrivateIpAddressCount=2)
    ips = sorted(a["PrivateIpAddress"] for a in granted["AssignedPrivateIpAddresses"])
    assert len(ips) == 2, "the Assign answer itself is never late"
    shown = eni(ec2, new)
    assert [a["PrivateIpAddress"] for a in shown["PrivateIpAddresses"]] == [shown["PrivateIpAddress"]]
    ec2.attach_network_interface(NetworkInterfaceId=new, InstanceId=instance["InstanceId"], DeviceIndex=1)
    assert eni(ec2, new)["Status"] == "available" and "Attachment" not in eni(ec2, new)
    assert new not in attached_to(ec2, instance["InstanceId"]), "a filter on the attachment misses it"
    assert control("GET", "/consistency").json()["hidden_answers"] >= 3

    until("the addresses show", lambda: len(eni(ec2, new)["PrivateIpAddresses"]) == 3)
    until("the attachment shows", lambda: new in attached_to(ec2, instance["InstanceId"]))
    shown = eni(ec2, new)
    assert shown["Status"] == "in-use" and shown["Attachment"]["Status"] == "attached"
    assert sorted(a["PrivateIpAddress"] for a in shown["PrivateIpAddresses"] if not a["Primary"]) == ips


def test_a_stuck_attachment_stays_attaching_until_detached(ec2, control, subnet, instance):
    consistency(control, stuck_attachments=1)
    imds = Imds(control.imds(instance["InstanceId"]))
    first = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]
    second = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]
    stuck = ec2.attach_network_interface(
        NetworkInterfaceId=first["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1
    )
    shown = eni(ec2, first["NetworkInterfaceId"])
    assert shown["Status"] == "attaching" and shown["Attachment"]["Status"] == "attaching"
    assert shown["Attachment"]["AttachmentId"] == stuck["AttachmentId"]
    macs = imds.text("meta-data/network/interfaces/macs/").splitlines()
    assert f"{first['MacAddress']}/" not in macs, "the instance never sees a stuck ENI"
    assert control("GET", "/consistency").json()["stuck"] == [first["NetworkInterfaceId"]]

    # Only the next one: the second attach completes.
    ec2.attach_network_interface(
        NetworkInterfaceId=second["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=2
    )
    assert eni(ec2, second["NetworkInterfaceId"])["Attachment"]["Status"] == "attached"
    assert f"{second['MacAddress']}/" in imds.text("meta-data/network/interfaces/macs/").splitlines()

    ec2.detach_network_interface(AttachmentId=stuck["AttachmentId"])
    assert eni(ec2, first["NetworkInterfaceId"])["Status"] == "available"
    assert control("GET", "/consistency").json()["stuck"] == []
    ec2.delete_network_interface(NetworkInterfaceId=first["NetworkInterfaceId"])


def test_a_lagging_imds_still_lists_a_detached_eni_and_not_yet_a_new_one(ec2, control, subnet, instance):
    imds = Imds(control.imds(instance["InstanceId"]))
    primary = f"{instance['NetworkInterfaces'][0]['MacAddress']}/"
    consistency(control, imds_lag_ms=1500)
    new = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=new["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1
    )

    def macs() -> list[str]:
        return imds.text("meta-data/network/interfaces/macs/").splitlines()

    assert macs() == [primary], "not yet the new ENI"
    until("IMDS lists the new ENI", lambda: macs() == [primary, f"{new['MacAddress']}/"])
    ec2.detach_network_interface(AttachmentId=attachment["AttachmentId"])
    assert f"{new['MacAddress']}/" in macs(), "still the detached ENI"
    until("IMDS forgets the detached ENI", lambda: macs() == [primary])


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"describe_lag_ms": -1}, "'describe_lag_ms' -1"),
        ({"imds_lag_ms": "5"}, "'imds_lag_ms' '5'"),
        ({"stuck_attachments": True}, "'stuck_attachments' True"),
        ({"lag": 5}, "unknown fields: ['lag']"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(control, body, words):
    response = control("POST", "/consistency", body)
    assert response.status == 400 and words in response.body, response.body
    assert control("GET", "/consistency").json()["describe_lag_ms"] == 0
