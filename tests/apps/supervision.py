"""Routes for the supervision tests: slow, stuck and memory-hungry requests."""

import os
import time

from testkit import validated

_hoard = []


def stuck_in_sleep(seconds):
    time.sleep(seconds)


def routes(environ, start_response):
    path = environ["PATH_INFO"]
    qs = environ.get("QUERY_STRING", "")
    if path == "/stuck":
        stuck_in_sleep(float(qs or "30"))
    elif path == "/hog":
        # Keep 20 MB more per request, touched so it is resident.
        _hoard.append(bytearray(os.urandom(1)) * (20 * 1024 * 1024))
    elif path == "/sleep":
        time.sleep(float(qs or "0.1"))
    body = ("%d" % os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = validated(routes)
