"""For the tests of the debugging aids (--debug-mode and what implies it)."""

import os
import time

try:
    # The stand-in of debug_stubs/ when the test puts it on the path.
    import coverage as _coverage

    COVERAGE_STARTED_BEFORE_IMPORT = getattr(_coverage, "started", None)
except ImportError:
    COVERAGE_STARTED_BEFORE_IMPORT = None


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        secret = 41 + 1
        raise ValueError("boom %d" % secret)
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or 3))
    if path == "/coverage":
        body = repr(COVERAGE_STARTED_BEFORE_IMPORT)
    elif path == "/environ":
        body = "multithread=%s multiprocess=%s debug=%s pid=%d" % (
            environ["wsgi.multithread"], environ["wsgi.multiprocess"],
            os.environ.get("MOD_WSGI_DEBUG_MODE"), os.getpid())
    else:
        body = "hello " + environ["wsgi.input"].read().decode()
    body = body.encode()  # breakpoint here
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
