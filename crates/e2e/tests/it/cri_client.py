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
whether a close frame came}}. "upgrade": false sends a plain GET instead. An https:// URL is
dialled over TLS trusting only "cafile" (a PEM file; without it, the system's CAs).

{"spdy": URL, "protocols": [...], "streams": [[NAME, {header: value}], ...], "actions": [...],
"until_fin": [NAME...]} drives it over SPDY/3.1 instead (a client written here too: frames,
and header blocks through one zlib stream per direction primed with SPDY/3's dictionary),
opening the streams in order with SYN_STREAM. Actions: ["send", NAME, TEXT], ["fin", NAME],
["resize", W, H] (on the stream named "resize"), ["wait", NAME, NEEDLE], ["hangup"]. Frames are
read until GOAWAY or the end, or until every stream of "until_fin" got its FIN. The answer:
{"ok": {"status", "protocol", "body", "streams": {NAME: text}, "fins": [NAME...], "replied":
[NAME...], "reset": [NAME...], "goaway": bool}}.

{"apiserver": {POD: {"sandbox": ID, "container": ID, "tty": BOOL}}} starts, on a loopback port it answers
({"ok": {"port": N}}), what kubectl needs of an apiserver and a kubelet to exec into and
port-forward to those pods: GET of a pod (Running, one container), and the exec, attach and
portforward subresources, answered as kubelet does: the CRI's Exec/Attach/PortForward called
with the request's options, and the client's upgrade request passed on to the streaming URL
(path rewritten), bytes relayed both ways.
"""
import base64
import hashlib
import json
import os
import queue
import socket
import ssl
import struct
import sys
import threading
import urllib.parse

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# The SPDY/3 draft's header dictionary (its Adler-32, 0xe3c6a7c2, is checked at first use).
SPDY3_DICTIONARY = (
    b'\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04p'
    b'ost\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05trac'
    b'e\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00'
    b'\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\ra'
    b'ccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\r'
    b'authorization\x00\x00\x00\rcache-control\x00\x00\x00\nconnection'
    b'\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding'
    b'\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-leng'
    b'th\x00\x00\x00\x10content-location\x00\x00\x00\x0bcontent-md'
    b'5\x00\x00\x00\rcontent-range\x00\x00\x00\x0ccontent-type\x00\x00'
    b'\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect'
    b'\x00\x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04h'
    b'ost\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since'
    b'\x00\x00\x00\rif-none-match\x00\x00\x00\x08if-range\x00\x00\x00'
    b'\x13if-unmodified-since\x00\x00\x00\rlast-modified\x00\x00\x00'
    b'\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00'
    b'\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization'
    b'\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretr'
    b'y-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07t'
    b'railer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgra'
    b'de\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03'
    b'via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00'
    b'\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06statu'
    b's\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HT'
    b'TP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\nset-c'
    b'ookie\x00\x00\x00\nkeep-alive\x00\x00\x00\x06origin100101201202205'
    b'2063003023033043053063074024054064074084094104114124134144154164'
    b'17502504505203 Non-Authoritative Information204 No Content301 Mo'
    b'ved Permanently400 Bad Request401 Unauthorized403 Forbidden404 N'
    b'ot Found500 Internal Server Error501 Not Implemented503 Service '
    b'UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:0'
    b'0:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,ima'
    b'ge/png,image/jpg,image/gif,application/xml,application/xhtml+xml'
    b',text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sd'
    b'chcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.')


def dial(url, timeout, cafile=None):
    """A connection to the URL's host and port: over TLS for https, trusting `cafile` only."""
    u = urllib.parse.urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        sock = ctx.wrap_socket(sock, server_hostname=u.hostname)
    return sock


def http_upgrade(url, headers, timeout, cafile=None):
    """Sends a GET with `headers`; (socket, status, headers, body or b"", bytes read past the head)."""
    u = urllib.parse.urlsplit(url)
    sock = dial(url, timeout, cafile)
    target = u.path + ("?" + u.query if u.query else "")
    lines = ["GET %s HTTP/1.1" % target, "Host: %s" % u.netloc] + headers
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = sock.recv(65536)
        if not got:
            break
        buf += got
    head, _, buf = buf.partition(b"\r\n\r\n")
    head = head.decode("latin-1").split("\r\n")
    if len(head[0].split()) < 2:
        raise EOFError("no HTTP response from %s: %r" % (url, head[0][:80]))
    status = int(head[0].split()[1])
    hdrs = {}
    for h in head[1:]:
        k, _, v = h.partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    body = b""
    if status != 101:
        n = int(hdrs.get("content-length", ["0"])[0])
        while len(buf) < n:
            got = sock.recv(65536)
            if not got:
                break
            buf += got
        body, buf = buf[:n], b""
    return sock, status, hdrs, body, buf


class Spdy:
    def __init__(self, sock, buf):
        import zlib
        assert zlib.adler32(SPDY3_DICTIONARY) == 0xE3C6A7C2
        self.zlib = zlib
        self.sock, self.buf = sock, buf
        self.z_out = zlib.compressobj(zdict=SPDY3_DICTIONARY)
        self.z_in = zlib.decompressobj(zdict=SPDY3_DICTIONARY)
        self.next_id = 1

    def _read(self, n):
        while len(self.buf) < n:
            got = self.sock.recv(65536)
            if not got:
                raise EOFError
            self.buf += got
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def control(self, kind, flags, body):
        self.sock.sendall(struct.pack(">HHI", 0x8003, kind, (flags << 24) | len(body)) + body)

    def open(self, headers, fin=False):
        raw = struct.pack(">I", len(headers))
        for k, v in headers.items():
            for x in (k.lower().encode(), v.encode()):
                raw += struct.pack(">I", len(x)) + x
        block = self.z_out.compress(raw) + self.z_out.flush(self.zlib.Z_SYNC_FLUSH)
        sid = self.next_id
        self.next_id += 2
        self.control(1, 1 if fin else 0, struct.pack(">II", sid, 0) + b"\0\0" + block)
        return sid

    def data(self, sid, payload, fin=False):
        self.sock.sendall(struct.pack(">II", sid, ((1 if fin else 0) << 24) | len(payload)) + payload)

    def frame(self):
        """("data", id, fin, bytes) or ("control", kind, flags, body); None at the end."""
        try:
            head = self._read(8)
        except (EOFError, ConnectionResetError):
            return None
        word, fl = struct.unpack(">II", head)
        flags, n = fl >> 24, fl & 0xFFFFFF
        body = self._read(n)
        if word & 0x80000000:
            if (word >> 16) & 0x7FFF != 3:
                raise RuntimeError("SPDY version %d" % ((word >> 16) & 0x7FFF))
            return ("control", word & 0xFFFF, flags, body)
        return ("data", word & 0x7FFFFFFF, bool(flags & 1), body)

    def headers(self, block):
        raw = self.z_in.decompress(block)
        n = struct.unpack(">I", raw[:4])[0]
        at, out = 4, {}
        for _ in range(n):
            kl = struct.unpack(">I", raw[at:at + 4])[0]
            k = raw[at + 4:at + 4 + kl].decode()
            at += 4 + kl
            vl = struct.unpack(">I", raw[at:at + 4])[0]
            out[k] = raw[at + 4:at + 4 + vl].decode()
            at += 4 + vl
        return out


def drive_spdy(call):
    headers = ["Connection: Upgrade", "Upgrade: SPDY/3.1"]
    headers += ["X-Stream-Protocol-Version: " + p for p in call.get("protocols", [])]
    sock, status, hdrs, body, buf = http_upgrade(call["spdy"], headers, call.get("timeout", 30), call.get("cafile"))
    out = {"status": status, "protocol": hdrs.get("x-stream-protocol-version", [None])[0],
           "accepted": hdrs.get("x-accepted-stream-protocol-versions", []),
           "body": body.decode("utf-8", "replace"), "streams": {}, "fins": [], "replied": [], "reset": [],
           "goaway": False}
    if status != 101:
        sock.close()
        return out
    c = Spdy(sock, buf)
    ids, names = {}, {}
    for name, h in call.get("streams", []):
        sid = c.open(h)
        ids[name], names[sid] = sid, name
    until = set(call.get("until_fin", []))

    def take():
        f = c.frame()
        if f is None:
            return False
        if f[0] == "data":
            _, sid, fin, data = f
            name = names.get(sid, str(sid))
            out["streams"][name] = out["streams"].get(name, "") + data.decode("utf-8", "replace")
            if fin:
                out["fins"].append(name)
            return not (until and until <= set(out["fins"]))
        _, kind, flags, body = f
        if kind == 2:  # SYN_REPLY
            sid = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
            c.headers(body[4:])
            out["replied"].append(names.get(sid, str(sid)))
        elif kind == 3:  # RST_STREAM
            sid = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
            out["reset"].append(names.get(sid, str(sid)))
        elif kind == 6:  # PING
            c.control(6, 0, body)
        elif kind == 7:  # GOAWAY
            out["goaway"] = True
            return False
        return True

    for a in call.get("actions", []):
        if a[0] == "send":
            c.data(ids[a[1]], a[2].encode())
        elif a[0] == "fin":
            c.data(ids[a[1]], b"", fin=True)
        elif a[0] == "resize":
            c.data(ids["resize"], json.dumps({"Width": a[1], "Height": a[2]}).encode())
        elif a[0] == "wait":
            while a[2] not in out["streams"].get(a[1], ""):
                if not take():
                    break
        elif a[0] == "hangup":
            sock.close()
            return out
    while take():
        pass
    sock.close()
    return out


class WebSocket:
    def __init__(self, url, protocols, upgrade=True, timeout=30, cafile=None):
        u = urllib.parse.urlsplit(url)
        self.sock = dial(url, timeout, cafile)
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
        if len(head[0].split()) < 2:
            raise EOFError("no HTTP response from %s: %r" % (url, head[0][:80]))
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
    ws = WebSocket(call["stream"], call.get("protocols", []), call.get("upgrade", True), call.get("timeout", 30),
                   call.get("cafile"))
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


def relay(a, b):
    """Copies a to b until a's end, then half-closes b."""
    try:
        while True:
            got = a.recv(65536)
            if not got:
                break
            b.sendall(got)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def start_apiserver(channel, pods):
    def rpc(method, req_type):
        resp_type = api_pb2.DESCRIPTOR.services_by_name["RuntimeService"].methods_by_name[method].output_type.name
        return channel.unary_unary("/runtime.v1.RuntimeService/" + method,
                                   request_serializer=req_type.SerializeToString,
                                   response_deserializer=getattr(api_pb2, resp_type).FromString)

    exec_rpc, attach_rpc = rpc("Exec", api_pb2.ExecRequest), rpc("Attach", api_pb2.AttachRequest)
    pf_rpc = rpc("PortForward", api_pb2.PortForwardRequest)

    def answer(conn, code, obj):
        body = json.dumps(obj).encode()
        conn.sendall(("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n" % (code, len(body))).encode() + body)

    def status(code, message):
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                "code": code}

    def handle(conn):
        buf = b""
        while b"\r\n\r\n" not in buf:
            got = conn.recv(65536)
            if not got:
                return conn.close()
            buf += got
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        u = urllib.parse.urlsplit(target)
        q = urllib.parse.parse_qs(u.query)
        parts = u.path.strip("/").split("/")
        # Discovery, which kubectl reads first: the core group with pods and their subresources.
        if u.path == "/api":
            return answer(conn, 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": srv_addr}]}), conn.close()
        if u.path == "/apis":
            return answer(conn, 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}), conn.close()
        if u.path == "/api/v1":
            sub_resources = [{"name": "pods/" + r, "singularName": "", "namespaced": True, "kind": k,
                              "verbs": ["create", "get"]}
                             for r, k in [("exec", "PodExecOptions"), ("attach", "PodAttachOptions"),
                                          ("portforward", "PodPortForwardOptions")]]
            return answer(conn, 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"],
                 "shortNames": ["po"]}] + sub_resources}), conn.close()
        # api/v1/namespaces/NS/pods/NAME[/SUB]
        if len(parts) < 6 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "pods" or parts[5] not in pods:
            return answer(conn, 404, status(404, "no such object: %s" % u.path)), conn.close()
        ns, name, sub = parts[3], parts[5], parts[6] if len(parts) > 6 else None
        pod = pods[name]
        if sub is None:
            return answer(conn, 200, {
                "kind": "Pod", "apiVersion": "v1",
                "metadata": {"name": name, "namespace": ns, "uid": "uid-" + name},
                "spec": {"containers": [{"name": "c", "image": "busybox", "tty": pod.get("tty", False),
                                         "stdin": pod.get("tty", False)}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": True}]},
            }), conn.close()
        flag = lambda k: q.get(k, ["false"])[0] in ("true", "1")  # noqa: E731
        try:
            if sub == "exec":
                url = exec_rpc(api_pb2.ExecRequest(container_id=pod["container"], cmd=q.get("command", []),
                                                   tty=flag("tty"), stdin=flag("stdin"), stdout=flag("stdout"),
                                                   stderr=flag("stderr")), timeout=30).url
            elif sub == "attach":
                url = attach_rpc(api_pb2.AttachRequest(container_id=pod["container"], tty=flag("tty"),
                                                       stdin=flag("stdin"), stdout=flag("stdout"),
                                                       stderr=flag("stderr")), timeout=30).url
            elif sub == "portforward":
                ports = [int(p) for p in q.get("ports", [])]
                url = pf_rpc(api_pb2.PortForwardRequest(pod_sandbox_id=pod["sandbox"], port=ports), timeout=30).url
            else:
                return answer(conn, 404, status(404, "no subresource " + sub)), conn.close()
        except grpc.RpcError as e:
            return answer(conn, 500, status(500, "%s: %s" % (e.code().name, e.details()))), conn.close()
        su = urllib.parse.urlsplit(url)
        up = socket.create_connection((su.hostname, su.port))
        out = ["%s %s%s HTTP/1.1" % (method, su.path, "?" + u.query if u.query else ""), "Host: " + su.netloc]
        out += [h for h in lines[1:] if not h.lower().startswith("host:")]
        up.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + rest)
        t = threading.Thread(target=relay, args=(up, conn), daemon=True)
        t.start()
        relay(conn, up)
        t.join()
        up.close()
        conn.close()

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv_addr = "127.0.0.1:%d" % srv.getsockname()[1]

    def accept():
        while True:
            c, _ = srv.accept()
            threading.Thread(target=handle, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1]


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
        if "apiserver" in call:
            sys.stdout.write(json.dumps({"ok": {"port": start_apiserver(channel, call["apiserver"])}}) + "\n")
            sys.stdout.flush()
            continue
        if "spdy" in call or ("stream" in call and call["stream"] not in ("take", "start")):
            try:
                result = {"ok": drive_spdy(call) if "spdy" in call else drive_stream(call)}
            except (OSError, RuntimeError, EOFError) as e:
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
