"""The Django scenarios' WSGI entry point: the small site in benchsite/
(a template view, DEBUG off, no database query).  A script file, so every
server takes it the same way (`--wsgi-file`, a script path, or the module
`django_wsgi:application` with this directory as the working directory)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
