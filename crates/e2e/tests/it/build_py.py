#!/usr/bin/env python3
"""One docker-py `images.build` for build_py.rs: the build's arguments come as JSON in argv[1],
the outcome goes to stdout as one JSON object.

The spec's keys are `images.build`'s own (path, tag, buildargs, target, labels, nocache, rm,
dockerfile, ...) except `dockerfile_text`, which becomes `fileobj=io.BytesIO(...)`.

Printed: {"ok": true, "id", "short_id", "tags", "labels", "config", "log", "stream"} for a built
image, {"ok": false, "error_type", "error", "log", "stream"} for docker.errors.BuildError or
APIError (the test decides which it wanted); anything else is a traceback and exit code 1.
"""

import io
import json
import sys

import docker


def stream_text(log):
    return "".join(chunk.get("stream", "") for chunk in log if isinstance(chunk, dict))


def main():
    spec = json.loads(sys.argv[1])
    kwargs = dict(spec)
    text = kwargs.pop("dockerfile_text", None)
    if text is not None:
        kwargs["fileobj"] = io.BytesIO(text.encode())
    client = docker.from_env(timeout=170)
    try:
        image, logs = client.images.build(**kwargs)
    except docker.errors.BuildError as e:
        log = list(e.build_log)
        out = {"ok": False, "error_type": "BuildError", "error": str(e), "log": log, "stream": stream_text(log)}
    except docker.errors.APIError as e:
        out = {
            "ok": False,
            "error_type": "APIError",
            "error": str(e),
            "status": e.status_code,
            "log": [],
            "stream": "",
        }
    else:
        log = list(logs)
        out = {
            "ok": True,
            "id": image.id,
            "short_id": image.short_id,
            "tags": image.tags,
            "labels": image.labels,
            "config": image.attrs.get("Config"),
            "log": log,
            "stream": stream_text(log),
        }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
