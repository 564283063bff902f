"""PEP 3333 behaviours, under wsgiref's validator (see testkit)."""

import io
import json
import sys
import time

from testkit import validated

closed = {"count": 0}


class SlowStream:
    """An iterable whose close() is counted: the server must call it on
    every path, client disconnects included."""

    def __init__(self, parts, delay):
        self.parts = parts
        self.delay = delay

    def __iter__(self):
        for i in range(self.parts):
            if i:
                time.sleep(self.delay)
            yield (b"chunk %d\n" % i) * 1000

    def close(self):
        closed["count"] += 1


def _json(start_response, value):
    body = json.dumps(value).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def routes(environ, start_response):
    path = environ["PATH_INFO"]
    stream = environ["wsgi.input"]
    if path == "/input-methods":
        out = {
            "readline": stream.readline().decode(),
            "readline3": stream.readline(3).decode(),
            "rest_of_line": stream.readline().decode(),
            "read4": stream.read(4).decode(),
            "readlines": [l.decode() for l in stream.readlines()],
            "after_end": stream.read(10).decode(),
            "readline_after_end": stream.readline().decode(),
        }
        return _json(start_response, out)
    if path == "/iterate":
        return _json(start_response, [l.decode() for l in stream])
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            body = stream.read(length)
        except OSError as e:
            body = ("OSError: %s" % e).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/slow-stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return SlowStream(20, 0.1)
    if path == "/close-count":
        return _json(start_response, closed)
    if path == "/file-wrapper-bytesio":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"from a BytesIO " * 100), 64)
    if path == "/excinfo-before":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("replace me")
        except ValueError:
            start_response("500 Replaced", [("Content-Type", "text/plain"), ("Content-Length", "8")], sys.exc_info())
        return [b"replaced"]
    if path == "/excinfo-after":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial ")
        try:
            raise ValueError("too late to replace")
        except ValueError:
            start_response("500 Replaced", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"never"]
    if path == "/errors":
        errors = environ["wsgi.errors"]
        errors.writelines(["first line\n", "second line\n"])
        errors.write("unterminated")
        errors.flush()
        return _json(start_response, {"ok": True})
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


application = validated(routes)
