"""An --auth-user-script without check_password: the server must not start."""


def something_else(environ, user, password):
    return True
