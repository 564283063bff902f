"""Reports what --switch-interval, --python-warnings and --envvars-script set."""
import json
import os
import sys
import warnings


def application(environ, start_response):
    body = json.dumps({
        "switch_interval": sys.getswitchinterval(),
        "warnoptions": sys.warnoptions,
        "deprecation": [f[0] for f in warnings.filters
                        if f[2] is DeprecationWarning][:1],
        "from_envvars": os.environ.get("RWSGI_TEST_FROM_ENVVARS"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
