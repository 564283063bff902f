"""Talks to examples/django with `requests` like a browser would, prints
what it saw as JSON.

    python django_client.py http://127.0.0.1:PORT [--static]
"""

import json
import re
import sys

import requests

base = sys.argv[1]
check_static = "--static" in sys.argv[2:]
out = {}
s = requests.Session()

r = s.get(base + "/", timeout=30)
out["index"] = {"status": r.status_code, "text": r.text}

r = s.get(base + "/admin/login/", timeout=30)
css = re.findall(r'href="([^"]+\.css)"', r.text)
out["admin_login"] = {"status": r.status_code, "has_form": 'name="username"' in r.text,
                      "css": css}

r = s.get(base + "/form/", timeout=30)
hidden = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', r.text)
out["form_get"] = {"status": r.status_code, "cookie": "csrftoken" in s.cookies,
                   "hidden": bool(hidden)}
r = s.post(base + "/form/", timeout=30,
           data={"csrfmiddlewaretoken": hidden.group(1) if hidden else "", "name": "rwsgi"})
out["form_post"] = {"status": r.status_code, "greeted": "Hello, rwsgi!" in r.text}

r = requests.post(base + "/form/", data={"name": "forger"}, timeout=30)
out["form_post_without_token"] = {"status": r.status_code}

if check_static:
    statics = {}
    for url in ["/static/admin/css/base.css"] + css:
        r = s.get(base + url, timeout=30)
        statics[url] = {"status": r.status_code, "content_type": r.headers.get("Content-Type"),
                        "length": len(r.content)}
    out["static"] = statics

print(json.dumps(out))
