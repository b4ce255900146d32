#!/usr/bin/env python3
"""Write the hand-made seed inputs of the fuzz targets into fuzz/corpus/<target>/ (run from the
repository root). The committed corpora are these seeds plus what fuzzing found, minimized with
-merge=1; rerunning this only rewrites the seed-*.bin files."""
import os

def ws(op, payload, fin=True):
    """A masked client frame with the all-zero masking key (payload unchanged)."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126, n >> 8, n & 255])
    else:
        head = bytes([b0, 0x80 | 127]) + n.to_bytes(8, 'big')
    return head + b'\0\0\0\0' + payload

UPGRADE = (b'GET /u HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
           b'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
GET = b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'

conn = {
    'get': (0x00, GET),
    'pipelined': (0x40, GET + b'GET /a?x=1 HTTP/1.1\r\n\r\n' + b'GET /d HTTP/1.1\r\n\r\n' + GET),
    'close-then-more': (0x00, b'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' + GET),
    'http10-then-more': (0x20, b'GET /healthz HTTP/1.0\r\n\r\nX'),
    'keepalive10': (0x00, b'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' + GET),
    'handler-close': (0x60, b'GET /c HTTP/1.1\r\n\r\n' + GET),
    'error-keepalive': (0x00, b'GET /e HTTP/1.1\r\n\r\n' + GET),
    'deferred': (0x20, b'GET /d HTTP/1.1\r\n\r\nGET /d HTTP/1.1\r\nConnection: close\r\n\r\nGET /x HTTP/1.1\r\n\r\n'),
    'big-slow-peer': (0x10 | 0x08, b'GET /b HTTP/1.1\r\n\r\n' * 3),
    'post-body': (0x00, b'POST /x HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}' + GET),
    'chunked': (0x40, b'POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' + GET),
    'body-too-big': (0x02, b'POST /x HTTP/1.1\r\nContent-Length: 100\r\n\r\n' + b'a' * 100 + GET),
    'headers-too-big': (0x01, b'GET /x HTTP/1.1\r\n' + b'X-A: ' + b'b' * 300 + b'\r\n\r\n' + GET),
    'bad-request': (0x00, b'GET /x HTTP/1.1\r\nBad Header: y\r\n\r\n' + GET),
    'garbage': (0x20, b'\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03'),
    'upgrade-frames': (0x00, UPGRADE + ws(1, 'hi') + ws(9, 'png') + ws(1, 'again') + ws(8, b'\x03\xe8bye')),
    'upgrade-split': (0x60, UPGRADE + ws(1, 'hello world') + ws(1, 'p-pause') + ws(1, 'after')),
    'upgrade-refused-more': (0x00, UPGRADE.replace(b'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n', b'') + GET),
    'upgrade-fragmented': (0x40, UPGRADE + ws(1, 'frag', fin=False) + ws(9, '') + ws(0, 'ment', fin=False) + ws(0, 'ed')),
    'upgrade-close-first': (0x00, UPGRADE + ws(1, 'close please') + ws(1, 'more') + ws(10, 'pong')),
    'upgrade-binary': (0x00, UPGRADE + ws(2, b'\x00\x01') + ws(1, 'x')),
    'upgrade-bad-utf8': (0x04, UPGRADE + ws(1, b'\xc3\x28') + ws(1, 'x')),
    'upgrade-too-big': (0x04, UPGRADE + ws(1, 'y' * 100)),
    'upgrade-big-echo-slowq': (0x18, UPGRADE + ws(1, 'big') * 4),
    'upgrade-unmasked': (0x00, UPGRADE + b'\x81\x02hi'),
    'upgrade-post': (0x00, b'POST /u HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 2\r\n\r\nabGET / HTTP/1.1\r\n\r\n'),
}

def write(target, name, data):
    d = os.path.join('fuzz', 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'seed-' + name + '.bin'), 'wb') as f:
        f.write(data)

for name, (mode, stream) in conn.items():
    write('fuzz_conn', name, bytes([mode, 0x12, 0x34]) + stream)

# ---- fuzz_jwt: byte 0 = mode ----
import base64, hashlib, hmac, json
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=')
def token(head, body, key=b'\x42' * 32):
    si = b64(head) + b'.' + b64(body)
    return si + b'.' + b64(hmac.new(key, si, hashlib.sha256).digest())
H = b'{"alg":"HS256","typ":"JWT","kid":"k1"}'
B = b'{"sub":"42","iat":1699999000,"exp":1700000900,"sid":7}'
jwt = {
    'wrong-key': b'\0' + token(H, B),
    'alg-none': b'\0' + b64(b'{"alg":"none","kid":"k1"}') + b'.' + b64(B) + b'.',
    'three-dots': b'\0' + token(H, B) + b'.x',
    'json-valid': b'\1' + H + b'\n' + B,
    'json-no-typ-old-key': b'\1' + b'{"kid":"old","alg":"HS256"}\n{"sub":"1","iat":1699990000,"exp":1700000001}',
    'json-expired': b'\1' + H + b'\n{"sub":"9","iat":1,"exp":2}',
    'json-dup': b'\1' + H + b'\n{"sub":"9","sub":"8","iat":1699999000,"exp":1700000900}',
    'json-extra-header': b'\1' + b'{"alg":"HS256","kid":"k1","x":1}\n' + B,
    'json-sub-int': b'\1' + H + b'\n{"sub":42,"iat":1699999000,"exp":1700000900}',
    'json-sid-neg': b'\1' + H + b'\n{"sub":"42","iat":1699999000,"exp":1700000900,"sid":-1}',
    'sign': b'\2' + bytes(range(1, 40)),
    'sign-max': b'\2' + b'\x7f' + b'\xff' * 7 + b'\0' * 8 + b'\0\0\0\0\0\0\1\0' + b'\x7f' + b'\xff' * 7 + b'\1' + bytes(range(0, 64)),
    'keyring': b'\3' + b'a:' + b'11' * 32 + b',b-2_:' + b'ab' * 32,
    'keyring-zero': b'\3' + b'a:' + b'00' * 32,
    'keyring-dup': b'\3' + b'a:' + b'11' * 32 + b',a:' + b'22' * 32,
    'keyring-five': b'\3' + b','.join(b'k%d:' % i + b'33' * 32 for i in range(5)),
}
for name, data in jwt.items():
    write('fuzz_jwt', name, data)

# ---- fuzz_config: a config file ----
config = {
    'basic': b'# chatd\nlisten = 127.0.0.1:8080\nthreads = 2\nrate-limits = off\n',
    'quoted': b'data_dir = "/var/lib/chatd"\nlog-level="debug"\n\n   # indented comment\n',
    'crlf': b'listen = 0.0.0.0:1\r\nmsg-rate = 5\r\n',
    'bad-int': b'threads = -1\n',
    'bad-bool': b'rate_limits = maybe\n',
    'unknown': b'nope = 1\n',
    'no-eq': b'listen\n',
    'long-comment': b'#' + b'x' * 1100 + b'listen = 6.6.6.6:1\n',
    'long-value': b'jwt-keys = ' + b'a' * 2000 + b'\n',
    'empty-value': b'listen =\nthreads = 0x10\n',
    'nul': b'listen = a\0b\n',
}
for name, data in config.items():
    write('fuzz_config', name, data)

# ---- fuzz_path: byte 0 = method (0 GET, 1 POST, 2 PATCH, 3 DELETE), byte 1 = value capacity ----
path = {
    'ws-token': b'\0\x3f/v1/ws?access_token=eyJhbGciOi.eyJzdWIi.c2ln&x=1',
    'history': b'\0\x20/v1/rooms/r_12/messages?before=100&limit=50&after=%31%32',
    'member-delete': b'\3\x10/v1/rooms/r_1/members/u_2?a=b+c%20d',
    'pct-edge': b'\0\x08/v1/users/u_9223372036854775807?limit=%&a=%4&a=%zz&=x&limit=1%00',
    'method': b'\2\x3f/v1/rooms/r_5?a=1&a=2',
    'empty-seg': b'\1\x3f/v1/rooms//messages?',
    'long-id': b'\0\x3f/v1/users/u_00000000000000000000001?limit=99999999999999999999999',
}
for name, data in path.items():
    write('fuzz_path', name, data)
