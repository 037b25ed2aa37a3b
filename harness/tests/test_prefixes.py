"""(b) Prefix delegation: aligned /28s carved from free addresses, listed on the ENI and in
the assign response, released by unassign, InsufficientCidrBlocks, InvalidParameterCombination."""

from __future__ import annotations

import ipaddress

from helpers import available, ec2_error, eni, enis_in, ips_of, prefixes_of


def test_create_with_prefix_count_carves_aligned_free_prefixes(ec2, subnet):
    created = ec2.create_network_interface(SubnetId=subnet.subnet_id, Ipv4PrefixCount=2)["NetworkInterface"]
    # primary takes .4, so the /28 at .0 is not free: the first two free /28s follow
    assert created["PrivateIpAddress"] == "10.0.0.4"
    assert prefixes_of(created) == ["10.0.0.16/28", "10.0.0.32/28"]
    assert prefixes_of(eni(ec2, created["NetworkInterfaceId"])) == ["10.0.0.16/28", "10.0.0.32/28"]
    assert available(ec2, subnet.subnet_id) == 251 - 1 - 32
    # a later single IP does not land inside a delegated prefix
    other = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]
    assert other["PrivateIpAddress"] == "10.0.0.5"


def test_explicit_prefix_on_create(ec2, subnet):
    created = ec2.create_network_interface(
        SubnetId=subnet.subnet_id, Ipv4Prefixes=[{"Ipv4Prefix": "10.0.0.128/28"}]
    )["NetworkInterface"]
    assert prefixes_of(created) == ["10.0.0.128/28"]
    with ec2_error("InvalidParameterValue"):  # overlaps the prefix above
        ec2.create_network_interface(SubnetId=subnet.subnet_id, Ipv4Prefixes=[{"Ipv4Prefix": "10.0.0.128/28"}])
    with ec2_error("InvalidParameterValue"):  # not aligned
        ec2.create_network_interface(SubnetId=subnet.subnet_id, Ipv4Prefixes=[{"Ipv4Prefix": "10.0.0.136/28"}])


def test_assign_and_unassign_prefixes(ec2, subnet):
    eni_id = ec2.create_network_interface(SubnetId=subnet.subnet_id, SecondaryPrivateIpAddressCount=2)[
        "NetworkInterface"
    ]["NetworkInterfaceId"]
    response = ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=2)
    assert response["AssignedIpv4Prefixes"] == [{"Ipv4Prefix": "10.0.0.16/28"}, {"Ipv4Prefix": "10.0.0.32/28"}]
    assert response["AssignedPrivateIpAddresses"] == []
    with ec2_error("InvalidParameterValue"):  # .240/28 holds the broadcast address .255
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4Prefixes=["10.0.0.240/28"])
    explicit = ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4Prefixes=["10.0.0.224/28"])
    assert explicit["AssignedIpv4Prefixes"] == [{"Ipv4Prefix": "10.0.0.224/28"}]
    assert prefixes_of(eni(ec2, eni_id)) == ["10.0.0.16/28", "10.0.0.32/28", "10.0.0.224/28"]
    assert available(ec2, subnet.subnet_id) == 251 - 3 - 3 * 16

    ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4Prefixes=["10.0.0.16/28"])
    assert prefixes_of(eni(ec2, eni_id)) == ["10.0.0.32/28", "10.0.0.224/28"]
    # the freed /28 is handed out again first
    again = ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=1)
    assert again["AssignedIpv4Prefixes"] == [{"Ipv4Prefix": "10.0.0.16/28"}]
    with ec2_error("InvalidParameterValue"):  # not on this ENI
        ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4Prefixes=["10.0.0.64/28"])
    assert len(prefixes_of(eni(ec2, eni_id))) == 3


def test_no_aligned_free_prefix_means_insufficient_cidr_blocks(ec2, make_subnet):
    # /27: 27 usable addresses, but each of its two /28s holds a reserved address
    net = make_subnet("10.0.0.0/27")
    with ec2_error("InsufficientCidrBlocks"):
        ec2.create_network_interface(SubnetId=net.subnet_id, Ipv4PrefixCount=1)
    assert enis_in(ec2, net.subnet_id) == []
    assert available(ec2, net.subnet_id) == 27

    # /26: one address taken in each of the middle /28s leaves plenty of addresses, no /28
    net = make_subnet("10.0.1.0/26")
    eni_id = ec2.create_network_interface(SubnetId=net.subnet_id, PrivateIpAddress="10.0.1.20")[
        "NetworkInterface"
    ]["NetworkInterfaceId"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=["10.0.1.40"])
    assert available(ec2, net.subnet_id) == 57
    with ec2_error("InsufficientCidrBlocks"):
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=1)
    assert prefixes_of(eni(ec2, eni_id)) == []
    assert ips_of(eni(ec2, eni_id)) == ["10.0.1.20", "10.0.1.40"]


def test_prefix_request_is_all_or_nothing(ec2, make_subnet):
    net = make_subnet("10.0.0.0/26")  # free /28s: .16 and .32 (the first and last hold reserved addresses)
    eni_id = ec2.create_network_interface(SubnetId=net.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    with ec2_error("InsufficientCidrBlocks"):
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=3)
    assert prefixes_of(eni(ec2, eni_id)) == []
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=2)
    assert prefixes_of(eni(ec2, eni_id)) == ["10.0.0.16/28", "10.0.0.32/28"]


def test_mixing_ips_and_prefixes_is_rejected(ec2, subnet):
    with ec2_error("InvalidParameterCombination"):
        ec2.create_network_interface(SubnetId=subnet.subnet_id, SecondaryPrivateIpAddressCount=1, Ipv4PrefixCount=1)
    assert enis_in(ec2, subnet.subnet_id) == []
    eni_id = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    with ec2_error("InvalidParameterCombination"):
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=1, Ipv4PrefixCount=1)
    with ec2_error("InvalidParameterCombination"):
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=1, Ipv4Prefixes=["10.0.0.64/28"])
    assert ips_of(eni(ec2, eni_id)) == ["10.0.0.4"]
    assert prefixes_of(eni(ec2, eni_id)) == []


def test_prefixes_are_16_aligned_addresses_inside_the_subnet(ec2, make_subnet):
    net = make_subnet("10.0.16.0/20")
    created = ec2.create_network_interface(SubnetId=net.subnet_id, Ipv4PrefixCount=5)["NetworkInterface"]
    network = ipaddress.ip_network(net.cidr)
    for prefix in map(ipaddress.ip_network, prefixes_of(created)):  # strict parse: aligned
        assert prefix.prefixlen == 28 and prefix.subnet_of(network)
