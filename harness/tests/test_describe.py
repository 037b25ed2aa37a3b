"""(i) DescribeNetworkInterfaces: MaxResults/NextToken paging and the attachment.* filters."""

from __future__ import annotations

import os

from helpers import ec2_error, raw_ec2


def _subnet_filter(subnet_id):
    return [{"Name": "subnet-id", "Values": [subnet_id]}]


def test_pages_with_max_results_and_next_token(ec2, subnet):
    created = [
        ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
        for _ in range(12)
    ]
    pages, token = [], None
    while True:
        kwargs = {"Filters": _subnet_filter(subnet.subnet_id), "MaxResults": 5}
        if token:
            kwargs["NextToken"] = token
        page = ec2.describe_network_interfaces(**kwargs)
        pages.append([e["NetworkInterfaceId"] for e in page["NetworkInterfaces"]])
        token = page.get("NextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [i for p in pages for i in p] == created  # creation order, nothing lost or repeated

    paginated = ec2.get_paginator("describe_network_interfaces").paginate(
        Filters=_subnet_filter(subnet.subnet_id), PaginationConfig={"PageSize": 5}
    )
    assert sum(len(p["NetworkInterfaces"]) for p in paginated) == 12


def test_paging_survives_deletions_between_pages(ec2, subnet):
    created = [
        ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
        for _ in range(10)
    ]
    first = ec2.describe_network_interfaces(Filters=_subnet_filter(subnet.subnet_id), MaxResults=5)
    ec2.delete_network_interface(NetworkInterfaceId=created[4])  # last item of page one
    ec2.delete_network_interface(NetworkInterfaceId=created[5])  # first item of page two
    second = ec2.describe_network_interfaces(
        Filters=_subnet_filter(subnet.subnet_id), MaxResults=5, NextToken=first["NextToken"]
    )
    assert [e["NetworkInterfaceId"] for e in second["NetworkInterfaces"]] == created[6:]
    assert "NextToken" not in second


def test_max_results_validation(ec2, subnet):
    # boto3 refuses MaxResults < 5 itself, so send it raw
    response = raw_ec2(os.environ["EC2_ENDPOINT"], "DescribeNetworkInterfaces", MaxResults="4")
    assert response.status == 400
    assert "<Code>InvalidParameterValue</Code>" in response.body
    with ec2_error("InvalidPaginationToken"):
        ec2.describe_network_interfaces(Filters=_subnet_filter(subnet.subnet_id), MaxResults=5, NextToken="bogus")


def test_attachment_filters(ec2, subnet, launch):
    instance = launch(subnet.subnet_id)
    primary = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    loose = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    secondary = ec2.create_network_interface(SubnetId=subnet.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=secondary, InstanceId=instance["InstanceId"], DeviceIndex=1)

    def ids(*filters):
        found = ec2.describe_network_interfaces(Filters=[*_subnet_filter(subnet.subnet_id), *filters])
        return sorted(e["NetworkInterfaceId"] for e in found["NetworkInterfaces"])

    assert ids({"Name": "attachment.status", "Values": ["attached"]}) == sorted([primary, secondary])
    assert ids({"Name": "status", "Values": ["available"]}) == [loose]
    assert ids({"Name": "attachment.instance-id", "Values": [instance["InstanceId"]]}) == sorted([primary, secondary])
    assert ids({"Name": "attachment.device-index", "Values": ["1"]}) == [secondary]
    assert ids({"Name": "attachment.delete-on-termination", "Values": ["true"]}) == [primary]
