"""A gRPC C-core client of ipamd's socket (Python grpcio), as other tools would write one.

Usage: c_core_client.py PROTO SOCKET CLIENT_VERSION CONTAINER_ID
Compiles PROTO with grpcio-tools' protoc into a temporary directory, calls
rpc.CNIBackend/AddNetwork over unix:SOCKET, and prints one JSON line: the reply's fields,
or {"code": <grpc status name>, "details": ...}.
"""
import importlib
import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc


def main() -> int:
    proto, socket, version, container = sys.argv[1:5]
    out = tempfile.mkdtemp(prefix="eniplan-rpc-")
    include = os.path.dirname(os.path.abspath(proto))
    rc = protoc.main(["protoc", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                      os.path.basename(proto)])
    if rc != 0:
        print(json.dumps({"protoc": rc}))
        return 2
    sys.path.insert(0, out)
    pb = importlib.import_module("rpc_pb2")
    stubs = importlib.import_module("rpc_pb2_grpc")
    # "unix:" + an absolute path: C-core sends the path (percent-encoded) as :authority.
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        stub = stubs.CNIBackendStub(channel)
        request = pb.AddNetworkRequest(
            k8s_pod_name="py", k8s_pod_namespace="default", k8s_pod_infra_container_id=container,
            netns=f"/var/run/netns/{container}", if_name="eth0", network_name="aws-cni",
            container_id=container, client_version=version)
        try:
            reply = stub.AddNetwork(request, timeout=10)
        except grpc.RpcError as e:
            print(json.dumps({"code": e.code().name, "details": e.details()}))
            return 0
        print(json.dumps({
            "success": reply.success,
            "ips": [a.ipv4_addr for a in reply.ip_allocation_metadata],
            "vpc_v4_cidrs": list(reply.vpc_v4_cidrs),
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
