"""A JSON list of 20 records (~2 KB), encoded per request: worth
compressing, unlike json_app.py's 70 bytes (rwsgi's --compress-responses
leaves bodies under 256 bytes as they are)."""
import json

ITEMS = [{"id": i, "name": "item %d" % i, "tags": ["wsgi", "bench", "gzip"],
          "price": round(i * 1.25, 2), "in_stock": i % 3 != 0}
         for i in range(20)]


def application(environ, start_response):
    body = json.dumps({"count": len(ITEMS), "items": ITEMS}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
