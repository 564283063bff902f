"""The measured view renders a template (inheritance, a loop, filters) with a
little context; /pid names the worker process, for the respawn timing."""
import datetime
import os

from django.http import HttpResponse
from django.shortcuts import render

ITEMS = [
    {"name": "item %d" % i, "price": i * 1.25, "tags": ["wsgi", "bench", str(i)],
     "added": datetime.date(2026, 1, 1) + datetime.timedelta(days=i)}
    for i in range(1, 11)
]


def index(request):
    return render(request, "benchsite/index.html", {
        "title": "rwsgi bench",
        "user_name": "visitor",
        "items": ITEMS,
        "total": sum(i["price"] for i in ITEMS),
    })


def pid(request):
    return HttpResponse(str(os.getpid()), content_type="text/plain")
