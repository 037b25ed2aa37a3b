"""(k) Trunk and branch network interfaces, as security groups for pods use them.

A trunk ENI is attached to a trunking-compatible instance; branch ENIs are never attached,
they are associated with the trunk under a VLAN id (AssociateTrunkInterface). The number of
branches per trunk is the VPC resource controller's BranchInterface count for the instance
type (data/instance-types.json, `branch_enis`): m5.large 9, t3.medium 0.
"""

from __future__ import annotations

import os

import pytest
from helpers import ec2_error, eni, http, raw_ec2

M5_LARGE_BRANCHES = 9


def _new_eni(ec2, subnet_id, **kwargs):
    return ec2.create_network_interface(SubnetId=subnet_id, **kwargs)["NetworkInterface"]["NetworkInterfaceId"]


def _trunk_on(ec2, subnet_id, instance_id, device_index=1):
    trunk = _new_eni(ec2, subnet_id, InterfaceType="trunk", Description="trunk-eni")
    ec2.attach_network_interface(NetworkInterfaceId=trunk, InstanceId=instance_id, DeviceIndex=device_index)
    return trunk


def _associate(ec2, branch, trunk, vlan, **kwargs):
    return ec2.associate_trunk_interface(BranchInterfaceId=branch, TrunkInterfaceId=trunk, VlanId=vlan, **kwargs)[
        "InterfaceAssociation"
    ]


def _on_trunk(ec2, trunk, **kwargs):
    return ec2.describe_trunk_interface_associations(
        Filters=[{"Name": "trunk-interface-association.trunk-interface-id", "Values": [trunk]}], **kwargs
    )


@pytest.fixture
def trunk_node(ec2, subnet, launch):
    """An m5.large with a trunk ENI at device index 1: (instance id, trunk ENI id)."""
    instance_id = launch(subnet.subnet_id, "m5.large")["InstanceId"]
    return instance_id, _trunk_on(ec2, subnet.subnet_id, instance_id)


def test_trunk_attaches_only_to_trunking_compatible_types(ec2, subnet, launch, trunk_node):
    instance_id, trunk = trunk_node
    described = eni(ec2, trunk)
    assert described["InterfaceType"] == "trunk"
    assert described["Attachment"]["InstanceId"] == instance_id
    assert described["Status"] == "in-use"

    second = _new_eni(ec2, subnet.subnet_id, InterfaceType="trunk")
    with ec2_error("InvalidParameterValue"):  # one trunk per instance
        ec2.attach_network_interface(NetworkInterfaceId=second, InstanceId=instance_id, DeviceIndex=2)

    small = launch(subnet.subnet_id, "t3.medium")["InstanceId"]  # BranchInterface 0
    with ec2_error("InvalidParameterValue"):
        ec2.attach_network_interface(NetworkInterfaceId=second, InstanceId=small, DeviceIndex=1)
    assert eni(ec2, second)["Status"] == "available"
    plain = _new_eni(ec2, subnet.subnet_id)
    ec2.attach_network_interface(NetworkInterfaceId=plain, InstanceId=small, DeviceIndex=1)  # not a trunk: fine


def test_branches_up_to_the_instance_type_limit(ec2, subnet, trunk_node):
    _, trunk = trunk_node
    branches = [_new_eni(ec2, subnet.subnet_id, Description="branch-eni") for _ in range(M5_LARGE_BRANCHES + 1)]
    for vlan, branch in enumerate(branches[:-1], start=1):
        association = _associate(ec2, branch, trunk, vlan)
        assert association["AssociationId"].startswith("trunk-assoc-")
        assert {k: v for k, v in association.items() if k != "AssociationId"} == {
            "BranchInterfaceId": branch,
            "TrunkInterfaceId": trunk,
            "InterfaceProtocol": "VLAN",
            "VlanId": vlan,
        }
    with ec2_error("InvalidParameterValue"):  # the 10th branch on an m5.large
        _associate(ec2, branches[-1], trunk, M5_LARGE_BRANCHES + 1)
    assert len(_on_trunk(ec2, trunk)["InterfaceAssociations"]) == M5_LARGE_BRANCHES

    # An associated branch: InterfaceType branch, in use, never an attachment.
    first = eni(ec2, branches[0])
    assert (first["InterfaceType"], first["Status"]) == ("branch", "in-use")
    assert "Attachment" not in first
    left_out = eni(ec2, branches[-1])
    assert (left_out["InterfaceType"], left_out["Status"]) == ("interface", "available")
    found = ec2.describe_network_interfaces(
        Filters=[
            {"Name": "subnet-id", "Values": [subnet.subnet_id]},
            {"Name": "interface-type", "Values": ["branch"]},
        ]
    )["NetworkInterfaces"]
    assert sorted(e["NetworkInterfaceId"] for e in found) == sorted(branches[:-1])


def test_association_errors(ec2, subnet, make_subnet, launch, trunk_node):
    instance_id, trunk = trunk_node
    branch, other = _new_eni(ec2, subnet.subnet_id), _new_eni(ec2, subnet.subnet_id)
    _associate(ec2, branch, trunk, 7)

    with ec2_error("InvalidVlanId.Duplicate"):
        _associate(ec2, other, trunk, 7)
    for vlan in (0, 4095):
        with ec2_error("InvalidParameterValue"):
            _associate(ec2, other, trunk, vlan)
    with ec2_error("InvalidParameterCombination"):
        _associate(ec2, other, trunk, 8, GreKey=8)
    with ec2_error("InvalidNetworkInterfaceID.NotFound"):
        _associate(ec2, "eni-0000000000000000f", trunk, 8)
    with ec2_error("InvalidNetworkInterfaceID.NotFound"):
        _associate(ec2, other, "eni-0000000000000000f", 8)
    with ec2_error("InvalidNetworkInterface.InUse"):  # already a branch of this trunk
        _associate(ec2, branch, trunk, 8)
    with ec2_error("InvalidParameterValue"):  # the "trunk" is an ordinary interface
        _associate(ec2, other, _new_eni(ec2, subnet.subnet_id), 8)
    with ec2_error("IncorrectState"):  # a trunk that is not attached
        _associate(ec2, other, _new_eni(ec2, subnet.subnet_id, InterfaceType="trunk"), 8)
    with ec2_error("InvalidParameterValue"):  # a trunk cannot be a branch
        _associate(ec2, _new_eni(ec2, subnet.subnet_id, InterfaceType="trunk"), trunk, 8)
    attached = _new_eni(ec2, subnet.subnet_id)
    ec2.attach_network_interface(NetworkInterfaceId=attached, InstanceId=instance_id, DeviceIndex=2)
    with ec2_error("InvalidNetworkInterface.InUse"):  # attached to an instance
        _associate(ec2, attached, trunk, 8)
    elsewhere = make_subnet("10.1.0.0/24", vpc_cidr="10.1.0.0/16")
    with ec2_error("InvalidParameterValue"):  # another VPC
        _associate(ec2, _new_eni(ec2, elsewhere.subnet_id), trunk, 8)
    assert len(_on_trunk(ec2, trunk)["InterfaceAssociations"]) == 1
    assert eni(ec2, other)["Status"] == "available"
    _associate(ec2, other, trunk, 4094)  # the highest VLAN id


def test_branches_cannot_be_attached(ec2, subnet, launch, trunk_node):
    _, trunk = trunk_node
    branch = _new_eni(ec2, subnet.subnet_id)
    _associate(ec2, branch, trunk, 1)
    instance_id = launch(subnet.subnet_id, "m5.large")["InstanceId"]
    with ec2_error("InvalidNetworkInterface.InUse"):
        ec2.attach_network_interface(NetworkInterfaceId=branch, InstanceId=instance_id, DeviceIndex=1)
    typed = _new_eni(ec2, subnet.subnet_id, InterfaceType="branch")
    with ec2_error("InvalidParameterValue"):
        ec2.attach_network_interface(NetworkInterfaceId=typed, InstanceId=instance_id, DeviceIndex=1)
    with ec2_error("InvalidNetworkInterface.InUse"):  # nor named in RunInstances
        ec2.run_instances(
            ImageId="ami-ekslinux", InstanceType="m5.large", MinCount=1, MaxCount=1,
            NetworkInterfaces=[{"NetworkInterfaceId": branch, "DeviceIndex": 0}],
        )
    assert "Attachment" not in eni(ec2, branch)


def test_describe_filters_and_paging(ec2, subnet, launch, trunk_node):
    _, trunk = trunk_node
    other_trunk = _trunk_on(ec2, subnet.subnet_id, launch(subnet.subnet_id, "m5.large")["InstanceId"])
    ids = [_associate(ec2, _new_eni(ec2, subnet.subnet_id), trunk, vlan)["AssociationId"] for vlan in range(1, 8)]
    gre_branch = _new_eni(ec2, subnet.subnet_id)
    gre = ec2.associate_trunk_interface(BranchInterfaceId=gre_branch, TrunkInterfaceId=other_trunk, GreKey=42)[
        "InterfaceAssociation"
    ]
    assert (gre["InterfaceProtocol"], gre["GreKey"]) == ("GRE", 42) and "VlanId" not in gre
    _associate(ec2, _new_eni(ec2, subnet.subnet_id), other_trunk, 1)

    listed = _on_trunk(ec2, trunk)["InterfaceAssociations"]
    assert [a["AssociationId"] for a in listed] == ids  # creation order
    by_branch = ec2.describe_trunk_interface_associations(
        Filters=[{"Name": "trunk-interface-association.branch-interface-id", "Values": [gre_branch]}]
    )["InterfaceAssociations"]
    assert by_branch == [gre]
    by_key = ec2.describe_trunk_interface_associations(
        Filters=[
            {"Name": "trunk-interface-association.trunk-interface-id", "Values": [other_trunk]},
            {"Name": "gre-key", "Values": ["42"]},
        ]
    )["InterfaceAssociations"]
    assert by_key == [gre]
    vlans = ec2.describe_trunk_interface_associations(
        Filters=[
            {"Name": "trunk-interface-association.trunk-interface-id", "Values": [trunk, other_trunk]},
            {"Name": "interface-protocol", "Values": ["VLAN"]},
        ]
    )["InterfaceAssociations"]
    assert len(vlans) == 8
    chosen = ec2.describe_trunk_interface_associations(AssociationIds=[ids[3], ids[1]])["InterfaceAssociations"]
    assert [a["AssociationId"] for a in chosen] == [ids[1], ids[3]]

    first = _on_trunk(ec2, trunk, MaxResults=5)
    second = _on_trunk(ec2, trunk, MaxResults=5, NextToken=first["NextToken"])
    assert [a["AssociationId"] for a in first["InterfaceAssociations"] + second["InterfaceAssociations"]] == ids
    assert len(first["InterfaceAssociations"]) == 5 and "NextToken" not in second
    paginated = ec2.get_paginator("describe_trunk_interface_associations").paginate(
        Filters=[{"Name": "trunk-interface-association.trunk-interface-id", "Values": [trunk]}],
        PaginationConfig={"PageSize": 5},
    )
    assert [a["AssociationId"] for page in paginated for a in page["InterfaceAssociations"]] == ids

    with ec2_error("InvalidAssociationID.NotFound"):
        ec2.describe_trunk_interface_associations(AssociationIds=["trunk-assoc-00000000000000000"])
    with ec2_error("InvalidParameterValue"):
        ec2.describe_trunk_interface_associations(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    with ec2_error("InvalidPaginationToken"):
        _on_trunk(ec2, trunk, MaxResults=5, NextToken="bogus")
    # boto3 refuses MaxResults < 5 itself, so send it raw
    response = raw_ec2(os.environ["EC2_ENDPOINT"], "DescribeTrunkInterfaceAssociations", MaxResults="4")
    assert response.status == 400 and "<Code>InvalidParameterValue</Code>" in response.body


def test_disassociate_then_delete(ec2, subnet, trunk_node):
    _, trunk = trunk_node
    branch = _new_eni(ec2, subnet.subnet_id)
    association = _associate(ec2, branch, trunk, 3)["AssociationId"]
    answer = ec2.disassociate_trunk_interface(AssociationId=association, ClientToken="retry-1")
    assert answer["Return"] is True
    # a retried request with the same client token succeeds again; a new one does not
    assert ec2.disassociate_trunk_interface(AssociationId=association, ClientToken="retry-1")["Return"] is True
    with ec2_error("InvalidAssociationID.NotFound"):
        ec2.disassociate_trunk_interface(AssociationId=association)
    described = eni(ec2, branch)
    assert (described["InterfaceType"], described["Status"]) == ("interface", "available")
    assert _on_trunk(ec2, trunk)["InterfaceAssociations"] == []
    ec2.delete_network_interface(NetworkInterfaceId=branch)
    _associate(ec2, _new_eni(ec2, subnet.subnet_id), trunk, 3)  # the VLAN is free again


def test_associate_is_idempotent_with_a_client_token(ec2, subnet, trunk_node):
    _, trunk = trunk_node
    branch = _new_eni(ec2, subnet.subnet_id)
    first = ec2.associate_trunk_interface(BranchInterfaceId=branch, TrunkInterfaceId=trunk, VlanId=5, ClientToken="t1")
    again = ec2.associate_trunk_interface(BranchInterfaceId=branch, TrunkInterfaceId=trunk, VlanId=5, ClientToken="t1")
    assert again["InterfaceAssociation"] == first["InterfaceAssociation"] and again["ClientToken"] == "t1"
    assert len(_on_trunk(ec2, trunk)["InterfaceAssociations"]) == 1
    with ec2_error("IdempotentParameterMismatch"):
        ec2.associate_trunk_interface(BranchInterfaceId=branch, TrunkInterfaceId=trunk, VlanId=6, ClientToken="t1")


def test_delete_while_associated(ec2, subnet, trunk_node):
    _, trunk = trunk_node
    branch = _new_eni(ec2, subnet.subnet_id)
    kept = _new_eni(ec2, subnet.subnet_id)
    _associate(ec2, branch, trunk, 1)
    kept_association = _associate(ec2, kept, trunk, 2)["AssociationId"]

    # EC2 deletes an associated branch and its association with it (see README, k).
    ec2.delete_network_interface(NetworkInterfaceId=branch)
    assert [a["BranchInterfaceId"] for a in _on_trunk(ec2, trunk)["InterfaceAssociations"]] == [kept]
    _associate(ec2, _new_eni(ec2, subnet.subnet_id), trunk, 1)  # its VLAN is free again

    with ec2_error("InvalidNetworkInterface.InUse"):  # the trunk is attached
        ec2.delete_network_interface(NetworkInterfaceId=trunk)
    attachment_id = eni(ec2, trunk)["Attachment"]["AttachmentId"]
    with ec2_error("OperationNotPermitted"):  # and carries branches
        ec2.detach_network_interface(AttachmentId=attachment_id)
    assert eni(ec2, trunk)["Status"] == "in-use"
    for association in _on_trunk(ec2, trunk)["InterfaceAssociations"]:
        ec2.disassociate_trunk_interface(AssociationId=association["AssociationId"])
    ec2.detach_network_interface(AttachmentId=attachment_id)
    ec2.delete_network_interface(NetworkInterfaceId=trunk)
    ec2.delete_network_interface(NetworkInterfaceId=kept)
    with ec2_error("InvalidAssociationID.NotFound"):
        ec2.disassociate_trunk_interface(AssociationId=kept_association)


def test_terminate_removes_the_trunks_associations(ec2, subnet, trunk_node):
    instance_id, trunk = trunk_node
    branch = _new_eni(ec2, subnet.subnet_id)
    _associate(ec2, branch, trunk, 1)
    ec2.terminate_instances(InstanceIds=[instance_id])
    assert _on_trunk(ec2, trunk)["InterfaceAssociations"] == []
    described = eni(ec2, branch)
    assert (described["InterfaceType"], described["Status"]) == ("interface", "available")


def test_imds_lists_the_trunk_but_no_branch(ec2, control, subnet, trunk_node):
    instance_id, trunk = trunk_node
    branches = [_new_eni(ec2, subnet.subnet_id) for _ in range(2)]
    for vlan, branch in enumerate(branches, start=1):
        _associate(ec2, branch, trunk, vlan)
    endpoint = control.imds(instance_id)
    token = http("PUT", endpoint + "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}).body

    def get(path):
        response = http("GET", endpoint + "/latest/meta-data/" + path, headers={"X-aws-ec2-metadata-token": token})
        assert response.status == 200, (path, response.status)
        return response.body

    macs = [line.rstrip("/") for line in get("network/interfaces/macs/").splitlines()]
    enis = ec2.describe_network_interfaces(NetworkInterfaceIds=[trunk, *branches])["NetworkInterfaces"]
    mac_of = {e["NetworkInterfaceId"]: e["MacAddress"] for e in enis}
    assert len(macs) == 2  # the primary ENI and the trunk
    assert mac_of[trunk] in macs
    assert not {mac_of[b] for b in branches} & set(macs)
    assert get(f"network/interfaces/macs/{mac_of[trunk]}/interface-id") == trunk
    assert get(f"network/interfaces/macs/{mac_of[trunk]}/device-number") == "1"
