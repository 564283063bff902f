"""Imports a package only a virtualenv has (named by RWSGI_TEST_VENV_MODULE)."""

import importlib
import json
import os
import sys

from testkit import validated

_name = os.environ.get("RWSGI_TEST_VENV_MODULE", "django")
_module = importlib.import_module(_name)


def _app(environ, start_response):
    body = json.dumps({
        "module": _name,
        "file": _module.__file__,
        "prefix": sys.prefix,
        "executable": sys.executable,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = validated(_app)
