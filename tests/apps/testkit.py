"""Shared by the test applications: every app runs under wsgiref's
validator, and any WSGIWarning is an error, so a PEP 3333 violation by
the server fails the test that triggered it."""

import warnings
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)


def validated(app):
    return validator(app)
