"""A test application with one route per behaviour under test."""

import json
import os
import sys
import time

from testkit import validated


def _read_body(environ):
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length:
        return stream.read(int(length))
    chunks = []
    while True:
        chunk = stream.read(8192)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _json(start_response, value, status="200 OK"):
    body = json.dumps(value, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def routes(environ, start_response):
    path = environ["PATH_INFO"]
    qs = environ.get("QUERY_STRING", "")
    if path == "/environ":
        described = {}
        for key, value in environ.items():
            if isinstance(value, (str, bool, int)) or value is None:
                described[key] = value
            elif isinstance(value, tuple):
                described[key] = list(value)
            else:
                described[key] = type(value).__name__
        return _json(start_response, described)
    if path == "/echo":
        body = _read_body(environ)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/method":
        # The method in a header: a HEAD response shows it without a body.
        body = b"the body"
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("X-Method", environ["REQUEST_METHOD"]),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/pid":
        return _json(start_response, {"pid": os.getpid()})
    if path == "/exit":
        os._exit(17)
    if path == "/sleep":
        time.sleep(float(qs or "1"))
        return _json(start_response, {"slept": float(qs or "1"), "pid": os.getpid()})
    if path == "/error":
        raise RuntimeError("boom from the test app")
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (("part %d\n" % i).encode() for i in range(3))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    if path == "/stderr":
        print("hello from print", flush=True)
        environ["wsgi.errors"].write("hello from wsgi.errors\n")
        return _json(start_response, {"ok": True})
    if path == "/executable":
        import subprocess
        out = subprocess.run([sys.executable, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return _json(start_response, {"executable": sys.executable, "child": out})
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


application = validated(routes)
