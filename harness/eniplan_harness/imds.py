"""An IMDSv2 double for one instance, answering from live moto state.

Each listener serves one instance on its own 127.0.0.1 port. Every GET rebuilds the
metadata tree from moto (under `patches.STATE_LOCK`), so an address assigned through the
EC2 API shows up in `local-ipv4s` on the next read, as on a real node.

Token protocol (IMDSv2 only, as on a node with HttpTokens=required):
  * PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds: 1..21600 answers the
    token, echoing the TTL header; missing or invalid TTL -> 400; X-Forwarded-For -> 403.
  * every GET needs a valid, unexpired X-aws-ec2-metadata-token, else 401.
An IMDS that lags (consistency.py `imds_lag_ms`) answers from `HISTORY`: the instance's trees
recorded after every EC2 action that changed an ENI, the newest one at least that old.
Text answers: leaves are plain text, lists one item per line, directory listings name
sub-directories with a trailing '/'. Unknown paths -> 404 (also `ipv4-prefix` on an ENI
without prefixes, as real IMDS).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union

from . import patches
from .consistency import CONSISTENCY

LOG = logging.getLogger("eniplan_harness.imds")

TOKEN_PATH = "/latest/api/token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TTL = 21600

Tree = dict[str, Union[str, "Tree"]]


def _lines(items: list[str]) -> str:
    return "\n".join(items)


def _vpc_cidrs(vpc: Any) -> list[str]:
    cidrs = [vpc.cidr_block]
    for assoc in vpc.get_cidr_block_association_set(ipv6=False):
        state = (assoc.get("cidr_block_state") or {}).get("state", "associated")
        if state == "associated" and assoc.get("cidr_block") not in cidrs:
            cidrs.append(assoc["cidr_block"])
    return cidrs


def _hostname(ip: str | None, region: str) -> str:
    if not ip:
        return ""
    suffix = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
    return f"ip-{ip.replace('.', '-')}.{suffix}"


def _timestamp(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _interface_tree(backend: Any, eni: Any) -> Tree:
    subnet = eni.subnet
    vpc = backend.get_vpc(subnet.vpc_id)
    ips = patches.eni_private_ips(eni)
    groups = sorted(eni.group_set, key=lambda g: g.id)
    node: Tree = {
        "device-number": str(eni.device_index),
        "interface-id": eni.id,
        "local-hostname": _hostname(eni.private_ip_address, backend.region_name),
        "local-ipv4s": _lines(ips),
        "mac": eni.mac_address,
        "network-card": str(getattr(eni, "eniplan_network_card_index", 0)),
        "owner-id": backend.account_id,
        "security-group-ids": _lines([g.id for g in groups]),
        "security-groups": _lines([g.name for g in groups]),
        "subnet-id": subnet.id,
        "subnet-ipv4-cidr-block": subnet.cidr_block,
        "vpc-id": subnet.vpc_id,
        "vpc-ipv4-cidr-block": vpc.cidr_block,
        "vpc-ipv4-cidr-blocks": _lines(_vpc_cidrs(vpc)),
    }
    prefixes = patches.eni_prefixes(eni)
    if prefixes:
        node["ipv4-prefix"] = _lines(prefixes)
    return node


def build_tree(instance_id: str) -> Tree | None:
    """The /latest tree for an instance, or None if the instance no longer exists."""
    with patches.STATE_LOCK:
        found = patches.find_instance(instance_id)
        if found is None:
            return None
        backend, instance = found
        if instance.state == "terminated":
            return None  # a terminated instance has no metadata service
        region = backend.region_name
        zone = instance.placement.zone if hasattr(instance.placement, "zone") else instance.placement
        # An attachment stuck in `attaching` never reaches the instance.
        nics = [(d, e) for d, e in sorted(instance.nics.items()) if not CONSISTENCY.is_stuck(e.id)]
        primary = dict(nics).get(0)
        macs: Tree = {eni.mac_address: _interface_tree(backend, eni) for _, eni in nics}
        local_ip = primary.private_ip_address if primary else ""
        groups = sorted(primary.group_set, key=lambda g: g.id) if primary else []
        meta: Tree = {
            "ami-id": instance.image_id or "",
            "hostname": _hostname(local_ip, region),
            "instance-id": instance.id,
            "instance-type": instance.instance_type,
            "local-hostname": _hostname(local_ip, region),
            "local-ipv4": local_ip,
            "mac": primary.mac_address if primary else "",
            "network": {"interfaces": {"macs": macs}},
            "placement": {"availability-zone": zone, "region": region},
            "security-groups": _lines([g.name for g in groups]),
            "services": {"domain": "amazonaws.com", "partition": "aws"},
        }
        document = {
            "accountId": backend.account_id,
            "architecture": getattr(instance, "architecture", "x86_64"),
            "availabilityZone": zone,
            "billingProducts": None,
            "devpayProductCodes": None,
            "imageId": instance.image_id,
            "instanceId": instance.id,
            "instanceType": instance.instance_type,
            "kernelId": None,
            "marketplaceProductCodes": None,
            "pendingTime": _timestamp(instance.launch_time),
            "privateIp": local_ip,
            "ramdiskId": None,
            "region": region,
            "version": "2017-09-30",
        }
    return {
        "meta-data": meta,
        "dynamic": {"instance-identity": {"document": json.dumps(document, indent=2)}},
    }


def resolve(tree: Tree, path: str) -> str | None:
    """Text for a /latest/... path (without the /latest prefix), or None for 404."""
    node: str | Tree = tree
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict):
        return _lines([f"{k}/" if isinstance(v, dict) else k for k, v in node.items()])
    return node


class History:
    """Metadata trees over time for the instances IMDS serves, while IMDS is made to lag."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._served: set[str] = set()
        self._trees: dict[str, list[tuple[float, Tree | None]]] = {}

    def serve(self, instance_id: str, on: bool) -> None:
        with self._lock:
            (self._served.add if on else self._served.discard)(instance_id)
            self._trees.pop(instance_id, None)

    def record(self) -> None:
        """Called after every EC2 action that may change an ENI (and when the lag is set)."""
        lag = CONSISTENCY.imds_lag_ms / 1000.0
        with self._lock:
            served = sorted(self._served)
        if not lag:
            with self._lock:
                self._trees.clear()
            return
        trees = [(iid, build_tree(iid)) for iid in served]
        now = time.monotonic()
        with self._lock:
            for iid, tree in trees:
                kept = self._trees.setdefault(iid, [])
                kept.append((now, tree))
                # What a read `lag` from now may still need: the newest tree at least that old.
                older = [i for i, (t, _) in enumerate(kept) if t <= now - lag]
                if older:
                    del kept[: older[-1]]

    def tree(self, instance_id: str) -> Tree | None:
        lag = CONSISTENCY.imds_lag_ms / 1000.0
        if not lag:
            return build_tree(instance_id)
        with self._lock:
            kept = list(self._trees.get(instance_id) or [])
        if not kept:
            self.record()
            return build_tree(instance_id)
        cutoff = time.monotonic() - lag
        old_enough = [tree for t, tree in kept if t <= cutoff]
        return old_enough[-1] if old_enough else kept[0][1]


HISTORY = History()


class TokenStore:
    """IMDSv2 session tokens with expiry; the clock is injectable so tests need not wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._clock = clock

    def issue(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + ttl
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and expiry > self._clock()


class _Handler(BaseHTTPRequestHandler):
    server: ImdsServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle on, the body waits for the
    # client's delayed ACK (40 ms a request on a kept-alive connection).
    disable_nagle_algorithm = True
    server_version = "EC2ws"
    sys_version = ""

    def log_message(self, fmt: str, *args: Any) -> None:
        LOG.debug("imds %s: " + fmt, self.server.instance_id, *args)

    def _send(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self._path() != TOKEN_PATH:
            self._send(405, "405 - Method Not Allowed")
            return
        if self.headers.get("X-Forwarded-For"):
            self._send(403, "403 - Forbidden")
            return
        raw = self.headers.get(TTL_HEADER)
        try:
            ttl = int(raw) if raw is not None else None
        except ValueError:
            ttl = None
        if ttl is None or not 1 <= ttl <= MAX_TTL:
            self._send(400, "400 - Bad Request")
            return
        token = self.server.tokens.issue(ttl)
        self._send(200, token, {TTL_HEADER: str(ttl)})

    def do_GET(self) -> None:
        path = self._path()
        if path == TOKEN_PATH:
            self._send(405, "405 - Method Not Allowed")
            return
        if not self.server.tokens.valid(self.headers.get(TOKEN_HEADER)):
            self._send(401, "401 - Unauthorized")
            return
        if path in ("/", ""):
            self._send(200, "latest")
            return
        if path.rstrip("/") == "/latest":
            self._send(200, _lines(["dynamic", "meta-data"]))
            return
        if not path.startswith("/latest/"):
            self._send(404, "404 - Not Found")
            return
        tree = HISTORY.tree(self.server.instance_id)
        text = resolve(tree, path[len("/latest/"):]) if tree is not None else None
        if text is None:
            self._send(404, "404 - Not Found")
        else:
            self._send(200, text)

    do_HEAD = do_GET

    def _not_allowed(self) -> None:
        self._send(405, "405 - Method Not Allowed")

    do_POST = do_DELETE = do_PATCH = _not_allowed


class ImdsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, instance_id: str, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.instance_id = instance_id
        self.tokens = TokenStore()
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name=f"imds-{self.instance_id}", daemon=True)
        self._thread.start()
        HISTORY.serve(self.instance_id, True)

    def stop(self) -> None:
        HISTORY.serve(self.instance_id, False)
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
