"""A plain HTTP server for the reverse-proxy tests (`--proxy-mount-point`,
`--proxy-virtual-host`): another service rwsgi relays to, not a WSGI app.

Binds 127.0.0.1 on a port the kernel picks and prints `port N` once
listening. Every path is under /v1/ (the tests mount it with a path):

- /v1/echo: JSON of what arrived (method, target, headers, body); a
  chunked request body is decoded here. With `?flag=PATH`, PATH is created
  once the first chunk of the body has arrived (the client sends the rest
  only then).
- /v1/stream?flag=PATH: a chunked response whose first piece goes out at
  once, the second only once PATH exists (the client has read the first).
- /v1/redirect: a 302 to this backend's own URL (as it was addressed).
- /v1/hop: a response carrying hop-by-hop fields.
- /v1/cut: announces 100 bytes, sends 10 and closes.
- /v1/close: an HTTP/1.0-style body delimited by closing the connection.
"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def read_body(self, flag=None):
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            body = b''
            while True:
                size = int(self.rfile.readline().split(b';')[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
                if flag:
                    open(flag, 'w').close()
                    flag = None
        return self.rfile.read(int(self.headers.get('Content-Length') or 0))

    def send(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def handle_any(self):
        url = urlsplit(self.path)
        if url.path == '/v1/stream':
            flag = parse_qs(url.query)['flag'][0]
            self.send_response(200)
            self.send_header('Content-Type', 'text/plain')
            self.send_header('Transfer-Encoding', 'chunked')
            self.end_headers()
            self.wfile.write(b'6\r\nfirst\n\r\n')
            self.wfile.flush()
            deadline = time.monotonic() + 20
            while not os.path.exists(flag) and time.monotonic() < deadline:
                time.sleep(0.01)
            self.wfile.write(b'7\r\nsecond\n\r\n0\r\n\r\n')
            return
        if url.path == '/v1/redirect':
            host = self.headers['Host']
            return self.send(302, b'moved\n', [('Location', f'http://{host}/v1/target?n=1')])
        if url.path == '/v1/hop':
            return self.send(200, b'hop\n', [
                ('Connection', 'X-Hop-Field'),
                ('X-Hop-Field', 'secret'),
                ('Keep-Alive', 'timeout=5'),
                ('Proxy-Authenticate', 'Basic'),
                ('Upgrade', 'h2c'),
                ('X-End-To-End', 'kept'),
            ])
        if url.path == '/v1/cut':
            self.send_response(200)
            self.send_header('Content-Length', '100')
            self.end_headers()
            self.wfile.write(b'0123456789')
            self.wfile.flush()
            self.close_connection = True
            return
        if url.path == '/v1/close':
            self.send_response(200)
            self.send_header('Connection', 'close')
            self.end_headers()
            self.wfile.write(b'until the end\n')
            self.close_connection = True
            return
        body = self.read_body(parse_qs(url.query).get('flag', [None])[0])
        echo = {
            'method': self.command,
            'target': self.path,
            'headers': [[n, v] for n, v in self.headers.items()],
            'body': body.decode('latin-1'),
        }
        self.send(200, json.dumps(echo).encode(), [('Content-Type', 'application/json')])

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any


def main():
    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    server.daemon_threads = True
    print(f'port {server.server_address[1]}', flush=True)
    server.serve_forever()


if __name__ == '__main__':
    sys.exit(main())
