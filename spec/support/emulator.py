#!/usr/bin/python3
"""Local stand-in for the Backblaze B2 native API and the Acronis Notary API v2.

One HTTP/1.1 server (keep-alive, optional TLS) on 127.0.0.1 speaks both services plus a
control interface under /_emu/ for tests (seed data, expire tokens, inject faults).
Standard library only.  README.md (section "The local service emulator") has the behaviour
and the choices made where the public documentation is silent.

    /usr/bin/python3 spec/support/emulator.py --ready-file F [--tls-dir DIR] [--seed-demo]
        [--b2-token-ttl SECONDS] [--notary-token-ttl SECONDS]
"""

import argparse
import base64
import bisect
import binascii
import datetime
import email.utils
import hashlib
import http.server
import json
import mimetypes
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import deque

# ---------------------------------------------------------------------------
# Constants and default credentials (CONTEXT.md)

B2_KEY_ID = "K000emulator"
B2_KEY = "emulator-secret-key"
B2_ACCOUNT_ID = "000emu0account"
NOTARY_LOGIN = "demo@example.com"
NOTARY_PASSWORD = "demo-password"
NOTARY_CLIENT_ID = "emulator-client"
NOTARY_CLIENT_SECRET = "emulator-client-secret"

ALL_CAPABILITIES = [
    "listKeys", "writeKeys", "deleteKeys", "listAllBucketNames", "listBuckets", "readBuckets",
    "writeBuckets", "deleteBuckets", "readBucketRetentions", "writeBucketRetentions",
    "readBucketEncryption", "writeBucketEncryption", "listFiles", "readFiles", "shareFiles",
    "writeFiles", "deleteFiles", "readFileLegalHolds", "writeFileLegalHolds",
    "readFileRetentions", "writeFileRetentions", "bypassGovernance",
]

RECOMMENDED_PART_SIZE = 100_000_000
ABSOLUTE_MINIMUM_PART_SIZE = 5_000_000
MAX_LIST_COUNT = 10000
DEFAULT_LIST_COUNT = 100
NOTARY_DEFAULT_LIMIT = 20
NOTARY_MAX_LIMIT = 100
NOTARY_MAX_UPLOAD = 1 << 30
CHUNK = 256 * 1024

# b2-* file info keys that become real response headers instead of X-Bz-Info-*.
B2_SPECIAL_INFO = {
    "b2-content-disposition": "Content-Disposition",
    "b2-content-language": "Content-Language",
    "b2-expires": "Expires",
    "b2-cache-control": "Cache-Control",
    "b2-content-encoding": "Content-Encoding",
    "b2-content-type": "Content-Type",
}
# Download query overrides -> (response header, file-info key).
B2_OVERRIDES = {
    "b2ContentDisposition": "Content-Disposition",
    "b2ContentLanguage": "Content-Language",
    "b2Expires": "Expires",
    "b2CacheControl": "Cache-Control",
    "b2ContentEncoding": "Content-Encoding",
    "b2ContentType": "Content-Type",
}

B2_DEFAULT_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "access_denied", 404: "not_found",
    405: "method_not_allowed", 408: "request_timeout", 409: "conflict",
    416: "range_not_satisfiable", 429: "too_many_requests", 500: "internal_error",
    502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout",
}

# Percent-encoding used by B2 for names and info values (b2.md §4.6).
B2_SAFE = "-._~!$'()*;=:@/"


def b2_encode(s):
    return urllib.parse.quote(s.encode("utf-8"), safe=B2_SAFE)


def b2_decode(s):
    return urllib.parse.unquote_plus(s, encoding="utf-8", errors="strict")


def now_ms():
    return int(time.time() * 1000)


def iso_time(t):
    dt = datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


# ---------------------------------------------------------------------------
# File contents.  A blob yields its bytes in chunks; big generated files are never stored.

class BytesBlob:
    def __init__(self, data):
        self.data = bytes(data)
        self.size = len(self.data)

    def chunks(self, start, end):
        view = memoryview(self.data)
        for pos in range(start, end, CHUNK):
            yield view[pos:min(pos + CHUNK, end)]


class FillBlob:
    def __init__(self, byte, size):
        self.block = bytes([byte]) * min(size, CHUNK)
        self.size = size

    def chunks(self, start, end):
        for pos in range(start, end, CHUNK):
            yield self.block[:min(CHUNK, end - pos)]


class RandomBlob:
    """Deterministic pseudo-random bytes without storing them.  One 1 MiB block comes from
    SHAKE-128(seed); block i is that block rotated by an i-dependent offset with a 32-byte
    stamp of (seed, i) in front, so every block differs and generating one is a memcpy."""
    BLOCK = 1 << 20

    def __init__(self, seed, size):
        self.seed = str(seed)
        self.size = size
        self.base = hashlib.shake_128(("base/" + self.seed).encode()).digest(self.BLOCK)

    def _block(self, i):
        k = (i * 104729 + 7) % self.BLOCK
        stamp = hashlib.sha256(("%s/%d" % (self.seed, i)).encode()).digest()
        return stamp + self.base[k + 32:] + self.base[:k] if k + 32 <= self.BLOCK else \
            stamp + self.base[32:]

    def chunks(self, start, end):
        pos = start
        while pos < end:
            i = pos // self.BLOCK
            block = memoryview(self._block(i))
            lo = pos - i * self.BLOCK
            hi = min(self.BLOCK, end - i * self.BLOCK)
            for p in range(lo, hi, CHUNK):
                yield block[p:min(p + CHUNK, hi)]
            pos = i * self.BLOCK + hi


def make_blob(spec):
    """Blob from a control request: data_b64 | data (text) | size + fill | size + random."""
    if spec.get("data_b64") is not None:
        return BytesBlob(base64.b64decode(spec["data_b64"], validate=True))
    if spec.get("data") is not None:
        return BytesBlob(str(spec["data"]).encode("utf-8"))
    size = spec.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError("give data_b64, data or a non-negative integer size")
    fill = spec.get("fill")
    if fill is not None:
        if isinstance(fill, str) and len(fill.encode("latin-1")) == 1:
            fill = fill.encode("latin-1")[0]
        if not isinstance(fill, int) or not 0 <= fill <= 255:
            raise ValueError("fill must be a byte value 0..255 or a one-character string")
        return FillBlob(fill, size)
    seed = spec.get("random", spec.get("name", "emulator"))
    blob = RandomBlob(seed, size)
    if size <= 64 << 20:   # small enough: keep the bytes, serving is faster
        return BytesBlob(b"".join(bytes(c) for c in blob.chunks(0, size)))
    return blob


def digests(blob, algs=("sha1", "md5", "sha256")):
    """(sha1, md5, sha256) hex of the blob; None for an algorithm not asked for."""
    hs = {a: hashlib.new(a) for a in algs}
    for c in blob.chunks(0, blob.size):
        for h in hs.values():
            h.update(c)
    return tuple(hs[a].hexdigest() if a in hs else None for a in ("sha1", "md5", "sha256"))


# ---------------------------------------------------------------------------
# State

class ApiError(Exception):
    """A service error answer: B2 JSON, Notary JSON/empty, or control JSON."""

    def __init__(self, status, body=None, headers=None):
        super().__init__(status)
        self.status = status
        self.body = body          # bytes, dict (-> JSON) or None (empty)
        self.headers = headers or []


def b2_error(status, code, message=""):
    return ApiError(status, {"status": status, "code": code, "message": message})


def notary_error(status, code="EBADREQUEST", message="", domain="StoredFiles"):
    if status == 400:
        return ApiError(400, {"domain": domain, "code": code, "debug": {"message": message}})
    if status == 404:
        return ApiError(404, {})
    return ApiError(status, None)


def control_error(status, message):
    return ApiError(status, {"error": message})


class B2File:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def content_sha1(self):
        if self.action in ("hide", "folder"):
            return None
        if self.large or self.action == "start":
            return "none"
        return ("unverified:" + self.sha1) if self.unverified else self.sha1

    def to_json(self, version, size_key=None):
        size_key = size_key or ("size" if version == "v1" else "contentLength")
        d = {
            "accountId": B2_ACCOUNT_ID,
            "action": self.action,
            "bucketId": self.bucket_id,
            size_key: self.size if self.action == "upload" else 0,
            "contentSha1": self.content_sha1(),
            "contentMd5": self.md5 if (self.action == "upload" and not self.large) else None,
            "contentType": self.content_type,
            "fileId": self.id,
            "fileInfo": dict(self.info),
            "fileName": self.name,
            "uploadTimestamp": self.upload_ts,
        }
        if self.action not in ("hide", "folder"):
            d["serverSideEncryption"] = {"algorithm": None, "mode": None}
            d["fileRetention"] = {"isClientAuthorizedToRead": True,
                                  "value": {"mode": None, "retainUntilTimestamp": None}}
            d["legalHold"] = {"isClientAuthorizedToRead": True, "value": None}
        return d


def folder_json(name, version):
    return {
        "accountId": B2_ACCOUNT_ID, "action": "folder", "bucketId": None,
        ("size" if version == "v1" else "contentLength"): 0,
        "contentSha1": None, "contentMd5": None, "contentType": None, "fileId": None,
        "fileInfo": {}, "fileName": name, "uploadTimestamp": 0,
    }


class State:
    def __init__(self, url, b2_ttl, notary_ttl):
        self.url = url
        self.b2_ttl = b2_ttl
        self.notary_ttl = notary_ttl
        self.lock = threading.RLock()
        self.run_tag = secrets.token_hex(3)   # keeps ids unique across resets and runs
        self.counter = 0
        self.last_ts = 0
        self.reset()

    # -- helpers
    def next_id(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def next_ts(self):
        with self.lock:
            self.last_ts = max(self.last_ts + 1, now_ms())
            return self.last_ts

    def reset(self):
        with self.lock:
            self.b2_keys = {B2_KEY_ID: {"key": B2_KEY, "capabilities": list(ALL_CAPABILITIES),
                                        "bucket_ids": None, "name_prefix": None, "master": True}}
            self.b2_tokens = {}
            self.buckets = {}          # id -> bucket dict
            self.files = {}            # id -> B2File
            self.files_gen = 0         # bumped on every change of files (listing caches)
            self.listing_cache = {}    # (kind, bucket id) -> (gen, files, name keys)
            self.notary_users = {}     # login -> {password, id}
            self.notary_files = {}     # id -> dict
            self.notary_tokens = {}    # access token -> {login, expires_at, expired}
            self.notary_refresh = {}   # refresh token -> login
            self.faults = []
            self.log = deque(maxlen=2000)
            self.add_notary_user(NOTARY_LOGIN, NOTARY_PASSWORD)

    # -- B2 model
    def add_b2_key(self, spec):
        key_id, key = spec.get("key_id"), spec.get("key")
        if not isinstance(key_id, str) or not key_id or not isinstance(key, str) or not key:
            raise control_error(400, "key_id and key are required strings")
        caps = spec.get("capabilities", ALL_CAPABILITIES)
        bucket_ids = spec.get("bucket_ids")
        if not isinstance(caps, list) or (bucket_ids is not None and not isinstance(bucket_ids, list)):
            raise control_error(400, "capabilities must be a list, bucket_ids a list or null")
        prefix = spec.get("name_prefix")
        with self.lock:
            self.b2_keys[key_id] = {"key": key, "capabilities": list(caps),
                                    "bucket_ids": list(bucket_ids) if bucket_ids else None,
                                    "name_prefix": prefix or None, "master": False}
        return {"key_id": key_id, "capabilities": caps, "bucket_ids": bucket_ids,
                "name_prefix": prefix}

    def add_bucket(self, name, btype="allPrivate", info=None):
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9-]{6,50}", name) \
                or name.lower().startswith("b2-"):
            raise b2_error(400, "bad_request", "Invalid bucketName: must be 6-50 letters, digits or '-'")
        if btype not in ("allPublic", "allPrivate", "snapshot", "restricted", "shared"):
            raise b2_error(400, "bad_request", "Invalid bucketType")
        with self.lock:
            if any(b["bucketName"] == name for b in self.buckets.values()):
                raise b2_error(400, "duplicate_bucket_name", "Bucket name is already in use.")
            bid = "e%s%017x" % (self.run_tag, self.next_id())
            b = {
                "accountId": B2_ACCOUNT_ID, "bucketId": bid, "bucketName": name,
                "bucketType": btype, "bucketInfo": dict(info or {}), "corsRules": [],
                "lifecycleRules": [], "revision": 1, "options": ["s3"],
                "defaultServerSideEncryption": {"isClientAuthorizedToRead": True,
                                                "value": {"algorithm": None, "mode": None}},
                "fileLockConfiguration": {"isClientAuthorizedToRead": True,
                                          "value": {"defaultRetention": {"mode": None, "period": None},
                                                    "isFileLockEnabled": False}},
                "replicationConfiguration": {"isClientAuthorizedToRead": True, "value": None},
            }
            self.buckets[bid] = b
            return b

    def bucket_by_name(self, name):
        with self.lock:
            for b in self.buckets.values():
                if b["bucketName"] == name:
                    return b
        return None

    def new_file_id(self, bucket_id):
        n = self.next_id()
        stamp = time.strftime("d%Y%m%d_m%H%M%S", time.gmtime())
        return "4_z%s_f1%s%09x_%s_c000_v0001000_t%04d" % (bucket_id, self.run_tag, n, stamp, n % 10000)

    def add_b2_file(self, bucket_id, name, blob, content_type="application/octet-stream", info=None,
                    large=False, large_file_sha1=False, unverified=False, sums=None, action="upload"):
        sha1, md5, sha256 = sums or digests(blob, ("sha1",) if large else ("sha1", "md5"))
        info = {str(k).lower(): str(v) for k, v in (info or {}).items()}
        if large and large_file_sha1:
            info["large_file_sha1"] = sha1
        f = B2File(id=self.new_file_id(bucket_id), bucket_id=bucket_id, name=name, action=action,
                   blob=blob, size=blob.size if blob else 0, sha1=sha1, md5=md5, sha256=sha256,
                   content_type=content_type, info=info, upload_ts=self.next_ts(),
                   large=bool(large), unverified=bool(unverified), parts={})
        with self.lock:
            self.files[f.id] = f
            self.files_gen += 1
        return f

    def files_changed(self):
        with self.lock:
            self.files_gen += 1

    def cached(self, kind, bucket_id, build):
        """A sorted listing and its name keys (UTF-8 bytes), rebuilt only after a change,
        so paging through a bucket of 100,000 names stays fast."""
        with self.lock:
            gen = self.files_gen
            hit = self.listing_cache.get((kind, bucket_id))
        if hit and hit[0] == gen:
            return hit[1], hit[2]
        fs = build()
        keys = [f.name.encode("utf-8") for f in fs]
        with self.lock:
            self.listing_cache[(kind, bucket_id)] = (gen, fs, keys)
        return fs, keys

    def versions(self, bucket_id, with_keys=False):
        """All versions in a bucket: by name (UTF-8 byte order), newest first."""
        def build():
            with self.lock:
                fs = [f for f in self.files.values() if f.bucket_id == bucket_id]
            fs.sort(key=lambda f: (f.name.encode("utf-8"), -f.upload_ts, f.id))
            return fs
        fs, keys = self.cached("versions", bucket_id, build)
        return (fs, keys) if with_keys else fs

    def latest_visible(self, bucket_id, with_keys=False):
        def build():
            out, seen = [], set()
            for f in self.versions(bucket_id):
                if f.action == "start":
                    continue
                if f.name in seen:
                    continue
                seen.add(f.name)
                if f.action == "upload":
                    out.append(f)
            return out
        fs, keys = self.cached("latest", bucket_id, build)
        return (fs, keys) if with_keys else fs

    def new_b2_token(self, kind, ttl, **extra):
        token = "4_%s_%s" % (self.run_tag, secrets.token_hex(24))
        with self.lock:
            self.b2_tokens[token] = dict(kind=kind, expires_at=time.time() + ttl, expired=False, **extra)
        return token

    # -- Notary model
    def add_notary_user(self, login, password):
        if not isinstance(login, str) or not login or not isinstance(password, str):
            raise control_error(400, "login and password are required strings")
        with self.lock:
            user = self.notary_users.get(login)
            if user:
                user["password"] = password
            else:
                user = {"password": password, "id": 1000 + len(self.notary_users)}
                self.notary_users[login] = user
        return {"login": login, "id": user["id"]}

    def add_notary_file(self, login, name, blob, content_type="application/octet-stream"):
        if login not in self.notary_users:
            raise control_error(400, "unknown notary user")
        if not isinstance(name, str) or not name:
            raise control_error(400, "name is required")
        _, _, sha256 = digests(blob, ("sha256",))
        fid = str(uuid.uuid4())
        cert_id = hashlib.sha256(("certificate:" + fid).encode()).hexdigest()
        sibling = hashlib.sha256(("sibling:" + fid).encode()).hexdigest()
        # A one-step Merkle proof that really verifies: root = sha256(eTag || sibling).
        root = hashlib.sha256(bytes.fromhex(sha256) + bytes.fromhex(sibling)).hexdigest()
        t = time.time()
        with self.lock:
            seq = self.next_id()
        record = {
            "id": fid, "owner": login, "name": name, "blob": blob, "sha256": sha256,
            "content_type": content_type, "created": t, "seq": seq,
            "certificate": {
                "id": cert_id,
                "contract": "0x" + hashlib.sha256(b"contract").hexdigest()[:40],
                "blockchain": "eth",
                "sender": "0x" + hashlib.sha256(b"sender").hexdigest()[:40],
                "txid": "0x" + hashlib.sha256(("tx:" + fid).encode()).hexdigest(),
                "timestamp": int(t),
                "merkle_root": root,
                "merkle_proof": json.dumps([{"right": sibling}]),
                "object": {"eTag": sha256, "key": name, "sequencer": "%016X" % seq,
                           "size": blob.size},
            },
        }
        with self.lock:
            self.notary_files[fid] = record
        return record

    @staticmethod
    def notary_file_json(rec):
        return {
            "id": rec["id"], "name": rec["name"], "size": rec["blob"].size,
            "content_type": rec["content_type"], "status": "notarized",
            "created_at": iso_time(rec["created"]),
            "certificate_id": rec["certificate"]["id"],
            "certificate": json.loads(json.dumps(rec["certificate"])),
        }

    # -- Faults and log
    def take_fault(self, method, target, path):
        """The first live fault whose `path` is a substring of the request target
        (path and query, raw) or of the decoded path; it is used up by one."""
        with self.lock:
            for f in self.faults:
                if f["remaining"] <= 0:
                    continue
                if f.get("method") and f["method"].upper() != method:
                    continue
                if f["path"] in target or f["path"] in path:
                    f["remaining"] -= 1
                    return f
        return None


# ---------------------------------------------------------------------------
# Demo seed data

def seed_demo(state):
    b = state.add_bucket("demo-bucket", "allPrivate")
    hello = BytesBlob(b"Hello from the cloudfetch emulator!\nThis is hello.txt in demo-bucket.\n")
    csv = BytesBlob("jour,température,ville\n2026-07-01,28.5,Zürich\n2026-07-02,31.0,Paris\n"
                    "2026-07-03,26.2,Kraków\n".encode("utf-8"))
    big = make_blob({"size": 24 * 1024 * 1024, "random": "demo-archive"})
    files = [
        state.add_b2_file(b["bucketId"], "hello.txt", hello, "text/plain",
                          {"src_last_modified_millis": "1767225600000"}),
        state.add_b2_file(b["bucketId"], "données/été 2026.csv", csv, "text/csv",
                          {"b2-content-disposition":
                           "attachment; filename=\"ete 2026.csv\"; filename*=UTF-8''%C3%A9t%C3%A9%202026.csv",
                           "author": "émulateur"}),
        state.add_b2_file(b["bucketId"], "big/archive.bin", big, "application/octet-stream",
                          large=True, large_file_sha1=True),
    ]
    lorem = BytesBlob((b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
                       b"tempor incididunt ut labore et dolore magna aliqua.\n") * 3)
    notary = [
        state.add_notary_file(NOTARY_LOGIN, "lorem_ipsum.txt", lorem, "text/plain"),
        state.add_notary_file(NOTARY_LOGIN, "Übersicht März 2026.txt",
                              BytesBlob("Übersicht für März: alles notariell beglaubigt.\n".encode()),
                              "text/plain"),
        state.add_notary_file(NOTARY_LOGIN, "contract-scan.bin",
                              make_blob({"size": 300_000, "random": "demo-contract"})),
    ]
    return {
        "b2": {"bucket": "demo-bucket", "bucket_id": b["bucketId"],
               "files": [{"name": f.name, "id": f.id, "size": f.size, "sha1": f.sha1} for f in files]},
        "notary": {"login": NOTARY_LOGIN,
                   "files": [{"name": r["name"], "id": r["id"], "size": r["blob"].size,
                              "sha256": r["sha256"]} for r in notary]},
    }


# ---------------------------------------------------------------------------
# HTTP plumbing

class Response:
    def __init__(self, status, headers=None, body=b"", blob=None, start=0, end=0):
        self.status = status
        self.headers = list(headers or [])
        self.body = body        # bytes, or None with blob
        self.blob = blob
        self.start, self.end = start, end


def json_response(status, obj, headers=None):
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    return Response(status, [("Content-Type", "application/json;charset=utf-8")] + list(headers or []), body)


def error_response(err):
    if isinstance(err.body, dict):
        return json_response(err.status, err.body, err.headers)
    return Response(err.status, err.headers, err.body or b"")


def header_value(value):
    """Header values go on the wire as UTF-8 bytes; CR/LF/NUL never do."""
    return re.sub(r"[\r\n\0]", "", str(value)).encode("utf-8")


def parse_range(value, size):
    """None for no/invalid Range (serve the whole file), 'unsatisfiable', or (start, end_excl)."""
    if not value:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    first, last = m.group(1), m.group(2)
    if first == "":
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return (max(0, size - n), size)
    a = int(first)
    if last != "" and int(last) < a:
        return None
    if a >= size:
        return "unsatisfiable"
    b = size - 1 if last == "" else min(int(last), size - 1)
    return (a, b + 1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "cloudfetch-emulator/1.0"
    sys_version = ""
    timeout = 300   # idle keep-alive connections do not pin a thread forever

    # quiet by default; EMULATOR_VERBOSE=1 logs every request to stderr
    def log_message(self, fmt, *args):
        if os.environ.get("EMULATOR_VERBOSE"):
            line = re.sub(r"(?i)(authorization|password|client_secret)=[^&\s]*", r"\1=REDACTED", fmt % args)
            sys.stderr.write("emulator: " + line + "\n")

    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.settimeout(30)
            self.connection.do_handshake()
            self.connection.settimeout(self.timeout)

    @property
    def state(self):
        return self.server.state

    def do_GET(self):
        self.dispatch()

    do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    # -- request body
    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(n))
                self.rfile.readline(65537)
            return b"".join(parts)
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0:
            raise ValueError("negative Content-Length")
        buf = bytearray()
        while len(buf) < n:
            chunk = self.rfile.read(min(n - len(buf), 1 << 20))
            if not chunk:
                raise ConnectionError("request body cut short")
            buf += chunk
        return bytes(buf)

    def dispatch(self):
        split = urllib.parse.urlsplit(self.path)
        self.raw_path = split.path
        self.req_path = urllib.parse.unquote(split.path)
        self.raw_query = split.query
        self.query = {}
        for k, v in urllib.parse.parse_qsl(split.query, keep_blank_values=True):
            self.query.setdefault(k, v)
        try:
            self.body = self.read_body()
        except (ValueError, ConnectionError):
            self.close_connection = True
            self.send(Response(400, [("Connection", "close")], b"bad request body"), None)
            return
        fault = None
        if not self.raw_path.startswith("/_emu/"):
            fault = self.state.take_fault(self.command, self.path, self.req_path)
        try:
            if fault and fault.get("status") is not None:
                resp = self.fault_status(fault)
            else:
                resp = self.route()
        except ApiError as err:
            resp = error_response(err)
        except Exception as exc:   # a bug here must still answer, and be visible
            import traceback
            traceback.print_exc()
            resp = json_response(500, {"status": 500, "code": "internal_error",
                                       "message": "emulator bug: %s" % exc.__class__.__name__})
        self.send(resp, fault)

    def route(self):
        p = self.raw_path
        if p.startswith("/_emu/"):
            return self.server.control.handle(self)
        if p.startswith("/b2api/") or p.startswith("/file/"):
            return self.server.b2.handle(self)
        if p.startswith("/api/"):
            return self.server.notary.handle(self)
        raise ApiError(404, {"status": 404, "code": "not_found", "message": "no such endpoint"})

    def fault_status(self, f):
        status = int(f["status"])
        headers = []
        if f.get("retry_after") is not None:
            headers.append(("Retry-After", str(f["retry_after"])))
        if "body" in f and f["body"] is not None:
            body = f["body"]
            if isinstance(body, str):
                return Response(status, headers + [("Content-Type", "text/plain")], body.encode())
            return json_response(status, body, headers)
        if self.raw_path.startswith("/api/"):
            if status == 402:
                return json_response(status, {"message": "Quota limit reached",
                                              "quota": {"name": "notary_storage", "quota": 1000,
                                                        "overage": 100, "usage": 1100}}, headers)
            if status in (401, 403):
                return Response(status, headers, b"")
            if status == 404:
                return json_response(status, {}, headers)
            return json_response(status, {"domain": "Emulator", "code": "EFAULT",
                                          "debug": {"message": "injected fault"}}, headers)
        code = B2_DEFAULT_CODES.get(status, "emulated_error")
        return json_response(status, {"status": status, "code": code, "message": "injected fault"},
                             headers)

    # -- response writing, with faults applied
    def send(self, resp, fault):
        fault = fault or {}
        head = self.command == "HEAD"
        if resp.blob is not None:
            length = resp.end - resp.start
            source = resp.blob.chunks(resp.start, resp.end)
        else:
            body = resp.body or b""
            length = len(body)
            source = iter([memoryview(body)]) if body else iter(())
        headers = list(resp.headers)
        if fault.get("disposition") is not None:
            headers = [(k, v) for k, v in headers if k.lower() != "content-disposition"]
            headers.append(("Content-Disposition", fault["disposition"]))
        if fault.get("big_header"):
            headers.append(("X-Emu-Padding", "p" * int(fault["big_header"])))
        declared = length
        send_limit = None       # stop after this many body bytes, then close
        extra = 0               # bytes appended after the real body
        delta = int(fault.get("content_length_delta") or 0)
        if delta < 0:
            declared = max(0, length + delta)
            send_limit = declared
        elif delta > 0:
            declared = length + delta
            extra = delta
        if fault.get("cut_after") is not None:
            send_limit = min(int(fault["cut_after"]), declared)
        if send_limit is not None and not head:
            self.close_connection = True
        if resp.status in (204, 304) or (100 <= resp.status < 200):
            declared = None
        if self.close_connection:
            headers.append(("Connection", "close"))
        self.record(resp.status, fault)
        out = bytearray(b"HTTP/1.1 %d %s\r\n" % (resp.status, self.responses.get(resp.status, ("Status",))[0].encode()))
        out += b"Server: cloudfetch-emulator/1.0\r\nDate: " + email.utils.formatdate(usegmt=True).encode() + b"\r\n"
        for k, v in headers:
            out += k.encode() + b": " + header_value(v) + b"\r\n"
        if declared is not None:
            out += b"Content-Length: %d\r\n" % declared
        out += b"\r\n"
        try:
            self.wfile.write(out)
            if head or declared is None:
                return
            if fault.get("stall"):
                self.wfile.flush()
                time.sleep(float(fault["stall"]))
            self.write_body(source, fault, send_limit, extra)
            if send_limit is not None:
                self.wfile.flush()
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout, OSError):
            self.close_connection = True

    def write_body(self, source, fault, send_limit, extra):
        corrupt = fault.get("corrupt_at")
        corrupt = int(corrupt) if corrupt is not None else None
        rate = float(fault.get("trickle") or 0)
        pos = 0
        for chunk in source:
            if send_limit is not None and pos + len(chunk) > send_limit:
                chunk = chunk[:max(0, send_limit - pos)]
            if corrupt is not None and pos <= corrupt < pos + len(chunk):
                b = bytearray(chunk)
                b[corrupt - pos] ^= 0xFF
                chunk = b
            self.write_rate(chunk, rate)
            pos += len(chunk)
            if send_limit is not None and pos >= send_limit:
                return
        if extra:
            self.write_rate(b"\0" * extra, rate)

    def write_rate(self, chunk, rate):
        if not rate:
            self.wfile.write(chunk)
            return
        step = max(1, int(rate / 10))
        view = memoryview(chunk)
        for p in range(0, len(view), step):
            self.wfile.write(view[p:p + step])
            self.wfile.flush()
            time.sleep(len(view[p:p + step]) / rate)

    def record(self, status, fault):
        if self.raw_path.startswith("/_emu/"):
            return
        q = [(k, "REDACTED" if k.lower() in ("authorization", "password", "client_secret") else v)
             for k, v in urllib.parse.parse_qsl(self.raw_query, keep_blank_values=True)]
        entry = {"method": self.command, "path": self.raw_path,
                 "query": urllib.parse.urlencode(q), "status": status, "time": time.time()}
        if fault:
            entry["fault"] = fault["id"]
        with self.state.lock:
            self.state.log.append(entry)

    # -- helpers for the services
    def params(self):
        """B2 calls accept POST JSON or GET query parameters; JSON nulls mean 'not given'."""
        if self.command == "POST" and self.body.strip():
            try:
                data = json.loads(self.body)
            except ValueError:
                raise b2_error(400, "bad_request", "could not parse JSON body")
            if not isinstance(data, dict):
                raise b2_error(400, "bad_request", "JSON body must be an object")
            return {k: v for k, v in data.items() if v is not None}
        return dict(self.query)


# ---------------------------------------------------------------------------
# B2 native API

def int_param(params, name, default=None):
    v = params.get(name, default)
    if v is None:
        return None
    if isinstance(v, bool):
        raise b2_error(400, "bad_request", "%s must be an integer" % name)
    try:
        return int(v)
    except (TypeError, ValueError):
        raise b2_error(400, "bad_request", "%s must be an integer" % name)


class B2Api:
    def __init__(self, state):
        self.state = state

    def handle(self, h):
        if h.raw_path.startswith("/file/"):
            return self.download_by_name(h)
        m = re.fullmatch(r"/b2api/(v[1-4])/(b2_[a-z_]+)(/.*)?", h.raw_path)
        if not m:
            raise b2_error(404, "not_found", "no such API call")
        version, name, rest = m.group(1), m.group(2), m.group(3)
        if name == "b2_upload_file" and rest:
            return self.upload_file(h, version, rest)
        if name == "b2_upload_part" and rest:
            return self.upload_part(h, version, rest)
        fn = getattr(self, "api_" + name[3:], None)
        if fn is None or rest:
            raise b2_error(404, "not_found", "no such API call: %s" % name)
        if name == "b2_download_file_by_id":
            if h.command not in ("GET", "POST", "HEAD"):
                raise b2_error(405, "method_not_allowed", "use GET, HEAD or POST")
        elif h.command not in ("GET", "POST"):
            raise b2_error(405, "method_not_allowed", "use GET or POST")
        return fn(h, version)

    # -- authorization
    def token(self, h, kinds=("account",), value=None):
        tok = value if value is not None else h.headers.get("Authorization")
        if not tok:
            raise b2_error(401, "missing_auth_token", "Authorization token is missing")
        with self.state.lock:
            rec = self.state.b2_tokens.get(tok.strip())
        if rec is None or rec["kind"] not in kinds:
            raise b2_error(401, "bad_auth_token", "Invalid authorization token")
        if rec["expired"] or time.time() > rec["expires_at"]:
            raise b2_error(401, "expired_auth_token", "Authorization token has expired")
        if rec.get("key_id") is not None:
            with self.state.lock:
                key = self.state.b2_keys.get(rec["key_id"])
            if key is None:
                raise b2_error(401, "bad_auth_token", "Invalid authorization token")
            rec = dict(rec, key=key)
        return rec

    @staticmethod
    def need(rec, cap):
        if cap not in rec["key"]["capabilities"]:
            raise b2_error(401, "unauthorized", "key lacks the %s capability" % cap)

    @staticmethod
    def check_bucket(rec, bucket_id):
        allowed = rec["key"]["bucket_ids"]
        if allowed is not None and bucket_id not in allowed:
            raise b2_error(401, "unauthorized", "key is not allowed to access this bucket")

    @staticmethod
    def check_prefix(rec, name):
        prefix = rec["key"]["name_prefix"]
        if prefix and not name.startswith(prefix):
            raise b2_error(401, "unauthorized", "key is restricted to a file name prefix")

    def bucket(self, params, field="bucketId"):
        bid = params.get(field)
        if not isinstance(bid, str) or not bid:
            raise b2_error(400, "bad_request", "%s is required" % field)
        with self.state.lock:
            b = self.state.buckets.get(bid)
        if b is None:
            raise b2_error(400, "bad_bucket_id", "Invalid bucketId: %s" % bid)
        return b

    # -- calls
    def api_authorize_account(self, h, version):
        auth = h.headers.get("Authorization") or ""
        if not auth:
            raise b2_error(401, "missing_auth_token", "Authorization header is missing")
        m = re.fullmatch(r"(?i)basic\s+(\S+)", auth.strip())
        try:
            key_id, _, key = base64.b64decode(m.group(1), validate=True).decode("utf-8").partition(":")
        except (AttributeError, ValueError, binascii.Error, UnicodeDecodeError):
            raise b2_error(401, "bad_auth_token", "Authorization header must be Basic")
        with self.state.lock:
            rec = self.state.b2_keys.get(key_id)
            if rec is None and key_id == B2_ACCOUNT_ID:
                key_id, rec = B2_KEY_ID, self.state.b2_keys.get(B2_KEY_ID)
        if rec is None or not secrets.compare_digest(rec["key"].encode(), key.encode()):
            raise ApiError(401, {"status": 401, "code": "bad_auth_token", "message": ""},
                           [("WWW-Authenticate", 'BASIC realm="authorize_account"')])
        bucket_ids = rec["bucket_ids"]
        if bucket_ids and len(bucket_ids) > 1 and version != "v4":
            raise b2_error(401, "unsupported",
                           "this key covers several buckets; use b2_authorize_account v4")
        token = self.state.new_b2_token("account", self.state.b2_ttl, key_id=key_id)
        url = self.state.url
        with self.state.lock:
            names = {bid: (self.state.buckets.get(bid) or {}).get("bucketName")
                     for bid in (bucket_ids or [])}
        caps = list(rec["capabilities"])
        prefix = rec["name_prefix"]
        one_id = bucket_ids[0] if bucket_ids else None
        if version in ("v1", "v2"):
            body = {
                "absoluteMinimumPartSize": ABSOLUTE_MINIMUM_PART_SIZE,
                "accountId": B2_ACCOUNT_ID,
                "allowed": {"bucketId": one_id, "bucketName": names.get(one_id),
                            "capabilities": caps, "namePrefix": prefix},
                "apiUrl": url, "authorizationToken": token, "downloadUrl": url,
                "recommendedPartSize": RECOMMENDED_PART_SIZE, "s3ApiUrl": url,
            }
            if version == "v1":
                body["minimumPartSize"] = RECOMMENDED_PART_SIZE
            return json_response(200, body)
        storage = {
            "absoluteMinimumPartSize": ABSOLUTE_MINIMUM_PART_SIZE,
            "apiUrl": url, "downloadUrl": url, "s3ApiUrl": url,
            "recommendedPartSize": RECOMMENDED_PART_SIZE,
        }
        if version == "v3":
            storage.update({"infoType": "storageApi", "bucketId": one_id,
                            "bucketName": names.get(one_id), "namePrefix": prefix,
                            "capabilities": caps})
        else:
            storage["allowed"] = {
                "buckets": [{"id": bid, "name": names.get(bid)} for bid in bucket_ids]
                if bucket_ids else None,
                "capabilities": caps, "namePrefix": prefix}
        return json_response(200, {"accountId": B2_ACCOUNT_ID, "authorizationToken": token,
                                   "applicationKeyExpirationTimestamp": None,
                                   "apiInfo": {"storageApi": storage}})

    def api_list_buckets(self, h, version):
        rec = self.token(h)
        p = h.params()
        if not p.get("accountId"):
            raise b2_error(400, "bad_request", "accountId is required")
        if p["accountId"] != B2_ACCOUNT_ID:
            raise b2_error(401, "unauthorized", "accountId does not match the token")
        self.need(rec, "listBuckets")
        types = p.get("bucketTypes", ["allPublic", "allPrivate", "snapshot"])
        if isinstance(types, str):
            try:
                types = json.loads(types)
            except ValueError:
                types = [t for t in types.split(",") if t]
        known = {"all", "allPublic", "allPrivate", "snapshot", "restricted", "shared"}
        if not isinstance(types, list) or not types or any(t not in known for t in types) \
                or ("all" in types and len(types) > 1):
            raise b2_error(400, "bad_request", "invalid bucketTypes")
        bid, bname = p.get("bucketId"), p.get("bucketName")
        allowed = rec["key"]["bucket_ids"]
        if allowed is not None:
            if not bid and not bname:
                raise b2_error(401, "unauthorized", "a bucket-restricted key must name the bucket")
            target = bid or (self.state.bucket_by_name(bname) or {}).get("bucketId")
            if target not in allowed:
                raise b2_error(401, "unauthorized", "key is not allowed to list this bucket")
        with self.state.lock:
            buckets = sorted(self.state.buckets.values(), key=lambda b: b["bucketName"])
        out = [b for b in buckets
               if ("all" in types or b["bucketType"] in types)
               and (not bid or b["bucketId"] == bid) and (not bname or b["bucketName"] == bname)]
        return json_response(200, {"buckets": out})

    def api_create_bucket(self, h, version):
        rec = self.token(h)
        p = h.params()
        if p.get("accountId") != B2_ACCOUNT_ID:
            raise b2_error(400, "bad_request", "accountId is required and must match")
        self.need(rec, "writeBuckets")
        if rec["key"]["bucket_ids"] is not None:
            raise b2_error(401, "unauthorized", "a bucket-restricted key cannot create buckets")
        return json_response(200, self.state.add_bucket(p.get("bucketName"), p.get("bucketType"),
                                                        p.get("bucketInfo")))

    def list_params(self, h, versions):
        rec = self.token(h)
        p = h.params()
        self.need(rec, "listFiles")
        b = self.bucket(p)
        self.check_bucket(rec, b["bucketId"])
        count = int_param(p, "maxFileCount", 0)
        if count == 0:
            count = DEFAULT_LIST_COUNT
        if count < 0 or count > MAX_LIST_COUNT:
            raise b2_error(400, "out_of_range", "maxFileCount out of range: %d" % count)
        prefix = p.get("prefix") or ""
        key_prefix = rec["key"]["name_prefix"]
        if key_prefix and not prefix.startswith(key_prefix):
            raise b2_error(401, "unauthorized", "listing must use a prefix within the key's namePrefix")
        delimiter = p.get("delimiter") or None
        start = p.get("startFileName") or ""
        start_id = p.get("startFileId") or None
        if start_id and not start and versions:
            raise b2_error(400, "bad_request", "startFileId requires startFileName")
        return b, count, prefix, delimiter, start, start_id

    def collect(self, files, count, prefix, delimiter, start, version, start_id=None, keys=None):
        """Walk sorted versions, collapsing folders; returns (entries, next_name, next_id)."""
        entries, next_name, next_id = [], None, None
        last_folder = None
        skipping = start_id is not None
        first = 0
        if keys is not None:  # sorted by name bytes: jump to the first candidate
            first = bisect.bisect_left(keys, max(start.encode(), prefix.encode()))
        for i in range(first, len(files)):
            f = files[i]
            if not f.name.startswith(prefix) or f.name.encode() < start.encode():
                if keys is not None and f.name.encode() > prefix.encode() and not f.name.startswith(prefix):
                    break  # past the prefix: nothing further can match
                continue
            if skipping:
                if f.name == start and f.id != start_id:
                    continue
                skipping = False
            entry_name, entry = f.name, None
            if delimiter:
                i = f.name.find(delimiter, len(prefix))
                if i >= 0:
                    folder = f.name[:i + len(delimiter)]
                    if folder == last_folder:
                        continue
                    entry_name, entry = folder, folder_json(folder, version)
            if len(entries) >= count:
                next_name = entry_name
                next_id = None if entry is not None else f.id
                break
            if entry is not None:
                last_folder = entry_name
                entries.append(entry)
            else:
                entries.append(f.to_json(version))
        return entries, next_name, next_id

    def api_list_file_names(self, h, version):
        b, count, prefix, delimiter, start, _ = self.list_params(h, False)
        files, keys = self.state.latest_visible(b["bucketId"], with_keys=True)
        entries, next_name, _ = self.collect(files, count, prefix, delimiter, start, version, keys=keys)
        return json_response(200, {"files": entries, "nextFileName": next_name})

    def api_list_file_versions(self, h, version):
        b, count, prefix, delimiter, start, start_id = self.list_params(h, True)
        files, keys = self.state.versions(b["bucketId"], with_keys=True)
        entries, next_name, next_id = self.collect(files, count, prefix, delimiter, start, version,
                                                   start_id, keys=keys)
        return json_response(200, {"files": entries, "nextFileName": next_name, "nextFileId": next_id})

    def file_by_id(self, p):
        fid = p.get("fileId")
        if not isinstance(fid, str) or not fid:
            raise b2_error(400, "bad_request", "fileId is required")
        with self.state.lock:
            f = self.state.files.get(fid)
        if f is None:
            raise b2_error(404, "not_found", "file not present: %s" % fid)
        return f

    def api_get_file_info(self, h, version):
        rec = self.token(h)
        p = h.params()
        self.need(rec, "readFiles")
        f = self.file_by_id(p)
        self.check_bucket(rec, f.bucket_id)
        self.check_prefix(rec, f.name)
        if f.action == "start":
            raise b2_error(400, "bad_request", "file is an unfinished large file")
        return json_response(200, f.to_json(version, "contentLength"))

    def api_get_download_authorization(self, h, version):
        rec = self.token(h)
        p = h.params()
        self.need(rec, "shareFiles")
        b = self.bucket(p)
        self.check_bucket(rec, b["bucketId"])
        prefix = p.get("fileNamePrefix")
        if not isinstance(prefix, str):
            raise b2_error(400, "bad_request", "fileNamePrefix is required")
        self.check_prefix(rec, prefix)
        dur = int_param(p, "validDurationInSeconds")
        if dur is None or not 1 <= dur <= 604800:
            raise b2_error(400, "bad_request", "validDurationInSeconds must be 1..604800")
        overrides = {k: str(p[k]) for k in B2_OVERRIDES if p.get(k) is not None}
        token = self.state.new_b2_token("download", dur, bucket_id=b["bucketId"], prefix=prefix,
                                        overrides=overrides, key_id=None)
        return json_response(200, {"bucketId": b["bucketId"], "fileNamePrefix": prefix,
                                   "authorizationToken": token})

    def api_get_upload_url(self, h, version):
        rec = self.token(h)
        p = h.params()
        self.need(rec, "writeFiles")
        b = self.bucket(p)
        self.check_bucket(rec, b["bucketId"])
        token = self.state.new_b2_token("upload", self.state.b2_ttl, key_id=rec["key_id"],
                                        bucket_id=b["bucketId"])
        url = "%s/b2api/%s/b2_upload_file/%s/up%d" % (self.state.url, version, b["bucketId"],
                                                      self.state.next_id())
        return json_response(200, {"bucketId": b["bucketId"], "uploadUrl": url,
                                   "authorizationToken": token})

    def check_sha1(self, h, data):
        """Returns (stored data, unverified) after checking X-Bz-Content-Sha1."""
        given = (h.headers.get("X-Bz-Content-Sha1") or "").strip().lower()
        if not given:
            raise b2_error(400, "bad_request", "X-Bz-Content-Sha1 header is missing")
        if given == "hex_digits_at_end":
            data, given = data[:-40], data[-40:].decode("ascii", "replace").lower()
        if given == "do_not_verify":
            return data, True
        unverified = given.startswith("unverified:")
        if unverified:
            given = given[len("unverified:"):]
        if given != hashlib.sha1(data).hexdigest():
            raise b2_error(400, "bad_request", "Checksum did not match data received")
        return data, unverified

    def upload_file(self, h, version, rest):
        if h.command != "POST":
            raise b2_error(405, "method_not_allowed", "use POST")
        m = re.fullmatch(r"/([^/]+)/[^/]+", rest)
        rec = self.token(h, kinds=("upload",))
        if not m or m.group(1) != rec["bucket_id"]:
            raise b2_error(401, "unauthorized", "upload token does not match this upload URL")
        self.need(rec, "writeFiles")
        raw_name = h.headers.get("X-Bz-File-Name")
        if not raw_name:
            raise b2_error(400, "bad_request", "X-Bz-File-Name header is missing")
        try:
            name = b2_decode(raw_name)
        except UnicodeDecodeError:
            raise b2_error(400, "bad_request", "X-Bz-File-Name is not valid UTF-8")
        if len(name.encode()) > 1024 or any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise b2_error(400, "bad_request", "invalid file name")
        self.check_prefix(rec, name)
        data, unverified = self.check_sha1(h, h.body)
        info = {}
        for k, v in h.headers.items():
            if k.lower().startswith("x-bz-info-"):
                info[k[len("x-bz-info-"):].lower()] = b2_decode(v)
        ctype = h.headers.get("Content-Type") or "b2/x-auto"
        if ctype == "b2/x-auto":
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        f = self.state.add_b2_file(rec["bucket_id"], name, BytesBlob(data), ctype, info,
                                   unverified=unverified)
        return json_response(200, f.to_json(version, "contentLength"))

    # -- large files (enough for b2sdk and rclone)
    def writable_file_name(self, h):
        """Token with writeFiles, its bucket and a fileName the key may write."""
        rec = self.token(h)
        p = h.params()
        self.need(rec, "writeFiles")
        b = self.bucket(p)
        self.check_bucket(rec, b["bucketId"])
        name = p.get("fileName")
        if not isinstance(name, str) or not name:
            raise b2_error(400, "bad_request", "fileName is required")
        self.check_prefix(rec, name)
        return rec, p, b, name

    def unfinished_large_file(self, h):
        """Token with writeFiles and the unfinished large file named by fileId."""
        rec = self.token(h)
        p = h.params()
        self.need(rec, "writeFiles")
        f = self.file_by_id(p)
        if f.action != "start":
            raise b2_error(400, "bad_request", "not an unfinished large file")
        return rec, p, f

    def api_start_large_file(self, h, version):
        _, p, b, name = self.writable_file_name(h)
        ctype = p.get("contentType") or "b2/x-auto"
        if ctype == "b2/x-auto":
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        f = self.state.add_b2_file(b["bucketId"], name, None, ctype, p.get("fileInfo") or {},
                                   large=True, sums=(None, None, None), action="start")
        return json_response(200, f.to_json(version, "contentLength"))

    def api_get_upload_part_url(self, h, version):
        rec, p, f = self.unfinished_large_file(h)
        token = self.state.new_b2_token("upload", self.state.b2_ttl, key_id=rec["key_id"],
                                        bucket_id=f.bucket_id, large_file_id=f.id)
        url = "%s/b2api/%s/b2_upload_part/%s/up%d" % (self.state.url, version, f.id, self.state.next_id())
        return json_response(200, {"fileId": f.id, "uploadUrl": url, "authorizationToken": token})

    def upload_part(self, h, version, rest):
        if h.command != "POST":
            raise b2_error(405, "method_not_allowed", "use POST")
        m = re.fullmatch(r"/([^/]+)/[^/]+", rest)
        rec = self.token(h, kinds=("upload",))
        if not m or m.group(1) != rec.get("large_file_id"):
            raise b2_error(401, "unauthorized", "upload token does not match this upload URL")
        with self.state.lock:
            f = self.state.files.get(m.group(1))
        if f is None or f.action != "start":
            raise b2_error(400, "bad_request", "no such unfinished large file")
        n = int_param({"n": h.headers.get("X-Bz-Part-Number")}, "n")
        if n is None or not 1 <= n <= 10000:
            raise b2_error(400, "bad_request", "X-Bz-Part-Number must be 1..10000")
        data, _ = self.check_sha1(h, h.body)
        sha1 = hashlib.sha1(data).hexdigest()
        with self.state.lock:
            f.parts[n] = (data, sha1)
        return json_response(200, {"fileId": f.id, "partNumber": n, "contentLength": len(data),
                                   "contentSha1": sha1, "contentMd5": hashlib.md5(data).hexdigest(),
                                   "uploadTimestamp": now_ms(),
                                   "serverSideEncryption": {"algorithm": None, "mode": None}})

    def api_finish_large_file(self, h, version):
        _, p, f = self.unfinished_large_file(h)
        shas = p.get("partSha1Array")
        with self.state.lock:
            parts = [f.parts.get(i + 1) for i in range(len(shas or []))]
        if not shas or None in parts or len(parts) != len(f.parts) \
                or [s for _, s in parts] != [str(s).lower() for s in shas]:
            raise b2_error(400, "bad_request", "partSha1Array does not match the uploaded parts")
        if any(len(d) < ABSOLUTE_MINIMUM_PART_SIZE for d, _ in parts[:-1]):
            raise b2_error(400, "bad_request", "part smaller than absoluteMinimumPartSize")
        blob = BytesBlob(b"".join(d for d, _ in parts))
        f.sha1, f.md5, f.sha256 = digests(blob, ("sha1",))
        with self.state.lock:
            f.blob, f.size, f.parts, f.action = blob, blob.size, {}, "upload"
        self.state.files_changed()
        return json_response(200, f.to_json(version, "contentLength"))

    def api_cancel_large_file(self, h, version):
        _, _, f = self.unfinished_large_file(h)
        with self.state.lock:
            self.state.files.pop(f.id, None)
        self.state.files_changed()
        return json_response(200, {"fileId": f.id, "accountId": B2_ACCOUNT_ID,
                                   "bucketId": f.bucket_id, "fileName": f.name})

    def api_list_unfinished_large_files(self, h, version):
        rec = self.token(h)
        p = h.params()
        self.need(rec, "listFiles")
        b = self.bucket(p)
        self.check_bucket(rec, b["bucketId"])
        count = int_param(p, "maxFileCount", 0) or 100
        if not 1 <= count <= 100:
            raise b2_error(400, "out_of_range", "maxFileCount out of range: %d" % count)
        prefix = p.get("namePrefix") or ""
        files = [f for f in self.state.versions(b["bucketId"])
                 if f.action == "start" and f.name.startswith(prefix)]
        files.sort(key=lambda f: f.id)
        start = p.get("startFileId")
        if start:
            files = [f for f in files if f.id >= start]
        nxt = files[count].id if len(files) > count else None
        return json_response(200, {"files": [f.to_json(version, "contentLength") for f in files[:count]],
                                   "nextFileId": nxt})

    def api_list_parts(self, h, version):
        _, p, f = self.unfinished_large_file(h)
        start = int_param(p, "startPartNumber", 1) or 1
        count = int_param(p, "maxPartCount", 100) or 100
        with self.state.lock:
            nums = sorted(n for n in f.parts if n >= start)
            parts = [{"fileId": f.id, "partNumber": n, "contentLength": len(f.parts[n][0]),
                      "contentSha1": f.parts[n][1], "uploadTimestamp": f.upload_ts} for n in nums[:count]]
        return json_response(200, {"parts": parts,
                                   "nextPartNumber": nums[count] if len(nums) > count else None})

    def api_hide_file(self, h, version):
        _, _, b, name = self.writable_file_name(h)
        if not any(f.name == name for f in self.state.latest_visible(b["bucketId"])):
            raise b2_error(404, "not_found", "file not present: %s" % name)
        f = self.state.add_b2_file(b["bucketId"], name, None, "application/x-bz-hide-marker",
                                   sums=(None, None, None), action="hide")
        return json_response(200, f.to_json(version))

    def api_delete_file_version(self, h, version):
        rec = self.token(h)
        p = h.params()
        self.need(rec, "deleteFiles")
        f = self.file_by_id(p)
        self.check_bucket(rec, f.bucket_id)
        self.check_prefix(rec, f.name)
        if p.get("fileName") != f.name:
            raise b2_error(400, "bad_request", "fileName does not match fileId")
        with self.state.lock:
            self.state.files.pop(f.id, None)
        self.state.files_changed()
        return json_response(200, {"fileId": f.id, "fileName": f.name})

    # -- downloads
    def api_download_file_by_id(self, h, version):
        p = h.params() if h.command == "POST" else dict(h.query)
        f = None
        fid = p.get("fileId")
        if isinstance(fid, str) and fid:
            with self.state.lock:
                f = self.state.files.get(fid)
        elif not fid:
            raise b2_error(400, "bad_request", "fileId is required")
        if f is None or f.action != "upload":
            raise b2_error(404, "not_found", "file_state_none")
        return self.serve(h, f, by_name=False)

    def download_by_name(self, h):
        if h.command not in ("GET", "HEAD", "POST"):
            raise b2_error(405, "method_not_allowed", "use GET or HEAD")
        m = re.fullmatch(r"/file/([^/]+)/(.+)", h.raw_path)
        if not m:
            raise b2_error(404, "not_found", "no file name in the URL")
        try:
            name = b2_decode(m.group(2))
        except UnicodeDecodeError:
            raise b2_error(400, "bad_request", "file name is not valid UTF-8")
        b = self.state.bucket_by_name(urllib.parse.unquote(m.group(1)))
        if b is None:
            raise b2_error(404, "not_found", "bucket does not exist: %s" % m.group(1))
        f = None
        for v in self.state.versions(b["bucketId"]):
            if v.name == name and v.action != "start":
                f = v
                break
        if f is None or f.action != "upload":
            # Authorization is still checked first for private buckets, as B2 does not
            # reveal which names exist to anonymous callers.
            if b["bucketType"] != "allPublic":
                self.download_auth(h, b, name, by_name=True)
            raise b2_error(404, "not_found", "file_state_none" if f is None else "file_state_deleted")
        return self.serve(h, f, by_name=True)

    def download_auth(self, h, bucket, name, by_name):
        """Check the download's token; returns the request's header overrides."""
        overrides = {k: h.query[k] for k in B2_OVERRIDES if h.query.get(k) not in (None, "")}
        token = h.headers.get("Authorization")
        if token is None and by_name:
            token = h.query.get("Authorization")
        if not token:
            if overrides:
                raise b2_error(400, "bad_request", "b2* overrides require an authorization token")
            if bucket["bucketType"] == "allPublic":
                return overrides
            raise b2_error(400, "bad_request", "No Authorization header")
        kinds = ("account", "download") if by_name else ("account",)
        rec = self.token(h, kinds=kinds, value=token)
        if rec["kind"] == "download":
            if rec["bucket_id"] != bucket["bucketId"] or not name.startswith(rec["prefix"]):
                raise b2_error(401, "unauthorized", "download authorization does not cover this file")
            for k, v in rec["overrides"].items():
                if overrides.get(k) != v:
                    raise b2_error(401, "unauthorized", "%s must match the download authorization" % k)
            return overrides
        if bucket["bucketType"] != "allPublic":
            self.need(rec, "readFiles")
        self.check_bucket(rec, bucket["bucketId"])
        self.check_prefix(rec, name)
        return overrides

    def serve(self, h, f, by_name):
        with self.state.lock:
            bucket = self.state.buckets[f.bucket_id]
        overrides = self.download_auth(h, bucket, f.name, by_name)
        headers = [("Content-Type", f.content_type or "application/octet-stream"),
                   ("X-Bz-File-Id", f.id),
                   ("X-Bz-File-Name", b2_encode(f.name)),
                   ("X-Bz-Content-Sha1", f.content_sha1()),
                   ("X-Bz-Upload-Timestamp", str(f.upload_ts)),
                   ("Accept-Ranges", "bytes")]
        special = {}
        for k, v in f.info.items():
            if k in B2_SPECIAL_INFO:
                special[B2_SPECIAL_INFO[k]] = v
            else:
                headers.append(("X-Bz-Info-" + k, b2_encode(v)))
        if "Cache-Control" not in special:
            for k, v in bucket["bucketInfo"].items():
                if k.lower() == "cache-control":
                    special["Cache-Control"] = v
        for k, v in overrides.items():
            special[B2_OVERRIDES[k]] = v
        if "Content-Type" in special:
            headers[0] = ("Content-Type", special.pop("Content-Type"))
        headers += sorted(special.items())
        rng = parse_range(h.headers.get("Range"), f.size)
        if rng == "unsatisfiable":
            raise ApiError(416, {"status": 416, "code": "range_not_satisfiable",
                                 "message": "The Range header in the request is outside the size of the file."},
                           [("Content-Range", "bytes */%d" % f.size)])
        if rng is None:
            return Response(200, headers, None, blob=f.blob, start=0, end=f.size)
        a, b = rng
        headers.append(("Content-Range", "bytes %d-%d/%d" % (a, b - 1, f.size)))
        return Response(206, headers, None, blob=f.blob, start=a, end=b)


# ---------------------------------------------------------------------------
# Acronis account router, IdP token endpoint and Notary API v2

NOTARY_PREFIX = "/api/notary/v2"


class NotaryApi:
    def __init__(self, state):
        self.state = state

    def handle(self, h):
        p = h.raw_path
        if p == "/api/1/accounts":
            if h.command != "GET":
                raise ApiError(405, None)
            login = h.query.get("login", "")
            user = self.state.notary_users.get(login)
            return json_response(200, {"login": login, "id": user["id"] if user else 0,
                                       "server_url": self.state.url})
        if p == "/api/2/idp/token":
            return self.token_endpoint(h)
        if p == NOTARY_PREFIX + "/stored-files" or p.startswith(NOTARY_PREFIX + "/stored-files/"):
            return self.stored_files(h, p[len(NOTARY_PREFIX + "/stored-files"):])
        if p.startswith(NOTARY_PREFIX + "/"):
            self.user(h)
        raise ApiError(404, {})

    @staticmethod
    def oauth_error(status, error, description):
        return ApiError(status, {"error": error, "error_description": description})

    def token_endpoint(self, h):
        if h.command != "POST":
            raise ApiError(405, None)
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise self.oauth_error(400, "invalid_request",
                                   "Content-Type must be application/x-www-form-urlencoded")
        try:
            form = dict(urllib.parse.parse_qsl(h.body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise self.oauth_error(400, "invalid_request", "body is not UTF-8")
        grant = form.get("grant_type")
        st = self.state
        if not grant:
            raise self.oauth_error(400, "invalid_request", "grant_type is required")
        if grant == "password":
            if not form.get("username") or "password" not in form:
                raise self.oauth_error(400, "invalid_request", "username and password are required")
            user = st.notary_users.get(form["username"])
            if user is None or not secrets.compare_digest(user["password"].encode(),
                                                          form["password"].encode()):
                raise self.oauth_error(401, "access_denied", "invalid username or password")
            login = form["username"]
        elif grant == "client_credentials":
            cid, secret = self.client_auth(h, form)
            if cid is None:
                raise self.oauth_error(400, "invalid_request", "client authentication is required")
            if cid != NOTARY_CLIENT_ID or not secrets.compare_digest(secret.encode(),
                                                                     NOTARY_CLIENT_SECRET.encode()):
                raise self.oauth_error(401, "access_denied", "invalid client credentials")
            login = NOTARY_LOGIN   # the service client acts for the demo user's tenant
        elif grant == "refresh_token":
            if not form.get("refresh_token"):
                raise self.oauth_error(400, "invalid_request", "refresh_token is required")
            with st.lock:
                login = st.notary_refresh.get(form["refresh_token"])
            if login is None:
                raise self.oauth_error(401, "access_denied", "invalid refresh token")
        else:
            raise self.oauth_error(400, "invalid_request", "unsupported grant_type")
        token = secrets.token_hex(32)
        exp = time.time() + st.notary_ttl
        with st.lock:
            st.notary_tokens[token] = {"login": login, "expires_at": exp, "expired": False}
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        claims = json.dumps({"sub": login, "iss": st.url, "exp": int(exp)}).encode()
        body = {"access_token": token, "token_type": "bearer", "expires_in": st.notary_ttl,
                "expires_on": int(exp),
                "id_token": header + "." + base64.urlsafe_b64encode(claims).rstrip(b"=").decode() + "."}
        if "offline_access" in (form.get("scope") or "").split() or grant == "refresh_token":
            refresh = secrets.token_hex(32)
            with st.lock:
                st.notary_refresh[refresh] = login
            body["refresh_token"] = refresh
        return json_response(200, body, [("Cache-Control", "no-store")])

    @staticmethod
    def client_auth(h, form):
        auth = h.headers.get("Authorization") or ""
        m = re.fullmatch(r"(?i)basic\s+(\S+)", auth.strip())
        if m:
            try:
                cid, _, secret = base64.b64decode(m.group(1), validate=True).decode().partition(":")
                return urllib.parse.unquote(cid), urllib.parse.unquote(secret)
            except (ValueError, binascii.Error, UnicodeDecodeError):
                return None, None
        if form.get("client_id") and "client_secret" in form:
            return form["client_id"], form["client_secret"]
        return None, None

    def user(self, h):
        auth = h.headers.get("Authorization") or ""
        m = re.fullmatch(r"(?i)bearer\s+(\S+)", auth.strip())
        if not m:
            raise ApiError(401, None)
        with self.state.lock:
            rec = self.state.notary_tokens.get(m.group(1))
        if rec is None or rec["expired"] or time.time() > rec["expires_at"]:
            raise ApiError(401, None)
        return rec["login"]

    def own_file(self, login, fid):
        with self.state.lock:
            rec = self.state.notary_files.get(fid)
        if rec is None:
            raise ApiError(404, {})
        if rec["owner"] != login:
            raise ApiError(403, None)
        return rec

    def stored_files(self, h, rest):
        login = self.user(h)
        if rest in ("", "/"):
            if h.command == "GET":
                return self.list_files(h, login)
            if h.command == "POST":
                return self.upload(h, login)
            if h.command == "DELETE":
                return self.delete_many(h, login)
            raise ApiError(405, None)
        m = re.fullmatch(r"/([^/]+)(/download)?", rest)
        if not m:
            raise ApiError(404, {})
        fid, download = m.group(1), m.group(2)
        if download:
            if h.command not in ("GET", "HEAD"):
                raise ApiError(405, None)
            return self.download(h, self.own_file(login, fid))
        if h.command == "GET":
            return json_response(200, {"file": State.notary_file_json(self.own_file(login, fid))})
        if h.command == "DELETE":
            rec = self.own_file(login, fid)
            with self.state.lock:
                self.state.notary_files.pop(rec["id"], None)
            return Response(204)
        raise ApiError(405, None)

    def list_files(self, h, login):
        raw = h.query.get("limit", str(NOTARY_DEFAULT_LIMIT))
        try:
            limit = int(raw)
        except ValueError:
            raise notary_error(400, "EINVALIDPARAM", "limit must be an integer", "ListStoredFiles")
        if not 1 <= limit <= NOTARY_MAX_LIMIT:
            raise notary_error(400, "EINVALIDPARAM", "limit must be 1..%d" % NOTARY_MAX_LIMIT,
                               "ListStoredFiles")
        with self.state.lock:
            files = sorted((r for r in self.state.notary_files.values() if r["owner"] == login),
                           key=lambda r: r["seq"])
        start = 0
        after = h.query.get("after")
        if after:
            try:
                seq = int(base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode())
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise notary_error(400, "EINVALIDPARAM", "invalid cursor", "ListStoredFiles")
            start = next((i for i, r in enumerate(files) if r["seq"] > seq), len(files))
        page = files[start:start + limit]
        cursors = {}
        if start + limit < len(files):
            cursors["after"] = base64.urlsafe_b64encode(str(page[-1]["seq"]).encode()).rstrip(b"=").decode()
        return json_response(200, {"files": [State.notary_file_json(r) for r in page],
                                   "paging": {"cursors": cursors}})

    def download(self, h, rec):
        blob = rec["blob"]
        headers = [("Content-Type", rec["content_type"] or "application/octet-stream"),
                   ("Content-Disposition", content_disposition(rec["name"])),
                   ("Accept-Ranges", "bytes")]
        rng = parse_range(h.headers.get("Range"), blob.size)
        if rng == "unsatisfiable":
            raise ApiError(416, None, [("Content-Range", "bytes */%d" % blob.size)])
        if rng is None:
            return Response(200, headers, None, blob=blob, start=0, end=blob.size)
        a, b = rng
        headers.append(("Content-Range", "bytes %d-%d/%d" % (a, b - 1, blob.size)))
        return Response(206, headers, None, blob=blob, start=a, end=b)

    def upload(self, h, login):
        ctype = h.headers.get("Content-Type") or ""
        m = re.search(r'boundary="?([^";]+)"?', ctype)
        if not ctype.lower().startswith("multipart/form-data") or not m:
            raise notary_error(400, "EBADREQUEST", "multipart/form-data body expected", "StoredFiles")
        if len(h.body) > NOTARY_MAX_UPLOAD + 65536:
            raise ApiError(413, None)
        part = parse_multipart(h.body, m.group(1).encode(), "file")
        if part is None:
            raise notary_error(400, "EBADREQUEST", "multipart part 'file' is required", "StoredFiles")
        filename, pctype, data = part
        rec = self.state.add_notary_file(login, filename or "file", BytesBlob(data),
                                         pctype or "application/octet-stream")
        return json_response(201, {"file_id": rec["id"]})

    def delete_many(self, h, login):
        try:
            ids = json.loads(h.body or b"{}").get("file_ids")
        except (ValueError, AttributeError):
            ids = None
        if not isinstance(ids, list) or not ids:
            raise notary_error(400, "EBADREQUEST", "file_ids is required", "StoredFiles")
        recs = [self.own_file(login, str(i)) for i in ids]
        with self.state.lock:
            for r in recs:
                self.state.notary_files.pop(r["id"], None)
        return json_response(200, {})


TOKEN_CHARS = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def content_disposition(name):
    """The seed's form `attachment;filename=NAME`; quoted when NAME is not an HTTP token;
    non-ASCII names get an ASCII fallback plus filename*=UTF-8''."""
    try:
        name.encode("ascii")
        ascii_ok = True
    except UnicodeEncodeError:
        ascii_ok = False
    if ascii_ok:
        if TOKEN_CHARS.fullmatch(name):
            return "attachment;filename=" + name
        return 'attachment;filename="%s"' % name.replace("\\", "\\\\").replace('"', '\\"')
    fallback = "".join(c if ord(c) < 128 and c not in '"\\' else "_" for c in name)
    star = urllib.parse.quote(name.encode("utf-8"), safe="!#$&+-.^_`|~")
    return "attachment;filename=\"%s\";filename*=UTF-8''%s" % (fallback, star)


def parse_multipart(body, boundary, field):
    """Returns (filename, content type, data) of the named part, or None."""
    delim = b"--" + boundary
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        disp = headers.get("content-disposition", "")
        nm = re.search(r'(?:^|;)\s*name="([^"]*)"', disp)
        if not nm or nm.group(1) != field:
            continue
        fn = re.search(r"filename\*=UTF-8''([^;]+)", disp, re.I)
        if fn:
            filename = urllib.parse.unquote(fn.group(1))
        else:
            fn = re.search(r'filename="((?:[^"\\]|\\.)*)"', disp) or re.search(r"filename=([^;]+)", disp)
            filename = fn.group(1) if fn else None
        return filename, headers.get("content-type"), data
    return None


# ---------------------------------------------------------------------------
# Control interface /_emu/

class Control:
    def __init__(self, state, server):
        self.state = state
        self.server = server

    def handle(self, h):
        try:
            data = json.loads(h.body) if h.body.strip() else {}
        except ValueError:
            raise control_error(400, "body must be JSON")
        if not isinstance(data, dict):
            raise control_error(400, "body must be a JSON object")
        route = (h.command, h.raw_path.rstrip("/"))
        st = self.state
        if route == ("POST", "/_emu/reset"):
            st.reset()
            return json_response(200, {"ok": True})
        if route == ("POST", "/_emu/b2/keys"):
            return json_response(200, st.add_b2_key(data))
        if route == ("POST", "/_emu/b2/buckets"):
            try:
                b = st.add_bucket(data.get("name"), data.get("type") or "allPrivate",
                                  data.get("bucket_info"))
            except ApiError as e:
                raise control_error(400, e.body.get("message"))
            return json_response(200, b)
        if route == ("POST", "/_emu/b2/files"):
            return json_response(200, self.add_b2_file(data))
        if route == ("POST", "/_emu/b2/generate"):
            return json_response(200, self.generate_b2_files(data))
        if route == ("POST", "/_emu/b2/expire"):
            with st.lock:
                for t in st.b2_tokens.values():
                    t["expired"] = True
            return json_response(200, {"ok": True, "expired": len(st.b2_tokens)})
        if route == ("POST", "/_emu/notary/users"):
            return json_response(200, st.add_notary_user(data.get("login"), data.get("password")))
        if route == ("POST", "/_emu/notary/files"):
            login = data.get("login") or NOTARY_LOGIN
            try:
                blob = make_blob(data)
            except (ValueError, binascii.Error) as e:
                raise control_error(400, str(e))
            rec = st.add_notary_file(login, data.get("name"), blob,
                                     data.get("content_type") or "application/octet-stream")
            return json_response(200, dict(State.notary_file_json(rec), sha256=rec["sha256"]))
        if route == ("POST", "/_emu/notary/expire"):
            with st.lock:
                for t in st.notary_tokens.values():
                    t["expired"] = True
            return json_response(200, {"ok": True, "expired": len(st.notary_tokens)})
        if route == ("POST", "/_emu/faults"):
            return json_response(200, self.add_fault(data))
        if route == ("GET", "/_emu/faults"):
            with st.lock:
                return json_response(200, [dict(f) for f in st.faults if f["remaining"] > 0])
        if route == ("DELETE", "/_emu/faults"):
            with st.lock:
                st.faults = []
            return json_response(200, {"ok": True})
        if route == ("GET", "/_emu/log"):
            with st.lock:
                return json_response(200, list(st.log))
        if route == ("DELETE", "/_emu/log"):
            with st.lock:
                st.log.clear()
            return json_response(200, {"ok": True})
        if route == ("GET", "/_emu/info"):
            return json_response(200, self.server.ready_info)
        raise control_error(404, "no such control endpoint: %s %s" % route)

    def generate_b2_files(self, data):
        """`count` files named prefix + 7-digit number, all holding the same `size` bytes."""
        st = self.state
        b = st.bucket_by_name(data.get("bucket") or "")
        if b is None:
            raise control_error(400, "unknown bucket")
        count, size = data.get("count"), data.get("size", 10)
        if not isinstance(count, int) or not 0 < count <= 1000000 or not isinstance(size, int) or size < 0:
            raise control_error(400, "count (1..1000000) and size (>= 0) are integers")
        prefix = data.get("prefix") or "gen/"
        blob = BytesBlob(b"g" * size)
        sums = digests(blob, ("sha1", "md5"))
        for i in range(count):
            st.add_b2_file(b["bucketId"], "%s%07d" % (prefix, i), blob, "application/octet-stream", {},
                           sums=sums)
        return {"count": count, "sha1": sums[0]}

    def add_b2_file(self, data):
        st = self.state
        b = st.bucket_by_name(data.get("bucket") or "")
        if b is None:
            raise control_error(400, "unknown bucket")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise control_error(400, "name is required")
        try:
            blob = make_blob(data)
        except (ValueError, binascii.Error) as e:
            raise control_error(400, str(e))
        info = data.get("info") or {}
        if not isinstance(info, dict):
            raise control_error(400, "info must be an object")
        f = st.add_b2_file(b["bucketId"], name, blob, data.get("content_type") or "application/octet-stream",
                           info, large=data.get("large"), large_file_sha1=data.get("large_file_sha1"),
                           unverified=data.get("unverified"))
        out = f.to_json("v2")
        out["sha1"] = f.sha1   # the content's real SHA-1, also for large files
        return out

    def add_fault(self, data):
        if not isinstance(data.get("path"), str):
            raise control_error(400, "path (a substring of the request path) is required")
        kinds = ["status", "cut_after", "corrupt_at", "stall", "trickle", "content_length_delta",
                 "big_header", "disposition"]
        if not any(data.get(k) is not None for k in kinds):
            raise control_error(400, "give one of: " + ", ".join(kinds))
        for k in kinds:
            v = data.get(k)
            if v is not None and k != "disposition" and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise control_error(400, "%s must be a number" % k)
        if data.get("disposition") is not None and not isinstance(data["disposition"], str):
            raise control_error(400, "disposition must be a string")
        count = data.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise control_error(400, "count must be a positive integer")
        fault = dict(data, id=self.state.next_id(), remaining=count, count=count)
        with self.state.lock:
            self.state.faults.append(fault)
        return fault


# ---------------------------------------------------------------------------
# Server, TLS and start-up

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    ssl_ctx = None

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_ctx is not None:
            # The handshake runs in the handler's thread (setup), not in the accept loop.
            sock = self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, TimeoutError)):
            return   # clients hanging up or failing TLS on purpose are normal in tests
        super().handle_error(request, client_address)


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certs(tls_dir):
    """A throw-away CA and a server certificate for 127.0.0.1/localhost (IP SAN)."""
    os.makedirs(tls_dir, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "7",
            "-subj", "/CN=cloudfetch emulator test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=tls_dir)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=tls_dir)
    with open(os.path.join(tls_dir, "server.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "7", "-extfile", "server.ext",
            cwd=tls_dir)
    return (os.path.join(tls_dir, "ca.pem"), os.path.join(tls_dir, "server.pem"),
            os.path.join(tls_dir, "server.key"))


def write_ready(path, info):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(info, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="B2 + Acronis Notary emulator (127.0.0.1 only)")
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--tls-dir")
    ap.add_argument("--seed-demo", action="store_true")
    ap.add_argument("--b2-token-ttl", type=float, default=86400)
    ap.add_argument("--notary-token-ttl", type=int, default=7200)
    args = ap.parse_args(argv)

    server = Server(("127.0.0.1", 0), Handler)
    ca_file = None
    if args.tls_dir:
        ca_file, cert, key = make_certs(os.path.abspath(args.tls_dir))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server.ssl_ctx = ctx
    port = server.server_address[1]
    url = "%s://127.0.0.1:%d" % ("https" if ca_file else "http", port)
    state = State(url, args.b2_token_ttl, args.notary_token_ttl)
    server.state = state
    server.b2 = B2Api(state)
    server.notary = NotaryApi(state)
    server.control = Control(state, server)
    info = {"url": url, "pid": os.getpid(),
            "b2": {"key_id": B2_KEY_ID, "key": B2_KEY, "account_id": B2_ACCOUNT_ID},
            "notary": {"login": NOTARY_LOGIN, "password": NOTARY_PASSWORD,
                       "client_id": NOTARY_CLIENT_ID, "client_secret": NOTARY_CLIENT_SECRET}}
    if ca_file:
        info["ca_file"] = ca_file
    if args.seed_demo:
        info["seed"] = seed_demo(state)
    server.ready_info = info

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_ready(args.ready_file, info)
    try:
        server.serve_forever(poll_interval=0.2)
    except SystemExit:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
