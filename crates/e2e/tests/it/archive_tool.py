#!/usr/bin/env python3
"""Builds and mangles image archives for the save/load tests.

  archive_tool.py legacy OUT [CREATED] a docker-archive as Docker 20.10 writes it (<id>/layer.tar,
                                      <config hex>.json, a symlinked duplicate layer), one image
                                      named legacy/box:1 holding /bin/busybox; CREATED is the
                                      config's "created" text (default 2024-01-01T00:00:00Z)
  archive_tool.py oci IN OUT          IN without manifest.json and repositories (OCI layout only)
  archive_tool.py bad KIND IN OUT     IN broken: truncated, escape, missing, duplicate, lie, huge
"""
import hashlib, io, json, sys, tarfile


def add(tf, name, data, **kw):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    for k, v in kw.items():
        setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data))


def layer_tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, mode in files:
            add(t, name, data, mode=mode)
    return buf.getvalue()


def legacy(out, created="2024-01-01T00:00:00Z"):
    busybox = open("/bin/busybox", "rb").read()
    l1 = layer_tar([("bin/busybox", busybox, 0o755)])
    l2 = layer_tar([("hello.txt", b"hello from a legacy archive\n", 0o644)])
    diff = ["sha256:" + hashlib.sha256(x).hexdigest() for x in (l1, l2, l2)]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {"Cmd": ["/bin/busybox", "cat", "/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": diff},
    }).encode()
    chex = hashlib.sha256(config).hexdigest()
    with tarfile.open(out, "w") as t:
        add(t, "aaa1/layer.tar", l1)
        add(t, "aaa2/layer.tar", l2)
        ti = tarfile.TarInfo("aaa3/layer.tar")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "../aaa2/layer.tar"
        t.addfile(ti)
        add(t, chex + ".json", config)
        add(t, "manifest.json", json.dumps([{
            "Config": chex + ".json", "RepoTags": ["legacy/box:1"],
            "Layers": ["aaa1/layer.tar", "aaa2/layer.tar", "aaa3/layer.tar"]}]).encode())
        add(t, "repositories", json.dumps({"legacy/box": {"1": "aaa3"}}).encode())


def members(path):
    with tarfile.open(path) as t:
        return [(m, t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()]


def write(out, items):
    with tarfile.open(out, "w") as t:
        for m, data in items:
            t.addfile(m, io.BytesIO(data) if data is not None else None)


def oci(src, out):
    write(out, [(m, d) for m, d in members(src) if m.name not in ("manifest.json", "repositories")])


def bad(kind, src, out):
    items = members(src)
    manifest = json.loads(next(d for m, d in items if m.name == "manifest.json"))
    layers = manifest[0]["Layers"]
    if kind == "truncated":
        data = open(src, "rb").read()
        open(out, "wb").write(data[: len(data) // 2])
        return
    if kind == "escape":
        m = tarfile.TarInfo("../../escaped.txt")
        items.insert(0, (m, b"x"))
        m.size = 1
    elif kind == "missing":
        items = [(m, d) for m, d in items if m.name != layers[-1]]
    elif kind == "duplicate":
        items.insert(len(items) - 1, next((m, d) for m, d in items if m.name == layers[0]))
    elif kind == "lie":
        # The last layer named is the first one again: its diff id no longer matches the config.
        manifest[0]["Layers"] = layers[:-1] + [layers[0]]
        data = json.dumps(manifest).encode()
        items = [(m, d) for m, d in items if m.name != "manifest.json"]
        mi = tarfile.TarInfo("manifest.json")
        mi.size = len(data)
        items.append((mi, data))
    elif kind == "huge":
        with open(out, "wb") as f:
            ti = tarfile.TarInfo("blobs/sha256/" + "0" * 64)
            ti.size = 1 << 50
            f.write(ti.tobuf(format=tarfile.PAX_FORMAT))
            f.write(b"\0" * 4096)
        return
    write(out, items)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "legacy":
        legacy(*sys.argv[2:4])
    elif cmd == "oci":
        oci(sys.argv[2], sys.argv[3])
    elif cmd == "bad":
        bad(sys.argv[2], sys.argv[3], sys.argv[4])
