"""EC2's eventual consistency and stuck attachments, set through the control API.

Settings (every one 0 by default, which is a consistent EC2 and costs nothing):
  * `describe_lag_ms`: for this long after an AssignPrivateIpAddresses (addresses or prefixes)
    or an AttachNetworkInterface, DescribeNetworkInterfaces answers as before it: the new
    addresses and prefixes are missing, and a new attachment is missing (the ENI shows
    `available`, with no attachment, and a filter on `attachment.*` does not match it). Real
    EC2 documents this for its Describe calls; it usually lasts under a second, and seconds
    under load.
  * `stuck_attachments`: the next N AttachNetworkInterface calls succeed, but the attachment
    stays `attaching`: DescribeNetworkInterfaces shows it so (ENI status `attaching`), the
    instance never sees the ENI (no link in the node world, not in IMDS), and
    DetachNetworkInterface ends it as usual.
  * `imds_lag_ms`: every instance's IMDS answers as the instance was this long ago: it still
    lists an ENI detached since, and not yet one attached or an address assigned since
    (imds.History).

This module holds state and decisions only; `patches.py` calls its hooks where moto changes
an ENI and where DescribeNetworkInterfaces answers, and `imds.py` consults the IMDS lag.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

LIMIT_MS = 600_000


class ConsistencySpecError(ValueError):
    """A setting given to the control API is malformed."""


@dataclass
class _Hidden:
    """What Describe does not show yet of one ENI: value -> monotonic time it shows from."""

    ips: dict[str, float] = field(default_factory=dict)
    prefixes: dict[str, float] = field(default_factory=dict)
    attachment: float | None = None

    def expire(self, now: float) -> bool:
        """Drops what is visible by `now`; whether anything is still hidden."""
        self.ips = {k: t for k, t in self.ips.items() if t > now}
        self.prefixes = {k: t for k, t in self.prefixes.items() if t > now}
        if self.attachment is not None and self.attachment <= now:
            self.attachment = None
        return bool(self.ips or self.prefixes or self.attachment is not None)


class _Attachment:
    """What Describe shows of a hidden or stuck attachment's ENI."""

    def __init__(self, real: Any, status: str) -> None:
        self._real = real
        self.status = status

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class EniView:
    """An ENI as DescribeNetworkInterfaces shows it while EC2 lags: the moto object, with some
    addresses, prefixes or the attachment left out, or the attachment still `attaching`."""

    def __init__(self, eni: Any, hidden: _Hidden | None, stuck: bool) -> None:
        self._eni = eni
        hidden = hidden or _Hidden()
        self.private_ip_addresses = [
            a for a in eni.private_ip_addresses if a["PrivateIpAddress"] not in hidden.ips
        ]
        self.ipv4_prefixes = [
            p for p in getattr(eni, "ipv4_prefixes", None) or [] if p["Ipv4Prefix"] not in hidden.prefixes
        ]
        real = eni.attachment
        if hidden.attachment is not None:
            self.attachment = None
            self.attachment_id = None
            self.instance = None
            self.device_index = None
            self.attach_time = None
            self.status = "available"
        elif stuck and real is not None:
            self.attachment = _Attachment(real, "attaching")
            self.status = "attaching"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._eni, name)


class Consistency:
    """Thread-safe settings and bookkeeping; one instance lives in the LocalStack process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.describe_lag_ms = 0
        self.imds_lag_ms = 0
        self.stuck_attachments = 0
        self._hidden: dict[str, _Hidden] = {}
        self._stuck: set[str] = set()
        self.hidden_answers = 0  # Describe answers that left something out
        self.stuck_total = 0

    def configure(self, spec: Any) -> dict[str, Any]:
        """Applies the settings `spec` names (others stay); returns the snapshot."""
        if not isinstance(spec, dict):
            raise ConsistencySpecError("the consistency settings must be a JSON object")
        known = {"describe_lag_ms", "imds_lag_ms", "stuck_attachments"}
        unknown = set(spec) - known
        if unknown:
            raise ConsistencySpecError(f"unknown fields: {sorted(unknown)} (known: {sorted(known)})")
        for name, value in spec.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= LIMIT_MS:
                raise ConsistencySpecError(f"'{name}' {value!r}: a whole number, 0 to {LIMIT_MS}")
        with self._lock:
            for name, value in spec.items():
                setattr(self, name, value)
        return self.snapshot()

    def clear(self) -> None:
        with self._lock:
            self.describe_lag_ms = self.imds_lag_ms = self.stuck_attachments = 0
            self._hidden.clear()
            self._stuck.clear()
            self.hidden_answers = self.stuck_total = 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "describe_lag_ms": self.describe_lag_ms,
                "imds_lag_ms": self.imds_lag_ms,
                "stuck_attachments": self.stuck_attachments,
                "stuck": sorted(self._stuck),
                "hidden_answers": self.hidden_answers,
                "stuck_total": self.stuck_total,
            }

    # --- hooks, called by patches.py under its state lock ------------------------------------

    def assigned(self, eni_id: str, ips: list[str], prefixes: list[str]) -> None:
        with self._lock:
            if not self.describe_lag_ms:
                return
            until = time.monotonic() + self.describe_lag_ms / 1000.0
            hidden = self._hidden.setdefault(eni_id, _Hidden())
            hidden.ips.update((ip, until) for ip in ips)
            hidden.prefixes.update((p, until) for p in prefixes)

    def attached(self, eni_id: str) -> None:
        with self._lock:
            if self.stuck_attachments:
                self.stuck_attachments -= 1
                self.stuck_total += 1
                self._stuck.add(eni_id)
            if self.describe_lag_ms:
                hidden = self._hidden.setdefault(eni_id, _Hidden())
                hidden.attachment = time.monotonic() + self.describe_lag_ms / 1000.0

    def detached(self, eni_id: str) -> None:
        with self._lock:
            self._stuck.discard(eni_id)
            hidden = self._hidden.get(eni_id)
            if hidden is not None:
                hidden.attachment = None

    def is_stuck(self, eni_id: str) -> bool:
        with self._lock:
            return eni_id in self._stuck

    def describe(self, enis: list[Any], attachment_filter: bool) -> list[Any]:
        """What DescribeNetworkInterfaces shows of `enis` now. `attachment_filter`: the request
        filtered on `attachment.*`, which an ENI whose attachment is hidden does not match."""
        with self._lock:
            if not self._hidden and not self._stuck:
                return enis
            now = time.monotonic()
            for eni_id in [k for k, h in self._hidden.items() if not h.expire(now)]:
                del self._hidden[eni_id]
            out = []
            for eni in enis:
                hidden = self._hidden.get(eni.id)
                stuck = eni.id in self._stuck
                if hidden is None and not stuck:
                    out.append(eni)
                    continue
                self.hidden_answers += hidden is not None
                if hidden is not None and hidden.attachment is not None and attachment_filter:
                    continue
                out.append(EniView(eni, hidden, stuck))
            return out


CONSISTENCY = Consistency()
