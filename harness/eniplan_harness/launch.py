"""Project-owned launcher: patch moto's EC2, start the control/IMDS server, run LocalStack.

Run by `harness/up` as `python -m eniplan_harness.launch` with the cached LocalStack venv,
in its own session, output to the harness log. Reads:
  ENIPLAN_HARNESS_DIR  state directory (required): control.port is written here
  ENIPLAN_EC2_PORT     LocalStack gateway port on 127.0.0.1 (default 4566)
  ENIPLAN_CONTROL_PORT control API port on 127.0.0.1 (default 0: any free port)

The LocalStack settings are forced here, not taken from the caller's environment, so the
emulator only ever binds and talks to 127.0.0.1:
  GATEWAY_SERVER=hypercorn     the default twisted gateway ignores the host of GATEWAY_LISTEN
                               and binds 0.0.0.0
  GATEWAY_LISTEN=127.0.0.1:<port>
  SERVICES=ec2, EAGER_SERVICE_LOADING=1   load EC2 at start (health says "running")
  DNS_ADDRESS=0                no DNS server (its default is 0.0.0.0:53)
  DISABLE_EVENTS=1             no analytics events
  SKIP_SSL_CERT_DOWNLOAD=1     no certificate download
  OVERRIDE_IN_DOCKER=0         host mode even in a container: no ping of the Docker bridge,
  DOCKER_BRIDGE_IP=127.0.0.1   no writes to /var/lib/localstack
  PERSISTENCE=0, FILESYSTEM_ROOT under the state directory
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
from pathlib import Path


def _force_localstack_environment(state_dir: Path, ec2_port: int) -> None:
    forced = {
        "GATEWAY_SERVER": "hypercorn",
        "GATEWAY_LISTEN": f"127.0.0.1:{ec2_port}",
        "LOCALSTACK_HOST": f"127.0.0.1:{ec2_port}",
        "SERVICES": "ec2",
        "EAGER_SERVICE_LOADING": "1",
        "DNS_ADDRESS": "0",
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "PERSISTENCE": "0",
        # Host mode even inside a container: otherwise LocalStack pings the Docker bridge
        # (172.17.0.1, 172.18.0.1) at import time and writes to /var/lib/localstack.
        "OVERRIDE_IN_DOCKER": "0",
        "DOCKER_BRIDGE_IP": "127.0.0.1",
        "FILESYSTEM_ROOT": str(state_dir / "localstack-fs"),
        "AWS_EC2_METADATA_DISABLED": "true",
        # RunInstances rejects instance types EC2 does not offer in the region, as AWS does
        "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
    }
    for key in ("LOCALSTACK_AUTH_TOKEN", "LOCALSTACK_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ.pop(key, None)
    os.environ.update(forced)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main() -> None:
    state_dir = Path(os.environ["ENIPLAN_HARNESS_DIR"])
    ec2_port = int(os.environ.get("ENIPLAN_EC2_PORT") or 4566)
    control_port = int(os.environ.get("ENIPLAN_CONTROL_PORT") or 0)
    state_dir.mkdir(parents=True, exist_ok=True)
    _force_localstack_environment(state_dir, ec2_port)

    # Our own handler: LocalStack configures the root logger later, and would duplicate
    # our lines if we propagated to it.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ours = logging.getLogger("eniplan_harness")
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False

    # `kill -USR1 <pid>` dumps every thread's stack into the log (e.g. a hung shutdown).
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    # Patches first: they fail loudly (PatchError) if moto or LocalStack changed shape,
    # before anything listens.
    from eniplan_harness import patches

    patches.apply()

    from eniplan_harness.control import ControlServer

    control = ControlServer(control_port)
    control.start()
    _write_atomic(state_dir / "control.port", f"{control.server_address[1]}\n")
    logging.getLogger("eniplan_harness").info(
        "control API on %s; %d patches: %s", control.endpoint, len(patches.PATCHED), ", ".join(patches.PATCHED)
    )

    from localstack.runtime.main import main as localstack_main

    from eniplan_harness.node import FABRIC

    try:
        localstack_main()
    finally:
        FABRIC.delete_all()  # the node world's namespaces go with the harness


if __name__ == "__main__":
    main()
