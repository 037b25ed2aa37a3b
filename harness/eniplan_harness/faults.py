"""Fault injection rules for EC2 actions, set through the control API.

A rule matches one EC2 action (e.g. "AssignPrivateIpAddresses") or every action ("*").
For each matching call, in the order the rules were added:
  * its `latency_ms` is added before the call is served;
  * if it has an error `code`, it fails the call with probability `probability`
    (default 1.0), at most `count` times in total (default: no limit). Draws come from
    the rule's own `random.Random(seed)`, so a given sequence of calls fails the same way
    on every run.
The first rule that fires decides the error; later rules are not consulted.

This module is pure (no moto, no LocalStack): `patches.py` consults the registry at the
point where LocalStack dispatches an EC2 request.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

# HTTP status EC2 answers with, per error code. Anything else is a client error (400).
STATUS_BY_CODE: dict[str, int] = {
    "RequestLimitExceeded": 503,
    "ServiceUnavailable": 503,
    "Unavailable": 503,
    "InternalError": 500,
    "InternalFailure": 500,
    "UnauthorizedOperation": 403,
    "AuthFailure": 401,
    "Blocked": 403,
}

DEFAULT_MESSAGES: dict[str, str] = {
    "RequestLimitExceeded": "Request limit exceeded.",
    "ServiceUnavailable": "The service is unavailable. Please try again shortly.",
    "Unavailable": "The server is overloaded and can't handle the request.",
    "InternalError": "An internal error has occurred.",
    "UnauthorizedOperation": "You are not authorized to perform this operation.",
    "ExpiredToken": "The security token included in the request is expired",
    "RequestExpired": "Request has expired.",
    "AuthFailure": "AWS was not able to validate the provided access credentials",
    "InsufficientCidrBlocks": "There are not enough free cidr blocks in the specified subnet "
    "to satisfy the request.",
    "InsufficientFreeAddressesInSubnet": "There are not enough free addresses in the subnet "
    "to satisfy the requested number of addresses.",
}


class FaultSpecError(ValueError):
    """A rule given to the control API is malformed."""


@dataclass
class FaultRule:
    action: str
    code: str | None = None
    message: str | None = None
    status: int | None = None
    probability: float | None = None
    count: int | None = None
    latency_ms: int = 0
    seed: int | None = None
    # bookkeeping, reported by GET /faults
    matched: int = 0
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_json(cls, spec: Any) -> FaultRule:
        if not isinstance(spec, dict):
            raise FaultSpecError("a fault rule must be a JSON object")
        known = {"action", "code", "message", "status", "probability", "count", "latency_ms", "seed"}
        unknown = set(spec) - known
        if unknown:
            raise FaultSpecError(f"unknown fields: {sorted(unknown)}")
        action = spec.get("action")
        if not isinstance(action, str) or not action:
            raise FaultSpecError("'action' (an EC2 action name or '*') is required")
        code = spec.get("code")
        if code is not None and (not isinstance(code, str) or not code):
            raise FaultSpecError("'code' must be a non-empty string or null")
        probability = spec.get("probability")
        if probability is not None:
            if not isinstance(probability, (int, float)) or not 0.0 <= probability <= 1.0:
                raise FaultSpecError("'probability' must be a number in [0, 1] or null")
        count = spec.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
            raise FaultSpecError("'count' must be a non-negative integer or null")
        latency_ms = spec.get("latency_ms") or 0
        if not isinstance(latency_ms, int) or isinstance(latency_ms, bool) or not 0 <= latency_ms <= 60_000:
            raise FaultSpecError("'latency_ms' must be an integer in [0, 60000]")
        status = spec.get("status")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise FaultSpecError("'status' must be an HTTP error status (400-599) or null")
        seed = spec.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise FaultSpecError("'seed' must be an integer or null")
        message = spec.get("message")
        if message is not None and not isinstance(message, str):
            raise FaultSpecError("'message' must be a string or null")
        if code is None and latency_ms == 0:
            raise FaultSpecError("a rule needs a 'code', a 'latency_ms', or both")
        return cls(
            action=action,
            code=code,
            message=message,
            status=status,
            probability=None if probability is None else float(probability),
            count=count,
            latency_ms=latency_ms,
            seed=seed,
            _rng=random.Random(seed),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "code": self.code,
            "message": self.message,
            "status": self.http_status if self.code else None,
            "probability": self.probability,
            "count": self.count,
            "latency_ms": self.latency_ms,
            "seed": self.seed,
            "matched": self.matched,
            "fired": self.fired,
        }

    @property
    def http_status(self) -> int:
        if self.status is not None:
            return self.status
        return STATUS_BY_CODE.get(self.code or "", 400)

    def matches(self, action: str) -> bool:
        return self.action == "*" or self.action == action

    def roll(self) -> bool:
        """Whether this rule fails the current call (consumes one draw when probabilistic)."""
        if self.code is None:
            return False
        if self.count is not None and self.fired >= self.count:
            return False
        if self.probability is not None and self._rng.random() >= self.probability:
            return False
        self.fired += 1
        return True


@dataclass(frozen=True)
class InjectedFault:
    code: str
    message: str
    status: int


class FaultRegistry:
    """Thread-safe list of rules; one instance lives in the LocalStack process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> int:
        with self._lock:
            self._rules.append(rule)
            return len(self._rules) - 1

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def decide(self, action: str) -> tuple[float, InjectedFault | None]:
        """(seconds of latency to add, fault to return or None) for one call of `action`."""
        latency_ms = 0
        with self._lock:
            for rule in self._rules:
                if not rule.matches(action):
                    continue
                rule.matched += 1
                latency_ms += rule.latency_ms
                if rule.roll():
                    assert rule.code is not None
                    message = rule.message or DEFAULT_MESSAGES.get(
                        rule.code, f"Injected fault {rule.code} for {action}."
                    )
                    return latency_ms / 1000.0, InjectedFault(rule.code, message, rule.http_status)
        return latency_ms / 1000.0, None
