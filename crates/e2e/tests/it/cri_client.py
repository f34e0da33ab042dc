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

A streaming URL (what Exec, Attach and PortForward answer) is driven with {"stream": URL,
"protocols": [...], "actions": [...], "timeout": S}: a WebSocket client written here on a bare
socket (RFC 6455, the accept key checked with hashlib's SHA-1), speaking Kubernetes' channel
protocols. Actions, in order: ["send", CH, TEXT], ["resize", W, H] (channel 4), ["close", CH]
(v5's close signal), ["wait", CH, NEEDLE] (read until channel CH's text holds NEEDLE),
["hangup"] (drop the connection, reading nothing more). After the actions, messages are read
until the server closes. The answer: {"ok": {"status": HTTP status, "protocol": ..., "body":
(a refusal's body), "channels": {CH: text}, "messages": [[CH, latin-1 text], ...], "closed":
whether a close frame came}}. "upgrade": false sends a plain GET instead.
"""
import base64
import hashlib
import json
import os
import queue
import socket
import struct
import sys
import threading
import urllib.parse

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocket:
    def __init__(self, url, protocols, upgrade=True, timeout=30):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        target = u.path + ("?" + u.query if u.query else "")
        lines = ["GET %s HTTP/1.1" % target, "Host: %s" % u.netloc]
        if upgrade:
            lines += ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + key,
                      "Sec-WebSocket-Version: 13"]
            if protocols:
                lines.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            got = self.sock.recv(65536)
            if not got:
                break
            self.buf += got
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        head = head.decode("latin-1").split("\r\n")
        self.status = int(head[0].split()[1])
        self.headers = {}
        for h in head[1:]:
            k, _, v = h.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.protocol = self.headers.get("sec-websocket-protocol")
        self.body = ""
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            if self.headers.get("sec-websocket-accept") != want:
                raise RuntimeError("bad Sec-WebSocket-Accept %r" % self.headers.get("sec-websocket-accept"))
        else:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                got = self.sock.recv(65536)
                if not got:
                    break
                self.buf += got
            self.body = self.buf[:n].decode("utf-8", "replace")
        self.b64 = bool(self.protocol) and "base64" in self.protocol

    def _read(self, n):
        while len(self.buf) < n:
            got = self.sock.recv(65536)
            if not got:
                raise EOFError
            self.buf += got
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload):
        mask = os.urandom(4)
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, ch, data):
        if self.b64:
            self.send_frame(0x1, str(ch).encode() + base64.b64encode(data))
        else:
            self.send_frame(0x2, bytes([ch]) + data)

    def recv(self):
        """(channel, bytes) of the next message, or None at a close frame or the end."""
        try:
            while True:
                b0, b1 = self._read(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._read(8))[0]
                if b1 & 0x80:
                    raise RuntimeError("the server masked a frame")
                payload = self._read(n)
                op = b0 & 0x0F
                if op == 0x8:
                    self.closed = True
                    return None
                if op in (0x9, 0xA):
                    continue
                if not b0 & 0x80:
                    raise RuntimeError("fragmented server message (not expected here)")
                if self.b64:
                    return int(chr(payload[0])), base64.b64decode(payload[1:])
                return payload[0], payload[1:]
        except (EOFError, ConnectionResetError):
            return None


def drive_stream(call):
    ws = WebSocket(call["stream"], call.get("protocols", []), call.get("upgrade", True), call.get("timeout", 30))
    out = {"status": ws.status, "protocol": ws.protocol, "body": ws.body, "channels": {}, "messages": [],
           "closed": False}
    if ws.status != 101:
        ws.sock.close()
        return out
    ws.closed = False

    def take():
        m = ws.recv()
        if m is None:
            return False
        ch, data = m
        out["messages"].append([ch, data.decode("latin-1")])
        out["channels"][str(ch)] = out["channels"].get(str(ch), "") + data.decode("utf-8", "replace")
        return True

    for a in call.get("actions", []):
        if a[0] == "send":
            ws.send(a[1], a[2].encode())
        elif a[0] == "resize":
            ws.send(4, json.dumps({"Width": a[1], "Height": a[2]}).encode())
        elif a[0] == "close":
            ws.send(255, bytes([a[1]]))
        elif a[0] == "wait":
            while a[2] not in out["channels"].get(str(a[1]), ""):
                if not take():
                    break
        elif a[0] == "hangup":
            ws.sock.close()
            return out
    while take():
        pass
    out["closed"] = ws.closed
    ws.sock.close()
    return out

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
        if "stream" in call and call["stream"] not in ("take", "start"):
            try:
                result = {"ok": drive_stream(call)}
            except (OSError, RuntimeError) as e:
                result = {"error": {"code": "CLIENT", "details": "%s: %s" % (type(e).__name__, e)}}
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
            continue
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
