"""The application factory named by `[app:main]` in app.ini."""

import logging

log = logging.getLogger(__name__)


def make_app(global_conf, greeting="Hello", **local_conf):
    body = ("%s\n" % greeting).encode("utf-8")

    def application(environ, start_response):
        log.info("serving %s", environ.get("PATH_INFO"))
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return application
