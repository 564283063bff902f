"""Reports what the auth scripts told the application."""

import json
import sys


def application(environ, start_response):
    body = json.dumps(
        {
            "REMOTE_USER": environ.get("REMOTE_USER"),
            "AUTH_TYPE": environ.get("AUTH_TYPE"),
            "script_thread": getattr(sys, "rwsgi_auth_test_thread", None),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
