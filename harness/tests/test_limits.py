"""(d) Limits from the instance type: ENIs per instance, addresses per ENI, device indexes."""

from __future__ import annotations

from helpers import ec2_error, eni, ips_of, prefixes_of


def _limits(ec2, instance_type):
    info = ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"][0]["NetworkInfo"]
    return info["MaximumNetworkInterfaces"], info["Ipv4AddressesPerInterface"]


def _new_eni(ec2, subnet_id, **kwargs):
    return ec2.create_network_interface(SubnetId=subnet_id, **kwargs)["NetworkInterface"]["NetworkInterfaceId"]


def test_attachment_limit_from_instance_type(ec2, subnet, launch):
    max_enis, _ = _limits(ec2, "m5.large")
    assert max_enis == 3
    instance_id = launch(subnet.subnet_id, "m5.large")["InstanceId"]
    for device_index in range(1, max_enis):
        ec2.attach_network_interface(
            NetworkInterfaceId=_new_eni(ec2, subnet.subnet_id), InstanceId=instance_id, DeviceIndex=device_index
        )
    extra = _new_eni(ec2, subnet.subnet_id)
    with ec2_error("AttachmentLimitExceeded"):
        ec2.attach_network_interface(NetworkInterfaceId=extra, InstanceId=instance_id, DeviceIndex=max_enis)
    assert eni(ec2, extra)["Status"] == "available"


def test_device_index_in_use_and_double_attach(ec2, subnet, launch):
    instance_id = launch(subnet.subnet_id, "c5.xlarge")["InstanceId"]
    first = _new_eni(ec2, subnet.subnet_id)
    ec2.attach_network_interface(NetworkInterfaceId=first, InstanceId=instance_id, DeviceIndex=1)
    second = _new_eni(ec2, subnet.subnet_id)
    with ec2_error("InvalidParameterValue"):
        ec2.attach_network_interface(NetworkInterfaceId=second, InstanceId=instance_id, DeviceIndex=1)
    with ec2_error("InvalidParameterValue"):  # device 0 is the primary ENI
        ec2.attach_network_interface(NetworkInterfaceId=second, InstanceId=instance_id, DeviceIndex=0)
    with ec2_error("InvalidParameterValue"):  # already attached
        ec2.attach_network_interface(NetworkInterfaceId=first, InstanceId=instance_id, DeviceIndex=2)
    attachment = ec2.attach_network_interface(NetworkInterfaceId=second, InstanceId=instance_id, DeviceIndex=2)
    assert attachment["NetworkCardIndex"] == 0
    assert eni(ec2, second)["Attachment"]["DeviceIndex"] == 2


def test_secondary_ip_limit_on_attached_eni(ec2, subnet, launch):
    _, per_eni = _limits(ec2, "m5.large")
    assert per_eni == 10
    primary = launch(subnet.subnet_id, "m5.large")["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=primary, SecondaryPrivateIpAddressCount=per_eni - 2)
    with ec2_error("PrivateIpAddressLimitExceeded"):
        ec2.assign_private_ip_addresses(NetworkInterfaceId=primary, SecondaryPrivateIpAddressCount=2)
    assert len(ips_of(eni(ec2, primary))) == per_eni - 1
    ec2.assign_private_ip_addresses(NetworkInterfaceId=primary, SecondaryPrivateIpAddressCount=1)
    assert len(ips_of(eni(ec2, primary))) == per_eni
    with ec2_error("PrivateIpAddressLimitExceeded"):
        ec2.assign_private_ip_addresses(NetworkInterfaceId=primary, PrivateIpAddresses=["10.0.0.200"])


def test_prefixes_count_against_the_same_limit(ec2, subnet, launch):
    instance_id = launch(subnet.subnet_id, "t3.medium")["InstanceId"]  # 6 addresses per ENI
    eni_id = _new_eni(ec2, subnet.subnet_id, SecondaryPrivateIpAddressCount=2)
    ec2.attach_network_interface(NetworkInterfaceId=eni_id, InstanceId=instance_id, DeviceIndex=1)
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=3)  # 2 + 3 = 5 slots
    with ec2_error("PrivateIpAddressLimitExceeded"):
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=1)
    assert len(prefixes_of(eni(ec2, eni_id))) == 3


def test_unattached_eni_is_checked_when_it_is_attached(ec2, subnet, launch):
    instance_id = launch(subnet.subnet_id, "t3.medium")["InstanceId"]
    crowded = _new_eni(ec2, subnet.subnet_id, SecondaryPrivateIpAddressCount=8)  # 9 addresses > 6
    with ec2_error("PrivateIpAddressLimitExceeded"):
        ec2.attach_network_interface(NetworkInterfaceId=crowded, InstanceId=instance_id, DeviceIndex=1)
    assert eni(ec2, crowded)["Status"] == "available"


def test_network_cards_of_multi_card_types(ec2, subnet, launch):
    instance_id = launch(subnet.subnet_id, "p4d.24xlarge")["InstanceId"]  # 4 cards x 15 ENIs
    eni_id = _new_eni(ec2, subnet.subnet_id)
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=instance_id, DeviceIndex=1, NetworkCardIndex=3
    )
    assert attachment["NetworkCardIndex"] == 3
    assert eni(ec2, eni_id)["Attachment"]["NetworkCardIndex"] == 3
    with ec2_error("InvalidParameterValue"):
        ec2.attach_network_interface(
            NetworkInterfaceId=_new_eni(ec2, subnet.subnet_id), InstanceId=instance_id, DeviceIndex=2,
            NetworkCardIndex=4,
        )


def test_the_day_one_type_is_described_launched_and_limited(ec2, subnet, launch):
    """`q9.large` (day_one.py): in no catalogue, yet EC2 describes it, runs it and enforces its
    limits, as real EC2 does for a type launched after the catalogues were built."""
    described = ec2.describe_instance_types(InstanceTypes=["q9.large"])["InstanceTypes"]
    assert [t["InstanceType"] for t in described] == ["q9.large"]
    assert _limits(ec2, "q9.large") == (4, 12)
    assert described[0]["VCpuInfo"]["DefaultVCpus"] == 2
    instance = launch(subnet.subnet_id, "q9.large")
    instance_id = instance["InstanceId"]
    primary = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=primary, SecondaryPrivateIpAddressCount=11)
    with ec2_error("PrivateIpAddressLimitExceeded"):
        ec2.assign_private_ip_addresses(NetworkInterfaceId=primary, SecondaryPrivateIpAddressCount=1)
    for device_index in range(1, 4):
        ec2.attach_network_interface(
            NetworkInterfaceId=_new_eni(ec2, subnet.subnet_id), InstanceId=instance_id, DeviceIndex=device_index
        )
    with ec2_error("AttachmentLimitExceeded"):
        ec2.attach_network_interface(
            NetworkInterfaceId=_new_eni(ec2, subnet.subnet_id), InstanceId=instance_id, DeviceIndex=4
        )
