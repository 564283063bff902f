"""What applications rely on from their server, one route each: sys.argv,
sys.executable for subprocess, multiprocessing (spawn), signal.signal,
their own threads, atexit, print/logging, faulthandler, the locale and
environ extras (--setenv, --passenv)."""

import atexit
import faulthandler
import json
import locale
import logging
import os
import signal
import sys
import threading
import time

from testkit import validated

import behaviour_helper

# At import, on the worker's main thread: must warn, not crash, and must
# not take SIGTERM away from the server.
signal.signal(signal.SIGTERM, lambda *a: None)

faulthandler.enable()

_ticks = [0]


def _ticker():
    while True:
        _ticks[0] += 1
        time.sleep(0.05)


threading.Thread(target=_ticker, name="app-ticker", daemon=True).start()


@atexit.register
def _at_exit():
    target = os.environ.get("RWSGI_TEST_ATEXIT_FILE")
    if target:
        with open(target, "w") as f:
            f.write("atexit ran in %d\n" % os.getpid())
    print("atexit handler ran")


def _json(start_response, value):
    body = json.dumps(value, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def routes(environ, start_response):
    path = environ["PATH_INFO"]
    qs = environ.get("QUERY_STRING", "")
    if path == "/argv":
        return _json(start_response, {"argv": sys.argv})
    if path == "/subprocess":
        import subprocess
        out = subprocess.run(
            [sys.executable, "-c", "import sys; print(sys.prefix)"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()
        return _json(start_response, {"executable": sys.executable, "child_prefix": out,
                                      "prefix": sys.prefix})
    if path == "/multiprocessing":
        import multiprocessing
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(2) as pool:
            squares = pool.map(behaviour_helper.square, [1, 2, 3, 4])
        pids = behaviour_helper.child_pids(ctx)
        return _json(start_response, {"squares": squares, "child_pid_differs": pids != os.getpid()})
    if path == "/signal":
        # From a request thread: Python itself would raise ValueError here.
        previous = signal.signal(signal.SIGUSR2, lambda *a: None)
        return _json(start_response, {"previous": str(previous)})
    if path == "/ticks":
        first = _ticks[0]
        time.sleep(0.3)
        return _json(start_response, {"first": first, "second": _ticks[0]})
    if path == "/thread":
        # A thread started by a request outlives it.
        done = behaviour_helper.start_late_thread()
        return _json(start_response, {"started": True, "already_done": done.is_set()})
    if path == "/thread-done":
        return _json(start_response, {"done": behaviour_helper.LATE_DONE.is_set()})
    if path == "/print":
        print("print from a request", qs)
        print("partial ", end="")
        print("line", qs)
        logging.getLogger("behaviour").warning("logging from a request %s", qs)
        sys.stderr.write("stderr from a request %s\n" % qs)
        return _json(start_response, {"ok": True})
    if path == "/faulthandler":
        faulthandler.dump_traceback(all_threads=False)
        return _json(start_response, {"enabled": faulthandler.is_enabled()})
    if path == "/locale":
        return _json(start_response, {
            "LC_ALL": os.environ.get("LC_ALL"),
            "LANG": os.environ.get("LANG"),
            "preferred": locale.getpreferredencoding(False),
            "filesystem": sys.getfilesystemencoding(),
            "stdout": sys.stdout.encoding,
        })
    if path == "/environ":
        return _json(start_response, {k: v for k, v in environ.items() if isinstance(v, str)})
    if path == "/sys":
        return _json(start_response, {
            "path": sys.path,
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "executable": sys.executable,
            "dont_write_bytecode": sys.dont_write_bytecode,
            "modules": sorted(m for m in ("pthmod", "ppmod") if m in sys.modules),
        })
    if path == "/import":
        import importlib
        module = importlib.import_module(qs)
        return _json(start_response, {"module": qs, "file": getattr(module, "__file__", None)})
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


application = validated(routes)
