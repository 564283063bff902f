from testkit import validated


def _app(environ, start_response):
    body = b"module app"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = validated(_app)
