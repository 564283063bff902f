from testkit import validated

VERSION = "one"


def _app(environ, start_response):
    body = VERSION.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = validated(_app)
