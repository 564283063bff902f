"""Chunked uploads as two kinds of application see them.

    /raw/...   a plain WSGI application that reads wsgi.input until b""
               (the only way to read a body of unknown length, PEP 3333 with
               wsgi.input_terminated)
    anything else: Flask, whose /upload reports request.get_data()

    rwsgi start-server --python-home .venv-test tests/apps/uploads_flask.py
"""

import hashlib
import json
import sys

from flask import Flask, jsonify, request

flask_app = Flask(__name__)


@flask_app.post("/upload")
def upload():
    data = request.get_data()
    return jsonify(
        length=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_length=request.content_length,
        has_transfer_encoding="HTTP_TRANSFER_ENCODING" in request.environ,
    )


def raw_upload(environ, start_response):
    # To the server log: a test can wait for the application to have started
    # before it sends the rest of the body.
    print("raw upload started", environ.get("QUERY_STRING", ""), file=sys.stderr, flush=True)
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    length = reads = 0
    while True:
        block = stream.read(65536)
        if not block:
            break
        digest.update(block)
        length += len(block)
        reads += 1
    body = json.dumps({
        "length": length,
        "sha256": digest.hexdigest(),
        "reads": reads,
        "has_content_length": "CONTENT_LENGTH" in environ,
        "has_transfer_encoding": "HTTP_TRANSFER_ENCODING" in environ,
        "input_terminated": environ.get("wsgi.input_terminated"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    if environ["PATH_INFO"].startswith("/raw/"):
        return raw_upload(environ, start_response)
    return flask_app(environ, start_response)
