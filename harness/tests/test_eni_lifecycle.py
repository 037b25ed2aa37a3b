"""(e) MAC addresses, (f) DeleteOnTermination, (g) in-use and unassign checks, (h) InterfaceType."""

from __future__ import annotations

import re

import pytest
from helpers import available, ec2_error, eni, enis_in, ips_of

MAC = re.compile(r"^02(:[0-9a-f]{2}){5}$")


def test_mac_addresses_are_well_formed_and_unique(ec2, subnet, launch):
    instance = launch(subnet.subnet_id)
    macs = [instance["NetworkInterfaces"][0]["MacAddress"]]
    macs += [
        ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]["MacAddress"] for _ in range(20)
    ]
    assert all(MAC.match(mac) for mac in macs), macs
    assert len(set(macs)) == len(macs)


def test_primary_eni_of_run_instances_is_deleted_on_termination(ec2, subnet, launch):
    instance = launch(subnet.subnet_id)
    attachment = instance["NetworkInterfaces"][0]["Attachment"]
    assert attachment["DeleteOnTermination"] is True
    assert attachment["DeviceIndex"] == 0


def test_modify_delete_on_termination(ec2, subnet, launch):
    instance_id = launch(subnet.subnet_id)["InstanceId"]
    eni_id = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    attachment_id = ec2.attach_network_interface(NetworkInterfaceId=eni_id, InstanceId=instance_id, DeviceIndex=1)[
        "AttachmentId"
    ]
    assert eni(ec2, eni_id)["Attachment"]["DeleteOnTermination"] is False
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=eni_id, Attachment={"AttachmentId": attachment_id, "DeleteOnTermination": True}
    )
    assert eni(ec2, eni_id)["Attachment"]["DeleteOnTermination"] is True
    described = ec2.describe_network_interface_attribute(NetworkInterfaceId=eni_id, Attribute="attachment")
    assert described["Attachment"]["DeleteOnTermination"] is True
    with ec2_error("InvalidAttachmentID.NotFound"):
        ec2.modify_network_interface_attribute(
            NetworkInterfaceId=eni_id, Attachment={"AttachmentId": "eni-attach-0000", "DeleteOnTermination": False}
        )


def test_terminate_deletes_or_detaches_enis(ec2, subnet, launch):
    instance = launch(subnet.subnet_id)
    instance_id = instance["InstanceId"]
    primary = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    doomed = ec2.create_network_interface(SubnetId=subnet.subnet_id, SecondaryPrivateIpAddressCount=2)[
        "NetworkInterface"
    ]["NetworkInterfaceId"]
    kept = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    doomed_attachment = ec2.attach_network_interface(NetworkInterfaceId=doomed, InstanceId=instance_id, DeviceIndex=1)
    ec2.attach_network_interface(NetworkInterfaceId=kept, InstanceId=instance_id, DeviceIndex=2)
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=doomed,
        Attachment={"AttachmentId": doomed_attachment["AttachmentId"], "DeleteOnTermination": True},
    )
    assert available(ec2, subnet.subnet_id) == 251 - 5

    ec2.terminate_instances(InstanceIds=[instance_id])
    remaining = {e["NetworkInterfaceId"]: e for e in enis_in(ec2, subnet.subnet_id)}
    assert set(remaining) == {kept}
    assert remaining[kept]["Status"] == "available"
    assert "Attachment" not in remaining[kept]
    assert available(ec2, subnet.subnet_id) == 250
    assert primary not in remaining
    described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert described["State"]["Name"] == "terminated"


def test_delete_of_attached_eni_is_refused(ec2, subnet, launch):
    instance = launch(subnet.subnet_id)
    primary = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    with ec2_error("InvalidNetworkInterface.InUse"):
        ec2.delete_network_interface(NetworkInterfaceId=primary)
    eni_id = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    attachment_id = ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=instance["InstanceId"], DeviceIndex=1
    )["AttachmentId"]
    with ec2_error("InvalidNetworkInterface.InUse"):
        ec2.delete_network_interface(NetworkInterfaceId=eni_id)
    with ec2_error("OperationNotPermitted"):  # the primary cannot be detached
        ec2.detach_network_interface(AttachmentId=instance["NetworkInterfaces"][0]["Attachment"]["AttachmentId"])
    ec2.detach_network_interface(AttachmentId=attachment_id)
    assert eni(ec2, eni_id)["Status"] == "available"
    ec2.delete_network_interface(NetworkInterfaceId=eni_id)
    with ec2_error("InvalidNetworkInterfaceID.NotFound"):
        ec2.delete_network_interface(NetworkInterfaceId=eni_id)


def test_unassign_checks(ec2, subnet):
    created = ec2.create_network_interface(SubnetId=subnet.subnet_id, SecondaryPrivateIpAddressCount=2)[
        "NetworkInterface"
    ]
    eni_id = created["NetworkInterfaceId"]
    primary, *secondaries = ips_of(created)
    with ec2_error("InvalidParameterValue"):
        ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=["10.0.0.99"])
    with ec2_error("InvalidParameterValue"):  # one good, one bad: nothing is removed
        ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=[secondaries[0], "10.0.0.99"])
    with ec2_error("InvalidParameterValue"):
        ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=[primary])
    assert ips_of(eni(ec2, eni_id)) == [primary, *secondaries]
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=secondaries)
    assert ips_of(eni(ec2, eni_id)) == [primary]


@pytest.mark.parametrize("interface_type", ["trunk", "branch", "efa"])
def test_interface_type_is_stored(ec2, subnet, interface_type):
    created = ec2.create_network_interface(SubnetId=subnet.subnet_id, InterfaceType=interface_type)[
        "NetworkInterface"
    ]
    assert created["InterfaceType"] == interface_type
    assert eni(ec2, created["NetworkInterfaceId"])["InterfaceType"] == interface_type
    found = ec2.describe_network_interfaces(
        Filters=[
            {"Name": "subnet-id", "Values": [subnet.subnet_id]},
            {"Name": "interface-type", "Values": [interface_type]},
        ]
    )["NetworkInterfaces"]
    assert [e["NetworkInterfaceId"] for e in found] == [created["NetworkInterfaceId"]]


def test_default_interface_type(ec2, subnet):
    created = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]
    assert created["InterfaceType"] == "interface"
