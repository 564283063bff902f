"""time.sleep(0.01) per request: the limit is processes x threads / 10 ms."""
import time


def application(environ, start_response):
    time.sleep(0.01)
    body = b"slept 10 ms\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
