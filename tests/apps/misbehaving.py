"""Applications that break the WSGI rules on purpose (not under the
validator, which would stop them before the server sees the mistake)."""


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/crlf-header":
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: stolen=1")])
        return [b"body"]
    if path == "/bad-status":
        start_response("OK", [])
        return [b"body"]
    if path == "/no-start-response":
        return [b"body"]
    if path == "/not-bytes":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["a str"]
    if path == "/short":
        start_response("200 OK", [("Content-Length", "10")])
        return [b"12345"]
    if path == "/long":
        start_response("200 OK", [("Content-Length", "3")])
        return [b"abcdefghij"]
    if path == "/sendfile":
        name = environ["QUERY_STRING"]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(name, "rb"))
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
