"""Address arithmetic for one IPv4 subnet, the way EC2 does it.

Pure functions over integers: no moto, no locking. `patches.py` computes the set of
addresses in use from live moto state and asks this module what to hand out next.

EC2 rules modelled here:
  * five addresses of every subnet are reserved: the network address, the next three
    (VPC router, DNS, future use) and the broadcast address;
  * a /28 prefix (prefix delegation) must be aligned on 16 addresses, lie inside the
    subnet and consist of 16 addresses that are all free and not reserved;
  * automatic assignment takes the lowest free address (and the lowest free prefix).
    Real EC2 does not promise an order; choosing the lowest makes tests deterministic.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Set
from dataclasses import dataclass

PREFIX_LEN = 28
PREFIX_SIZE = 1 << (32 - PREFIX_LEN)  # 16 addresses per delegated prefix
RESERVED_AT_START = 4  # network address, VPC router, DNS, reserved for future use
RESERVED_AT_END = 1  # broadcast address


def ip_to_int(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


def int_to_ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def prefix_to_str(base: int) -> str:
    return f"{int_to_ip(base)}/{PREFIX_LEN}"


def parse_prefix(prefix: str) -> int:
    """Base address of a /28 given as 'a.b.c.d/28'; ValueError if malformed or misaligned."""
    net = ipaddress.IPv4Network(prefix, strict=True)  # strict: host bits must be zero
    if net.prefixlen != PREFIX_LEN:
        raise ValueError(f"{prefix} is not a /{PREFIX_LEN}")
    return int(net.network_address)


def prefix_addresses(base: int) -> range:
    return range(base, base + PREFIX_SIZE)


@dataclass(frozen=True)
class SubnetSpace:
    """The usable address range of one subnet."""

    network: int
    size: int

    @classmethod
    def from_cidr(cls, cidr: str) -> SubnetSpace:
        net = ipaddress.IPv4Network(cidr, strict=False)
        return cls(int(net.network_address), net.num_addresses)

    @property
    def first_usable(self) -> int:
        return self.network + RESERVED_AT_START

    @property
    def last_usable(self) -> int:
        return self.network + self.size - 1 - RESERVED_AT_END

    @property
    def usable_count(self) -> int:
        return max(0, self.last_usable - self.first_usable + 1)

    def contains(self, ip: int) -> bool:
        return self.network <= ip < self.network + self.size

    def is_usable(self, ip: int) -> bool:
        return self.first_usable <= ip <= self.last_usable

    def lowest_free(self, count: int, in_use: Set[int]) -> list[int] | None:
        """The `count` lowest usable addresses not in `in_use`, or None if there are fewer."""
        if count <= 0:
            return []
        found: list[int] = []
        for ip in range(self.first_usable, self.last_usable + 1):
            if ip not in in_use:
                found.append(ip)
                if len(found) == count:
                    return found
        return None

    def free_prefixes(self, in_use: Set[int]) -> Iterable[int]:
        """Base addresses of aligned /28s whose 16 addresses are all usable and free, lowest first."""
        # First aligned base at or above the first usable address.
        base = -(-self.first_usable // PREFIX_SIZE) * PREFIX_SIZE
        while base + PREFIX_SIZE - 1 <= self.last_usable:
            if not any(ip in in_use for ip in prefix_addresses(base)):
                yield base
            base += PREFIX_SIZE

    def lowest_free_prefixes(self, count: int, in_use: Set[int]) -> list[int] | None:
        """The `count` lowest free aligned /28s, or None if there are fewer."""
        if count <= 0:
            return []
        found: list[int] = []
        for base in self.free_prefixes(in_use):
            found.append(base)
            if len(found) == count:
                return found
        return None
