"""Control API of the harness (JSON over HTTP on 127.0.0.1), served inside the LocalStack process.

  GET    /health   {"status": "ok", "patches": [...], "imds": {...}, "faults": [...]}
  POST   /imds     {"instance_id": "i-..."} -> {"instance_id", "endpoint"}; starts or reuses
                   that instance's IMDS listener; 404 if the instance does not exist
  GET    /imds     {"listeners": {"i-...": "http://127.0.0.1:port", ...}}
  POST   /faults   one rule (see faults.py) -> {"index": n, "rule": {...}}
  GET    /faults   {"rules": [... with "matched"/"fired" counters]}
  DELETE /faults   clears every rule
  POST   /consistency  {"describe_lag_ms": n, "imds_lag_ms": n, "stuck_attachments": n}, any
                   subset (see consistency.py) -> the settings and counters
  GET    /consistency  the settings and counters ("stuck": the ENIs stuck `attaching`)
  DELETE /consistency  back to a consistent EC2 and IMDS
  POST   /node     {"name": "a", "instance_id": "i-...", "hotplug_delay_ms": 200,
                    "forward_ports": [6443]} -> the node (node.py): network namespaces standing
                   for the instance and its VPC; 404 if the instance does not exist, 400 for a
                   bad name, a leftover namespace or bad `forward_ports`. `forward_ports`
                   (optional, default []): for each, a listener on 127.0.0.1:<port> in the node
                   namespace forwarding to 127.0.0.1:<port> in the host namespace, as the EC2
                   endpoint is (e.g. a fake Kubernetes API server in the test process); distinct
                   whole numbers 1..65535, not the EC2 endpoint's port
  GET    /node     {"nodes": [...]}
  DELETE /node?name=a   removes that node's namespaces
  POST   /reset    resets every EC2 backend (all VPCs, subnets, ENIs, instances go; default
                   VPCs come back), clears fault rules and consistency settings, stops IMDS
                   listeners, removes nodes
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import patches
from .consistency import CONSISTENCY, ConsistencySpecError
from .faults import FaultRule, FaultSpecError
from .imds import HISTORY, ImdsServer
from .node import FABRIC, NodeError, check_forward_ports, check_name

LOG = logging.getLogger("eniplan_harness.control")


class ImdsRegistry:
    """One IMDS listener per instance ID."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[str, ImdsServer] = {}

    def ensure(self, instance_id: str) -> str:
        with self._lock:
            server = self._servers.get(instance_id)
            if server is None:
                server = ImdsServer(instance_id)
                server.start()
                self._servers[instance_id] = server
                LOG.info("IMDS for %s on %s", instance_id, server.endpoint)
            return server.endpoint

    def listing(self) -> dict[str, str]:
        with self._lock:
            return {iid: s.endpoint for iid, s in self._servers.items()}

    def stop_all(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.stop()


class _Handler(BaseHTTPRequestHandler):
    server: ControlServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle on, the body waits for the
    # client's delayed ACK (40 ms a request on a kept-alive connection).
    disable_nagle_algorithm = True

    def log_message(self, fmt: str, *args: Any) -> None:
        LOG.debug("control: " + fmt, *args)

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, indent=2).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        return json.loads(raw)

    def _route(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        try:
            body = self._body() if method in ("POST", "PUT") else None
        except json.JSONDecodeError as exc:
            self._reply(400, {"error": f"invalid JSON: {exc}"})
            return
        try:
            handler = getattr(self, f"_{method.lower()}_{path.strip('/').replace('/', '_') or 'root'}", None)
            if handler is None:
                self._reply(404, {"error": f"no route {method} {path}"})
                return
            handler(body)
        except (FaultSpecError, ConsistencySpecError, NodeError) as exc:
            self._reply(400, {"error": str(exc)})
        except Exception as exc:  # report, don't kill the control thread
            LOG.exception("control API failure on %s %s", method, path)
            self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    # --- routes -----------------------------------------------------------------------

    def _get_health(self, _: Any) -> None:
        self._reply(
            200,
            {
                "status": "ok",
                "patches": patches.PATCHED,
                "imds": self.server.imds.listing(),
                "faults": patches.FAULTS.snapshot(),
            },
        )

    def _instance_exists(self, instance_id: str) -> bool:
        """Whether moto has the instance; answers 404 naming it when not."""
        with patches.STATE_LOCK:
            exists = patches.find_instance(instance_id) is not None
        if not exists:
            self._reply(404, {"error": f"instance {instance_id} not found"})
        return exists

    def _post_imds(self, body: Any) -> None:
        instance_id = body.get("instance_id") if isinstance(body, dict) else None
        if not isinstance(instance_id, str) or not instance_id:
            self._reply(400, {"error": "'instance_id' is required"})
            return
        if not self._instance_exists(instance_id):
            return
        self._reply(200, {"instance_id": instance_id, "endpoint": self.server.imds.ensure(instance_id)})

    def _get_imds(self, _: Any) -> None:
        self._reply(200, {"listeners": self.server.imds.listing()})

    def _post_faults(self, body: Any) -> None:
        rule = FaultRule.from_json(body)
        index = patches.FAULTS.add(rule)
        self._reply(200, {"index": index, "rule": rule.to_json()})

    def _get_faults(self, _: Any) -> None:
        self._reply(200, {"rules": patches.FAULTS.snapshot()})

    def _delete_faults(self, _: Any) -> None:
        patches.FAULTS.clear()
        self._reply(200, {"cleared": True})

    def _post_consistency(self, body: Any) -> None:
        snapshot = CONSISTENCY.configure(body)
        HISTORY.record()  # a lagging IMDS starts from the instances as they are now
        self._reply(200, snapshot)

    def _get_consistency(self, _: Any) -> None:
        self._reply(200, CONSISTENCY.snapshot())

    def _delete_consistency(self, _: Any) -> None:
        CONSISTENCY.clear()
        HISTORY.record()
        self._reply(200, CONSISTENCY.snapshot())

    def _post_node(self, body: Any) -> None:
        body = body if isinstance(body, dict) else {}
        name, instance_id = body.get("name"), body.get("instance_id")
        delay = body.get("hotplug_delay_ms", 200)
        forward_ports = body.get("forward_ports", [])
        if not isinstance(name, str) or not isinstance(instance_id, str) or not instance_id:
            self._reply(400, {"error": "'name' and 'instance_id' are required strings"})
            return
        if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= 600_000:
            self._reply(400, {"error": f"'hotplug_delay_ms' {delay!r}: a whole number of ms, 0 to 600000"})
            return
        ec2_port = int(os.environ.get("ENIPLAN_EC2_PORT") or 4566)
        try:
            check_name(name)
            check_forward_ports(forward_ports, ec2_port)
        except NodeError as exc:
            self._reply(400, {"error": str(exc)})
            return
        if not self._instance_exists(instance_id):
            return
        imds = self.server.imds.ensure(instance_id)
        node = FABRIC.create(name, instance_id, ec2_port, imds, delay, forward_ports)
        self._reply(200, node.to_json())

    def _get_node(self, _: Any) -> None:
        self._reply(200, {"nodes": FABRIC.listing()})

    def _delete_node(self, _: Any) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        name = (query.get("name") or [""])[0]
        if not name:
            self._reply(400, {"error": "DELETE /node?name=NAME"})
            return
        self._reply(200 if FABRIC.delete(name) else 404, {"name": name})

    def _post_reset(self, _: Any) -> None:
        FABRIC.delete_all()
        patches.FAULTS.clear()
        CONSISTENCY.clear()
        self.server.imds.stop_all()
        patches.reset_ec2_state()
        self._reply(200, {"reset": True})


class ControlServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.imds = ImdsRegistry()

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, name="eniplan-control", daemon=True).start()
