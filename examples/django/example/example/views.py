"""Two small views: a home page and a form protected by Django's CSRF check."""

from django.http import HttpResponse
from django.template import engines

_INDEX = """<!doctype html>
<title>rwsgi Django example</title>
<h1>Hello from Django on rwsgi</h1>
<p><a href="/form/">A form with CSRF protection</a> · <a href="/admin/">The admin</a></p>
"""

_FORM = engines['django'].from_string("""<!doctype html>
<title>Form</title>
{% if name %}<p id="greeting">Hello, {{ name }}!</p>{% endif %}
<form method="post" action="/form/">
  {% csrf_token %}
  <input name="name" value="{{ name }}">
  <button type="submit">Send</button>
</form>
""")


def index(request):
    return HttpResponse(_INDEX)


def form(request):
    name = request.POST.get('name', '') if request.method == 'POST' else ''
    return HttpResponse(_FORM.render({'name': name}, request))
