"""A CRI client for the e2e tests, as kubelet talks to a runtime: gRPC on a unix socket with
the messages generated from Kubernetes' own api.proto (PyPI's container-runtime-interface-api),
so a field number wharf got wrong shows up here.

Usage: cri_client.py SOCKET. Reads one JSON request a line on stdin,
{"method": "RuntimeService/Version", "request": {...}} (fields as in api.proto), and writes one
JSON line a call: {"ok": {...}} (every field, enums by name) or
{"error": {"code": "NOT_FOUND", "details": "..."}}. ExecSync's stdout and stderr come as text.
A server-streaming method is started with {"method": ..., "stream": "start"} (answered
{"ok": {}} once the call is made) and read with {"stream": "take", "count": N, "timeout": S}:
{"ok": [N messages]}, or what arrived and the stream's error.
"""
import json
import queue
import sys
import threading

import grpc
from google.protobuf import json_format
from cri_api.v1 import api_pb2


def main():
    # grpc-go (kubelet, crictl) says `localhost` as the authority of a unix socket; gRPC's C core
    # would send the socket's path, which is no valid HTTP/2 authority (h2 refuses it).
    channel = grpc.insecure_channel("unix://" + sys.argv[1], options=[("grpc.default_authority", "localhost")])
    streamed = queue.Queue()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        call = json.loads(line)
        if call.get("stream") == "take":
            got, err = [], None
            try:
                while len(got) < call["count"]:
                    item = streamed.get(timeout=call.get("timeout", 30))
                    if "error" in item:
                        err = item["error"]
                        break
                    got.append(item["ok"])
            except queue.Empty:
                err = {"code": "CLIENT", "details": "timed out with %d messages" % len(got)}
            result = {"ok": got} if err is None else {"error": err, "got": got}
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
            continue
        service, method = call["method"].split("/")
        desc = api_pb2.DESCRIPTOR.services_by_name[service].methods_by_name[method]
        req_type = getattr(api_pb2, desc.input_type.name)
        resp_type = getattr(api_pb2, desc.output_type.name)
        if call.get("stream") == "start":
            rpc = channel.unary_stream(
                "/runtime.v1.%s/%s" % (service, method),
                request_serializer=req_type.SerializeToString,
                response_deserializer=resp_type.FromString,
            )
            responses = rpc(json_format.ParseDict(call.get("request", {}), req_type()))

            def pump(responses=responses):
                try:
                    for r in responses:
                        streamed.put({"ok": json_format.MessageToDict(
                            r, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
                        )})
                except grpc.RpcError as e:
                    streamed.put({"error": {"code": e.code().name, "details": e.details()}})

            threading.Thread(target=pump, daemon=True).start()
            sys.stdout.write(json.dumps({"ok": {}}) + "\n")
            sys.stdout.flush()
            continue
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
