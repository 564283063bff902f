"""Responses for the --compress-responses tests: text that compresses,
types that do not, a body the application encoded itself, a short body,
and a stream whose second block waits for the client to have read the
first (so a server that held blocks back would be caught)."""

import os
import time

TEXT = ("<p>The quick brown fox jumps over the lazy dog.</p>\n" * 100).encode()


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/text":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(TEXT))),
                                  ("ETag", '"v1"'),
                                  ("Vary", "Cookie")])
        return [TEXT[:1000], TEXT[1000:]]
    if path == "/tiny":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"tiny"]
    if path == "/png":
        start_response("200 OK", [("Content-Type", "image/png")])
        return [TEXT]
    if path == "/encoded":
        import gzip
        body = gzip.compress(TEXT)
        start_response("200 OK", [("Content-Type", "text/html"),
                                  ("Content-Encoding", "gzip"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/no-transform":
        start_response("200 OK", [("Content-Type", "text/html"),
                                  ("Cache-Control", "no-transform")])
        return [TEXT]
    if path == "/short":
        # Promises more than it gives: must never look complete.
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(TEXT) * 2))])
        return [TEXT]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "application/json")])
        write(b'{"items": [' + b",".join([b'"item"'] * 200) + b"]}")
        return []
    if path == "/stream":
        flag = environ["QUERY_STRING"]

        def blocks():
            yield b"first block " * 40
            # The client creates the flag once it decoded the first block.
            deadline = time.monotonic() + 10
            while not os.path.exists(flag) and time.monotonic() < deadline:
                time.sleep(0.01)
            yield (b"released" if os.path.exists(flag) else b"timed out") + b" second block" * 40

        start_response("200 OK", [("Content-Type", "text/plain")])
        return blocks()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
