"""A made-up instance type EC2 serves but no catalogue knows: the "day-one" type.

Real EC2 launches new instance types before any catalogue (the VPC CNI's, eniplan's embedded
one, moto's) lists them. To test what ipamd and `eniplan max-pods --live` do then, the harness
adds `q9.large` to moto's instance-type data and to its offerings in every region and zone, so
RunInstances accepts it and DescribeInstanceTypes describes it like any other type. No real
family starts with `q`, so the embedded catalogue can never learn it by accident.

Its limits differ from every common shape, so a test can tell which arithmetic ran:
4 ENIs on one network card, 12 IPv4 addresses each (max pods 4 x (12 - 1) + 2 = 46), nitro,
2 vCPUs, no trunking (the resource controller's table does not know it either).
"""

from __future__ import annotations

import copy
from typing import Any

NAME = "q9.large"
MAX_ENIS = 4
IPV4_PER_ENI = 12
VCPUS = 2
# The type the description is copied from (everything but the networking and the name).
TEMPLATE = "m5.large"


def description(template: dict[str, Any]) -> dict[str, Any]:
    """DescribeInstanceTypes' entry for the day-one type, built from `template`'s."""
    entry = copy.deepcopy(template)
    entry["InstanceType"] = NAME
    entry["Hypervisor"] = "nitro"
    entry["BareMetal"] = False
    entry["VCpuInfo"] = dict(entry.get("VCpuInfo", {}), DefaultVCpus=VCPUS)
    network = entry["NetworkInfo"]
    network["MaximumNetworkInterfaces"] = MAX_ENIS
    network["Ipv4AddressesPerInterface"] = IPV4_PER_ENI
    network["MaximumNetworkCards"] = 1
    network["DefaultNetworkCardIndex"] = 0
    card = dict(network["NetworkCards"][0], NetworkCardIndex=0, MaximumNetworkInterfaces=MAX_ENIS)
    network["NetworkCards"] = [card]
    return entry


def register(types: dict[str, Any], offerings: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """Adds the day-one type to moto's `INSTANCE_TYPES` and `INSTANCE_TYPE_OFFERINGS` (in place;
    idempotent): described as above, offered wherever the template type is offered."""
    types[NAME] = description(types[TEMPLATE])
    for by_region in offerings.values():
        for region, items in by_region.items():
            if any(o["InstanceType"] == NAME for o in items):
                continue
            by_region[region] = items + [
                dict(o, InstanceType=NAME) for o in items if o["InstanceType"] == TEMPLATE
            ]


def install() -> None:
    """Registers the type in the running process's moto, including the list of described types
    `InstanceTypeBackend` built from `INSTANCE_TYPES` when it was imported."""
    from moto.ec2.models import instance_types

    register(instance_types.INSTANCE_TYPES, instance_types.INSTANCE_TYPE_OFFERINGS)
    described = instance_types.InstanceTypeBackend.instance_types
    if not any(t.get("InstanceType") == NAME for t in described):
        described.append(instance_types.InstanceType(NAME))
