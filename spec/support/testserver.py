#!/usr/bin/python3
"""HTTP(S) test server for cloudfetch's core specs (Python standard library only).

    /usr/bin/python3 spec/support/testserver.py --ready-file F [--tls-dir DIR]

Binds 127.0.0.1 on a free port, then writes one JSON line to F:
  url, alt_url (same server as http(s)://localhost:PORT, a second "host"),
  port, closed_url (nothing listens there), blackhole_url (a listener that
  never accepts: connects hang), and with --tls-dir: ca_file, wrong_ca_file.

Body bytes are deterministic: byte i of a body with seed s is
pattern(s)[i % 65521], where pattern(s) comes from a 64-bit LCG that
spec/support/fixtures.lua reproduces.  /meta gives hashlib digests of any body
or slice, so specs never need the code under test to compute expectations.

Body endpoints (/bytes, /chunked, /close, /short, /long, /stall, /slow, /file/NAME,
/flaky, /gzip, /headers) share these query parameters:
  n=N seed=S          body size and content (defaults 1024 and 1)
  ranges=0            no Accept-Ranges, Range ignored      etag=0|weak  lm=0
  change=1            a new entity (ETag, Last-Modified and content) per request
  chunked=1           Transfer-Encoding: chunked, odd chunk sizes
  delay=SECONDS       wait before the status line
  cut=K               send K body bytes, then close the connection
  rcut=K              the same, for 206 answers only
  rdrop=1             close range requests without any answer
  stall=SECONDS after=K  after K body bytes wait, then go on (then=close: close)
  extra=M             send M bytes beyond Content-Length (then close)
  rate=BYTES_PER_S    trickle the body
  sndbuf=BYTES        small socket send buffer (makes back-pressure visible)
  key=K faults=F      apply delay/cut/stall/extra/rate only to the first F
                      requests carrying key K (default: every request)
  cd=VALUE            Content-Disposition header (raw, percent-decoded as latin-1)
  set=Name:Value      extra response header; may repeat (repeats are sent as repeats)
  big=BYTES           an X-Big header that long
Other endpoints:
  /status/CODE?body=&ct=&retry_after=&set=Name:Value&cl=N|none
                      any status, body (default JSON), extra headers, and a
                      Content-Length that may lie (then the connection closes)
  /flaky?key=&fail=N&status=503&retry_after=   N failures per key, then a body
  /count?key=K        {"count": requests seen with key K, "sent": body bytes sent
                       by the last of them (so far), "inflight": requests with
                       key K being answered now, "max_inflight": the most at once}
  /meta?n=&seed=&first=&last=&gzip=1  {"size","sha1","sha256","md5"}
  /echo               JSON of the request: method, path, query, headers, body
  /redirect?to=URL&code=302&delay=S    /hops?n=K (K redirects, then 200 "done")
  /gzip?n=&seed=      gzip of the body, Content-Encoding: gzip
  /conn               {"conn": id of this TCP connection, "requests": n}
  /later?delay=S      returns {"url"} of a port that starts listening after S seconds
  /poison?n=5&extra=200&gap=0.05&hold=2
                      raw bytes: a 200 answer with Content-Length n and n body bytes,
                      then (after gap seconds, so in a separate TCP segment; gap=0: in
                      the same write) `extra` bytes nobody asked for; then the
                      connection stays open, unread, for hold seconds
Every request carrying key=K counts for /count.  Sleeps are bounded (<= 30 s);
the server exits by itself after --idle-exit seconds (300) without a connection.
"""
import argparse
import gzip
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PATTERN_LEN = 65521  # prime, so chunk boundaries never line up with it
MAX_SLEEP = 30.0
MAX_BODY = 64 * 1024 * 1024
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
MASK64 = (1 << 64) - 1

_patterns = {}
_patterns_lock = threading.Lock()


def pattern(seed):
    """PATTERN_LEN bytes from a 64-bit LCG; fixtures.lua computes the same."""
    with _patterns_lock:
        p = _patterns.get(seed)
        if p is None:
            x = (seed * 0x9E3779B97F4A7C15 + 1) & MASK64
            out = bytearray(PATTERN_LEN)
            for i in range(PATTERN_LEN):
                x = (x * 6364136223846793005 + 1442695040888963407) & MASK64
                out[i] = x >> 56
            p = bytes(out)
            _patterns[seed] = p
        return p


def body_slice(seed, start, end):
    """Bytes [start, end) of the body with this seed."""
    if end <= start:
        return b""
    p = pattern(seed)
    first = start // PATTERN_LEN
    last = (end + PATTERN_LEN - 1) // PATTERN_LEN
    data = p * (last - first)
    off = start - first * PATTERN_LEN
    return data[off:off + (end - start)]


class State:
    """Per-key counters shared by all handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.sent = {}
        self.inflight = {}
        self.max_inflight = {}
        self.conn_ids = 0

    def hit(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            self.sent[key] = 0
            return self.counts[key]

    def enter(self, key):
        with self.lock:
            n = self.inflight.get(key, 0) + 1
            self.inflight[key] = n
            self.max_inflight[key] = max(n, self.max_inflight.get(key, 0))

    def leave(self, key):
        with self.lock:
            self.inflight[key] = self.inflight.get(key, 1) - 1

    def add_sent(self, key, n):
        with self.lock:
            self.sent[key] = self.sent.get(key, 0) + n

    def get(self, key):
        with self.lock:
            return {"count": self.counts.get(key, 0), "sent": self.sent.get(key, 0),
                    "inflight": self.inflight.get(key, 0), "max_inflight": self.max_inflight.get(key, 0)}

    def next_conn(self):
        with self.lock:
            self.conn_ids += 1
            return self.conn_ids


STATE = State()


def num(q, name, default=None, kind=int):
    v = q.get(name)
    if v is None or v == "":
        return default
    return kind(v)


def clamp_sleep(s):
    if s and s > 0:
        time.sleep(min(float(s), MAX_SLEEP))


class Dropped(Exception):
    """The connection is to be closed at once (a fault, or the client left)."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloudfetch-testserver/1"
    quiet = True

    def log_message(self, fmt, *args):
        if not self.quiet:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, Nagle
        # and delayed ACKs add 40 ms to every answer on a reused connection.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.conn_id = STATE.next_conn()
        self.conn_requests = 0

    # ---- request plumbing -------------------------------------------------

    def read_request_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def parse(self):
        split = urlsplit(self.path)
        self.route = split.path
        self.raw_query = split.query
        # latin-1 keeps every byte of a percent-encoded value (cd=..., set=...).
        multi = parse_qs(split.query, keep_blank_values=True, encoding="latin-1")
        self.multi = multi
        self.q = {k: v[-1] for k, v in multi.items()}
        self.req_body = self.read_request_body()
        # /count only looks: it must not count itself.
        self.key = self.q.get("key") if self.route != "/count" else None
        self.attempt = STATE.hit(self.key) if self.key else 1
        faults = num(self.q, "faults")
        self.faulty = faults is None or self.attempt <= faults

    def do_GET(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def dispatch(self):
        self.conn_requests += 1
        self.entered = None
        try:
            self.route_request()
        finally:
            if self.entered:
                STATE.leave(self.entered)

    def route_request(self):
        self.entered = None
        try:
            self.parse()
            if self.key:
                STATE.enter(self.key)
                self.entered = self.key
            route = self.route
            if route == "/bytes" or route.startswith("/file/"):
                self.serve_body()
            elif route == "/chunked":
                self.serve_body(chunked=True)
            elif route == "/close":
                self.serve_body(cut=num(self.q, "after", 0))
            elif route == "/short":
                self.serve_body(cut=num(self.q, "send", 0))
            elif route == "/long":
                n = num(self.q, "n", 1024)
                self.serve_body(extra=max(0, num(self.q, "send", n) - n))
            elif route == "/stall":
                self.serve_body(stall=num(self.q, "seconds", 1.0, float))
            elif route == "/slow":
                self.serve_body(rate=num(self.q, "rate", 1024))
            elif route == "/headers":
                self.serve_body(default_n=0)
            elif route == "/gzip":
                self.serve_gzip()
            elif route.startswith("/status/"):
                self.serve_status(int(route[len("/status/"):]))
            elif route == "/flaky":
                self.serve_flaky()
            elif route == "/count":
                self.send_json(200, STATE.get(self.q.get("key", "")))
            elif route == "/meta":
                self.serve_meta()
            elif route == "/echo":
                self.serve_echo()
            elif route == "/redirect":
                clamp_sleep(num(self.q, "delay", 0, float))
                self.serve_redirect(self.q.get("to", "/bytes"), num(self.q, "code", 302))
            elif route == "/hops":
                n = num(self.q, "n", 1)
                if n > 0:
                    self.serve_redirect("/hops?n=%d" % (n - 1), 302)
                else:
                    self.send_small(200, b"done", "text/plain")
            elif route == "/conn":
                self.send_json(200, {"conn": self.conn_id, "requests": self.conn_requests})
            elif route == "/later":
                self.serve_later()
            elif route == "/poison":
                self.serve_poison()
            else:
                self.send_json(404, {"error": "no such endpoint", "path": route})
        except ValueError as e:
            self.send_json(400, {"error": "bad parameter: %s" % e})
        except (Dropped, BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True
            self.drop()

    def drop(self):
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- small answers ----------------------------------------------------

    def send_small(self, code, body, ctype, headers=(), content_length=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        # cl= lies about the length (hostile-server specs); "none" sends none
        if content_length != "none":
            self.send_header("Content-Length", content_length or str(len(body)))
        if content_length is not None:
            self.close_connection = True
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, code, obj, headers=()):
        self.send_small(code, json.dumps(obj).encode(), "application/json", headers)

    def serve_status(self, code):
        body = self.q.get("body")
        body = (body.encode("latin-1") if body is not None
                else json.dumps({"status": code}).encode())
        headers = []
        if self.q.get("retry_after"):
            headers.append(("Retry-After", self.q["retry_after"]))
        if self.q.get("location"):
            headers.append(("Location", self.q["location"]))
        for item in self.multi.get("set", []):
            name, _, value = item.partition(":")
            headers.append((name.strip(), value.strip()))
        self.send_small(code, body, self.q.get("ct", "application/json"), headers, self.q.get("cl"))

    def serve_flaky(self):
        fail = num(self.q, "fail", 1)
        if self.attempt <= fail:
            headers = []
            if self.q.get("retry_after"):
                headers.append(("Retry-After", self.q["retry_after"]))
            self.send_json(num(self.q, "status", 503),
                           {"error": "flaky", "attempt": self.attempt}, headers)
        else:
            self.serve_body(default_n=16)

    def serve_meta(self):
        n = num(self.q, "n", 1024)
        seed = num(self.q, "seed", 1)
        first = num(self.q, "first", 0)
        last = num(self.q, "last", n - 1)
        data = body_slice(seed, first, min(last, n - 1) + 1)
        if self.q.get("gzip") == "1":
            data = gzip.compress(data, mtime=0)
        self.send_json(200, {
            "size": len(data),
            "sha1": hashlib.sha1(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
            "md5": hashlib.md5(data).hexdigest(),
        })

    def serve_echo(self):
        headers = {}
        for name, value in self.headers.items():
            k = name.lower()
            headers[k] = headers[k] + ", " + value if k in headers else value
        query = {k: (v[0] if len(v) == 1 else v)
                 for k, v in parse_qs(self.raw_query, keep_blank_values=True).items()}
        self.send_json(200, {
            "method": self.command,
            "path": self.route,
            "raw_query": self.raw_query,
            "query": query,
            "headers": headers,
            "header_list": [[k, v] for k, v in self.headers.items()],
            "body": self.req_body.decode("utf-8", "replace"),
        })

    def serve_redirect(self, to, code):
        self.send_small(code, b"redirecting\n", "text/plain", [("Location", to)])

    def serve_later(self):
        delay = min(num(self.q, "delay", 0.5, float), MAX_SLEEP)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()

        def run():
            time.sleep(delay)
            srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
            srv.daemon_threads = True
            threading.Timer(15.0, srv.shutdown).start()
            srv.serve_forever(poll_interval=0.05)
            srv.server_close()

        threading.Thread(target=run, daemon=True).start()
        self.send_json(200, {"url": "http://127.0.0.1:%d" % port, "port": port})

    def serve_poison(self):
        n = num(self.q, "n", 5)
        extra = num(self.q, "extra", 200)
        gap = num(self.q, "gap", 0.05, float)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % n
        junk = (b"junk nobody asked for, not HTTP\r\n" * (extra // 32 + 1))[:extra]
        if gap > 0:
            self.wfile.write(head + b"x" * n)
            self.wfile.flush()
            clamp_sleep(gap)
            self.wfile.write(junk)
        else:
            self.wfile.write(head + b"x" * n + junk)
        self.wfile.flush()
        clamp_sleep(num(self.q, "hold", 2.0, float))
        raise Dropped()

    def serve_gzip(self):
        n = num(self.q, "n", 1024)
        data = gzip.compress(body_slice(num(self.q, "seed", 1), 0, n), mtime=0)
        self.send_small(200, data, "application/octet-stream",
                        [("Content-Encoding", "gzip")])

    # ---- the general body -------------------------------------------------

    def entity(self, n, seed):
        """(seed, etag, last_modified) of the entity this request sees."""
        if self.q.get("change") == "1":
            seed = seed * 1000 + self.attempt
        mode = self.q.get("etag", "1")
        etag = None
        if mode == "1":
            etag = '"s%d-n%d"' % (seed, n)
        elif mode == "weak":
            etag = 'W/"s%d-n%d"' % (seed, n)
        lm = None
        if self.q.get("lm", "1") == "1":
            lm = LAST_MODIFIED
            if self.q.get("change") == "1":
                lm = time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                   time.gmtime(1445412480 + self.attempt * 60))
        return seed, etag, lm

    def parse_range(self, n, etag, lm):
        """(first, last) for a satisfiable single range, "416", or None (whole body)."""
        value = self.headers.get("Range")
        if not value or not value.startswith("bytes=") or "," in value:
            return None
        if_range = self.headers.get("If-Range")
        if if_range and if_range != etag and if_range != lm:
            return None
        spec = value[len("bytes="):].strip()
        a, _, b = spec.partition("-")
        try:
            if a == "":
                suffix = int(b)
                if suffix <= 0:
                    return "416"
                return max(0, n - suffix), n - 1
            first = int(a)
            last = int(b) if b else n - 1
        except ValueError:
            return None
        if first >= n or last < first:
            return "416"
        return first, min(last, n - 1)

    def serve_body(self, default_n=1024, chunked=False, cut=None, extra=0, stall=None,
                   rate=None):
        q = self.q
        n = min(num(q, "n", default_n), MAX_BODY)
        seed, etag, lm = self.entity(n, num(q, "seed", 1))
        faulty = self.faulty
        chunked = chunked or q.get("chunked") == "1"
        if cut is None:
            cut = num(q, "cut")
        extra = extra or num(q, "extra", 0)
        if stall is None:
            stall = num(q, "stall", None, float)
        rate = rate or num(q, "rate")
        if not faulty:
            cut, extra, stall, rate = None, 0, None, None
        if faulty:
            clamp_sleep(num(q, "delay", 0, float))
        sndbuf = num(q, "sndbuf")
        if sndbuf:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)

        ranges = q.get("ranges", "1") == "1"
        rng = self.parse_range(n, etag, lm) if ranges else None
        if rng == "416":
            self.send_response(416)
            self.send_header("Content-Range", "bytes */%d" % n)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if rng:
            first, last = rng
            code = 206
        else:
            first, last = 0, n - 1
            code = 200
        length = last - first + 1
        if code == 206 and faulty and num(q, "rcut") is not None:
            cut = num(q, "rcut")  # resumes fail too, making no progress
        if code == 206 and faulty and q.get("rdrop") == "1":
            raise Dropped()  # a range request gets no answer at all

        self.send_response(code)
        self.send_header("Content-Type", q.get("ct", "application/octet-stream"))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        if code == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, n))
        if ranges:
            self.send_header("Accept-Ranges", "bytes")
        if etag:
            self.send_header("ETag", etag)
        if lm:
            self.send_header("Last-Modified", lm)
        if q.get("cd") is not None:
            self.send_header("Content-Disposition", q["cd"])
        for item in self.multi.get("set", []):
            name, _, value = item.partition(":")
            self.send_header(name.strip(), value.strip())
        if q.get("big"):
            self.send_header("X-Big", "b" * min(num(q, "big"), 1024 * 1024))
        self.end_headers()
        if self.command == "HEAD":
            return

        # Bytes to write: the body, cut short or extended by the faults.
        total = length + extra
        if cut is not None:
            total = min(total, cut)
        after = num(q, "after", 0) if stall else None
        self.write_body(seed, first, total, chunked, after, stall, rate)
        if cut is not None and cut < length:
            raise Dropped()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        if extra:
            raise Dropped()

    def write_body(self, seed, start, total, chunked, stall_after, stall, rate):
        sizes = (1, 7, 4093, 1000, 16411, 3, 65521, 2047)  # odd chunk sizes
        step = max(1, rate // 20) if rate else 65536
        written = 0
        turn = 0
        while True:
            if stall is not None and written == stall_after:
                clamp_sleep(stall)
                stall = None
                if self.q.get("then") == "close":
                    raise Dropped()
            if written >= total:
                break
            size = min(step, total - written)
            if chunked:
                size = min(size, sizes[turn % len(sizes)])
                turn += 1
            if stall is not None and written < stall_after:
                size = min(size, stall_after - written)
            data = body_slice(seed, start + written, start + written + size)
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
            written += size
            if self.key:
                STATE.add_sent(self.key, size)
            if rate:
                time.sleep(size / rate)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    tls_context = None

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so a
        # client that rejects our certificate cannot block the accept loop.
        if self.tls_context is not None:
            request.settimeout(10)
            try:
                request = self.tls_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
            request.settimeout(None)
        self.RequestHandlerClass(request, client_address, self)

    idle_exit = 300.0
    last_activity = time.monotonic()

    def handle_error(self, request, client_address):
        pass  # clients that hang up mid-answer are part of the tests

    def verify_request(self, request, client_address):
        self.last_activity = time.monotonic()
        return True

    def service_actions(self):
        # A safety net: a server whose spec died without stopping it goes away.
        if time.monotonic() - self.last_activity > self.idle_exit:
            raise KeyboardInterrupt


def run(cmd, cwd):
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def make_ca(tls_dir, name, cn):
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "3",
         "-subj", "/CN=" + cn,
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"], tls_dir)


def make_certs(tls_dir):
    """A CA, a server certificate for 127.0.0.1 and localhost, and an unrelated CA."""
    os.makedirs(tls_dir, exist_ok=True)
    make_ca(tls_dir, "ca", "cloudfetch test CA")
    make_ca(tls_dir, "wrong-ca", "cloudfetch unrelated CA")
    with open(os.path.join(tls_dir, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        tls_dir)
    run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "3",
         "-extfile", "server.ext", "-out", "server.pem"], tls_dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(tls_dir, "server.pem"), os.path.join(tls_dir, "server.key"))
    return ctx


def blackhole():
    """A listener whose accept queue is full: new connects hang (SYN dropped)."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except (BlockingIOError, OSError):
            pass
        fillers.append(s)
    time.sleep(0.05)
    return port, [lst] + fillers


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--tls-dir")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--idle-exit", type=float, default=300.0,
                    help="exit after this many seconds without a new connection")
    args = ap.parse_args()
    Handler.quiet = not args.verbose

    server = Server(("127.0.0.1", 0), Handler)
    server.idle_exit = args.idle_exit
    port = server.server_address[1]
    scheme = "http"
    info = {}
    if args.tls_dir:
        server.tls_context = make_certs(args.tls_dir)
        scheme = "https"
        info["ca_file"] = os.path.abspath(os.path.join(args.tls_dir, "ca.pem"))
        info["wrong_ca_file"] = os.path.abspath(os.path.join(args.tls_dir, "wrong-ca.pem"))
    hole_port, keep_alive = blackhole()
    info.update({
        "url": "%s://127.0.0.1:%d" % (scheme, port),
        "alt_url": "%s://localhost:%d" % (scheme, port),
        "port": port,
        "closed_url": "%s://127.0.0.1:%d" % (scheme, closed_port()),
        "blackhole_url": "%s://127.0.0.1:%d" % (scheme, hole_port),
    })
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(info) + "\n")
    os.replace(tmp, args.ready_file)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for s in keep_alive:
            s.close()


if __name__ == "__main__":
    main()
