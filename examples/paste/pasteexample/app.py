"""The application factory named by `[app:main]` in app.ini."""


def make_app(global_conf, greeting="Hello", **local_conf):
    body = ("%s\n" % greeting).encode("utf-8")

    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return application
