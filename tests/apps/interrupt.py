"""Routes for the --interrupt-timeout tests: requests stuck in Python code
that let mod_wsgi.RequestTimeout unwind them, or ignore it."""

import ctypes
import os
import time

import mod_wsgi
import rwsgi

from testkit import validated

_caught = []


def _until(seconds):
    return time.monotonic() + seconds


def loop(seconds):
    """Stuck in Python: short sleeps, so a pending exception is raised soon."""
    end = _until(seconds)
    try:
        while time.monotonic() < end:
            time.sleep(0.05)
    except mod_wsgi.RequestTimeout as e:
        _caught.append("%s %s" % (type(e).__name__, type(e) is rwsgi.RequestTimeout))
        raise


def ignore(seconds):
    """Catches everything, RequestTimeout included, and keeps going."""
    end = _until(seconds)
    while time.monotonic() < end:
        try:
            time.sleep(0.05)
        except BaseException:
            _caught.append("ignored")


def routes(environ, start_response):
    path = environ["PATH_INFO"]
    qs = environ.get("QUERY_STRING", "")
    if path == "/loop":
        loop(float(qs or "30"))
    elif path == "/ignore":
        ignore(float(qs or "30"))
    elif path == "/gil":
        # libc's sleep called with the GIL held: no Python thread runs.
        ctypes.PyDLL(None).sleep(int(qs or "30"))
    elif path == "/modules":
        import mod_wsgi.server

        body = "%s; %s" % (mod_wsgi.server.MARKER, mod_wsgi.RequestTimeout is rwsgi.RequestTimeout)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body.encode()]
    elif path == "/stuck":
        # One long sleep in C: the exception waits until it returns.
        time.sleep(float(qs or "30"))
    body = ("%d %s" % (os.getpid(), ",".join(_caught))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = validated(routes)
