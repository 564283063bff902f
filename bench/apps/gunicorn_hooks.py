"""gunicorn server hooks for bench/run's worker-respawn timing only: they log
when a worker process exists (post_fork, before the application is loaded in
it unless --preload) and when it is about to serve (post_worker_init, called
after the application is loaded, right before the worker's accept loop)."""
import os
import sys


def post_fork(server, worker):
    sys.stderr.write("bench-hook: worker forked pid=%d\n" % os.getpid())
    sys.stderr.flush()


def post_worker_init(worker):
    sys.stderr.write("bench-hook: worker ready pid=%d\n" % os.getpid())
    sys.stderr.flush()
