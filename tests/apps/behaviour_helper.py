"""Importable helpers for behaviour.py: what multiprocessing's spawned
children import by name, and a thread that outlives its request."""

import os
import threading
import time

LATE_DONE = threading.Event()


def square(x):
    return x * x


def _pid(_):
    return os.getpid()


def child_pids(ctx):
    with ctx.Pool(1) as pool:
        return pool.map(_pid, [0])[0]


def start_late_thread():
    def late():
        time.sleep(0.5)
        LATE_DONE.set()

    threading.Thread(target=late, name="late", daemon=False).start()
    return LATE_DONE
