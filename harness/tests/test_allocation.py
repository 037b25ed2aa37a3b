"""(a) IPv4 allocation: unique, lowest free, reserved addresses, exhaustion, atomicity,
AvailableIpAddressCount; (c) AssignPrivateIpAddresses lists only the new addresses."""

from __future__ import annotations

import ipaddress

from helpers import available, ec2_error, eni, enis_in, ips_of


def test_fresh_subnets_report_usable_addresses(ec2, make_subnet):
    assert available(ec2, make_subnet("10.0.0.0/24").subnet_id) == 251
    assert available(ec2, make_subnet("10.0.0.0/28").subnet_id) == 11
    assert available(ec2, make_subnet("10.0.0.0/20").subnet_id) == 4091


def test_addresses_are_unique_lowest_first_and_skip_reserved(ec2, subnet, launch):
    instance = launch(subnet.subnet_id)
    assert instance["PrivateIpAddress"] == "10.0.0.4"  # .0-.3 are reserved
    first = ec2.create_network_interface(SubnetId=subnet.subnet_id, SecondaryPrivateIpAddressCount=3)
    assert ips_of(first["NetworkInterface"]) == ["10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8"]
    second = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]
    assert second["PrivateIpAddress"] == "10.0.0.9"

    # many ENIs x many IPs: never a duplicate, never a reserved address
    for _ in range(12):
        created = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]
        ec2.assign_private_ip_addresses(
            NetworkInterfaceId=created["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=9
        )
    held = [ip for e in enis_in(ec2, subnet.subnet_id) for ip in ips_of(e)]
    assert len(held) == len(set(held)) == 1 + 4 + 1 + 12 * 10
    network = ipaddress.ip_network(subnet.cidr)
    for ip in map(ipaddress.ip_address, held):
        assert ip in network
        assert network.network_address + 4 <= ip < network.broadcast_address
    assert available(ec2, subnet.subnet_id) == 251 - len(held)


def test_available_count_tracks_assign_unassign_and_delete(ec2, subnet):
    created = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]
    eni_id = created["NetworkInterfaceId"]
    assert available(ec2, subnet.subnet_id) == 250
    assigned = ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=5)
    assert available(ec2, subnet.subnet_id) == 245
    two = [a["PrivateIpAddress"] for a in assigned["AssignedPrivateIpAddresses"][:2]]
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=two)
    assert available(ec2, subnet.subnet_id) == 247
    # freed addresses are handed out again, lowest first
    again = ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=1)
    assert again["AssignedPrivateIpAddresses"] == [{"PrivateIpAddress": min(two, key=ipaddress.ip_address)}]
    ec2.delete_network_interface(NetworkInterfaceId=eni_id)
    assert available(ec2, subnet.subnet_id) == 251


def test_assign_response_lists_only_new_addresses(ec2, subnet):
    eni_id = ec2.create_network_interface(SubnetId=subnet.subnet_id, SecondaryPrivateIpAddressCount=2)[
        "NetworkInterface"
    ]["NetworkInterfaceId"]
    response = ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=3)
    new = [a["PrivateIpAddress"] for a in response["AssignedPrivateIpAddresses"]]
    assert new == ["10.0.0.7", "10.0.0.8", "10.0.0.9"]
    assert response["AssignedIpv4Prefixes"] == []
    assert ips_of(eni(ec2, eni_id)) == ["10.0.0.4", "10.0.0.5", "10.0.0.6", *new]

    explicit = ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=["10.0.0.100"])
    assert explicit["AssignedPrivateIpAddresses"] == [{"PrivateIpAddress": "10.0.0.100"}]


def test_exhausted_subnet_refuses_and_changes_nothing(ec2, make_subnet):
    net = make_subnet("10.0.0.0/28")  # 11 usable: .4-.14
    with ec2_error("InsufficientFreeAddressesInSubnet"):
        ec2.create_network_interface(SubnetId=net.subnet_id, SecondaryPrivateIpAddressCount=11)
    assert enis_in(ec2, net.subnet_id) == []
    assert available(ec2, net.subnet_id) == 11

    eni_id = ec2.create_network_interface(SubnetId=net.subnet_id, SecondaryPrivateIpAddressCount=5)[
        "NetworkInterface"
    ]["NetworkInterfaceId"]
    assert available(ec2, net.subnet_id) == 5
    with ec2_error("InsufficientFreeAddressesInSubnet"):
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=6)
    assert len(ips_of(eni(ec2, eni_id))) == 6  # unchanged: the request was not partly served
    assert available(ec2, net.subnet_id) == 5

    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=5)
    assert available(ec2, net.subnet_id) == 0
    assert max(map(ipaddress.ip_address, ips_of(eni(ec2, eni_id)))) == ipaddress.ip_address("10.0.0.14")
    with ec2_error("InsufficientFreeAddressesInSubnet"):
        ec2.create_network_interface(SubnetId=net.subnet_id)


def test_run_instances_is_atomic_when_the_subnet_runs_out(ec2, make_subnet, launch):
    net = make_subnet("10.0.0.0/28")
    with ec2_error("InsufficientFreeAddressesInSubnet"):
        launch(net.subnet_id, count=12)
    instances = ec2.describe_instances(Filters=[{"Name": "subnet-id", "Values": [net.subnet_id]}])
    assert instances["Reservations"] == []
    assert enis_in(ec2, net.subnet_id) == []
    assert available(ec2, net.subnet_id) == 11
    launch(net.subnet_id, count=11)
    assert available(ec2, net.subnet_id) == 0


def test_instance_primaries_are_unique_and_freed_on_terminate(ec2, subnet, launch):
    ids = [launch(subnet.subnet_id)["InstanceId"] for _ in range(3)]
    reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    primaries = sorted(i["PrivateIpAddress"] for r in reservations for i in r["Instances"])
    assert primaries == ["10.0.0.4", "10.0.0.5", "10.0.0.6"]
    ec2.terminate_instances(InstanceIds=[ids[0]])
    assert available(ec2, subnet.subnet_id) == 249
    assert launch(subnet.subnet_id)["PrivateIpAddress"] == "10.0.0.4"


def test_explicit_addresses_are_validated(ec2, subnet):
    eni_id = ec2.create_network_interface(SubnetId=subnet.subnet_id, PrivateIpAddress="10.0.0.50")[
        "NetworkInterface"
    ]["NetworkInterfaceId"]
    with ec2_error("InvalidIPAddress.InUse"):
        ec2.create_network_interface(SubnetId=subnet.subnet_id, PrivateIpAddress="10.0.0.50")
    with ec2_error("InvalidParameterValue"):  # reserved (VPC router)
        ec2.create_network_interface(SubnetId=subnet.subnet_id, PrivateIpAddress="10.0.0.1")
    with ec2_error("InvalidParameterValue"):  # broadcast
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=["10.0.0.255"])
    with ec2_error("InvalidParameterValue"):  # outside the subnet
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=["192.168.0.5"])
    other = ec2.create_network_interface(SubnetId=subnet.subnet_id, SecondaryPrivateIpAddressCount=1)[
        "NetworkInterface"
    ]
    taken = ips_of(other)[1]
    with ec2_error("InvalidIPAddress.InUse"):
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=[taken])
    # AllowReassignment moves a secondary from another ENI, as on AWS
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=[taken], AllowReassignment=True)
    assert taken in ips_of(eni(ec2, eni_id))
    assert taken not in ips_of(eni(ec2, other["NetworkInterfaceId"]))
    assert ips_of(eni(ec2, eni_id)) == ["10.0.0.50", taken]
