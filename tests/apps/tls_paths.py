"""Routes for the HTTPS tests of the paths that read and write a
connection: a file through wsgi.file_wrapper, a body read in small
pieces, and a `write` kept after its request ended."""

import hashlib
import os

KEPT = []


def _text(start_response, body):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hello":
        return _text(start_response, b"hello")
    if path == "/file":
        f = open(environ["QUERY_STRING"], "rb")
        size = os.fstat(f.fileno()).st_size
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/pieces":
        stream = environ["wsgi.input"]
        digest, n = hashlib.sha256(), 0
        while True:
            piece = stream.read(1000)
            if not piece:
                break
            digest.update(piece)
            n += len(piece)
        return _text(start_response, ("%d %s" % (n, digest.hexdigest())).encode())
    if path == "/keep":
        KEPT.append(start_response("200 OK", [("Content-Type", "text/plain"),
                                              ("Content-Length", "4")]))
        return [b"kept"]
    if path == "/use-kept":
        try:
            KEPT[-1](b"LEAKED into a later request")
            outcome = b"wrote"
        except Exception:
            outcome = b"raised"
        return _text(start_response, outcome)
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]
