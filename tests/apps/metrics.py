"""For the tests of --server-metrics, --telemetry-service and --enable-docs."""

import json
import time

import mod_wsgi


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/server-metrics":
        body = json.dumps(mod_wsgi.server_metrics())
    elif path == "/process-metrics":
        body = json.dumps(mod_wsgi.process_metrics())
    elif path == "/start-recording":
        body = json.dumps(mod_wsgi.start_recording_metrics())
    elif path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or 2))
        body = "slept"
    else:
        body = "app saw " + path
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
