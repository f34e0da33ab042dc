"""A CRI client for the e2e tests, as kubelet talks to a runtime: gRPC on a unix socket with
the messages generated from Kubernetes' own api.proto (PyPI's container-runtime-interface-api),
so a field number wharf got wrong shows up here.

Usage: cri_client.py SOCKET. Reads one JSON request a line on stdin,
{"method": "RuntimeService/Version", "request": {...}} (fields as in api.proto), and writes one
JSON line a call: {"ok": {...}} (every field, enums by name) or
{"error": {"code": "NOT_FOUND", "details": "..."}}. ExecSync's stdout and stderr come as text.
"""
import json
import sys

import grpc
from google.protobuf import json_format
from cri_api.v1 import api_pb2


def main():
    # grpc-go (kubelet, crictl) says `localhost` as the authority of a unix socket; gRPC's C core
    # would send the socket's path, which is no valid HTTP/2 authority (h2 refuses it).
    channel = grpc.insecure_channel("unix://" + sys.argv[1], options=[("grpc.default_authority", "localhost")])
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        call = json.loads(line)
        service, method = call["method"].split("/")
        desc = api_pb2.DESCRIPTOR.services_by_name[service].methods_by_name[method]
        req_type = getattr(api_pb2, desc.input_type.name)
        resp_type = getattr(api_pb2, desc.output_type.name)
        rpc = channel.unary_unary(
            "/runtime.v1.%s/%s" % (service, method),
            request_serializer=req_type.SerializeToString,
            response_deserializer=resp_type.FromString,
        )
        try:
            req = json_format.ParseDict(call.get("request", {}), req_type())
            resp = rpc(req, timeout=call.get("timeout", 120))
            out = json_format.MessageToDict(
                resp, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
            if method == "ExecSync":
                out["stdout"] = resp.stdout.decode("utf-8", "replace")
                out["stderr"] = resp.stderr.decode("utf-8", "replace")
            result = {"ok": out}
        except grpc.RpcError as e:
            result = {"error": {"code": e.code().name, "details": e.details()}}
        except json_format.ParseError as e:
            result = {"error": {"code": "CLIENT", "details": str(e)}}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
