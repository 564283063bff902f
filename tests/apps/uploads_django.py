"""A one-file Django project with an upload view: what `request.body` holds
after a chunked upload, and what the server put in `request.META`.

    rwsgi start-server --python-home .venv-test tests/apps/uploads_django.py
    POST /upload  ->  {"length", "sha256", "content_length", "has_content_length",
                       "has_transfer_encoding"}
"""

import hashlib
import sys

from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    SECRET_KEY="rwsgi-tests-only",
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
    # Django refuses bodies over 2.5 MB by default; the tests send 3 MiB.
    DATA_UPLOAD_MAX_MEMORY_SIZE=16 * 1024 * 1024,
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from django.views.decorators.http import require_POST  # noqa: E402


@csrf_exempt
@require_POST
def upload(request):
    # To the server log: a test can tell whether a request reached the view.
    print("upload view called", request.GET.get("tag", ""), file=sys.stderr, flush=True)
    body = request.body
    return JsonResponse({
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_length": request.META.get("CONTENT_LENGTH"),
        "has_content_length": "CONTENT_LENGTH" in request.META,
        "has_transfer_encoding": "HTTP_TRANSFER_ENCODING" in request.META,
    })


urlpatterns = [path("upload", upload)]

application = get_wsgi_application()
