"""An application under names other than `application`, for
--callable-object and module:callable."""

from testkit import validated


def _named(text):
    body = text.encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return validated(app)


application = _named("default callable")
app = _named("callable app")
other = _named("callable other")
