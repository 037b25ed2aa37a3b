"""The node world: an instance's network as a node sees it, in network namespaces (root only).

For an instance registered with `POST /node`:

* the **node namespace** `eniplan-<name>` stands for the instance. Its loopback carries the
  harness's EC2 endpoint (`127.0.0.1:<EC2 port>`, forwarded to the harness) and the instance's
  IMDS at `169.254.169.254:80` (on `lo`, forwarded to its IMDS double), so ipamd runs there
  with the real defaults. `net.ipv4.ip_forward=1` and `rp_filter` 1 by default, as an EKS AMI
  sets them. Each of the node's `forward_ports` is forwarded the same way, from
  `127.0.0.1:<port>` in the node namespace to `127.0.0.1:<port>` in the host's (a fake
  Kubernetes API server in the test process, reachable with the same kubeconfig).
* every ENI attached to the instance appears there as a veth link `eth<device index>` with the
  ENI's MAC (EC2's hotplug), after `hotplug_delay_ms` (default 200) for ENIs attached later.
  The primary `eth0` comes configured, as DHCP leaves it on a real node: its address, the
  subnet route, the default route via the subnet's gateway. Secondary ENIs come bare, for
  ipamd to set up. Detaching an ENI removes its link.
* the **VPC namespace** `eniplan-vpc-<8 hex of the VPC id>` stands for the VPC's router and
  fabric, one per VPC: each ENI's peer link `p<12 hex of the ENI id>` holds the subnet gateway
  (base + 1) and routes every private address and prefix of that ENI to it, as EC2 delivers
  traffic to the ENI that holds the address. Strict reverse-path filtering on those links
  stands for EC2's source/destination check: a packet whose source is not an address of the
  ENI it leaves through is dropped. `OUTSIDE` (198.51.100.1, on the VPC namespace's `lo`) stands
  for an address outside the VPC.

Every change is level-triggered: after each EC2 action that can change an instance's ENIs the
dispatch patch calls `FABRIC.changed()`, which compares what moto holds with the namespaces and
fixes the difference. `ip` does the work (test infrastructure; the product uses netlink).
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LOG = logging.getLogger("eniplan_harness.node")

OUTSIDE = "198.51.100.1"
IMDS_ADDRESS = "169.254.169.254"
CLONE_NEWNET = 0x40000000
MUTATING = {
    "AttachNetworkInterface",
    "DetachNetworkInterface",
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
    "DeleteNetworkInterface",
    "TerminateInstances",
}


class NodeError(RuntimeError):
    pass


def check_name(name: str) -> None:
    """A node name makes namespace names: 1 to 8 ASCII letters, digits or '-'."""
    if not name or len(name) > 8 or not name.isascii() or not name.replace("-", "").isalnum():
        raise NodeError(f"node name {name!r}: 1 to 8 letters, digits or '-'")


def check_forward_ports(ports: Any, ec2_port: int) -> tuple[int, ...]:
    """`forward_ports`: a list of distinct TCP ports 1..65535, the EC2 endpoint's excepted."""
    if not isinstance(ports, (list, tuple)):
        raise NodeError(f"'forward_ports' {ports!r}: a list of TCP ports (1 to 65535)")
    for port in ports:
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise NodeError(f"'forward_ports': {port!r} is not a TCP port (a whole number, 1 to 65535)")
        if port == ec2_port:
            raise NodeError(f"'forward_ports': {port} is the EC2 endpoint's port, forwarded already")
    if len(set(ports)) != len(ports):
        raise NodeError(f"'forward_ports' {list(ports)}: a port is named twice")
    return tuple(ports)


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NodeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done.stdout


def sysctl(netns: str, key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    subprocess.run(["ip", "netns", "exec", netns, "sh", "-c", f"echo {value} > {path}"], check=True)


def netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def ensure_netns(name: str) -> bool:
    """Creates a namespace with `lo` up; False if it existed."""
    if netns_exists(name):
        return False
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)
    return True


def delete_netns(name: str) -> None:
    if netns_exists(name):
        ip("netns", "del", name, check=False)


# --- forwarding loopback listeners into a namespace -------------------------------------------

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def listen_in(netns: str, address: str, port: int) -> socket.socket:
    """A TCP listener bound inside `netns` (a socket keeps the namespace it was made in)."""
    result: dict[str, Any] = {}

    def make() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))
                sock.listen(128)
                result["sock"] = sock
            finally:
                _setns(home)
        except OSError as exc:
            result["error"] = exc
        finally:
            os.close(home)
            os.close(target)

    # A thread of its own: setns changes only the calling thread, which then ends.
    t = threading.Thread(target=make)
    t.start()
    t.join()
    if "error" in result:
        raise NodeError(f"listening on {address}:{port} in {netns}: {result['error']}")
    return result["sock"]


class Forwarder:
    """Accepts in a namespace, connects to a host-namespace loopback port, copies both ways."""

    def __init__(self, listener: socket.socket, upstream: tuple[str, int]) -> None:
        self.listener = listener
        self.upstream = upstream
        self.stopped = False

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True, name="eniplan-forward").start()

    def stop(self) -> None:
        self.stopped = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# --- the model: what moto holds ----------------------------------------------------------------


@dataclass(frozen=True)
class EniView:
    eni_id: str
    device: int
    mac: str
    primary_ip: str
    subnet: str  # CIDR
    addresses: tuple[str, ...]  # secondary /32s and prefixes, as CIDRs

    @property
    def gateway(self) -> str:
        return str(ipaddress.IPv4Network(self.subnet).network_address + 1)

    @property
    def peer(self) -> str:
        return "p" + self.eni_id.replace("eni-", "")[-12:]


def _view(instance: Any) -> list[EniView]:
    from .consistency import CONSISTENCY
    from .patches import eni_prefixes, eni_private_ips

    out = []
    for device, eni in sorted(getattr(instance, "nics", {}).items()):
        if CONSISTENCY.is_stuck(eni.id):
            continue  # an attachment stuck in `attaching` is never hotplugged
        primary = eni.private_ip_address
        addresses = [f"{a}/32" for a in eni_private_ips(eni) if a != primary]
        addresses += list(eni_prefixes(eni))
        out.append(
            EniView(
                eni_id=eni.id,
                device=int(device),
                mac=eni.mac_address.lower(),
                primary_ip=primary,
                subnet=eni.subnet.cidr_block,
                addresses=tuple(sorted(addresses)),
            )
        )
    return out


# --- a node ---------------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    instance_id: str
    vpc_id: str
    hotplug_delay: float
    forward_ports: tuple[int, ...] = ()
    forwarders: list[Forwarder] = field(default_factory=list)
    first_seen: dict[str, float] = field(default_factory=dict)
    booted: bool = False

    @property
    def netns(self) -> str:
        return f"eniplan-{self.name}"

    @property
    def vpc_netns(self) -> str:
        return f"eniplan-vpc-{self.vpc_id[-8:]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "instance_id": self.instance_id,
            "netns": self.netns,
            "vpc_netns": self.vpc_netns,
            "imds_endpoint": f"http://{IMDS_ADDRESS}",
            "outside": OUTSIDE,
            "hotplug_delay_ms": int(self.hotplug_delay * 1000),
            "forward_ports": list(self.forward_ports),
        }


class Fabric:
    """Every registered node; `sync` makes the namespaces match moto."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._nodes: dict[str, Node] = {}
        self._timers: list[threading.Timer] = []

    def create(
        self,
        name: str,
        instance_id: str,
        ec2_port: int,
        imds_endpoint: str,
        delay_ms: int,
        forward_ports: Sequence[int] = (),
    ) -> Node:
        from . import patches

        check_name(name)
        ports = check_forward_ports(forward_ports, ec2_port)
        with patches.STATE_LOCK:
            found = patches.find_instance(instance_id)
            if found is None:
                raise NodeError(f"instance {instance_id} not found")
            vpc_id = found[1].vpc_id
        with self._lock:
            if name in self._nodes:
                node = self._nodes[name]
                if node.instance_id != instance_id:
                    raise NodeError(f"node {name} already stands for {node.instance_id}")
                if sorted(node.forward_ports) != sorted(ports):
                    raise NodeError(
                        f"node {name} already forwards ports {list(node.forward_ports)}, not {list(ports)}"
                    )
                return node
            node = Node(name, instance_id, vpc_id, delay_ms / 1000.0, ports)
            if not ensure_netns(node.netns):
                raise NodeError(f"namespace {node.netns} already exists (a leftover: harness/down removes it)")
            try:
                self._make_node(node, ec2_port, imds_endpoint)
            except Exception:
                self._remove(node)
                raise
            self._nodes[name] = node
        self.sync()
        LOG.info("node %s: %s in %s", name, instance_id, node.netns)
        return node

    def _make_node(self, node: Node, ec2_port: int, imds_endpoint: str) -> None:
        sysctl(node.netns, "net.ipv4.ip_forward", "1")
        sysctl(node.netns, "net.ipv4.conf.all.rp_filter", "0")
        sysctl(node.netns, "net.ipv4.conf.default.rp_filter", "1")
        ip("addr", "add", f"{IMDS_ADDRESS}/32", "dev", "lo", netns=node.netns)
        if ensure_netns(node.vpc_netns):
            sysctl(node.vpc_netns, "net.ipv4.ip_forward", "1")
            sysctl(node.vpc_netns, "net.ipv4.conf.all.rp_filter", "1")
            sysctl(node.vpc_netns, "net.ipv4.conf.default.rp_filter", "1")
            ip("addr", "add", f"{OUTSIDE}/32", "dev", "lo", netns=node.vpc_netns)
        imds_port = int(imds_endpoint.rsplit(":", 1)[1].split("/")[0])
        for address, port, upstream in (
            ("127.0.0.1", ec2_port, ("127.0.0.1", ec2_port)),
            (IMDS_ADDRESS, 80, ("127.0.0.1", imds_port)),
            *(("127.0.0.1", p, ("127.0.0.1", p)) for p in node.forward_ports),
        ):
            fwd = Forwarder(listen_in(node.netns, address, port), upstream)
            fwd.start()
            node.forwarders.append(fwd)

    def _remove(self, node: Node) -> None:
        for fwd in node.forwarders:
            fwd.stop()
        delete_netns(node.netns)  # its links go, and their peers with them
        if not any(n.vpc_netns == node.vpc_netns for n in self._nodes.values() if n is not node):
            delete_netns(node.vpc_netns)

    def delete(self, name: str) -> bool:
        with self._lock:
            node = self._nodes.pop(name, None)
            if node is None:
                return False
            self._remove(node)
            return True

    def delete_all(self) -> None:
        with self._lock:
            for name in list(self._nodes):
                self.delete(name)
            for t in self._timers:
                t.cancel()
            self._timers.clear()

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [n.to_json() for n in self._nodes.values()]

    def changed(self, action: str) -> None:
        """Called after every EC2 action (outside the state lock)."""
        if action not in MUTATING or not self._nodes:
            return
        self.sync()
        if action == "AttachNetworkInterface":
            with self._lock:
                delay = max((n.hotplug_delay for n in self._nodes.values()), default=0.0)
                if delay > 0:
                    # The link appears once the delay has passed, as EC2's hotplug takes time.
                    timer = threading.Timer(delay + 0.01, self.sync)
                    timer.daemon = True
                    self._timers = [t for t in self._timers if t.is_alive()] + [timer]
                    timer.start()

    def sync(self) -> None:
        from . import patches

        with self._lock:
            nodes = list(self._nodes.values())
            if not nodes:
                return
            with patches.STATE_LOCK:
                views = {}
                for n in nodes:
                    found = patches.find_instance(n.instance_id)
                    alive = found is not None and found[1].state == "running"
                    views[n.name] = _view(found[1]) if alive else []
            for n in nodes:
                try:
                    self._sync_node(n, views[n.name])
                except NodeError as exc:
                    LOG.error("node %s: %s", n.name, exc)

    def _sync_node(self, node: Node, enis: list[EniView]) -> None:
        links = json.loads(ip("-j", "link", "show", netns=node.netns) or "[]")
        by_mac = {l.get("address", "").lower(): l["ifname"] for l in links if l.get("ifname", "").startswith("eth")}
        wanted = {e.mac for e in enis}
        for mac, name in by_mac.items():
            if mac not in wanted:
                ip("link", "del", name, netns=node.netns, check=False)  # detached: hot-unplugged
        now = time.monotonic()
        for eni in enis:
            seen = node.first_seen.setdefault(eni.eni_id, now)
            if eni.mac not in by_mac:
                if node.booted and now - seen < node.hotplug_delay:
                    continue  # a timer plugs it once the delay has passed
                self._plug(node, eni)
            self._route(node, eni)
        node.booted = True  # what was attached at registration is plugged at once

    def _plug(self, node: Node, eni: EniView) -> None:
        name = f"eth{eni.device}"
        ip(
            "link", "add", name, "netns", node.netns, "address", eni.mac, "mtu", "9001", "type", "veth",
            "peer", "name", eni.peer, "netns", node.vpc_netns, "mtu", "9001",
        )
        vpc = node.vpc_netns
        ip("link", "set", eni.peer, "up", netns=vpc)
        ip("addr", "add", f"{eni.gateway}/32", "dev", eni.peer, netns=vpc)
        sysctl(vpc, f"net.ipv4.conf.{eni.peer}.rp_filter", "1")
        sysctl(vpc, f"net.ipv4.conf.{eni.peer}.proxy_arp", "1")
        ip("route", "replace", f"{eni.primary_ip}/32", "dev", eni.peer, netns=vpc)
        ip("neigh", "replace", eni.primary_ip, "lladdr", eni.mac, "dev", eni.peer, "nud", "permanent", netns=vpc)
        if eni.device == 0:
            # What DHCP configures on the primary interface of a real node.
            length = ipaddress.IPv4Network(eni.subnet).prefixlen
            ip("link", "set", name, "up", netns=node.netns)
            ip("addr", "add", f"{eni.primary_ip}/{length}", "dev", name, netns=node.netns)
            ip("route", "replace", "default", "via", eni.gateway, "dev", name, netns=node.netns)
        LOG.info("node %s: plugged %s as %s (%s)", node.name, eni.eni_id, name, eni.mac)

    def _route(self, node: Node, eni: EniView) -> None:
        vpc = node.vpc_netns
        routes = json.loads(ip("-j", "route", "show", "dev", eni.peer, netns=vpc, check=False) or "[]")
        have = set()
        for r in routes:
            dst = r.get("dst", "")
            if "/" not in dst:
                dst += "/32"
            if r.get("gateway") == eni.primary_ip:
                have.add(dst)
        want = set(eni.addresses)
        for dst in want - have:
            ip("route", "replace", dst, "via", eni.primary_ip, "dev", eni.peer, netns=vpc)
        for dst in have - want:
            ip("route", "del", dst, "dev", eni.peer, netns=vpc, check=False)


FABRIC = Fabric()


def leftover_namespaces() -> list[str]:
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith("eniplan-"))
    except FileNotFoundError:
        return []
