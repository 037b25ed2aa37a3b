"""Patch layer: makes LocalStack 4.14.0's EC2 (moto-ext 5.1.24) faithful where ipamd needs it.

Imported by `launch.py` inside the LocalStack process, before LocalStack starts. `apply()`
replaces a handful of moto and LocalStack symbols; every replacement below names the symbol
it replaces and why. If a symbol is missing, or its signature changed, `apply()` raises
`PatchError` and the process exits, so a LocalStack/moto upgrade breaks loudly instead of
silently serving the old, unfaithful behaviour.

What changes (letters follow the harness brief; details in README.md):
  a. IPv4 allocation is unique, lowest-free, atomic and honours the 5 reserved addresses;
     a subnet without room answers InsufficientFreeAddressesInSubnet; AvailableIpAddressCount
     is computed from live state (usable - used).
  b. /28 prefix delegation (Ipv4PrefixCount / Ipv4Prefix.N) on CreateNetworkInterface,
     AssignPrivateIpAddresses and UnassignPrivateIpAddresses; InsufficientCidrBlocks.
  c. AssignPrivateIpAddresses answers with the new addresses only.
  d. Instance-type limits: AttachmentLimitExceeded, PrivateIpAddressLimitExceeded,
     device index already in use.
  e. Unique, well-formed MAC addresses.
  f. Attachment.DeleteOnTermination (ModifyNetworkInterfaceAttribute, RunInstances primary
     ENI, TerminateInstances).
  g. InvalidNetworkInterface.InUse on DeleteNetworkInterface; unassign checks.
  h. InterfaceType stored as given (trunk, branch, efa, ...).
  i. DescribeNetworkInterfaces MaxResults/NextToken and more filters (attachment.status ...).
  j. Fault injection and added latency per EC2 action (see faults.py), at LocalStack's
     dispatch point, so every EC2 action can be failed with a well-formed EC2 error.
  k. Trunk and branch interfaces (security groups for pods): AssociateTrunkInterface,
     DescribeTrunkInterfaceAssociations, DisassociateTrunkInterface; a trunk only on a
     trunking-compatible type, one per instance; branches never attached, at most the type's
     branch-interface count per trunk, one VLAN id each; associated branches show
     InterfaceType branch and status in-use; deleting a branch ends its association.
  l. A day-one instance type, q9.large (day_one.py): described, offered and limited like any
     other, but in no catalogue.
  m. EC2's eventual consistency and stuck attachments, when injected (consistency.py):
     DescribeNetworkInterfaces lags assigns and attaches, an attachment stays `attaching`.
Plus one LocalStack runtime fix: SIGTERM stops the process at once (HypercornRuntimeServer).

Concurrency: LocalStack serves requests on several threads. Every EC2 request that reads or
changes instance, network or address state runs under `STATE_LOCK` (taken in the patched
`Skeleton.dispatch_request`), which makes each request atomic with respect to the others; the
IMDS and control servers take the same lock to read or reset state. Reads of moto's static
catalogues (`CATALOGUE_READS`: images, instance types, regions, zones) skip the lock: nothing
the harness serves changes them, and moto takes seconds to build some of them (an unfiltered
DescribeImages held the lock for 2-3 s and stalled IMDS past its clients' read timeout).
"""

from __future__ import annotations

import base64
import binascii
import inspect
import itertools
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from . import day_one, ipam
from .consistency import CONSISTENCY
from .faults import FaultRegistry

LOG = logging.getLogger("eniplan_harness.patches")

EXPECTED_VERSIONS = {"localstack-core": "4.14.0", "moto-ext": "5.1.24"}

# One lock for all EC2 state; see the module docstring.
STATE_LOCK = threading.RLock()

# EC2 actions that only read moto's static catalogues, served without STATE_LOCK.
CATALOGUE_READS = frozenset(
    {
        "DescribeImages",
        "DescribeInstanceTypes",
        "DescribeInstanceTypeOfferings",
        "DescribeRegions",
        "DescribeAvailabilityZones",
    }
)


def needs_state_lock(action: str) -> bool:
    """Whether an EC2 action must run under STATE_LOCK (everything but catalogue reads)."""
    return action not in CATALOGUE_READS
FAULTS = FaultRegistry()

# Names of everything replaced, for GET /health on the control API.
PATCHED: list[str] = []

_applied = False


class PatchError(RuntimeError):
    """A symbol this layer patches is missing or has changed shape."""


# --------------------------------------------------------------------------------------
# Patching helpers
# --------------------------------------------------------------------------------------


def _original(owner: Any, name: str, params: Iterable[str] = ()) -> Any:
    """Return owner.<name>, failing loudly if it is missing or its leading parameters changed.

    `params` lists the parameter names (after `self`) our replacement relies on, in order.
    """
    qualname = _qualname(owner, name)
    if isinstance(owner, type):
        value = owner.__dict__.get(name)
        if value is None:
            # inherited attributes are fine, as long as they exist
            value = getattr(owner, name, None)
    else:
        value = getattr(owner, name, None)
    if value is None:
        raise PatchError(f"eniplan harness: {qualname} no longer exists; update eniplan_harness/patches.py")
    expected = list(params)
    if expected:
        func = value.fget if isinstance(value, property) else value
        try:
            names = list(inspect.signature(func).parameters)
        except (TypeError, ValueError) as exc:
            raise PatchError(f"eniplan harness: cannot inspect {qualname}: {exc}") from exc
        if names and names[0] == "self":
            names = names[1:]
        if names[: len(expected)] != expected:
            raise PatchError(
                f"eniplan harness: {qualname} has parameters {names}, expected to start with "
                f"{expected}; update eniplan_harness/patches.py"
            )
    return value


def _qualname(owner: Any, name: str) -> str:
    if inspect.ismodule(owner):
        return f"{owner.__name__}.{name}"
    return f"{owner.__module__}.{owner.__qualname__}.{name}"


def _subclasses(cls: type) -> Iterable[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _replace(owner: Any, name: str, new: Any) -> None:
    """owner.<name> = new; refuses if a subclass overrides <name> (it would bypass the patch)."""
    if isinstance(owner, type):
        for sub in _subclasses(owner):
            if name in sub.__dict__:
                raise PatchError(
                    f"eniplan harness: {_qualname(sub, name)} overrides the patched "
                    f"{_qualname(owner, name)}; update eniplan_harness/patches.py"
                )
    setattr(owner, name, new)
    PATCHED.append(_qualname(owner, name))


def _add(owner: Any, name: str, new: Any, *, absent_from: Sequence[Any] = ()) -> None:
    """owner.<name> = new for something moto lacks. Refuses if it exists on owner or on any of
    `absent_from` (an upstream implementation to review, or a layer that would bypass ours)."""
    for where in (owner, *absent_from):
        if hasattr(where, name) or any(name in sub.__dict__ for sub in _subclasses(where)):
            raise PatchError(
                f"eniplan harness: {_qualname(where, name)} now exists; review it against "
                f"eniplan_harness/patches.py"
            )
    setattr(owner, name, new)
    PATCHED.append(_qualname(owner, name))


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def _error_class() -> type:
    from moto.ec2.exceptions import EC2ClientError

    class Ec2ApiError(EC2ClientError):
        """An EC2 client error (HTTP 400) with AWS's code; moto renders it as EC2 error XML."""

        def __init__(self, code: str, message: str):
            super().__init__(code, message)

    return Ec2ApiError


Ec2ApiError: Any = None  # set in apply(), once moto is importable


def _fail(code: str, message: str) -> NoReturn:
    raise Ec2ApiError(code, message)


# --------------------------------------------------------------------------------------
# Live address bookkeeping (a, b)
# --------------------------------------------------------------------------------------

_ENI_SEQUENCE = itertools.count(1)  # creation order, used for DescribeNetworkInterfaces paging


def eni_prefixes(eni: Any) -> list[str]:
    """The /28 prefixes delegated to an ENI ('10.0.0.16/28', ...), in assignment order."""
    return [item["Ipv4Prefix"] for item in getattr(eni, "ipv4_prefixes", None) or []]


def eni_private_ips(eni: Any) -> list[str]:
    """All private IPv4 addresses of an ENI, primary first."""
    ips = [item["PrivateIpAddress"] for item in eni.private_ip_addresses]
    primary = eni.private_ip_address
    if primary in ips:
        ips.remove(primary)
        ips.insert(0, primary)
    return ips


def _same_subnet(eni: Any, subnet: Any) -> bool:
    return eni.subnet is subnet or getattr(eni.subnet, "id", None) == subnet.id


def subnet_in_use(backend: Any, subnet: Any) -> set[int]:
    """Every address of `subnet` held by an ENI: primaries, secondaries and prefix members.

    Computed from live moto state on each call rather than kept in a side table, so it can
    never drift from what DescribeNetworkInterfaces shows.
    """
    used: set[int] = set()
    for eni in backend.enis.values():
        if not _same_subnet(eni, subnet):
            continue
        for ip in eni_private_ips(eni):
            used.add(ipam.ip_to_int(ip))
        for prefix in eni_prefixes(eni):
            used.update(ipam.prefix_addresses(ipam.parse_prefix(prefix)))
    return used


def _space(subnet: Any) -> ipam.SubnetSpace:
    return ipam.SubnetSpace.from_cidr(subnet.cidr_block)


def _check_explicit_ip(subnet: Any, ip: str, in_use: set[int]) -> int:
    try:
        value = ipam.ip_to_int(ip)
    except ValueError:
        _fail("InvalidParameterValue", f"Invalid IPv4 address: {ip}")
    space = _space(subnet)
    if not space.contains(value):
        _fail("InvalidParameterValue", f"Address {ip} does not fall within the subnet's address range")
    if not space.is_usable(value):
        _fail("InvalidParameterValue", f"Address {ip} is in subnet's reserved address range")
    if value in in_use:
        _fail("InvalidIPAddress.InUse", f"The specified address is already in use: {ip}")
    return value


def _check_explicit_prefix(subnet: Any, prefix: str, in_use: set[int]) -> int:
    try:
        base = ipam.parse_prefix(prefix)
    except ValueError:
        _fail("InvalidParameterValue", f"Invalid IPv4 prefix: {prefix} (expected an aligned /28)")
    space = _space(subnet)
    members = ipam.prefix_addresses(base)
    if not (space.contains(members[0]) and space.contains(members[-1])):
        _fail("InvalidParameterValue", f"Prefix {prefix} does not fall within the subnet's address range")
    if not (space.is_usable(members[0]) and space.is_usable(members[-1])):
        _fail("InvalidParameterValue", f"Prefix {prefix} overlaps the subnet's reserved address range")
    if any(ip in in_use for ip in members):
        _fail("InvalidParameterValue", f"Prefix {prefix} overlaps addresses that are already in use")
    return base


@dataclass
class Allocation:
    ips: list[str]
    prefixes: list[str]


def allocate(
    subnet: Any,
    in_use: set[int],
    *,
    explicit_ips: Sequence[str] = (),
    ip_count: int = 0,
    explicit_prefixes: Sequence[str] = (),
    prefix_count: int = 0,
) -> Allocation:
    """Plan addresses for one request without touching moto state (atomicity: plan, then commit).

    Explicit addresses first, then the lowest free addresses, then the lowest free aligned /28s.
    """
    taken = set(in_use)
    ips: list[str] = []
    for ip in explicit_ips:
        taken.add(_check_explicit_ip(subnet, ip, taken))
        ips.append(ip)
    if ip_count:
        found = _space(subnet).lowest_free(ip_count, taken)
        if found is None:
            _fail(
                "InsufficientFreeAddressesInSubnet",
                f"There are not enough free addresses in subnet '{subnet.id}' to satisfy the "
                f"requested number of instances.",
            )
        taken.update(found)
        ips.extend(ipam.int_to_ip(v) for v in found)
    prefixes: list[str] = []
    for prefix in explicit_prefixes:
        base = _check_explicit_prefix(subnet, prefix, taken)
        taken.update(ipam.prefix_addresses(base))
        prefixes.append(ipam.prefix_to_str(base))
    if prefix_count:
        bases = _space(subnet).lowest_free_prefixes(prefix_count, taken)
        if bases is None:
            _fail(
                "InsufficientCidrBlocks",
                f"There are not enough free cidr blocks in the specified subnet '{subnet.id}' "
                f"to satisfy the request.",
            )
        for base in bases:
            taken.update(ipam.prefix_addresses(base))
            prefixes.append(ipam.prefix_to_str(base))
    return Allocation(ips, prefixes)


# --------------------------------------------------------------------------------------
# Instance-type limits (d)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkLimits:
    max_enis: int
    ipv4_per_eni: int
    max_cards: int
    enis_per_card: dict[int, int]


def network_limits(instance_type: str) -> NetworkLimits | None:
    """Limits from moto's DescribeInstanceTypes data (real AWS data); None for unknown types."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    info = (INSTANCE_TYPES.get(instance_type) or {}).get("NetworkInfo")
    if not info:
        return None
    cards = {
        int(card["NetworkCardIndex"]): int(card["MaximumNetworkInterfaces"])
        for card in info.get("NetworkCards") or []
    }
    return NetworkLimits(
        max_enis=int(info["MaximumNetworkInterfaces"]),
        ipv4_per_eni=int(info["Ipv4AddressesPerInterface"]),
        max_cards=int(info.get("MaximumNetworkCards") or 1),
        enis_per_card=cards,
    )


def _check_eni_address_limit(eni: Any, instance: Any, adding: int) -> None:
    """Secondary IPs + prefixes on an attached ENI may not exceed Ipv4AddressesPerInterface - 1."""
    if instance is None:
        return
    limits = network_limits(instance.instance_type)
    if limits is None:
        return
    slots = (len(eni.private_ip_addresses) - 1) + len(eni_prefixes(eni)) + adding
    if slots > limits.ipv4_per_eni - 1:
        _fail(
            "PrivateIpAddressLimitExceeded",
            f"Number of private addresses will exceed limit. Interface {eni.id} on a "
            f"{instance.instance_type} can hold {limits.ipv4_per_eni - 1} secondary addresses "
            f"or prefixes; {slots} requested.",
        )


# --------------------------------------------------------------------------------------
# MAC addresses (e)
# --------------------------------------------------------------------------------------

_MAC_LOCK = threading.Lock()
_MAC_RANDOM = random.Random()
_ISSUED_MACS: set[str] = set()


def unique_mac_address() -> str:
    """Locally administered unicast MAC, 02:xx:xx:xx:xx:xx, never repeated in this process."""
    with _MAC_LOCK:
        while True:
            mac = "02:" + ":".join(f"{b:02x}" for b in _MAC_RANDOM.randbytes(5))
            if mac not in _ISSUED_MACS:
                _ISSUED_MACS.add(mac)
                return mac


# --------------------------------------------------------------------------------------
# Trunk and branch interfaces (k)
# --------------------------------------------------------------------------------------

# How many branch interfaces a trunk on each instance type may carry: the VPC resource
# controller's BranchInterface count (rc:pkg/aws/vpc/limits.go), 0 for types that are not
# trunking-compatible. Read from the project's copy of the EC2 networking data
# (data/instance-types.json, field `branch_enis`); types the file lacks count as 0, as the
# file itself does for types the controller does not list. Loaded by apply().
BRANCH_LIMITS_FILE = Path(__file__).resolve().parents[2] / "data" / "instance-types.json"
_BRANCH_LIMITS: dict[str, int] = {}

VLAN_IDS = range(1, 4095)  # 802.1Q: 0 and 4095 are reserved


def load_branch_limits(path: Path = BRANCH_LIMITS_FILE) -> dict[str, int]:
    try:
        records = json.loads(path.read_text())
        return {str(r["name"]): int(r["branch_enis"]) for r in records}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PatchError(f"eniplan harness: cannot read branch-interface limits from {path}: {exc}") from exc


def branch_limit(instance_type: str) -> int:
    """Branch interfaces per trunk for an instance type; 0: not trunking-compatible."""
    return _BRANCH_LIMITS.get(instance_type, 0)


@dataclass
class TrunkAssociation:
    """One branch ENI associated with a trunk ENI (AssociateTrunkInterface)."""

    association_id: str
    branch_id: str
    trunk_id: str
    vlan_id: int | None
    gre_key: int | None
    seq: int  # creation order, for DescribeTrunkInterfaceAssociations paging
    branch_type_before: str  # InterfaceType the branch ENI shows again once disassociated

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "AssociationId": self.association_id,
            "BranchInterfaceId": self.branch_id,
            "TrunkInterfaceId": self.trunk_id,
            "InterfaceProtocol": "VLAN" if self.vlan_id is not None else "GRE",
        }
        if self.vlan_id is not None:
            out["VlanId"] = self.vlan_id
        if self.gre_key is not None:
            out["GreKey"] = self.gre_key
        return out

    def filter_value(self, name: str) -> str | None:
        """The value a DescribeTrunkInterfaceAssociations filter compares, as text."""
        value = {
            "trunk-interface-association.trunk-interface-id": self.trunk_id,
            "trunk-interface-association.branch-interface-id": self.branch_id,
            "interface-protocol": self.describe()["InterfaceProtocol"],
            "gre-key": self.gre_key,
        }[name]
        return None if value is None else str(value)


# `gre-key` and `interface-protocol` are the filters EC2 documents; the two ID filters are what
# a caller needs to find a trunk's or a branch's associations (not in EC2's documentation).
TRUNK_ASSOCIATION_FILTERS = frozenset(
    {
        "trunk-interface-association.trunk-interface-id",
        "trunk-interface-association.branch-interface-id",
        "interface-protocol",
        "gre-key",
    }
)


@dataclass
class TrunkState:
    """Per-backend association bookkeeping; lives in the backend's __dict__, so reset() clears it."""

    associations: dict[str, TrunkAssociation]
    associate_tokens: dict[str, tuple[tuple[Any, ...], dict[str, Any]]]  # token -> (request, answer)
    disassociate_tokens: dict[str, str]  # token -> association ID
    sequence: Any


def trunk_state(backend: Any) -> TrunkState:
    state = backend.__dict__.get("eniplan_trunks")
    if state is None:
        state = backend.__dict__["eniplan_trunks"] = TrunkState({}, {}, {}, itertools.count(1))
    return state


def association_of_branch(backend: Any, eni_id: str) -> TrunkAssociation | None:
    return next((a for a in trunk_state(backend).associations.values() if a.branch_id == eni_id), None)


def associations_of_trunk(backend: Any, eni_id: str) -> list[TrunkAssociation]:
    return [a for a in trunk_state(backend).associations.values() if a.trunk_id == eni_id]


def _check_trunking_attach(eni: Any, instance: Any) -> None:
    """What EC2 refuses when a trunk or branch ENI is attached to an instance."""
    if association_of_branch(instance.ec2_backend, eni.id) is not None:
        _fail("InvalidNetworkInterface.InUse", f"Interface: [{eni.id}] in use.")
    if eni.interface_type == "branch":
        _fail(
            "InvalidParameterValue",
            f"Branch network interface {eni.id} cannot be attached to an instance; associate it "
            f"with a trunk network interface instead.",
        )
    if eni.interface_type != "trunk":
        return
    if branch_limit(instance.instance_type) == 0:
        _fail(
            "InvalidParameterValue",
            f"Instance type {instance.instance_type} does not support trunk network interfaces.",
        )
    attached = getattr(instance, "nics", None) or {}  # RunInstances: not set yet in prep_nics
    other = next((n for n in attached.values() if n.interface_type == "trunk"), None)
    if other is not None:
        _fail(
            "InvalidParameterValue",
            f"Instance '{instance.id}' already has a trunk network interface attached ({other.id}).",
        )


def _association_id() -> str:
    return "trunk-assoc-" + secrets.token_hex(9)[:17]


def associate_branch(
    backend: Any,
    *,
    branch_id: str | None,
    trunk_id: str | None,
    vlan_id: int | None,
    gre_key: int | None,
    client_token: str | None,
) -> dict[str, Any]:
    """AssociateTrunkInterface: checks everything, then records the association.

    Error codes: InvalidNetworkInterfaceID.NotFound (moto's), InvalidVlanId.Duplicate with
    "VlanId 'N' is in use" (the VPC resource controller matches this code, quoting EC2's
    message) and IdempotentParameterMismatch (EC2's common code) are EC2's. EC2 documents no
    codes for the other refusals; InvalidParameterValue (a bad value), IncorrectState (trunk
    not attached) and InvalidNetworkInterface.InUse (branch attached or already associated,
    as for other in-use ENIs) are our choices.
    """
    state = trunk_state(backend)
    if not branch_id or not trunk_id:
        _fail("MissingParameter", "The request must contain the parameters BranchInterfaceId and TrunkInterfaceId")
    request = (branch_id, trunk_id, vlan_id, gre_key)
    if client_token and client_token in state.associate_tokens:
        # EC2 idempotency: the same token with the same request answers the first result.
        seen, answer = state.associate_tokens[client_token]
        if seen != request:
            _fail(
                "IdempotentParameterMismatch",
                f"The client token {client_token} was already used with different parameters.",
            )
        return answer
    branch = backend.get_network_interface(branch_id)  # InvalidNetworkInterfaceID.NotFound
    trunk = backend.get_network_interface(trunk_id)
    if vlan_id is not None and gre_key is not None:
        _fail("InvalidParameterCombination", "Specify either VlanId or GreKey, not both.")
    if vlan_id is None and gre_key is None:
        _fail("MissingParameter", "The request must contain the parameter VlanId or GreKey")
    if vlan_id is not None and vlan_id not in VLAN_IDS:
        _fail("InvalidParameterValue", f"Invalid value '{vlan_id}' for VlanId; it must be between 1 and 4094.")
    if gre_key is not None and gre_key < 0:
        _fail("InvalidParameterValue", f"Invalid value '{gre_key}' for GreKey.")
    if trunk.interface_type != "trunk":
        _fail("InvalidParameterValue", f"Network interface {trunk_id} is not a trunk network interface.")
    if trunk.instance is None:
        _fail("IncorrectState", f"Trunk network interface {trunk_id} is not attached to an instance.")
    # A branch is created as an ordinary interface (the VPC resource controller passes no
    # InterfaceType) and shows InterfaceType `branch` while associated.
    if branch.interface_type not in ("interface", "branch"):
        _fail(
            "InvalidParameterValue",
            f"Network interface {branch_id} of type {branch.interface_type} cannot be a branch network interface.",
        )
    if branch.instance is not None or association_of_branch(backend, branch_id) is not None:
        _fail("InvalidNetworkInterface.InUse", f"Interface: [{branch_id}] in use.")
    if branch.subnet.vpc_id != trunk.subnet.vpc_id:
        _fail(
            "InvalidParameterValue",
            f"Branch {branch_id} and trunk {trunk_id} network interfaces are in different VPCs.",
        )
    on_trunk = associations_of_trunk(backend, trunk_id)
    if vlan_id is not None and any(a.vlan_id == vlan_id for a in on_trunk):
        _fail("InvalidVlanId.Duplicate", f"VlanId '{vlan_id}' is in use")
    limit = branch_limit(trunk.instance.instance_type)
    if len(on_trunk) >= limit:
        # EC2's code for this case is not documented (README, k): InvalidParameterValue rather
        # than AttachmentLimitExceeded, which EC2 documents for ENIs and volumes attached to an
        # instance, so a caller cannot mistake a full trunk for a full instance.
        _fail(
            "InvalidParameterValue",
            f"Trunk network interface {trunk_id} already has {len(on_trunk)} branch network interfaces, "
            f"the maximum for instance type {trunk.instance.instance_type} ({limit}).",
        )

    association = TrunkAssociation(
        association_id=_association_id(),
        branch_id=branch_id,
        trunk_id=trunk_id,
        vlan_id=vlan_id,
        gre_key=gre_key,
        seq=next(state.sequence),
        branch_type_before=branch.interface_type,
    )
    state.associations[association.association_id] = association
    branch.interface_type = "branch"
    branch.status = "in-use"
    answer: dict[str, Any] = {"InterfaceAssociation": association.describe()}
    if client_token:
        answer["ClientToken"] = client_token
        state.associate_tokens[client_token] = (request, answer)
    return answer


def _drop_association(backend: Any, association: TrunkAssociation) -> None:
    trunk_state(backend).associations.pop(association.association_id, None)
    branch = backend.enis.get(association.branch_id)
    if branch is not None:
        branch.interface_type = association.branch_type_before
        branch.status = "available"


def disassociate_branch(backend: Any, association_id: str | None, client_token: str | None) -> None:
    """DisassociateTrunkInterface; an unknown ID is InvalidAssociationID.NotFound."""
    state = trunk_state(backend)
    if not association_id:
        _fail("MissingParameter", "The request must contain the parameter AssociationId")
    if client_token and state.disassociate_tokens.get(client_token) == association_id:
        return  # a retried request that already succeeded
    association = state.associations.get(association_id)
    if association is None:
        _fail("InvalidAssociationID.NotFound", f"The association ID '{association_id}' does not exist")
    _drop_association(backend, association)
    if client_token:
        state.disassociate_tokens[client_token] = association_id


def describe_associations(
    backend: Any,
    *,
    association_ids: Sequence[str],
    filters: dict[str, list[str]],
    max_results: int | None,
    next_token: str | None,
) -> dict[str, Any]:
    """DescribeTrunkInterfaceAssociations with the filters above and MaxResults/NextToken paging."""
    associations = trunk_state(backend).associations
    if max_results is not None and not 5 <= max_results <= 255:
        _fail("InvalidParameterValue", f"MaxResults must be between 5 and 255; got {max_results}")
    for name in filters:
        if name not in TRUNK_ASSOCIATION_FILTERS:
            _fail("InvalidParameterValue", f"The filter '{name}' is invalid")
    for association_id in association_ids:
        if association_id not in associations:
            _fail("InvalidAssociationID.NotFound", f"The association ID '{association_id}' does not exist")
    found = [a for a in associations.values() if not association_ids or a.association_id in association_ids]
    found = [a for a in found if all(a.filter_value(n) in set(v) for n, v in filters.items())]
    found.sort(key=lambda a: a.seq)
    if next_token:
        after = _decode_token(next_token)
        found = [a for a in found if a.seq > after]
    token = None
    if max_results is not None and len(found) > max_results:
        found = found[:max_results]
        token = _encode_token(found[-1].seq)
    result: dict[str, Any] = {"InterfaceAssociations": [a.describe() for a in found]}
    if token:
        result["NextToken"] = token
    return result


# --------------------------------------------------------------------------------------
# Request parameter helpers
# --------------------------------------------------------------------------------------

VALID_INTERFACE_TYPES = {"interface", "efa", "efa-only", "trunk", "branch"}


def _as_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _positive_count(name: str, value: Any) -> int:
    if value is None:
        return 0
    count = int(value)
    if count < 1:
        _fail("InvalidParameterValue", f"{name} must be at least 1; got {count}")
    return count


def _prefix_strings(items: Any) -> list[str]:
    """Ipv4Prefixes arrive as strings (Assign/Unassign) or {'Ipv4Prefix': s} (CreateNetworkInterface)."""
    out = []
    for item in items or []:
        out.append(item["Ipv4Prefix"] if isinstance(item, dict) else str(item))
    return out


# --------------------------------------------------------------------------------------
# Backend replacements (moto.ec2.models.*)
# --------------------------------------------------------------------------------------


def _install_backend_patches() -> None:
    from moto.ec2 import utils as ec2_utils
    from moto.ec2.models import elastic_network_interfaces as eni_models
    from moto.ec2.models import instances as instance_models
    from moto.ec2.models import subnets as subnet_models

    NetworkInterface = eni_models.NetworkInterface
    Attachment = eni_models.Attachment
    Backend = eni_models.NetworkInterfaceBackend
    Subnet = subnet_models.Subnet
    Instance = instance_models.Instance
    InstanceBackend = instance_models.InstanceBackend

    # (e) moto-ext's random_mac_address has an f-string bug ("02:00:00:21902x:...") and no
    # uniqueness. NetworkInterface.__init__ calls the name imported into its module.
    _original(ec2_utils, "random_mac_address")
    _original(eni_models, "random_mac_address")
    _replace(ec2_utils, "random_mac_address", unique_mac_address)
    _replace(eni_models, "random_mac_address", unique_mac_address)

    # (a, b, h) NetworkInterfaceBackend.create_network_interface: moto draws the primary and
    # secondary IPs at random from the whole CIDR (duplicates, reserved addresses, no
    # exhaustion), ignores prefixes and InterfaceType. We plan every address first (atomic),
    # then hand moto explicit addresses only, so its random_private_ip is never reached.
    orig_create = _original(
        Backend,
        "create_network_interface",
        ["subnet", "private_ip_address", "private_ip_addresses", "group_ids", "description", "tags",
         "delete_on_termination"],
    )

    def create_network_interface(
        self: Any,
        subnet: Any,
        private_ip_address: Any,
        private_ip_addresses: Any = None,
        group_ids: Any = None,
        description: Any = None,
        tags: Any = None,
        delete_on_termination: Any = False,
        **kwargs: Any,
    ) -> Any:
        subnet_obj = self.get_subnet(subnet) if isinstance(subnet, str) else subnet
        if isinstance(private_ip_address, list):
            private_ip_address = private_ip_address[0] if private_ip_address else None
        primary: str | None = private_ip_address or None
        explicit_secondaries: list[str] = []
        for item in private_ip_addresses or []:
            if isinstance(item, dict):
                ip, is_primary = item.get("PrivateIpAddress"), bool(_as_bool(item.get("Primary")))
            else:
                ip, is_primary = str(item), primary is None  # moto: a bare first address is primary
            if not ip:
                continue
            if is_primary:
                if primary is not None and primary != ip:
                    _fail("InvalidParameterValue", "Only one primary private IP address can be specified")
                primary = ip
            elif ip != primary:
                explicit_secondaries.append(ip)

        ip_count = _positive_count("SecondaryPrivateIpAddressCount", kwargs.pop("secondary_ips_count", None))
        prefix_count = _positive_count("Ipv4PrefixCount", kwargs.pop("ipv4_prefix_count", None))
        explicit_prefixes = _prefix_strings(kwargs.pop("ipv4_prefixes", None))
        interface_type = kwargs.pop("interface_type", None) or "interface"
        if interface_type not in VALID_INTERFACE_TYPES:
            _fail("InvalidParameterValue", f"Invalid value '{interface_type}' for InterfaceType")
        _check_combination(explicit_secondaries, ip_count, explicit_prefixes, prefix_count)

        in_use = subnet_in_use(self, subnet_obj)
        head = allocate(subnet_obj, in_use, explicit_ips=[primary] if primary else [], ip_count=0 if primary else 1)
        primary = head.ips[0]
        in_use.add(ipam.ip_to_int(primary))
        rest = allocate(
            subnet_obj,
            in_use,
            explicit_ips=explicit_secondaries,
            ip_count=ip_count,
            explicit_prefixes=explicit_prefixes,
            prefix_count=prefix_count,
        )
        addresses = [{"Primary": True, "PrivateIpAddress": primary}] + [
            {"Primary": False, "PrivateIpAddress": ip} for ip in rest.ips
        ]
        eni = orig_create(
            self,
            subnet_obj,
            primary,
            addresses,
            group_ids=group_ids,
            description=description,
            tags=tags,
            delete_on_termination=delete_on_termination,
            **kwargs,
        )
        eni.ipv4_prefixes = [{"Ipv4Prefix": p} for p in rest.prefixes]
        eni.interface_type = interface_type
        eni.eniplan_seq = next(_ENI_SEQUENCE)
        eni.eniplan_network_card_index = 0
        return eni

    _replace(Backend, "create_network_interface", create_network_interface)

    # (g, k) NetworkInterfaceBackend.delete_network_interface: moto deletes attached ENIs.
    # A branch ENI still associated with a trunk is deleted and its association removed:
    # the VPC resource controller deleted associated branches without DisassociateTrunkInterface
    # until 2024 (rc PR #372, which adds the call "as recommended by EC2" and keeps deleting
    # when it fails). A trunk that still carries branches is refused.
    orig_delete = _original(Backend, "delete_network_interface", ["eni_id"])

    def delete_network_interface(self: Any, eni_id: str) -> None:
        eni = self.enis.get(eni_id)
        if eni is not None and eni.instance is not None:
            _fail("InvalidNetworkInterface.InUse", f"The network interface '{eni_id}' is currently in use.")
        if eni is not None and associations_of_trunk(self, eni_id):
            _fail("InvalidNetworkInterface.InUse", f"Trunk network interface '{eni_id}' has branch associations.")
        orig_delete(self, eni_id)
        association = association_of_branch(self, eni_id)
        if association is not None:
            _drop_association(self, association)

    _replace(Backend, "delete_network_interface", delete_network_interface)

    # (d, k) NetworkInterfaceBackend.attach_network_interface: moto checks nothing; an ENI can
    # be attached twice, over another ENI's device index, beyond the instance's limits, a
    # branch ENI can be attached, a trunk ENI goes on any instance type, several per instance.
    _original(Backend, "attach_network_interface", ["eni_id", "instance_id", "device_index"])

    def attach_network_interface(
        self: Any, eni_id: str, instance_id: str, device_index: Any, network_card_index: Any = None
    ) -> Any:
        eni = self.get_network_interface(eni_id)
        instance = self.get_instance(instance_id)
        if device_index is None:
            _fail("MissingParameter", "The request must contain the parameter DeviceIndex")
        device_index = int(device_index)
        card = int(network_card_index or 0)
        if instance.state in ("terminated", "shutting-down"):
            _fail("IncorrectInstanceState", f"The instance '{instance_id}' is not in a valid state for this operation.")
        if eni.instance is not None:
            _fail("InvalidParameterValue", f"Interface: [{eni_id}] in use.")
        if device_index in instance.nics:
            _fail(
                "InvalidParameterValue",
                f"Instance '{instance_id}' already has an interface attached at device index '{device_index}'.",
            )
        _check_trunking_attach(eni, instance)  # (k)
        limits = network_limits(instance.instance_type)
        if limits is not None:
            if card >= limits.max_cards:
                _fail(
                    "InvalidParameterValue",
                    f"Network card index {card} is not valid for {instance.instance_type} "
                    f"({limits.max_cards} network card(s))",
                )
            attached = list(instance.nics.values())
            if len(attached) + 1 > limits.max_enis:
                _fail(
                    "AttachmentLimitExceeded",
                    f"Interface count {len(attached) + 1} exceeds the limit for {instance.instance_type}",
                )
            on_card = sum(1 for n in attached if getattr(n, "eniplan_network_card_index", 0) == card)
            card_limit = limits.enis_per_card.get(card, limits.max_enis)
            if on_card + 1 > card_limit:
                _fail(
                    "AttachmentLimitExceeded",
                    f"Interface count {on_card + 1} on network card {card} exceeds the limit for "
                    f"{instance.instance_type}",
                )
        _check_eni_address_limit(eni, instance, adding=0)
        instance.attach_eni(eni, device_index)
        CONSISTENCY.attached(eni.id)
        eni.eniplan_network_card_index = card
        eni.delete_on_termination = False  # a new attachment starts with DeleteOnTermination=false
        return eni.attachment

    _replace(Backend, "attach_network_interface", attach_network_interface)

    # (g, k) NetworkInterfaceBackend.detach_network_interface: AWS refuses to detach the
    # primary; a trunk is kept while branches are associated with it.
    orig_detach = _original(Backend, "detach_network_interface", ["attachment_id"])

    def detach_network_interface(self: Any, attachment_id: str) -> None:
        eni = next((e for e in self.enis.values() if e.attachment_id == attachment_id), None)
        if eni is not None and eni.device_index == 0:
            _fail("OperationNotPermitted", "The network interface at device index 0 cannot be detached.")
        if eni is not None and associations_of_trunk(self, eni.id):
            # EC2's code here is not documented; see README (k).
            _fail(
                "OperationNotPermitted",
                f"Trunk network interface {eni.id} has branch associations; disassociate them first.",
            )
        orig_detach(self, attachment_id)  # raises InvalidAttachmentID.NotFound for unknown IDs
        if eni is not None:
            eni.delete_on_termination = False
            CONSISTENCY.detached(eni.id)

    _replace(Backend, "detach_network_interface", detach_network_interface)

    # (a, b, c, d) NetworkInterfaceBackend.assign_private_ip_addresses: random IPs, no
    # prefixes, no limits. Replaced by assign_addresses(); this keeps moto's signature for
    # any other caller.
    _original(Backend, "assign_private_ip_addresses", ["eni_id", "private_ip_addresses", "secondary_ips_count"])

    def assign_private_ip_addresses(
        self: Any, eni_id: str, private_ip_addresses: Any = None, secondary_ips_count: Any = None
    ) -> Any:
        assign_addresses(self, eni_id, ips=private_ip_addresses or [], ip_count=secondary_ips_count or None)
        return self.get_network_interface(eni_id)

    _replace(Backend, "assign_private_ip_addresses", assign_private_ip_addresses)

    # (g) NetworkInterfaceBackend.unassign_private_ip_addresses: silently ignores unknown IPs
    # and removes the primary.
    _original(Backend, "unassign_private_ip_addresses", ["eni_id", "private_ip_address"])

    def unassign_private_ip_addresses(self: Any, eni_id: str, private_ip_address: Any = None) -> Any:
        unassign_addresses(self, eni_id, ips=private_ip_address or [], prefixes=[])
        return self.get_network_interface(eni_id)

    _replace(Backend, "unassign_private_ip_addresses", unassign_private_ip_addresses)

    # (i, h) NetworkInterface.get_filter_value: moto raises FilterNotImplementedError for
    # attachment.status (LocalStack turns it into a 501) and a few other documented filters.
    orig_filter = _original(NetworkInterface, "get_filter_value", ["filter_name"])

    def get_filter_value(self: Any, filter_name: str, method_name: Any = None) -> Any:
        attachment = self.attachment
        if filter_name == "attachment.status":
            return attachment.status if attachment else None
        if filter_name == "attachment.attachment-id":
            return attachment.attachment_id if attachment else None
        if filter_name == "attachment.device-index":
            return attachment.device_index if attachment else None
        if filter_name == "attachment.delete-on-termination":
            return bool(self.delete_on_termination) if attachment else None
        if filter_name == "attachment.network-card-index":
            return attachment.network_card_index if attachment else None
        if filter_name == "interface-type":
            return self.interface_type
        if filter_name == "mac-address":
            return self.mac_address
        if filter_name in ("addresses.private-ip-address", "private-ip-address"):
            return eni_private_ips(self)
        if filter_name == "ipv4-prefix":  # not an AWS filter name; handy for tests
            return eni_prefixes(self)
        return orig_filter(self, filter_name, method_name)

    _replace(NetworkInterface, "get_filter_value", get_filter_value)

    # (d, f) Attachment.__init__: hard-codes NetworkCardIndex 0; we keep the index given to
    # AttachNetworkInterface. DeleteOnTermination is read from the ENI by moto already.
    orig_attachment_init = _original(Attachment, "__init__", ["eni"])

    def attachment_init(self: Any, eni: Any) -> None:
        orig_attachment_init(self, eni)
        self.network_card_index = getattr(eni, "eniplan_network_card_index", 0)
        self.delete_on_termination = bool(eni.delete_on_termination)

    _replace(Attachment, "__init__", attachment_init)

    # (a) Subnet.available_ip_address_count: moto subtracts one per IP from a counter that
    # ignores prefixes and goes negative. Computed from live state instead.
    _original(Subnet, "available_ip_address_count")

    def available_ip_address_count(self: Any) -> int:
        space = _space(self)
        used = sum(1 for ip in subnet_in_use(self.ec2_backend, self) if space.is_usable(ip))
        return space.usable_count - used

    _replace(Subnet, "available_ip_address_count", property(available_ip_address_count))

    # (a) Subnet.get_available_subnet_ip / request_ip: RunInstances takes the instance's
    # primary IP here. moto keeps a private table (_subnet_ips) that is never released on
    # terminate; we answer from live ENI state. The ENI holding the address is created in
    # the same request, under STATE_LOCK.
    _original(Subnet, "get_available_subnet_ip", ["instance"])

    def get_available_subnet_ip(self: Any, instance: Any) -> str:
        return allocate(self, subnet_in_use(self.ec2_backend, self), ip_count=1).ips[0]

    _replace(Subnet, "get_available_subnet_ip", get_available_subnet_ip)

    _original(Subnet, "request_ip", ["ip", "instance"])

    def request_ip(self: Any, ip: str, instance: Any) -> None:
        _check_explicit_ip(self, ip, subnet_in_use(self.ec2_backend, self))

    _replace(Subnet, "request_ip", request_ip)

    # (f, k) Instance.prep_nics: moto creates the RunInstances primary ENI with
    # DeleteOnTermination=false; AWS defaults it to true for ENIs created by the launch.
    # Existing ENIs named in NetworkInterfaces get the trunk/branch checks of an attach.
    orig_prep_nics = _original(Instance, "prep_nics", ["nic_spec", "private_ip", "associate_public_ip"])

    def prep_nics(self: Any, nic_spec: Any, *args: Any, **kwargs: Any) -> None:
        for spec in nic_spec or []:
            if spec.get("NetworkInterfaceId"):  # (k) an existing ENI attached at launch
                _check_trunking_attach(self.ec2_backend.get_network_interface(spec["NetworkInterfaceId"]), self)
        before = set(self.ec2_backend.enis)
        orig_prep_nics(self, nic_spec, *args, **kwargs)
        requested = {}
        for spec in nic_spec or []:
            if spec.get("DeviceIndex") is not None:
                requested[int(spec["DeviceIndex"])] = _as_bool(spec.get("DeleteOnTermination"))
        for device_index, nic in self.nics.items():
            if nic.id not in before:
                explicit = requested.get(device_index)
                nic.delete_on_termination = True if explicit is None else explicit

    _replace(Instance, "prep_nics", prep_nics)

    # (f, k) Instance.terminate: moto leaves every ENI attached to the terminated instance and
    # deletes DeleteOnTermination ENIs without detaching them. AWS detaches all, deletes
    # those with DeleteOnTermination=true and frees their addresses. A trunk's branch
    # associations go with the instance (rc PR #400: "once the trunk ENI is deleted by node
    # deletion, the association ... is automatically deleted"); the branches stay, available.
    orig_terminate = _original(Instance, "terminate")

    def terminate(self: Any) -> Any:
        for _, nic in sorted(self.nics.items()):
            for association in associations_of_trunk(self.ec2_backend, nic.id):
                _drop_association(self.ec2_backend, association)
            nic.stop()
            delete = bool(nic.delete_on_termination)
            self.detach_eni(nic)
            nic.delete_on_termination = False
            if delete:
                self.ec2_backend.delete_network_interface(nic.id)
        return orig_terminate(self)

    _replace(Instance, "terminate", terminate)

    # Instance.private_ip & co. index self.nics[0], which no longer exists once terminate()
    # has detached everything; a terminated instance has no private IP on AWS either.
    for name in ("private_ip", "private_ip_address", "public_ip", "public_ip_address", "private_dns_name"):
        _original(Instance, name)
    orig_private_dns_name = Instance.__dict__["private_dns_name"]

    def _primary_nic(self: Any) -> Any:
        return self.nics.get(0) if self.nics else None

    _replace(Instance, "private_ip", property(lambda self: (n := _primary_nic(self)) and n.private_ip_address))
    _replace(Instance, "private_ip_address", property(lambda self: (n := _primary_nic(self)) and n.private_ip_address))
    _replace(Instance, "public_ip", property(lambda self: (n := _primary_nic(self)) and n.public_ip))
    _replace(Instance, "public_ip_address", property(lambda self: (n := _primary_nic(self)) and n.public_ip))
    _replace(
        Instance,
        "private_dns_name",
        property(lambda self: orig_private_dns_name.fget(self) if _primary_nic(self) else ""),
    )

    # (a) InstanceBackend.run_instances: moto registers the reservation before creating the
    # instances; if the subnet runs out half-way, earlier instances and ENIs would stay.
    # Roll back everything this call created.
    orig_run = _original(InstanceBackend, "run_instances", ["image_id", "count", "user_data", "security_group_names"])

    def run_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
        reservations_before = set(self.reservations)
        enis_before = set(self.enis)
        try:
            return orig_run(self, *args, **kwargs)
        except Exception:
            for rid in set(self.reservations) - reservations_before:
                del self.reservations[rid]
            for eid in set(self.enis) - enis_before:
                del self.enis[eid]
            raise

    _replace(InstanceBackend, "run_instances", run_instances)


def _check_combination(explicit_ips: list[str], ip_count: int, explicit_prefixes: list[str], prefix_count: int) -> None:
    """EC2: a request names addresses OR a count of them, and IPs OR prefixes, never both."""
    given = [
        name
        for name, present in (
            ("PrivateIpAddresses", bool(explicit_ips)),
            ("SecondaryPrivateIpAddressCount", bool(ip_count)),
            ("Ipv4Prefixes", bool(explicit_prefixes)),
            ("Ipv4PrefixCount", bool(prefix_count)),
        )
        if present
    ]
    if len(given) > 1:
        _fail("InvalidParameterCombination", f"{' and '.join(given)} cannot be specified together.")


def assign_addresses(
    backend: Any,
    eni_id: str,
    *,
    ips: Sequence[str] = (),
    ip_count: Any = None,
    prefixes: Sequence[Any] = (),
    prefix_count: Any = None,
    allow_reassignment: bool = False,
) -> Allocation:
    """AssignPrivateIpAddresses, atomic: validate and plan everything, then commit."""
    eni = backend.get_network_interface(eni_id)
    ips = list(ips or [])
    prefixes = _prefix_strings(prefixes)
    ip_count = _positive_count("SecondaryPrivateIpAddressCount", ip_count)
    prefix_count = _positive_count("Ipv4PrefixCount", prefix_count)
    _check_combination(ips, ip_count, prefixes, prefix_count)
    if not (ips or ip_count or prefixes or prefix_count):
        _fail(
            "MissingParameter",
            "Specify PrivateIpAddresses, SecondaryPrivateIpAddressCount, Ipv4Prefixes or Ipv4PrefixCount.",
        )
    if len(set(ips)) != len(ips) or len(set(prefixes)) != len(prefixes):
        _fail("InvalidParameterValue", "Duplicate addresses in the request")

    subnet = eni.subnet
    in_use = subnet_in_use(backend, subnet)

    # AllowReassignment: addresses held as secondaries by other ENIs of the subnet move here.
    moves: list[tuple[Any, str]] = []
    own = set(eni_private_ips(eni))
    if ips:
        for ip in list(ips):
            if ip in own:
                if allow_reassignment:
                    ips.remove(ip)  # already here: nothing to do
                    continue
                _fail("InvalidIPAddress.InUse", f"The specified address is already in use: {ip}")
            if not allow_reassignment:
                continue
            for other in backend.enis.values():
                if other is not eni and _same_subnet(other, subnet) and ip in eni_private_ips(other):
                    if ip == other.private_ip_address:
                        _fail("InvalidIPAddress.InUse", f"{ip} is the primary address of {other.id}")
                    moves.append((other, ip))
                    in_use.discard(ipam.ip_to_int(ip))

    _check_eni_address_limit(eni, eni.instance, adding=len(ips) + ip_count + len(prefixes) + prefix_count)
    plan = allocate(
        subnet, in_use, explicit_ips=ips, ip_count=ip_count, explicit_prefixes=prefixes, prefix_count=prefix_count
    )

    # commit
    for other, ip in moves:
        other.private_ip_addresses = [a for a in other.private_ip_addresses if a["PrivateIpAddress"] != ip]
    eni.private_ip_addresses.extend({"Primary": False, "PrivateIpAddress": ip} for ip in plan.ips)
    if plan.prefixes:
        eni.ipv4_prefixes = list(getattr(eni, "ipv4_prefixes", None) or []) + [
            {"Ipv4Prefix": p} for p in plan.prefixes
        ]
    CONSISTENCY.assigned(eni.id, plan.ips, plan.prefixes)
    return plan


def unassign_addresses(backend: Any, eni_id: str, *, ips: Sequence[str], prefixes: Sequence[Any]) -> None:
    """UnassignPrivateIpAddresses, atomic: every address must be on the ENI, the primary stays."""
    eni = backend.get_network_interface(eni_id)
    prefixes = _prefix_strings(prefixes)
    if not ips and not prefixes:
        _fail("MissingParameter", "Specify PrivateIpAddresses or Ipv4Prefixes.")
    if ips and prefixes:
        _fail("InvalidParameterCombination", "PrivateIpAddresses and Ipv4Prefixes cannot be specified together.")
    current = eni_private_ips(eni)
    for ip in ips:
        if ip == eni.private_ip_address:
            _fail("InvalidParameterValue", f"The primary private IP address {ip} of {eni_id} cannot be unassigned.")
        if ip not in current:
            _fail("InvalidParameterValue", f"Some of the specified addresses are not assigned to interface {eni_id}: {ip}")
    held = set(eni_prefixes(eni))
    normalised = []
    for prefix in prefixes:
        try:
            canonical = ipam.prefix_to_str(ipam.parse_prefix(prefix))
        except ValueError:
            _fail("InvalidParameterValue", f"Invalid IPv4 prefix: {prefix}")
        if canonical not in held:
            _fail("InvalidParameterValue", f"Some of the specified prefixes are not assigned to interface {eni_id}: {prefix}")
        normalised.append(canonical)
    if ips:
        drop = set(ips)
        eni.private_ip_addresses = [a for a in eni.private_ip_addresses if a["PrivateIpAddress"] not in drop]
    if normalised:
        drop = set(normalised)
        eni.ipv4_prefixes = [p for p in eni.ipv4_prefixes if p["Ipv4Prefix"] not in drop]


# --------------------------------------------------------------------------------------
# Response replacements (moto.ec2.responses.elastic_network_interfaces)
# --------------------------------------------------------------------------------------


def _encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"eniplan:{seq}".encode()).decode()


def _decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        tag, seq = text.split(":", 1)
        if tag != "eniplan":
            raise ValueError(tag)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        _fail("InvalidPaginationToken", f"The specified pagination token is not valid: {token}")


def _install_response_patches() -> None:
    from moto.core.responses import ActionResult, EmptyResult
    from moto.ec2.responses import elastic_network_interfaces as eni_responses
    from moto.ec2.utils import add_tag_specification

    Responses = eni_responses.ElasticNetworkInterfaces

    # (b, h) ElasticNetworkInterfaces.create_network_interface: moto never reads
    # Ipv4PrefixCount, Ipv4Prefix.N or InterfaceType.
    _original(Responses, "create_network_interface")

    def create_network_interface(self: Any) -> Any:
        subnet = self.ec2_backend.get_subnet(self._get_param("SubnetId"))
        tags = add_tag_specification(self._get_param("TagSpecifications", []))
        ipv6_addresses = [i["Ipv6Address"] for i in self._get_param("Ipv6Addresses", [])]
        self.error_on_dryrun()
        eni = self.ec2_backend.create_network_interface(
            subnet,
            self._get_param("PrivateIpAddress"),
            self._get_param("PrivateIpAddresses", []),
            self._get_param("Groups", []),
            self._get_param("Description"),
            tags,
            secondary_ips_count=self._get_param("SecondaryPrivateIpAddressCount"),
            ipv4_prefix_count=self._get_param("Ipv4PrefixCount"),
            ipv4_prefixes=self._get_param("Ipv4Prefixes", []),
            interface_type=self._get_param("InterfaceType"),
            ipv6_addresses=ipv6_addresses,
            ipv6_address_count=self._get_int_param("Ipv6AddressCount", 0),
        )
        return ActionResult({"NetworkInterface": eni})

    _replace(Responses, "create_network_interface", create_network_interface)

    # (c, b) ElasticNetworkInterfaces.assign_private_ip_addresses: moto answers with every IP
    # of the ENI (AWS: only the new ones) and never returns AssignedIpv4Prefixes.
    _original(Responses, "assign_private_ip_addresses")

    def assign_private_ip_addresses(self: Any) -> Any:
        eni_id = self._get_param("NetworkInterfaceId")
        self.error_on_dryrun()
        plan = assign_addresses(
            self.ec2_backend,
            eni_id,
            ips=self._get_param("PrivateIpAddresses", []),
            ip_count=self._get_param("SecondaryPrivateIpAddressCount"),
            prefixes=self._get_param("Ipv4Prefixes", []),
            prefix_count=self._get_param("Ipv4PrefixCount"),
            allow_reassignment=bool(_as_bool(self._get_param("AllowReassignment"))),
        )
        return ActionResult(
            {
                "NetworkInterfaceId": eni_id,
                "AssignedPrivateIpAddresses": [{"PrivateIpAddress": ip} for ip in plan.ips],
                "AssignedIpv4Prefixes": [{"Ipv4Prefix": p} for p in plan.prefixes],
            }
        )

    _replace(Responses, "assign_private_ip_addresses", assign_private_ip_addresses)

    # (b, g) ElasticNetworkInterfaces.unassign_private_ip_addresses: moto ignores Ipv4Prefix.N.
    _original(Responses, "unassign_private_ip_addresses")

    def unassign_private_ip_addresses(self: Any) -> Any:
        eni_id = self._get_param("NetworkInterfaceId")
        self.error_on_dryrun()
        unassign_addresses(
            self.ec2_backend,
            eni_id,
            ips=self._get_param("PrivateIpAddresses", []),
            prefixes=self._get_param("Ipv4Prefixes", []),
        )
        return EmptyResult()

    _replace(Responses, "unassign_private_ip_addresses", unassign_private_ip_addresses)

    # (d) ElasticNetworkInterfaces.attach_network_interface: moto drops NetworkCardIndex.
    _original(Responses, "attach_network_interface")

    def attach_network_interface(self: Any) -> Any:
        eni_id = self._get_param("NetworkInterfaceId")
        instance_id = self._get_param("InstanceId")
        device_index = self._get_param("DeviceIndex")
        card = self._get_param("NetworkCardIndex")
        self.error_on_dryrun()
        attachment = self.ec2_backend.attach_network_interface(eni_id, instance_id, device_index, card)
        return ActionResult(
            {"AttachmentId": attachment.attachment_id, "NetworkCardIndex": attachment.network_card_index}
        )

    _replace(Responses, "attach_network_interface", attach_network_interface)

    # (f) ElasticNetworkInterfaces.modify_network_interface_attribute: moto never reads
    # Attachment.DeleteOnTermination.
    orig_modify = _original(Responses, "modify_network_interface_attribute")

    def modify_network_interface_attribute(self: Any) -> Any:
        changes = self._get_param("Attachment")
        if changes:
            eni_id = self._get_param("NetworkInterfaceId")
            eni = self.ec2_backend.get_network_interface(eni_id)
            attachment_id = changes.get("AttachmentId")
            if not eni.attachment_id or (attachment_id and attachment_id != eni.attachment_id):
                _fail("InvalidAttachmentID.NotFound", f"The attachment ID '{attachment_id}' does not exist")
            dot = _as_bool(changes.get("DeleteOnTermination"))
            self.error_on_dryrun()
            if dot is not None:
                eni.delete_on_termination = dot
            if not any(self._get_param(p) for p in ("Groups", "SourceDestCheck", "Description")):
                return EmptyResult()
        return orig_modify(self)

    _replace(Responses, "modify_network_interface_attribute", modify_network_interface_attribute)

    # (i) ElasticNetworkInterfaces.describe_network_interfaces: moto ignores MaxResults.
    _original(Responses, "describe_network_interfaces")

    def describe_network_interfaces(self: Any) -> Any:
        eni_ids = self._get_param("NetworkInterfaceIds", [])
        filters = self._filters_from_querystring()
        max_results = self._get_int_param("MaxResults")
        next_token = self._get_param("NextToken")
        self.error_on_dryrun()
        if max_results is not None:
            if eni_ids:
                _fail("InvalidParameterCombination", "MaxResults cannot be combined with NetworkInterfaceIds.")
            if not 5 <= max_results <= 1000:
                _fail("InvalidParameterValue", f"MaxResults must be between 5 and 1000; got {max_results}")
        enis = self.ec2_backend.get_all_network_interfaces(eni_ids, filters)
        enis.sort(key=lambda e: getattr(e, "eniplan_seq", 0))
        # (m) EC2's eventual consistency, when injected: what was just assigned or attached
        # is not shown yet; a stuck attachment stays `attaching`.
        enis = CONSISTENCY.describe(enis, any(str(f).startswith("attachment.") for f in filters or {}))
        if next_token:
            after = _decode_token(next_token)
            enis = [e for e in enis if getattr(e, "eniplan_seq", 0) > after]
        token = None
        if max_results is not None and len(enis) > max_results:
            enis = enis[:max_results]
            token = _encode_token(getattr(enis[-1], "eniplan_seq", 0))
        result: dict[str, Any] = {"NetworkInterfaces": enis}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    _replace(Responses, "describe_network_interfaces", describe_network_interfaces)


def _install_trunk_actions() -> None:
    from localstack.aws.api.ec2 import Ec2Api
    from localstack.services.ec2.provider import Ec2Provider
    from moto.core.responses import ActionResult
    from moto.ec2.responses import EC2Response
    from moto.ec2.responses import elastic_network_interfaces as eni_responses

    # (k) AssociateTrunkInterface, DescribeTrunkInterfaceAssociations and
    # DisassociateTrunkInterface: neither moto-ext 5.1.24 nor LocalStack's Ec2Provider has
    # them (501). LocalStack forwards an action its provider lacks to moto, whose
    # EC2Response.call_action looks the snake_case name up among its methods at call time,
    # so adding them to the ENI responses mixin routes them. Refused if either gains them.
    Responses = eni_responses.ElasticNetworkInterfaces

    def associate_trunk_interface(self: Any) -> Any:
        self.error_on_dryrun()
        return ActionResult(
            associate_branch(
                self.ec2_backend,
                branch_id=self._get_param("BranchInterfaceId"),
                trunk_id=self._get_param("TrunkInterfaceId"),
                vlan_id=self._get_int_param("VlanId"),
                gre_key=self._get_int_param("GreKey"),
                client_token=self._get_param("ClientToken"),
            )
        )

    def disassociate_trunk_interface(self: Any) -> Any:
        self.error_on_dryrun()
        token = self._get_param("ClientToken")
        disassociate_branch(self.ec2_backend, self._get_param("AssociationId"), token)
        result: dict[str, Any] = {"Return": True}
        if token:
            result["ClientToken"] = token
        return ActionResult(result)

    def describe_trunk_interface_associations(self: Any) -> Any:
        self.error_on_dryrun()
        return ActionResult(
            describe_associations(
                self.ec2_backend,
                association_ids=self._get_param("AssociationIds", []),
                filters=self._filters_from_querystring(),
                max_results=self._get_int_param("MaxResults"),
                next_token=self._get_param("NextToken"),
            )
        )

    for name, func in (
        ("associate_trunk_interface", associate_trunk_interface),
        ("disassociate_trunk_interface", disassociate_trunk_interface),
        ("describe_trunk_interface_associations", describe_trunk_interface_associations),
    ):
        # Ec2Api declares every EC2 operation; only its NotImplementedError stub falls through.
        if getattr(Ec2Provider, name) is not getattr(Ec2Api, name):
            raise PatchError(f"eniplan harness: {_qualname(Ec2Provider, name)} now exists; moto is bypassed")
        _add(Responses, name, func, absent_from=[EC2Response])


# --------------------------------------------------------------------------------------
# LocalStack dispatch: locking and fault injection (j)
# --------------------------------------------------------------------------------------


def _install_dispatch_patch() -> None:
    from localstack.aws.api import CommonServiceException
    from localstack.aws.skeleton import Skeleton

    from .imds import HISTORY
    from .node import FABRIC, MUTATING

    # localstack.aws.skeleton.Skeleton.dispatch_request is where LocalStack hands a parsed
    # request to the service provider (which may call moto). Errors raised here go through
    # Skeleton.on_service_exception and LocalStack's EC2 serializer, so an injected fault is
    # the same <Response><Errors><Error>... XML a real EC2 error is.
    orig_dispatch = _original(Skeleton, "dispatch_request", ["serializer", "context", "instance"])

    def dispatch_request(self: Any, serializer: Any, context: Any, instance: Any) -> Any:
        if self.service.service_name != "ec2":
            return orig_dispatch(self, serializer, context, instance)
        delay, fault = FAULTS.decide(context.operation.name)
        if delay:
            time.sleep(delay)  # injected latency (a test feature), not synchronisation
        if fault is not None:
            raise CommonServiceException(
                fault.code, fault.message, status_code=fault.status, sender_fault=fault.status < 500
            )
        if not needs_state_lock(context.operation.name):
            return orig_dispatch(self, serializer, context, instance)
        with STATE_LOCK:
            result = orig_dispatch(self, serializer, context, instance)
        # The node world follows what the action changed before the caller hears back, so an
        # address EC2 granted is routed by the time AssignPrivateIpAddresses returns.
        FABRIC.changed(context.operation.name)
        if context.operation.name in MUTATING:
            HISTORY.record()  # what a lagging IMDS will answer
        return result

    _replace(Skeleton, "dispatch_request", dispatch_request)


def _install_runtime_patches() -> None:
    from localstack.runtime.server.hypercorn import HypercornRuntimeServer

    # localstack.runtime.server.hypercorn.HypercornRuntimeServer.shutdown runs on the
    # "Runtime-Shutdown" thread and calls self.loop.stop() directly. asyncio loops are not
    # thread-safe: the stop flag is only seen when the selector next wakes up, so SIGTERM
    # took anything from 1 to more than 10 s (harness/down then had to SIGKILL). Waking the
    # loop through call_soon_threadsafe makes it stop at once.
    orig_shutdown = _original(HypercornRuntimeServer, "shutdown")

    def shutdown(self: Any) -> None:
        orig_shutdown(self)
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:  # loop already closed
            pass

    _replace(HypercornRuntimeServer, "shutdown", shutdown)


# --------------------------------------------------------------------------------------
# Reset (control API)
# --------------------------------------------------------------------------------------


def reset_ec2_state() -> None:
    """Reset every EC2 backend in place (all accounts, all regions): default VPCs come back."""
    from moto.ec2.models import ec2_backends

    with STATE_LOCK:
        for account_backends in list(ec2_backends.values()):
            for region_backend in list(account_backends.values()):
                region_backend.reset()


def find_instance(instance_id: str) -> tuple[Any, Any] | None:
    """(backend, instance) for an instance ID in any loaded account/region; caller holds STATE_LOCK."""
    from moto.ec2.models import ec2_backends

    for account_backends in list(ec2_backends.values()):
        for region_backend in list(account_backends.values()):
            for reservation in region_backend.reservations.values():
                for instance in reservation.instances:
                    if instance.id == instance_id:
                        return region_backend, instance
    return None


# --------------------------------------------------------------------------------------


def _check_versions() -> None:
    for dist, wanted in EXPECTED_VERSIONS.items():
        try:
            found = metadata.version(dist)
        except metadata.PackageNotFoundError as exc:
            raise PatchError(f"eniplan harness: {dist} is not installed") from exc
        if found != wanted:
            LOG.warning(
                "eniplan harness: %s is %s, patches were written against %s; the symbol checks "
                "below will catch removed symbols, not changed behaviour",
                dist,
                found,
                wanted,
            )


def apply() -> None:
    """Install every patch; idempotent. Raises PatchError if moto or LocalStack changed shape."""
    global _applied, Ec2ApiError
    if _applied:
        return
    _check_versions()
    Ec2ApiError = _error_class()
    _BRANCH_LIMITS.update(load_branch_limits())
    _install_backend_patches()
    _install_response_patches()
    _install_trunk_actions()
    _install_dispatch_patch()
    _install_runtime_patches()
    day_one.install()
    PATCHED.append(f"moto INSTANCE_TYPES += {day_one.NAME} (day-one type)")
    _applied = True
    LOG.info("eniplan harness: %d EC2 patches applied", len(PATCHED))


__all__: list[str] = [
    "FAULTS",
    "PATCHED",
    "STATE_LOCK",
    "needs_state_lock",
    "PatchError",
    "apply",
    "assign_addresses",
    "association_of_branch",
    "associations_of_trunk",
    "branch_limit",
    "eni_prefixes",
    "eni_private_ips",
    "find_instance",
    "network_limits",
    "reset_ec2_state",
    "unassign_addresses",
]
