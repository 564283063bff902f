"""Tells which process imported it and which serves, for --preload tests.

With PRELOAD_TEST_THREAD set it starts a thread while it is imported (a
template must not fork then); with PRELOAD_TEST_GATE its import can be
held (see below). VERSION is rewritten by the reload test.
"""
import json
import os
import random
import threading
import time

VERSION = "one"
IMPORTED_BY = os.getpid()
# Drawn at the first request a process serves: forked workers whose random
# state was not reseeded would all draw the same number.
FIRST_RANDOM = None

if os.environ.get("PRELOAD_TEST_THREAD"):
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()

# An import that waits (for the test) once GATE.armed exists, until GATE.open does.
_gate = os.environ.get("PRELOAD_TEST_GATE")
if _gate and os.path.exists(_gate + ".armed"):
    while not os.path.exists(_gate + ".open"):
        time.sleep(0.02)


def application(environ, start_response):
    global FIRST_RANDOM
    if FIRST_RANDOM is None:
        FIRST_RANDOM = random.getrandbits(64)
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(0.3)
    body = json.dumps({
        "pid": os.getpid(),
        "imported_by": IMPORTED_BY,
        "first_random": FIRST_RANDOM,
        "version": VERSION,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
