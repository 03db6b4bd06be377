#!/usr/bin/env python3
"""fake_registry.py — a tiny registry (HTTP API v2) that misbehaves on purpose, for the pull
bad-input tests. Each repository library/<mode> misbehaves its own way:

  notjson   the manifest is not JSON
  blob404   the manifest names a layer the registry answers 404 for
  long      the layer has more bytes than the manifest's size (Range honoured, 206)
  short     the layer has fewer bytes than the manifest's size (Range honoured, 206)
  long200   as long, but Range is ignored: a plain 200 with the whole body
  redirect  the layer's URL redirects to itself for ever
  badsha    the layer's bytes do not hash to the manifest's digest
  good      everything correct (the control case)

Usage: fake_registry.py PORTFILE — listens on a free 127.0.0.1 port and writes it to PORTFILE.
"""
import hashlib
import http.server
import json
import re
import sys

DATA = bytes((i * 7 + 3) % 251 for i in range(3000))
CONFIG = b'{"model_format":"gguf","model_family":"llama"}'


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def manifest(mode):
    size = len(DATA)
    digest = sha(DATA)
    if mode in ("long", "long200"):
        size = len(DATA) - 10
    elif mode == "short":
        size = len(DATA) + 10
    elif mode == "badsha":
        digest = sha(DATA + b"x")
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": sha(CONFIG), "size": len(CONFIG)},
        "layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": digest, "size": size}],
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, body=b"", ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def serve_bytes(self, data, honour_range):
        m = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        if not honour_range or not m:
            return self.send(200, data, "application/octet-stream")
        a = int(m.group(1))
        b = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        if a >= len(data):
            return self.send(416, b"", extra=[("Content-Range", "bytes */%d" % len(data))])
        self.send(206, data[a:b + 1], "application/octet-stream",
                  [("Content-Range", "bytes %d-%d/%d" % (a, b, len(data)))])

    def do_GET(self):
        if self.path == "/v2/":
            return self.send(200, b"{}")
        m = re.match(r"^/v2/library/(\w+)/manifests/latest$", self.path)
        if m:
            mode = m.group(1)
            if mode == "notjson":
                return self.send(200, b"<html>this is not a manifest</html>",
                                 "application/vnd.docker.distribution.manifest.v2+json")
            return self.send(200, json.dumps(manifest(mode)).encode(),
                             "application/vnd.docker.distribution.manifest.v2+json")
        m = re.match(r"^/v2/library/(\w+)/blobs/(sha256:[0-9a-f]{64})$", self.path)
        if m:
            mode, digest = m.groups()
            if digest == sha(CONFIG):
                return self.serve_bytes(CONFIG, True)
            if mode == "blob404":
                return self.send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}')
            if mode == "redirect":
                return self.send(307, b"", extra=[("Location", self.path)])
            if mode == "short":
                return self.serve_bytes(DATA, True)
            return self.serve_bytes(DATA, mode != "long200")
        self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}')

    do_HEAD = do_GET


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
