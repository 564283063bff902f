"""An application that misuses the server's objects on purpose, and breaks
off responses, to show what a client sees (not under the validator, which
would stop the mistakes before the server sees them).

Routes:
  /keep-write           streams a response and keeps its `write`
  /write-later?SECONDS  a background thread calls the kept `write` later
  /use-kept-write       calls the kept `write` from this later request
  /keep-input           reads 3 bytes of the body and keeps `wsgi.input`
  /use-kept-input       reads the kept `wsgi.input` from this later request
  /outcomes             what the kept objects did, as JSON
  /raise-mid-stream     a generator that raises after its first block
  /raise-mid-length     Content-Length 100, 10 bytes, then raises
  /raise-in-close       a complete streamed body whose close() raises
  /raise-in-close-list  a list body (known length) whose close() raises
  /excinfo-after        start_response(exc_info) after the head went out
  /read-body            reads the whole body, lets errors propagate
  /read-body-catch      reads the whole body, answers 200 with any error
  /ignore-body          answers without reading the body
  /sleep?SECONDS        answers after a while
  /204-with-length      a 204 with a Content-Length header
  /interim-status       a 1xx status as the response
  /empty-then-excinfo   an empty first block, then start_response(exc_info)
  /calls                how many times the application was called
  /length-twice         Content-Length 100 and Content-Length 5
  /length-signed        Content-Length +5
  /length-caught        Content-Length twice, catches the error and answers
  /transfer-encoding    sets Transfer-Encoding: chunked itself
  /connection-close     Connection: close and Keep-Alive from the application
  /fileno-minus-one     wsgi.file_wrapper on an object whose fileno() is -1
  /blksize-zero         wsgi.file_wrapper with a block size of 0
"""

import json
import sys
import threading
import time

kept = {}
outcomes = []
calls = {"count": 0}


def _text(start_response, body, status="200 OK"):
    body = body.encode() if isinstance(body, str) else body
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _describe(e):
    return "%s: %s" % (type(e).__name__, e)


def _write_later(delay):
    time.sleep(delay)
    try:
        kept["write"](b"LEAKED-FROM-AN-EARLIER-REQUEST")
        outcomes.append("write succeeded")
    except Exception as e:  # noqa: BLE001 - the point is to see which
        outcomes.append(_describe(e))


class ClosingBody:
    """A streamed body whose close() raises after every block was sent."""

    def __init__(self, blocks):
        self.blocks = blocks

    def __iter__(self):
        return iter(self.blocks)

    def close(self):
        raise RuntimeError("close() failed after the body")


class ClosingList(list):
    def close(self):
        raise RuntimeError("close() failed after the body")


def _read_all(stream):
    data = b""
    while True:
        block = stream.read(65536)
        if not block:
            return data
        data += block


class NoDescriptor:
    """A file-like object without a descriptor that says so with -1, as
    some wrappers do; it can still be read."""

    def __init__(self, data):
        self.data = data

    def fileno(self):
        return -1

    def tell(self):
        return 0

    def read(self, n=-1):
        n = len(self.data) if n < 0 else n
        block, self.data = self.data[:n], self.data[n:]
        return block


def application(environ, start_response):
    calls["count"] += 1
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    if path == "/keep-write" or path == "/write-later":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        kept["write"] = write
        if path == "/write-later":
            threading.Thread(target=_write_later, args=(float(query or "0.5"),), daemon=True).start()

        def body():
            yield b"first block\n"

        return body()
    if path == "/use-kept-write":
        try:
            kept["write"](b"LEAKED-FROM-AN-EARLIER-REQUEST")
            outcome = "write succeeded"
        except Exception as e:  # noqa: BLE001
            outcome = _describe(e)
        outcomes.append(outcome)
        return _text(start_response, outcome)
    if path == "/keep-input":
        kept["input"] = environ["wsgi.input"]
        first = kept["input"].read(3)
        return _text(start_response, first)
    if path == "/use-kept-input":
        try:
            got = kept["input"].read()
            outcome = "read returned %r" % got
        except Exception as e:  # noqa: BLE001
            outcome = _describe(e)
        outcomes.append(outcome)
        return _text(start_response, outcome)
    if path == "/outcomes":
        return _text(start_response, json.dumps(outcomes))
    if path == "/raise-mid-stream":
        start_response("200 OK", [("Content-Type", "text/csv")])

        def body():
            yield b"id,name\n1,first\n"
            raise RuntimeError("the export failed half way")

        return body()
    if path == "/raise-mid-length":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])

        def body():
            yield b"0123456789"
            raise RuntimeError("the export failed half way")

        return body()
    if path == "/raise-in-close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingBody([b"a whole body\n"])
    if path == "/raise-in-close-list":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingList([b"a whole body\n"])
    if path == "/excinfo-after":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            yield b"begun\n"
            try:
                raise ValueError("failed after the head")
            except ValueError:
                start_response("500 Internal Server Error", [], sys.exc_info())
            yield b"never sent\n"

        return body()
    if path == "/read-body":
        data = _read_all(environ["wsgi.input"])
        return _text(start_response, "read %d bytes" % len(data))
    if path == "/read-body-catch":
        try:
            data = _read_all(environ["wsgi.input"])
            return _text(start_response, "read %d bytes" % len(data))
        except OSError as e:
            return _text(start_response, "caught " + _describe(e))
    if path == "/ignore-body":
        return _text(start_response, "ignored")
    if path == "/sleep":
        time.sleep(float(query or "1"))
        return _text(start_response, "slept")
    if path == "/204-with-length":
        start_response("204 No Content", [("Content-Length", "0")])
        return []
    if path == "/interim-status":
        start_response("103 Early Hints", [("Link", "</a.css>; rel=preload")])
        return [b""]
    if path == "/empty-then-excinfo":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            yield b""
            try:
                raise ValueError("failed before any body byte")
            except ValueError:
                start_response("500 Internal Server Error", [("Content-Length", "8")], sys.exc_info())
            yield b"replaced"

        return body()
    if path == "/length-twice":
        start_response("200 OK", [("Content-Length", "100"), ("Content-Length", "5")])
        return [b"hello"]
    if path == "/length-signed":
        start_response("200 OK", [("Content-Length", "+5")])
        return [b"hello"]
    if path == "/length-caught":
        try:
            start_response("200 OK", [("Content-Length", "100"), ("Content-Length", "5")])
        except ValueError as e:
            return _text(start_response, "caught " + _describe(e))
        return [b"not refused"]
    if path == "/transfer-encoding":
        start_response("200 OK", [("Transfer-Encoding", "chunked")])
        return [b"5\r\nhello\r\n0\r\n\r\n"]
    if path == "/connection-close":
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Connection", "close"), ("Keep-Alive", "timeout=99")],
        )
        return [b"closing"]
    if path == "/fileno-minus-one":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](NoDescriptor(b"read, not sent from a descriptor\n" * 1000), 4096)
    if path == "/blksize-zero":
        try:
            environ["wsgi.file_wrapper"](NoDescriptor(b"x"), 0)
        except ValueError as e:
            return _text(start_response, "caught " + _describe(e))
        return _text(start_response, "accepted")
    if path == "/calls":
        return _text(start_response, str(calls["count"]))
    return _text(start_response, "not found", "404 Not Found")
