"""An application whose atexit handler never finishes: a graceful stop must
still end, cut off at --shutdown-timeout."""

import atexit
import time

from testkit import validated


@atexit.register
def _forever():
    print("slow atexit handler started")
    time.sleep(3600)


def _app(environ, start_response):
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [body]


application = validated(_app)
