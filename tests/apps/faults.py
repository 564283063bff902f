"""Requests that get stuck in the ways production requests do, for the
fault-injection tests.

Routes:
  /hold-gil?SECONDS   C code that holds the GIL (ctypes.PyDLL keeps it)
  /sleep?SECONDS      a plain sleep, announced in the log when it starts
  /pid                the worker's pid
  anything else       a small answer
"""

import ctypes
import os
import time


def hold_the_gil_in_c(seconds):
    # PyDLL does not release the GIL around the call: no Python thread of
    # this process runs until it returns.
    ctypes.PyDLL(None).sleep(seconds)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    if path == "/hold-gil":
        print("holding the GIL", flush=True)
        hold_the_gil_in_c(int(query or "30"))
        body = b"released"
    elif path == "/sleep":
        print("sleep started", flush=True)
        time.sleep(float(query or "1"))
        body = b"slept"
    elif path == "/pid":
        body = str(os.getpid()).encode()
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
