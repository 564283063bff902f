"""Stands for an installed mod_wsgi-express package (its __init__ only
extends its path): rwsgi's mod_wsgi module takes its place and keeps
its subpackages importable."""
