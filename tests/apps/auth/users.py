"""--auth-user-script and --auth-group-script for the auth tests: mod_wsgi's
auth provider protocol (check_password, get_realm_hash, groups_for_user)."""

import hashlib
import sys
import threading

USERS = {"alice": "wonder land", "bob": "builder"}
GROUPS = {"alice": ["staff", b"editors"], "bob": ["staff"]}


def _seen():
    # Which thread runs the script: the tests check it is a request thread,
    # not the I/O thread. The app (another module) reports it.
    with open("/proc/self/task/%d/comm" % threading.get_native_id()) as f:
        sys.rwsgi_auth_test_thread = f.read().strip()


def check_password(environ, user, password):
    _seen()
    assert "HTTP_AUTHORIZATION" not in environ and "wsgi.input" not in environ
    if user == "raise":
        raise RuntimeError("the user store is down")
    if user == "alias":
        return "alice" if password == "x" else False
    if user not in USERS:
        return None
    return USERS[user] == password


def get_realm_hash(environ, user, realm):
    _seen()
    if user == "raise":
        raise RuntimeError("the user store is down")
    if user not in USERS:
        return None
    return hashlib.md5(("%s:%s:%s" % (user, realm, USERS[user])).encode()).hexdigest()


def groups_for_user(environ, user):
    return GROUPS.get(user, [])
