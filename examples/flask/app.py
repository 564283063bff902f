"""A Flask application on rwsgi: a JSON endpoint, a streamed response and
a file upload.

    pip install Flask
    rwsgi start-server --application-type module --working-directory examples/flask app:app
"""

import hashlib
import time

from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)
# mod_wsgi and rwsgi look for `application` unless told otherwise.
application = app


@app.get("/")
def index():
    return "Hello from Flask on rwsgi\n"


@app.get("/api/hello")
def hello():
    name = request.args.get("name", "world")
    return jsonify(greeting="Hello, %s!" % name, server=request.environ.get("SERVER_SOFTWARE"))


@app.get("/stream")
def stream():
    """Lines sent as they are produced (chunked), not buffered to the end."""
    count = request.args.get("count", 5, type=int)
    delay = request.args.get("delay", 0.2, type=float)

    @stream_with_context
    def generate():
        for i in range(count):
            yield "line %d of %d at %.3f\n" % (i + 1, count, time.time())
            if i + 1 < count:
                time.sleep(delay)

    return Response(generate(), mimetype="text/plain")


@app.post("/upload")
def upload():
    """multipart/form-data with a `file` field: answers its name, size and SHA-256."""
    f = request.files.get("file")
    if f is None:
        return jsonify(error="no file field"), 400
    data = f.read()
    return jsonify(
        filename=f.filename,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        description=request.form.get("description", ""),
    )
