"""--host-access-script for the auth tests: allow_access(environ, host)."""


def allow_access(environ, host):
    if environ.get("HTTP_X_ACCESS") == "raise":
        raise RuntimeError("the access list is down")
    if environ.get("HTTP_X_ACCESS") == "no-opinion":
        return None
    # Let in loopback clients that say the word, and only them.
    return host == "127.0.0.1" and environ.get("HTTP_X_ACCESS") == "let-me-in"
