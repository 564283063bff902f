"""Writes to every log path a worker has, for the log-integrity test: a
print (stdout), a line to sys.stderr, a line to wsgi.errors and, for
/long/..., a print far longer than a pipe takes in one piece."""

import sys


def application(environ, start_response):
    path = environ["PATH_INFO"]
    tag = path.rsplit("/", 1)[-1]
    print("printed %s END" % tag)
    sys.stderr.write("stderr %s END\n" % tag)
    environ["wsgi.errors"].write("errors %s END\n" % tag)
    if path.startswith("/long/"):
        print("long %s %s END" % (tag, "x" * 9000))
    body = b"ok " + tag.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
