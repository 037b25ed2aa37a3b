"""Start (or reuse) the harness and optionally provision one instance; Python side of `harness/up`.

Run by `harness/up` with the cached LocalStack venv once it exists. Stdout carries only
shell-sourceable KEY=value lines; everything else goes to stderr.

State directory (ENIPLAN_HARNESS_DIR, default ~/.cache/eniplan/harness):
  lock            flock(2) lock held by up/down while they change state
  launcher.pid    PID of the LocalStack process (our launcher)
  ec2.port        its gateway port
  control.port    control/IMDS API port, written by the launcher once it listens
  localstack.log  the process's stdout and stderr
  code.sha        fingerprint of eniplan_harness/*.py, the pin file and data/instance-types.json
                  the process runs on; a running harness with another fingerprint is restarted,
                  never reused
  harness.env     the KEY=value lines last printed (endpoints, PID, log path)
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HEALTH_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.1
REGION = "us-west-2"
DEFAULT_AMI = "ami-ekslinux"  # "amazon-eks-node-linux" in moto's built-in image list
LAUNCHER_MODULE = "eniplan_harness.launch"


def log(message: str) -> None:
    print(f"harness/up: {message}", file=sys.stderr, flush=True)


class UpError(RuntimeError):
    pass


# --- state ------------------------------------------------------------------------------


class State:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.pid_file = directory / "launcher.pid"
        self.ec2_port_file = directory / "ec2.port"
        self.control_port_file = directory / "control.port"
        self.log_file = directory / "localstack.log"
        self.env_file = directory / "harness.env"
        self.code_file = directory / "code.sha"

    def read_int(self, path: Path) -> int | None:
        try:
            return int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def clear(self) -> None:
        for path in (self.pid_file, self.ec2_port_file, self.control_port_file, self.env_file, self.code_file):
            path.unlink(missing_ok=True)


def code_fingerprint(harness_root: Path) -> str:
    """Hash of what a harness process runs on: the patch layer, the pinned LocalStack and the
    instance-type data the patch layer reads its branch-interface limits from."""
    digest = hashlib.sha256()
    paths = [
        *sorted((harness_root / "eniplan_harness").glob("*.py")),
        harness_root / "localstack-requirements.txt",
        harness_root.parent / "data" / "instance-types.json",
    ]
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def is_our_process(pid: int | None) -> bool:
    """True if `pid` is alive and is our launcher (guards against a recycled PID)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return LAUNCHER_MODULE.encode() in cmdline


# --- health -----------------------------------------------------------------------------


def http_json(url: str, data: dict | None = None, timeout: float = 2.0) -> dict:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode())


def is_healthy(state: State, ec2_port: int) -> bool:
    control_port = state.read_int(state.control_port_file)
    if control_port is None:
        return False
    try:
        health = http_json(f"http://127.0.0.1:{ec2_port}/_localstack/health", timeout=1.0)
        if (health.get("services") or {}).get("ec2") != "running":
            return False
        return http_json(f"http://127.0.0.1:{control_port}/health", timeout=1.0).get("status") == "ok"
    except (OSError, ValueError, urllib.error.URLError):
        return False


def log_tail(state: State, lines: int = 40) -> str:
    try:
        return "\n".join(state.log_file.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_healthy(state: State, ec2_port: int, pid: int, process: subprocess.Popen | None) -> float:
    """Poll every 100 ms until EC2 and the control API answer; seconds waited."""
    start = time.monotonic()
    while True:
        if is_healthy(state, ec2_port):
            return time.monotonic() - start
        exited = process.poll() if process is not None else (None if is_our_process(pid) else "gone")
        if exited is not None:
            raise UpError(f"LocalStack exited during start-up ({exited}); log tail:\n{log_tail(state)}")
        if time.monotonic() - start > HEALTH_TIMEOUT_S:
            raise UpError(
                f"LocalStack not healthy after {HEALTH_TIMEOUT_S:.0f} s; log tail:\n{log_tail(state)}"
            )
        time.sleep(POLL_INTERVAL_S)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- start ------------------------------------------------------------------------------


def ensure_running(state: State, ec2_port: int, harness_root: Path) -> tuple[int, int]:
    """(pid, control port) of a healthy harness, started if needed."""
    pid = state.read_int(state.pid_file)
    fingerprint = code_fingerprint(harness_root)
    if is_our_process(pid) and state.code_file.exists() and state.code_file.read_text().strip() != fingerprint:
        log(f"harness code changed since PID {pid} started; restarting it")
        stop(pid)
    if is_our_process(pid):
        running_port = state.read_int(state.ec2_port_file)
        if running_port != ec2_port:
            raise UpError(
                f"a harness is already running on port {running_port} (PID {pid}); "
                f"run harness/down first to use port {ec2_port}"
            )
        waited = wait_healthy(state, ec2_port, pid, None)
        log(f"reusing running harness (PID {pid}; healthy after {waited:.1f} s)")
        return pid, state.read_int(state.control_port_file) or 0
    if pid:
        log(f"removing stale state of PID {pid}")
    state.clear()

    if not port_is_free(ec2_port):
        raise UpError(f"127.0.0.1:{ec2_port} is in use by another process; set ENIPLAN_EC2_PORT")

    env = dict(os.environ)
    if env.get("PYTHONPYCACHEPREFIX"):
        # Bytecode goes to the cache (harness/up sets the prefix), never into the clone, so
        # write it even where the environment disables it: it halves the start-up time.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        ENIPLAN_HARNESS_DIR=str(state.dir),
        ENIPLAN_EC2_PORT=str(ec2_port),
        PYTHONPATH=str(harness_root),
        PYTHONUNBUFFERED="1",
    )
    started = time.monotonic()
    with open(state.log_file, "wb") as log_handle:
        process = subprocess.Popen(
            [sys.executable, "-m", LAUNCHER_MODULE],
            env=env,
            cwd=state.dir,
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives this script and the terminal's SIGHUP
        )
    state.pid_file.write_text(f"{process.pid}\n")
    state.ec2_port_file.write_text(f"{ec2_port}\n")
    state.code_file.write_text(f"{fingerprint}\n")
    log(f"started LocalStack 4.14.0 (PID {process.pid}), log {state.log_file}")
    try:
        wait_healthy(state, ec2_port, process.pid, process)
    except UpError:
        stop(process.pid)
        state.clear()
        raise
    log(f"healthy after {time.monotonic() - started:.1f} s")
    return process.pid, state.read_int(state.control_port_file) or 0


def stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and is_our_process(pid):
            time.sleep(POLL_INTERVAL_S)
        if is_our_process(pid):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- provisioning -----------------------------------------------------------------------


def provision(endpoint: str, control: str, args: argparse.Namespace) -> dict[str, str]:
    import boto3  # from the LocalStack venv

    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    ec2 = boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    # Fails with InvalidInstanceType before anything is created.
    ec2.describe_instance_types(InstanceTypes=[args.instance_type])
    tags = [{"Key": "eniplan:harness", "Value": "up"}]
    vpc_id = ec2.create_vpc(
        CidrBlock=args.vpc_cidr, TagSpecifications=[{"ResourceType": "vpc", "Tags": tags}]
    )["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(
        VpcId=vpc_id,
        CidrBlock=args.subnet_cidr,
        AvailabilityZone=args.az,
        TagSpecifications=[{"ResourceType": "subnet", "Tags": tags}],
    )["Subnet"]["SubnetId"]
    instance = ec2.run_instances(
        ImageId=DEFAULT_AMI,
        InstanceType=args.instance_type,
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet_id,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )["Instances"][0]
    instance_id = instance["InstanceId"]
    imds = http_json(f"{control}/imds", {"instance_id": instance_id})["endpoint"]
    log(
        f"provisioned {args.instance_type} {instance_id} ({instance.get('PrivateIpAddress')}) in "
        f"{subnet_id} ({args.subnet_cidr}, {args.az}) of {vpc_id}"
    )
    out = {"VPC_ID": vpc_id, "SUBNET_ID": subnet_id, "INSTANCE_ID": instance_id, "IMDS_ENDPOINT": imds}
    if args.node:
        node = http_json(f"{control}/node", {"name": args.node, "instance_id": instance_id}, timeout=30.0)
        log(f"node {args.node}: namespace {node['netns']}, VPC namespace {node['vpc_netns']}")
        out.update(NODE_NETNS=node["netns"], VPC_NETNS=node["vpc_netns"], OUTSIDE=node["outside"])
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="harness/up",
        description="Start the EC2 test harness (LocalStack 4.14.0 + eniplan patches) on 127.0.0.1 "
        "and print shell-sourceable endpoints.",
    )
    parser.add_argument("--instance-type", help="also create a VPC, a subnet and one running instance")
    parser.add_argument("--subnet-cidr", default=None, help="subnet CIDR (default 10.0.0.0/20)")
    parser.add_argument("--vpc-cidr", default=None, help="VPC CIDR (default 10.0.0.0/16)")
    parser.add_argument("--az", default=None, help="availability zone (default us-west-2a)")
    parser.add_argument(
        "--node",
        metavar="NAME",
        help="also stand the instance up as a node in network namespaces (root; see harness/README.md)",
    )
    args = parser.parse_args(argv)
    given = [f"--{n.replace('_', '-')}" for n in ("subnet_cidr", "vpc_cidr", "az", "node") if getattr(args, n)]
    if given and not args.instance_type:
        parser.error(f"{', '.join(given)} need --instance-type")
    args.subnet_cidr = args.subnet_cidr or "10.0.0.0/20"
    args.vpc_cidr = args.vpc_cidr or "10.0.0.0/16"
    args.az = args.az or f"{REGION}a"
    try:
        vpc = ipaddress.IPv4Network(args.vpc_cidr)
        subnet = ipaddress.IPv4Network(args.subnet_cidr)
    except ValueError as exc:
        parser.error(str(exc))
    if not subnet.subnet_of(vpc):
        parser.error(f"subnet {subnet} is not inside VPC {vpc}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    state_dir = Path(os.environ.get("ENIPLAN_HARNESS_DIR") or Path.home() / ".cache/eniplan/harness")
    try:
        ec2_port = int(os.environ.get("ENIPLAN_EC2_PORT") or 4566)
        if not 1 <= ec2_port <= 65535:
            raise ValueError(ec2_port)
    except ValueError:
        log(f"ENIPLAN_EC2_PORT must be a TCP port number, not {os.environ.get('ENIPLAN_EC2_PORT')!r}")
        return 2
    harness_root = Path(__file__).resolve().parent.parent
    state_dir.mkdir(parents=True, exist_ok=True)
    state = State(state_dir)

    with open(state_dir / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one up/down at a time per state directory
        try:
            pid, control_port = ensure_running(state, ec2_port, harness_root)
        except UpError as exc:
            log(str(exc))
            return 1
        endpoint = f"http://127.0.0.1:{ec2_port}"
        control = f"http://127.0.0.1:{control_port}"
        state.env_file.write_text(
            f"EC2_ENDPOINT={endpoint}\nHARNESS_CONTROL={control}\n"
            f"HARNESS_PID={pid}\nHARNESS_LOG={state.log_file}\n"
        )

    lines = {"EC2_ENDPOINT": endpoint, "HARNESS_CONTROL": control}
    imds = ""  # empty without --instance-type, so sourcing clears a stale value
    if args.instance_type:
        try:
            provisioned = provision(endpoint, control, args)
            imds = provisioned.pop("IMDS_ENDPOINT")
            lines.update(provisioned)
        except Exception as exc:  # botocore ClientError, URLError: report and fail
            log(f"provisioning failed: {exc}")
            return 1
    lines["IMDS_ENDPOINT"] = imds
    for key, value in lines.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
