#!/usr/bin/env python3
"""Writes the raw cases of this corpus (see README.md): one place to read them all.

The .http/.json/.reason files are the corpus; this script is how they were
made. Running it rewrites every case from the list below.
"""
import json, os
D = os.path.dirname(os.path.abspath(__file__))
if os.path.isdir(D):
    for f in os.listdir(D):
        if f.endswith(('.http', '.json', '.reason')):
            os.remove(os.path.join(D, f))
os.makedirs(D, exist_ok=True)

def w(name, data):
    if isinstance(data, str): data = data.encode('latin-1')
    open(os.path.join(D, name), 'wb').write(data)

def reject(status, slug, data, reason):
    w(f'reject-{status}-{slug}.http', data)
    w(f'reject-{status}-{slug}.reason', reason + '\n')

def incomplete(slug, data, what):
    w(f'incomplete-{slug}.http', data)
    w(f'incomplete-{slug}.reason', what + '\n')

def accept(slug, data, requests, end='clean'):
    w(f'accept-{slug}.http', data)
    w(f'accept-{slug}.json', json.dumps({'requests': requests, 'end': end}, indent=1, ensure_ascii=True) + '\n')

UNCHECKED = object()

def req(method='GET', target='/', path=None, query='', version='HTTP/1.1', keep_alive=True, body_kind='empty', body='', headers=None, trailers=None, expect_continue=False, effective_host=UNCHECKED):
    r = {'method': method, 'target': target, 'path': path if path is not None else target.split('?')[0], 'query': query,
         'version': version, 'keep_alive': keep_alive, 'expect_continue': expect_continue, 'body_kind': body_kind, 'body': body}
    if headers is not None: r['headers'] = headers
    if trailers is not None: r['trailers'] = trailers
    # The host the request is for: the absolute-form authority, else Host; None for none.
    if effective_host is not UNCHECKED: r['effective_host'] = effective_host
    return r

H = 'Host: example.com\r\n'
POST = 'POST /upload HTTP/1.1\r\n' + H

# --- Content-Length and Transfer-Encoding together
reject(400, 'cl-then-te', POST + 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 'both Content-Length and Transfer-Encoding')
reject(400, 'te-then-cl', POST + 'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 'both Content-Length and Transfer-Encoding')
reject(400, 'te-identity-with-cl', POST + 'Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello', 'both Content-Length and Transfer-Encoding')
reject(400, 'te-chunked-with-cl-zero', POST + 'Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'both Content-Length and Transfer-Encoding')
# --- duplicate and malformed Content-Length
reject(400, 'cl-duplicate-same', POST + 'Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello', 'duplicate Content-Length')
reject(400, 'cl-duplicate-different', POST + 'Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 'duplicate Content-Length')
reject(400, 'cl-list', POST + 'Content-Length: 5, 5\r\n\r\nhello', 'invalid Content-Length')
reject(400, 'cl-plus', POST + 'Content-Length: +5\r\n\r\nhello', 'invalid Content-Length')
reject(400, 'cl-minus', POST + 'Content-Length: -5\r\n\r\nhello', 'invalid Content-Length')
reject(400, 'cl-minus-zero', POST + 'Content-Length: -0\r\n\r\n', 'invalid Content-Length')
reject(400, 'cl-hex', POST + 'Content-Length: 0x5\r\n\r\nhello', 'invalid Content-Length')
reject(400, 'cl-space-inside', POST + 'Content-Length: 1 0\r\n\r\n0123456789', 'invalid Content-Length')
reject(400, 'cl-decimal', POST + 'Content-Length: 5.0\r\n\r\nhello', 'invalid Content-Length')
reject(400, 'cl-empty', POST + 'Content-Length: \r\n\r\n', 'invalid Content-Length')
reject(400, 'cl-overflow', POST + 'Content-Length: 18446744073709551616\r\n\r\n', 'Content-Length out of range')
reject(400, 'cl-underscore', POST + 'Content-Length: 1_0\r\n\r\n0123456789', 'invalid Content-Length')
accept('cl-leading-zeros', POST + 'Content-Length: 005\r\n\r\nhello',
       [req('POST', '/upload', body_kind='length', body='hello', headers=[['Host', 'example.com'], ['Content-Length', '005']])])
accept('cl-surrounding-whitespace', POST + 'Content-Length: \t 5 \t\r\n\r\nhello',
       [req('POST', '/upload', body_kind='length', body='hello', headers=[['Host', 'example.com'], ['Content-Length', '5']])])
# --- transfer codings other than a final chunked
reject(400, 'te-gzip-only', POST + 'Transfer-Encoding: gzip\r\n\r\nhello', 'without a final chunked')
reject(400, 'te-identity-only', POST + 'Transfer-Encoding: identity\r\n\r\nhello', 'without a final chunked')
reject(400, 'te-empty', POST + 'Transfer-Encoding: \r\n\r\n', 'without a final chunked')
reject(400, 'te-chunked-then-gzip', POST + 'Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n', 'transfer coding after chunked')
reject(400, 'te-chunked-then-gzip-lines', POST + 'Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n', 'transfer coding after chunked')
reject(400, 'te-chunked-twice', POST + 'Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n', 'transfer coding after chunked')
reject(400, 'te-chunked-twice-lines', POST + 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'transfer coding after chunked')
reject(400, 'te-http10', 'POST /upload HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 'Transfer-Encoding in an HTTP/1.0 request')
reject(400, 'te-parameter', POST + 'Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n', 'invalid transfer coding')
reject(400, 'te-quoted', POST + 'Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n', 'invalid transfer coding')
reject(501, 'te-unknown-then-chunked', POST + 'Transfer-Encoding: br, chunked\r\n\r\n0\r\n\r\n', 'unsupported transfer coding')
reject(400, 'te-vertical-tab', POST + 'Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n', 'control character in header value')
accept('te-gzip-then-chunked', POST + 'Transfer-Encoding: gzip, chunked\r\n\r\n3\r\n\x1f\x8b\x08\r\n0\r\n\r\n',
       [req('POST', '/upload', keep_alive=False, body_kind='chunked', body='\x1f\x8b\x08')], end='closed')
accept('te-chunked-case-insensitive', POST + 'Transfer-Encoding: ChUnKeD\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
       [req('POST', '/upload', body_kind='chunked', body='hello')])
# --- obs-fold
reject(400, 'obs-fold-space', 'GET / HTTP/1.1\r\nHost: example.com\r\nX-Long: one\r\n two\r\n\r\n', 'obs-fold')
reject(400, 'obs-fold-tab', 'GET / HTTP/1.1\r\nHost: example.com\r\nX-Long: one\r\n\ttwo\r\n\r\n', 'obs-fold')
reject(400, 'space-before-first-field', 'GET / HTTP/1.1\r\n Host: example.com\r\n\r\n', 'obs-fold')
# --- bare CR, bare LF
reject(400, 'bare-cr-request-line', 'GET / HTTP/1.1\rHost: example.com\r\n\r\n', 'bare CR in request line')
reject(400, 'bare-cr-in-target', 'GET /a\rb HTTP/1.1\r\nHost: example.com\r\n\r\n', 'request line without an HTTP version')
reject(400, 'bare-cr-header-value', 'GET / HTTP/1.1\r\nHost: example.com\r\nX: a\rb\r\n\r\n', 'bare CR in header field')
reject(400, 'bare-cr-header-end', 'GET / HTTP/1.1\r\nHost: example.com\r\nX: a\r\r\n\r\n', 'bare CR in header field')
reject(400, 'bare-cr-empty-line', 'GET / HTTP/1.1\r\nHost: example.com\r\n\rX\r\n\r\n', 'bare CR in request head')
reject(400, 'bare-lf-request-line', 'GET / HTTP/1.1\nHost: example.com\r\n\r\n', 'bare LF in request line')
reject(400, 'bare-lf-header', 'GET / HTTP/1.1\r\nHost: example.com\nX: y\r\n\r\n', 'bare LF in request head')
reject(400, 'bare-lf-last-header', 'GET / HTTP/1.1\r\nHost: example.com\n\r\n', 'bare LF in request head')
reject(400, 'bare-lf-empty-line', 'GET / HTTP/1.1\r\nHost: example.com\r\n\n', 'bare LF in request head')
reject(400, 'bare-lf-everywhere', 'GET / HTTP/1.1\nHost: example.com\n\n', 'bare LF in request line')
reject(400, 'bare-lf-smuggled-field', 'GET / HTTP/1.1\r\nHost: example.com\r\nX: a\nContent-Length: 5\r\n\r\nhello', 'bare LF in request head')
reject(400, 'bare-lf-before-request', '\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n', 'bare LF in request line')
# --- NUL and control characters
reject(400, 'nul-in-method', 'GE\x00T / HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid character in method')
reject(400, 'nul-in-target', 'GET /a\x00b HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid character in request target')
reject(400, 'nul-in-version', 'GET / HTTP/1.1\x00\r\nHost: example.com\r\n\r\n', 'invalid HTTP version')
reject(400, 'nul-in-header-name', 'GET / HTTP/1.1\r\nHost: example.com\r\nX\x00Y: z\r\n\r\n', 'NUL in header field')
reject(400, 'nul-in-header-value', 'GET / HTTP/1.1\r\nHost: example.com\r\nX: a\x00b\r\n\r\n', 'NUL in header field')
reject(400, 'ctl-in-target', 'GET /a\x01b HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid character in request target')
reject(400, 'del-in-target', 'GET /a\x7fb HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid character in request target')
reject(400, 'tab-in-target', 'GET /a\tb HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid character in request target')
reject(400, 'esc-in-header-value', 'GET / HTTP/1.1\r\nHost: example.com\r\nX: a\x1b[31mb\r\n\r\n', 'control character in header value')
reject(400, 'del-in-header-value', 'GET / HTTP/1.1\r\nHost: example.com\r\nX: a\x7fb\r\n\r\n', 'control character in header value')
reject(400, 'target-latin1-byte', 'GET /caf\xe9 HTTP/1.1\r\nHost: example.com\r\n\r\n', 'non-ASCII byte in request target')
accept('tab-and-obs-text-in-value', 'GET / HTTP/1.1\r\nHost: example.com\r\nX: a\tb caf\xc3\xa9\r\n\r\n',
       [req(headers=[['Host', 'example.com'], ['X', 'a\tb caf\xc3\xa9']])])
# RFC 3986 2: a URI is ASCII; anything else is percent-encoded.
reject(400, 'target-utf8-bytes', 'GET /caf\xc3\xa9 HTTP/1.1\r\nHost: example.com\r\n\r\n', 'non-ASCII byte in request target')
reject(400, 'target-utf8-bytes-in-query', 'GET /?q=\xc3\xa9 HTTP/1.1\r\nHost: example.com\r\n\r\n', 'non-ASCII byte in request target')
reject(400, 'target-non-ascii-unfinished', 'GET /caf\xc3', 'non-ASCII byte in request target')
accept('target-utf8-percent-encoded', 'GET /caf%C3%A9?q=%C3%A9 HTTP/1.1\r\nHost: example.com\r\n\r\n',
       [req(target='/caf%C3%A9?q=%C3%A9', path='/caf%C3%A9', query='q=%C3%A9')])
# Deliberately lenient (see head.rs): characters RFC 3986 leaves out of a URI, and a stray '%'.
accept('target-characters-outside-rfc3986', 'GET /a|b{c}[d]^e`f\\g%zz?x="<y>" HTTP/1.1\r\nHost: example.com\r\n\r\n',
       [req(target='/a|b{c}[d]^e`f\\g%zz?x="<y>"', path='/a|b{c}[d]^e`f\\g%zz', query='x="<y>"')])
# --- methods
reject(400, 'method-lowercase', 'get / HTTP/1.1\r\nHost: example.com\r\n\r\n', 'method is not uppercase')
reject(400, 'method-mixed-case', 'Get / HTTP/1.1\r\nHost: example.com\r\n\r\n', 'method is not uppercase')
reject(400, 'method-separator', 'GE(T / HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid character in method')
reject(400, 'method-colon', 'GET: / HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid character in method')
reject(400, 'method-non-ascii', 'G\xc3\x89T / HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid character in method')
reject(400, 'method-empty', ' / HTTP/1.1\r\nHost: example.com\r\n\r\n', 'empty method')
reject(400, 'method-tab-separator', 'GET\t/ HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid character in method')
reject(400, 'request-line-double-space', 'GET  / HTTP/1.1\r\nHost: example.com\r\n\r\n', 'empty request target')
reject(400, 'request-line-only-method', 'GET\r\nHost: example.com\r\n\r\n', 'request line ends after the method')
accept('method-extension', 'PURGE /cache HTTP/1.1\r\nHost: example.com\r\n\r\n', [req('PURGE', '/cache')])
# --- versions
accept('version-http12-served-as-11', 'GET / HTTP/1.2\r\nHost: example.com\r\n\r\n', [req()])
reject(505, 'version-http20', 'GET / HTTP/2.0\r\nHost: example.com\r\n\r\n', 'HTTP version not supported')
reject(505, 'version-http30', 'GET / HTTP/3.0\r\nHost: example.com\r\n\r\n', 'HTTP version not supported')
reject(505, 'version-http09', 'GET / HTTP/0.9\r\n\r\n', 'HTTP version not supported')
reject(400, 'version-lowercase', 'GET / http/1.1\r\nHost: example.com\r\n\r\n', 'invalid HTTP version')
reject(400, 'version-two-digit-minor', 'GET / HTTP/1.10\r\nHost: example.com\r\n\r\n', 'invalid HTTP version')
reject(400, 'version-no-minor', 'GET / HTTP/1\r\nHost: example.com\r\n\r\n', 'invalid HTTP version')
reject(400, 'version-trailing-space', 'GET / HTTP/1.1 \r\nHost: example.com\r\n\r\n', 'invalid HTTP version')
reject(400, 'version-not-http', 'GET / FTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid HTTP version')
reject(400, 'version-missing', 'GET /\r\n\r\n', 'request line without an HTTP version')
# --- chunk sizes, extensions, data, trailers
C = POST + 'Transfer-Encoding: chunked\r\n\r\n'
reject(400, 'chunk-size-hex-prefix', C + '0x5\r\nhello\r\n0\r\n\r\n', 'invalid chunk size')
reject(400, 'chunk-size-empty', C + '\r\nhello\r\n0\r\n\r\n', 'invalid chunk size')
reject(400, 'chunk-size-minus', C + '-5\r\nhello\r\n0\r\n\r\n', 'invalid chunk size')
reject(400, 'chunk-size-plus', C + '+5\r\nhello\r\n0\r\n\r\n', 'invalid chunk size')
reject(400, 'chunk-size-underscore', C + '5_0\r\nhello\r\n0\r\n\r\n', 'invalid chunk size')
reject(400, 'chunk-size-space-before', C + ' 5\r\nhello\r\n0\r\n\r\n', 'invalid chunk size')
reject(400, 'chunk-size-space-after', C + '5 \r\nhello\r\n0\r\n\r\n', 'invalid chunk size')
reject(400, 'chunk-size-overflow', C + '10000000000000000\r\nhello\r\n0\r\n\r\n', 'chunk size out of range')
reject(400, 'chunk-size-bare-lf', C + '5\nhello\r\n0\r\n\r\n', 'bare LF in chunked body')
reject(400, 'chunk-size-bare-cr', C + '5\rhello\r\n0\r\n\r\n', 'bare CR in chunked body')
reject(400, 'chunk-ext-empty', C + '5;\r\nhello\r\n0\r\n\r\n', 'invalid chunk extension')
reject(400, 'chunk-ext-empty-value', C + '5;a=\r\nhello\r\n0\r\n\r\n', 'invalid chunk extension')
reject(400, 'chunk-ext-space-in-value', C + '5;a=b c\r\nhello\r\n0\r\n\r\n', 'invalid chunk extension')
reject(400, 'chunk-ext-unterminated-quote', C + '5;a="b\r\nhello\r\n0\r\n\r\n', 'invalid chunk extension')
reject(400, 'chunk-ext-control-char', C + '5;a=\x01\r\nhello\r\n0\r\n\r\n', 'invalid chunk extension')
reject(400, 'chunk-ext-bare-cr', C + '5;a=b\rc\r\nhello\r\n0\r\n\r\n', 'bare CR in chunked body')
reject(400, 'chunk-ext-trailing-space', C + '5;a=b \r\nhello\r\n0\r\n\r\n', 'invalid chunk extension')
reject(400, 'chunk-data-too-long', C + '5\r\nhelloX\r\n0\r\n\r\n', 'chunk data not followed by CRLF')
reject(400, 'chunk-data-bare-lf', C + '5\r\nhello\n0\r\n\r\n', 'chunk data not followed by CRLF')
reject(400, 'chunk-line-too-long', C + '5;a=' + 'b' * 5000 + '\r\nhello\r\n0\r\n\r\n', 'chunk line too long')
reject(400, 'trailer-without-colon', C + '0\r\nbad trailer\r\n\r\n', 'trailer line without a colon')
reject(400, 'trailer-obs-fold', C + '0\r\nX: a\r\n b\r\n\r\n', 'obs-fold')
reject(400, 'trailer-space-before-colon', C + '0\r\nX : a\r\n\r\n', 'invalid trailer field name')
reject(400, 'trailer-control-char', C + '0\r\nX: a\x01b\r\n\r\n', 'control character in trailer')
reject(400, 'trailer-content-length', C + '0\r\nContent-Length: 5\r\n\r\n', 'not allowed in a trailer')
reject(400, 'trailer-transfer-encoding', C + '0\r\nTransfer-Encoding: chunked\r\n\r\n', 'not allowed in a trailer')
reject(400, 'trailer-host', C + '0\r\nHost: evil.example\r\n\r\n', 'not allowed in a trailer')
reject(400, 'trailer-bare-lf', C + '0\r\nX: a\n\r\n', 'bare LF in chunked body')
reject(413, 'chunked-over-limit', C + 'A00001\r\n', 'request body larger than the limit')
incomplete('chunked-missing-last-crlf', C + '5\r\nhello\r\n0\r\n', 'chunked body')
incomplete('chunked-missing-last-chunk', C + '5\r\nhello\r\n', 'chunked body')
accept('chunked-extensions-and-trailers',
       C + '5 ; name ; n = v ; q = "a \\"quoted\\" ;value"\r\nhello\r\n006;x=y\r\n world\r\n0;last\r\nX-Checksum: abc\r\nX-Empty:\r\n\r\n',
       [req('POST', '/upload', body_kind='chunked', body='hello world', trailers=[['X-Checksum', 'abc'], ['X-Empty', '']])])
accept('chunked-uppercase-hex-leading-zeros', C + '000A\r\n0123456789\r\n0000\r\n\r\n',
       [req('POST', '/upload', body_kind='chunked', body='0123456789')])
# --- header names
reject(400, 'field-name-space-before-colon', 'GET / HTTP/1.1\r\nHost : example.com\r\n\r\n', 'whitespace in or after a header name')
reject(400, 'field-name-tab-before-colon', 'GET / HTTP/1.1\r\nHost\t: example.com\r\n\r\n', 'whitespace in or after a header name')
reject(400, 'field-name-space-inside', 'GET / HTTP/1.1\r\nHost: example.com\r\nX Y: z\r\n\r\n', 'whitespace in or after a header name')
reject(400, 'field-name-empty', 'GET / HTTP/1.1\r\nHost: example.com\r\n: z\r\n\r\n', 'empty header name')
reject(400, 'field-name-separator', 'GET / HTTP/1.1\r\nHost: example.com\r\nX(y): z\r\n\r\n', 'invalid character in header name')
reject(400, 'field-name-non-ascii', 'GET / HTTP/1.1\r\nHost: example.com\r\nX\xc3\xa9: z\r\n\r\n', 'invalid character in header name')
reject(400, 'field-without-colon', 'GET / HTTP/1.1\r\nHost: example.com\r\nNoColon\r\n\r\n', 'header line without a colon')
accept('field-names-kept-as-sent', 'GET / HTTP/1.1\r\nhOsT: example.com\r\nX_Under_Score: 1\r\nX.Custom|Pipe: ok\r\nX-Empty:\r\n\r\n',
       [req(headers=[['hOsT', 'example.com'], ['X_Under_Score', '1'], ['X.Custom|Pipe', 'ok'], ['X-Empty', '']])])
# --- limits (defaults: request line 8190, field 8190 with CRLF, 100 fields, head 32768, body 10485760)
def line_of(n):
    # "GET /aaa HTTP/1.1" of exactly n bytes
    return 'GET /' + 'a' * (n - len('GET / HTTP/1.1')) + ' HTTP/1.1'
# RFC 9112 3 recommends supporting request lines of at least 8000 octets.
accept('request-line-8000-octets', line_of(8000) + '\r\n' + H + '\r\n', [req(target='/' + 'a' * (8000 - 14))])
accept('request-line-at-limit', line_of(8190) + '\r\n' + H + '\r\n', [req(target='/' + 'a' * (8190 - 14))])
reject(414, 'request-line-over-limit', line_of(8191) + '\r\n' + H + '\r\n', 'request line too long')
reject(414, 'request-line-over-limit-unfinished', line_of(9000), 'request line too long')
def field_of(n):
    # "X: vvv" whose line with CRLF is n bytes
    return 'X: ' + 'v' * (n - 5)
accept('field-at-limit', 'GET / HTTP/1.1\r\n' + H + field_of(8190) + '\r\n\r\n', [req(headers=[['Host', 'example.com'], ['X', 'v' * 8185]])])
reject(431, 'field-over-limit', 'GET / HTTP/1.1\r\n' + H + field_of(8191) + '\r\n\r\n', 'header field too large')
reject(431, 'field-over-limit-unfinished', 'GET / HTTP/1.1\r\n' + H + field_of(9000), 'header field too large')
many = ''.join(f'X-{i}: {i}\r\n' for i in range(99))
accept('fields-at-limit', 'GET / HTTP/1.1\r\n' + H + many + '\r\n', [req()])
reject(431, 'fields-over-limit', 'GET / HTTP/1.1\r\n' + H + many + 'X-99: 99\r\n\r\n', 'too many header fields')
big = ''.join(f'X-{i}: ' + 'v' * 8000 + '\r\n' for i in range(5))
reject(431, 'head-over-buffer', 'GET / HTTP/1.1\r\n' + H + big + '\r\n', 'larger than the header buffer')
reject(413, 'body-over-limit', POST + 'Content-Length: 10485761\r\n\r\n', 'request body larger than the limit')
# The head is accepted; the test stops at the end of the (short) body.
incomplete('body-at-limit', POST + 'Content-Length: 10485760\r\n\r\nhello', 'body shorter than Content-Length')
# --- Host
# RFC 9112 3.2: Host is required in HTTP/1.1, once, and must be uri-host [":" port].
reject(400, 'http11-without-host', 'GET / HTTP/1.1\r\n\r\n', 'missing Host header')
reject(400, 'http11-without-host-with-body', POST.replace(H, '') + 'Content-Length: 5\r\n\r\nhello', 'missing Host header')
reject(400, 'http12-without-host', 'GET / HTTP/1.2\r\n\r\n', 'missing Host header')
reject(400, 'asterisk-form-without-host', 'OPTIONS * HTTP/1.1\r\n\r\n', 'missing Host header')
accept('http10-without-host', 'GET / HTTP/1.0\r\n\r\n', [req(version='HTTP/1.0', keep_alive=False, headers=[], effective_host=None)], end='closed')
accept('host', 'GET / HTTP/1.1\r\nHost: example.com\r\n\r\n', [req(headers=[['Host', 'example.com']], effective_host='example.com')])
accept('host-ipv4-port', 'GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n', [req(effective_host='127.0.0.1:8000')])
accept('host-ipv6-port', 'GET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n', [req(headers=[['Host', '[::1]:8000']], effective_host='[::1]:8000')])
accept('host-ipvfuture', 'GET / HTTP/1.1\r\nHost: [v1.fe80::a+en1]\r\n\r\n', [req(effective_host='[v1.fe80::a+en1]')])
accept('host-reg-name-characters', "GET / HTTP/1.1\r\nHost: xn--bcher-kva.ex_ample~%2D!$&'()*+,;=\r\n\r\n", [req(effective_host="xn--bcher-kva.ex_ample~%2D!$&'()*+,;=")])
# RFC 3986 3.2.3: the port may be empty (the default port).
accept('host-empty-port', 'GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n', [req(effective_host='example.com:')])
# RFC 9110 4.2.1: an http URI with an empty host is invalid.
reject(400, 'host-empty', 'GET / HTTP/1.1\r\nHost:\r\n\r\n', 'empty Host header')
reject(400, 'host-empty-http10', 'GET / HTTP/1.0\r\nHost:\r\n\r\n', 'empty Host header')
reject(400, 'host-only-whitespace', 'GET / HTTP/1.1\r\nHost:  \t \r\n\r\n', 'empty Host header')
reject(400, 'host-port-without-host', 'GET / HTTP/1.1\r\nHost: :8000\r\n\r\n', 'invalid Host header')
reject(400, 'host-bad-port', 'GET / HTTP/1.1\r\nHost: h:8x\r\n\r\n', 'invalid Host header')
reject(400, 'host-two-ports', 'GET / HTTP/1.1\r\nHost: h:80:80\r\n\r\n', 'invalid Host header')
reject(400, 'host-ipv6-unclosed', 'GET / HTTP/1.1\r\nHost: [::1\r\n\r\n', 'invalid Host header')
reject(400, 'host-ipv6-unbracketed', 'GET / HTTP/1.1\r\nHost: ::1\r\n\r\n', 'invalid Host header')
reject(400, 'host-ipv6-invalid', 'GET / HTTP/1.1\r\nHost: [::g]:80\r\n\r\n', 'invalid Host header')
reject(400, 'host-ipv6-junk-after-bracket', 'GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n', 'invalid Host header')
reject(400, 'host-bad-percent-encoding', 'GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n', 'invalid Host header')
reject(400, 'host-with-tab', 'GET / HTTP/1.1\r\nHost: example.com\tevil.example\r\n\r\n', 'invalid Host header')
reject(400, 'host-control-byte', 'GET / HTTP/1.1\r\nHost: example.com\x01\r\n\r\n', 'control character in header value')
reject(400, 'host-non-ascii', 'GET / HTTP/1.1\r\nHost: caf\xc3\xa9.example\r\n\r\n', 'invalid Host header')
reject(400, 'host-duplicate', 'GET / HTTP/1.1\r\nHost: example.com\r\nHost: evil.example\r\n\r\n', 'more than one Host header')
reject(400, 'host-duplicate-same', 'GET / HTTP/1.1\r\nHost: example.com\r\nHost: example.com\r\n\r\n', 'more than one Host header')
reject(400, 'host-with-path', 'GET / HTTP/1.1\r\nHost: example.com/evil\r\n\r\n', 'invalid Host header')
reject(400, 'host-with-space', 'GET / HTTP/1.1\r\nHost: example.com evil.example\r\n\r\n', 'invalid Host header')
reject(400, 'host-with-userinfo', 'GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n', 'invalid Host header')
reject(400, 'host-with-userinfo-password', 'GET / HTTP/1.1\r\nHost: user:pw@example.com:80\r\n\r\n', 'invalid Host header')
reject(400, 'host-invalid-in-http10', 'GET / HTTP/1.0\r\nHost: example.com evil.example\r\n\r\n', 'invalid Host header')
reject(400, 'content-type-duplicate', POST + 'Content-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}', 'more than one Content-Type header')
# --- request targets
# RFC 9112 3.2.2: the target's authority wins over Host (which must still be there and valid).
accept('absolute-form', 'GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: ignored.example\r\n\r\n',
       [req(target='http://example.com:8080/a/b?c=d', path='/a/b', query='c=d', effective_host='example.com:8080')])
accept('absolute-form-ipv6', 'GET http://[::1]:8000/a HTTP/1.1\r\nHost: example.com\r\n\r\n',
       [req(target='http://[::1]:8000/a', path='/a', effective_host='[::1]:8000')])
accept('absolute-form-http10-without-host', 'GET http://example.com/a HTTP/1.0\r\n\r\n',
       [req(target='http://example.com/a', path='/a', version='HTTP/1.0', keep_alive=False, headers=[], effective_host='example.com')], end='closed')
reject(400, 'absolute-form-without-host', 'GET http://example.com/a HTTP/1.1\r\n\r\n', 'missing Host header')
reject(400, 'absolute-form-invalid-host', 'GET http://example.com/a HTTP/1.1\r\nHost: exa mple.com\r\n\r\n', 'invalid Host header')
accept('absolute-form-https-uppercase-scheme', 'GET HTTPS://example.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n',
       [req(target='HTTPS://example.com/a', path='/a')])
accept('absolute-form-no-path', 'GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n',
       [req(target='http://example.com', path='/', effective_host='example.com')])
accept('absolute-form-query-no-path', 'GET http://example.com?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n',
       [req(target='http://example.com?x=1', path='/', query='x=1')])
reject(400, 'absolute-form-other-scheme', 'GET ftp://example.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid request target')
reject(400, 'absolute-form-empty-host', 'GET http:///a HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid authority')
reject(400, 'absolute-form-bad-authority', 'GET http://exa"mple.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid authority')
reject(400, 'absolute-form-port-without-host', 'GET http://:8080/a HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid authority')
reject(400, 'absolute-form-bad-port', 'GET http://example.com:8x/a HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid authority')
reject(400, 'absolute-form-ipv6-unclosed', 'GET http://[::1/a HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid authority')
reject(400, 'absolute-form-ipv6-unbracketed', 'GET http://::1/a HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid authority')
reject(400, 'absolute-form-percent-encoding', 'GET http://exa%zzmple.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid authority')
# RFC 9110 4.2.4: an http URI with userinfo is invalid.
reject(400, 'absolute-form-userinfo', 'GET http://user@example.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n', 'userinfo in absolute-form target')
reject(400, 'absolute-form-userinfo-password', 'GET http://user:pw@example.com:80/a HTTP/1.1\r\nHost: example.com\r\n\r\n', 'userinfo in absolute-form target')
reject(400, 'absolute-form-userinfo-empty', 'GET http://@example.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n', 'userinfo in absolute-form target')
accept('asterisk-form-options', 'OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n', [req('OPTIONS', '*', path='*')])
reject(400, 'asterisk-form-get', 'GET * HTTP/1.1\r\nHost: example.com\r\n\r\n', 'asterisk-form target outside OPTIONS')
reject(400, 'asterisk-form-with-path', 'OPTIONS *foo HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid request target')
reject(501, 'authority-form-connect', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 'CONNECT is not supported')
reject(400, 'authority-form-get', 'GET example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 'invalid request target')
reject(400, 'relative-target', 'GET foo/bar HTTP/1.1\r\nHost: example.com\r\n\r\n', 'invalid request target')
# RFC 9112 3.2: a request-target has no fragment.
reject(400, 'fragment-in-target', 'GET /a?b=c#frag HTTP/1.1\r\nHost: example.com\r\n\r\n', 'fragment in request target')
reject(400, 'fragment-empty', 'GET /a# HTTP/1.1\r\nHost: example.com\r\n\r\n', 'fragment in request target')
reject(400, 'fragment-only', 'GET # HTTP/1.1\r\nHost: example.com\r\n\r\n', 'fragment in request target')
reject(400, 'fragment-in-absolute-form', 'GET http://example.com/a#frag HTTP/1.1\r\nHost: example.com\r\n\r\n', 'fragment in request target')
reject(400, 'fragment-after-authority', 'GET http://example.com#frag HTTP/1.1\r\nHost: example.com\r\n\r\n', 'fragment in request target')
accept('fragment-percent-encoded', 'GET /a%23b?c=%23 HTTP/1.1\r\nHost: example.com\r\n\r\n', [req(target='/a%23b?c=%23', path='/a%23b', query='c=%23')])
accept('double-slash-and-encoded', 'GET //a/%2F/b?x=%20&y HTTP/1.1\r\nHost: example.com\r\n\r\n',
       [req(target='//a/%2F/b?x=%20&y', path='//a/%2F/b', query='x=%20&y')])
# --- connection handling, pipelining, expectations
accept('pipelined',
       'GET /first HTTP/1.1\r\n' + H + '\r\n'
       + 'POST /second HTTP/1.1\r\n' + H + 'Content-Length: 5\r\n\r\nhello'
       + 'POST /third HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'
       + 'GET /fourth HTTP/1.1\r\n' + H + 'Connection: close\r\n\r\n'
       + 'GET /never HTTP/1.1\r\n' + H + '\r\n',
       [req(target='/first'), req('POST', '/second', body_kind='length', body='hello'),
        req('POST', '/third', body_kind='chunked', body='abc'), req(target='/fourth', keep_alive=False)], end='closed')
accept('pipelined-with-empty-lines-between', 'POST /a HTTP/1.1\r\n' + H + 'Content-Length: 2\r\n\r\nok\r\n\r\nGET /b HTTP/1.1\r\n' + H + '\r\n',
       [req('POST', '/a', body_kind='length', body='ok'), req(target='/b')])
accept('http10-keep-alive', 'GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /c HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n',
       [req(target='/a', version='HTTP/1.0'), req(target='/b', version='HTTP/1.0'), req(target='/c', version='HTTP/1.0', keep_alive=False)], end='closed')
accept('http11-connection-close-token-list', 'GET / HTTP/1.1\r\n' + H + 'Connection: Upgrade, CLOSE\r\n\r\n', [req(keep_alive=False)], end='closed')
accept('expect-100-continue', POST + 'Expect: 100-Continue\r\nContent-Length: 5\r\n\r\nhello',
       [req('POST', '/upload', body_kind='length', body='hello', expect_continue=True)])
accept('expect-ignored-in-http10', 'POST /upload HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello',
       [req('POST', '/upload', version='HTTP/1.0', keep_alive=False, body_kind='length', body='hello')], end='closed')
reject(417, 'expect-unknown', POST + 'Expect: something-else\r\nContent-Length: 5\r\n\r\nhello', 'unsupported expectation')
incomplete('head-unfinished', 'GET / HTTP/1.1\r\nHost: example.com\r\n', 'request head')
incomplete('body-shorter-than-length', POST + 'Content-Length: 10\r\n\r\nhello', 'body shorter than Content-Length')
