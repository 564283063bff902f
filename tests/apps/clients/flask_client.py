"""Talks to examples/flask with `requests`, prints what it saw as JSON.

    python flask_client.py http://127.0.0.1:PORT
"""

import hashlib
import json
import os
import sys
import time

import requests

base = sys.argv[1]
out = {}

r = requests.get(base + "/api/hello", params={"name": "rwsgi"}, timeout=30)
out["json"] = {"status": r.status_code, "content_type": r.headers.get("Content-Type"),
               "body": r.json()}

started = time.monotonic()
r = requests.get(base + "/stream", params={"count": 4, "delay": 0.4}, stream=True, timeout=30)
arrivals = []
for line in r.iter_lines():
    arrivals.append([round(time.monotonic() - started, 3), line.decode()])
out["stream"] = {"status": r.status_code,
                 "transfer_encoding": r.headers.get("Transfer-Encoding"),
                 "arrivals": arrivals}

data = os.urandom(300_000)
r = requests.post(base + "/upload", timeout=30,
                  files={"file": ("blob.bin", data, "application/octet-stream")},
                  data={"description": "random bytes"})
out["upload"] = {"status": r.status_code, "body": r.json(),
                 "sent_sha256": hashlib.sha256(data).hexdigest(), "sent_size": len(data)}

print(json.dumps(out))
