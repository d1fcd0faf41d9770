"""The emulator itself, over real HTTP: B2 native API, Notary API v2, control and faults, TLS.

Run: /usr/bin/python3 -m unittest discover -s spec/emulator -p 'test_*.py' -v
"""

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emuhelp import Emulator  # noqa: E402

TEST_TIMEOUT = 60


class Base(unittest.TestCase):
    ARGS = ()
    TLS = False

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(*cls.ARGS, tls=cls.TLS)

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        def too_slow(signum, frame):
            raise TimeoutError("test took longer than %d s" % TEST_TIMEOUT)
        signal.signal(signal.SIGALRM, too_slow)
        signal.alarm(TEST_TIMEOUT)

    def tearDown(self):
        signal.alarm(0)

    def assertB2Error(self, result, status, code):
        st, _, body = result
        self.assertEqual(st, status, body)
        err = json.loads(body)
        self.assertEqual(err["status"], status)
        self.assertEqual(err["code"], code)
        self.assertIn("message", err)


def data_of(n, seed=b"x"):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(seed + str(i).encode()).digest()
        i += 1
    return bytes(out[:n])


class B2Fixture(Base):
    """Fresh state per test: bucket 'test-bucket' with a few files made via /_emu/."""

    def setUp(self):
        super().setUp()
        e = self.emu
        e.control("POST", "/_emu/reset")
        self.bucket = e.control("POST", "/_emu/b2/buckets", {"name": "test-bucket"})
        self.data = data_of(10000)
        self.file = self.add("dir/data.bin", data_b64=base64.b64encode(self.data).decode(),
                             info={"author": "J. Doe", "b2-content-disposition": "attachment; filename=x.bin",
                                   "b2-cache-control": "max-age=60"})
        self.token = e.token()

    def add(self, name, **kw):
        return self.emu.control("POST", "/_emu/b2/files", dict(kw, bucket="test-bucket", name=name))


class TestB2Authorize(B2Fixture):
    def test_v1_v2_flat_shape(self):
        for v in ("v1", "v2"):
            st, _, body = self.emu.authorize(version=v)
            self.assertEqual(st, 200)
            r = json.loads(body)
            for k in ("accountId", "authorizationToken", "apiUrl", "downloadUrl",
                      "recommendedPartSize", "absoluteMinimumPartSize", "s3ApiUrl"):
                self.assertIn(k, r)
            self.assertEqual(r["apiUrl"], self.emu.url)
            self.assertEqual(r["downloadUrl"], self.emu.url)
            self.assertEqual(r["allowed"]["bucketId"], None)
            self.assertIn("readFiles", r["allowed"]["capabilities"])
            self.assertEqual("minimumPartSize" in r, v == "v1")

    def test_v3_shape(self):
        r = json.loads(self.emu.authorize(version="v3")[2])
        s = r["apiInfo"]["storageApi"]
        self.assertEqual(s["infoType"], "storageApi")
        self.assertEqual(s["apiUrl"], self.emu.url)
        self.assertIsNone(s["bucketId"])
        self.assertIn("listFiles", s["capabilities"])
        self.assertNotIn("apiUrl", r)

    def test_v4_shape_and_multi_bucket_key(self):
        other = self.emu.control("POST", "/_emu/b2/buckets", {"name": "other-bucket"})
        self.emu.control("POST", "/_emu/b2/keys", {
            "key_id": "Kmulti", "key": "secret-multi", "capabilities": ["listFiles", "readFiles"],
            "bucket_ids": [self.bucket["bucketId"], other["bucketId"]]})
        r = json.loads(self.emu.authorize(version="v4", key_id="Kmulti", key="secret-multi")[2])
        allowed = r["apiInfo"]["storageApi"]["allowed"]
        self.assertEqual(sorted(b["name"] for b in allowed["buckets"]), ["other-bucket", "test-bucket"])
        self.assertNotIn("bucketId", r["apiInfo"]["storageApi"])
        for v in ("v1", "v2", "v3"):
            self.assertB2Error(self.emu.authorize(version=v, key_id="Kmulti", key="secret-multi"),
                               401, "unsupported")
        # default key is unrestricted in v4
        r = json.loads(self.emu.authorize(version="v4")[2])
        self.assertIsNone(r["apiInfo"]["storageApi"]["allowed"]["buckets"])

    def test_post_authorize_and_account_id_as_key_id(self):
        basic = base64.b64encode(("%s:%s" % (self.emu.info["b2"]["account_id"],
                                             self.emu.info["b2"]["key"])).encode()).decode()
        st, _, _ = self.emu.request("POST", "/b2api/v2/b2_authorize_account", {},
                                    {"Authorization": "Basic " + basic})
        self.assertEqual(st, 200)

    def test_wrong_and_missing_credentials(self):
        res = self.emu.authorize(key="wrong")
        self.assertB2Error(res, 401, "bad_auth_token")
        self.assertIn("authorize_account", res[1].get("www-authenticate", ""))
        self.assertNotIn(b"wrong", res[2])
        self.assertB2Error(self.emu.authorize(key_id="Knobody"), 401, "bad_auth_token")
        self.assertB2Error(self.emu.request("GET", "/b2api/v2/b2_authorize_account"),
                           401, "missing_auth_token")


class TestB2Listing(B2Fixture):
    def setUp(self):
        super().setUp()
        for i in range(25):
            self.add("many/f%03d.txt" % i, data="file %d" % i)
        self.add("top.txt", data="top")
        self.add("zz/deep/a.txt", data="a")
        self.bid = self.bucket["bucketId"]

    def list_all(self, name, count, **extra):
        names, start, start_id, calls = [], None, None, 0
        while True:
            p = dict(bucketId=self.bid, maxFileCount=count, **extra)
            if start is not None:
                p["startFileName"] = start
            if start_id is not None:
                p["startFileId"] = start_id
            st, _, body = self.emu.b2(name, self.token, p)
            self.assertEqual(st, 200, body)
            r = json.loads(body)
            self.assertLessEqual(len(r["files"]), count)
            names += [f["fileName"] for f in r["files"]]
            calls += 1
            self.assertLess(calls, 100)
            start = r["nextFileName"]
            start_id = r.get("nextFileId")
            if start is None:
                return names, calls

    def test_paging_file_names(self):
        names, calls = self.list_all("b2_list_file_names", 7)
        self.assertEqual(len(names), 28)
        self.assertEqual(names, sorted(names, key=lambda s: s.encode()))
        self.assertEqual(len(set(names)), 28)
        self.assertEqual(calls, 4)

    def test_default_count_zero_and_limits(self):
        r = json.loads(self.emu.b2("b2_list_file_names", self.token,
                                   {"bucketId": self.bid, "maxFileCount": 0})[2])
        self.assertEqual(len(r["files"]), 28)
        self.assertIsNone(r["nextFileName"])
        self.assertB2Error(self.emu.b2("b2_list_file_names", self.token,
                                       {"bucketId": self.bid, "maxFileCount": 10001}), 400, "out_of_range")
        self.assertB2Error(self.emu.b2("b2_list_file_names", self.token,
                                       {"bucketId": self.bid, "maxFileCount": -1}), 400, "out_of_range")
        st, _, _ = self.emu.b2("b2_list_file_names", self.token,
                               {"bucketId": self.bid, "maxFileCount": 10000})
        self.assertEqual(st, 200)

    def test_get_query_params_and_prefix(self):
        st, _, body = self.emu.b2("b2_list_file_names", self.token,
                                  {"bucketId": self.bid, "prefix": "many/", "maxFileCount": "5"},
                                  method="GET")
        self.assertEqual(st, 200, body)
        r = json.loads(body)
        self.assertEqual([f["fileName"] for f in r["files"]], ["many/f%03d.txt" % i for i in range(5)])
        self.assertEqual(r["nextFileName"], "many/f005.txt")

    def test_delimiter_folders(self):
        r = json.loads(self.emu.b2("b2_list_file_names", self.token,
                                   {"bucketId": self.bid, "delimiter": "/"})[2])
        got = [(f["action"], f["fileName"]) for f in r["files"]]
        self.assertEqual(got, [("folder", "dir/"), ("folder", "many/"), ("upload", "top.txt"),
                               ("folder", "zz/")])
        r = json.loads(self.emu.b2("b2_list_file_names", self.token,
                                   {"bucketId": self.bid, "delimiter": "/", "prefix": "zz/"})[2])
        self.assertEqual([(f["action"], f["fileName"]) for f in r["files"]], [("folder", "zz/deep/")])
        # paging through folders: one entry per page
        names, _ = self.list_all("b2_list_file_names", 1, delimiter="/")
        self.assertEqual(names, ["dir/", "many/", "top.txt", "zz/"])

    def test_versions_paging_hide_and_v1_size(self):
        self.add("top.txt", data="top version 2")
        st, _, body = self.emu.b2("b2_hide_file", self.token, {"bucketId": self.bid, "fileName": "dir/data.bin"})
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["action"], "hide")
        names, _ = self.list_all("b2_list_file_versions", 3)
        self.assertEqual(names.count("top.txt"), 2)
        self.assertEqual(names.count("dir/data.bin"), 2)
        self.assertEqual(len(names), 30)
        r = json.loads(self.emu.b2("b2_list_file_versions", self.token,
                                   {"bucketId": self.bid, "prefix": "top.txt"})[2])
        self.assertGreater(r["files"][0]["uploadTimestamp"], r["files"][1]["uploadTimestamp"])
        # the hidden file is gone from list_file_names and from by-name downloads
        names, _ = self.list_all("b2_list_file_names", 100)
        self.assertNotIn("dir/data.bin", names)
        self.assertB2Error(self.emu.request("GET", "/file/test-bucket/dir/data.bin",
                                            headers={"Authorization": self.token}), 404, "not_found")
        # v1 uses size, v2+ contentLength
        r1 = json.loads(self.emu.b2("b2_list_file_names", self.token, {"bucketId": self.bid}, "v1")[2])
        self.assertIn("size", r1["files"][0])
        self.assertNotIn("contentLength", r1["files"][0])
        r4 = json.loads(self.emu.b2("b2_list_file_names", self.token, {"bucketId": self.bid}, "v4")[2])
        self.assertIn("contentLength", r4["files"][0])
        self.assertB2Error(self.emu.b2("b2_list_file_versions", self.token,
                                       {"bucketId": self.bid, "startFileId": "x"}), 400, "bad_request")

    def test_list_buckets(self):
        self.emu.control("POST", "/_emu/b2/buckets", {"name": "public-one", "type": "allPublic"})
        acct = self.emu.info["b2"]["account_id"]
        r = json.loads(self.emu.b2("b2_list_buckets", self.token, {"accountId": acct})[2])
        self.assertEqual([b["bucketName"] for b in r["buckets"]], ["public-one", "test-bucket"])
        r = json.loads(self.emu.b2("b2_list_buckets", self.token,
                                   {"accountId": acct, "bucketName": "test-bucket"})[2])
        self.assertEqual([b["bucketId"] for b in r["buckets"]], [self.bid])
        r = json.loads(self.emu.b2("b2_list_buckets", self.token,
                                   {"accountId": acct, "bucketTypes": ["allPublic"]})[2])
        self.assertEqual([b["bucketName"] for b in r["buckets"]], ["public-one"])
        r = json.loads(self.emu.b2("b2_list_buckets", self.token,
                                   {"accountId": acct, "bucketId": "nope"})[2])
        self.assertEqual(r["buckets"], [])
        self.assertB2Error(self.emu.b2("b2_list_buckets", self.token, {}), 400, "bad_request")
        self.assertB2Error(self.emu.b2("b2_list_buckets", self.token,
                                       {"accountId": acct, "bucketTypes": ["all", "allPublic"]}),
                           400, "bad_request")
        self.assertB2Error(self.emu.b2("b2_list_buckets", self.token,
                                       {"accountId": acct, "bucketTypes": []}), 400, "bad_request")

    def test_get_file_info(self):
        st, _, body = self.emu.b2("b2_get_file_info", self.token, {"fileId": self.file["fileId"]}, "v1")
        self.assertEqual(st, 200)
        r = json.loads(body)
        self.assertEqual(r["fileName"], "dir/data.bin")
        self.assertEqual(r["contentLength"], 10000)
        self.assertEqual(r["contentSha1"], hashlib.sha1(self.data).hexdigest())
        self.assertB2Error(self.emu.b2("b2_get_file_info", self.token, {"fileId": "4_nope"}), 404, "not_found")
        self.assertB2Error(self.emu.b2("b2_list_file_names", self.token, {"bucketId": "nope"}),
                           400, "bad_bucket_id")


class TestB2Download(B2Fixture):
    def get(self, path, headers=None, method="GET", token=True):
        h = dict(headers or {})
        if token:
            h.setdefault("Authorization", self.token)
        return self.emu.request(method, path, headers=h)

    def by_id(self, version="v2"):
        return "/b2api/%s/b2_download_file_by_id?fileId=%s" % (version, self.file["fileId"])

    def test_by_id_all_versions_and_headers(self):
        for v in ("v1", "v2", "v3", "v4"):
            st, h, body = self.get(self.by_id(v))
            self.assertEqual(st, 200)
            self.assertEqual(body, self.data)
        self.assertEqual(h["content-length"], "10000")
        self.assertEqual(h["content-type"], "application/octet-stream")
        self.assertEqual(h["x-bz-file-id"], self.file["fileId"])
        self.assertEqual(h["x-bz-file-name"], "dir/data.bin")
        self.assertEqual(h["x-bz-content-sha1"], hashlib.sha1(self.data).hexdigest())
        self.assertEqual(h["x-bz-info-author"], "J.%20Doe")
        self.assertNotIn("x-bz-info-b2-content-disposition", h)
        self.assertEqual(h["content-disposition"], "attachment; filename=x.bin")
        self.assertEqual(h["cache-control"], "max-age=60")
        self.assertEqual(h["accept-ranges"], "bytes")
        self.assertEqual(h["x-bz-upload-timestamp"], str(self.file["uploadTimestamp"]))
        self.assertIn("date", h)

    def test_post_by_id_and_head(self):
        st, h, body = self.emu.request("POST", "/b2api/v3/b2_download_file_by_id",
                                       {"fileId": self.file["fileId"]}, {"Authorization": self.token})
        self.assertEqual((st, body), (200, self.data))
        st, h, body = self.get(self.by_id(), method="HEAD")
        self.assertEqual((st, body), (200, b""))
        self.assertEqual(h["content-length"], "10000")
        st, h, body = self.get("/b2api/v2/b2_download_file_by_id?fileId=4_nope", method="HEAD")
        self.assertEqual((st, body), (404, b""))

    def test_by_name_encoding_and_query_token(self):
        name = "rép/été 2026+x#y?.txt"
        f = self.add(name, data="hello", content_type="text/plain",
                     info={"note": "a b/é", "b2-content-language": "fr"})
        path = "/file/test-bucket/" + urllib.parse.quote(name.encode(), safe="/")
        st, h, body = self.get(path)
        self.assertEqual((st, body), (200, b"hello"))
        self.assertEqual(h["x-bz-file-name"], "r%C3%A9p/%C3%A9t%C3%A9%202026%2Bx%23y%3F.txt")
        self.assertEqual(urllib.parse.unquote_plus(h["x-bz-file-name"]), name)
        self.assertEqual(h["x-bz-info-note"], "a%20b/%C3%A9")
        self.assertEqual(h["content-language"], "fr")
        self.assertEqual(h["x-bz-file-id"], f["fileId"])
        st, _, body = self.get(path + "?Authorization=" + urllib.parse.quote(self.token), token=False)
        self.assertEqual((st, body), (200, b"hello"))
        # the token never shows in the log
        self.assertNotIn(self.token, json.dumps(self.emu.log_entries()))

    def test_overrides_need_auth_and_download_authorization(self):
        q = "?b2ContentDisposition=" + urllib.parse.quote('attachment; filename="o.bin"') + \
            "&b2ContentType=text/x-test"
        st, h, _ = self.get(self.by_id() + "&" + q[1:])
        self.assertEqual(st, 200)
        self.assertEqual(h["content-disposition"], 'attachment; filename="o.bin"')
        self.assertEqual(h["content-type"], "text/x-test")
        self.emu.control("POST", "/_emu/b2/buckets", {"name": "public-bkt", "type": "allPublic"})
        self.emu.control("POST", "/_emu/b2/files", {"bucket": "public-bkt", "name": "p.txt", "data": "pub"})
        st, _, body = self.get("/file/public-bkt/p.txt", token=False)
        self.assertEqual((st, body), (200, b"pub"))
        self.assertB2Error(self.get("/file/public-bkt/p.txt" + q, token=False), 400, "bad_request")
        # download authorization with a disposition that must match
        p = {"bucketId": self.bucket["bucketId"], "fileNamePrefix": "dir/", "validDurationInSeconds": 60,
             "b2ContentDisposition": "attachment"}
        st, _, body = self.emu.b2("b2_get_download_authorization", self.token, p)
        self.assertEqual(st, 200, body)
        dtok = json.loads(body)["authorizationToken"]
        path = "/file/test-bucket/dir/data.bin"
        self.assertB2Error(self.get(path, {"Authorization": dtok}), 401, "unauthorized")
        st, h, body = self.get(path + "?b2ContentDisposition=attachment", {"Authorization": dtok})
        self.assertEqual((st, body), (200, self.data))
        self.assertEqual(h["content-disposition"], "attachment")
        self.assertB2Error(self.get(self.by_id(), {"Authorization": dtok}), 401, "bad_auth_token")
        for bad in (0, 604801):
            self.assertB2Error(self.emu.b2("b2_get_download_authorization", self.token,
                                           dict(p, validDurationInSeconds=bad)), 400, "bad_request")

    def test_ranges(self):
        st, h, body = self.get(self.by_id(), {"Range": "bytes=10-19"})
        self.assertEqual((st, body), (206, self.data[10:20]))
        self.assertEqual(h["content-range"], "bytes 10-19/10000")
        self.assertEqual(h["content-length"], "10")
        self.assertEqual(h["x-bz-content-sha1"], hashlib.sha1(self.data).hexdigest())
        st, h, body = self.get(self.by_id(), {"Range": "bytes=9990-20000"})
        self.assertEqual((st, body), (206, self.data[9990:]))
        self.assertEqual(h["content-range"], "bytes 9990-9999/10000")
        st, h, body = self.get(self.by_id(), {"Range": "bytes=9000-"})
        self.assertEqual((st, len(body)), (206, 1000))
        st, h, body = self.get(self.by_id(), {"Range": "bytes=-100"})
        self.assertEqual((st, body), (206, self.data[-100:]))
        res = self.get(self.by_id(), {"Range": "bytes=10000-10005"})
        self.assertB2Error(res, 416, "range_not_satisfiable")
        self.assertEqual(res[1]["content-range"], "bytes */10000")
        for bad in ("bytes=abc", "items=0-5", "bytes=5-2", "bytes=0-1,5-6"):
            st, h, body = self.get(self.by_id(), {"Range": bad})
            self.assertEqual((st, body), (200, self.data), bad)

    def test_sha1_forms_and_large_files(self):
        big = self.add("large.bin", size=6 * 1024 * 1024 + 3, random="seed1", large=True, large_file_sha1=True)
        st, h, body = self.get("/b2api/v2/b2_download_file_by_id?fileId=" + big["fileId"])
        self.assertEqual(st, 200)
        self.assertEqual(len(body), 6 * 1024 * 1024 + 3)
        self.assertEqual(h["x-bz-content-sha1"], "none")
        self.assertEqual(h["x-bz-info-large_file_sha1"], hashlib.sha1(body).hexdigest())
        self.assertEqual(big["sha1"], hashlib.sha1(body).hexdigest())
        self.assertEqual(big["contentSha1"], "none")
        uv = self.add("uv.bin", data="unverified data", unverified=True)
        st, h, body = self.get("/b2api/v2/b2_download_file_by_id?fileId=" + uv["fileId"])
        self.assertEqual(h["x-bz-content-sha1"], "unverified:" + hashlib.sha1(body).hexdigest())
        filled = self.add("fill.bin", size=1000, fill=65)
        st, _, body = self.get("/b2api/v2/b2_download_file_by_id?fileId=" + filled["fileId"])
        self.assertEqual(body, b"A" * 1000)
        empty = self.add("empty.bin", data="")
        st, h, body = self.get("/b2api/v2/b2_download_file_by_id?fileId=" + empty["fileId"])
        self.assertEqual((st, body, h["content-length"]), (200, b"", "0"))

    def test_generated_file_beyond_memory_limit_streams(self):
        # > 64 MiB random files are generated on the fly, ranges included
        big = self.add("huge.bin", size=70 * 1024 * 1024, random="huge")
        path = "/b2api/v2/b2_download_file_by_id?fileId=" + big["fileId"]
        st, h, body = self.get(path, {"Range": "bytes=%d-%d" % (68 * 1024 * 1024 - 5, 68 * 1024 * 1024 + 4)})
        self.assertEqual((st, len(body)), (206, 10))
        c = self.emu.conn(timeout=30)
        c.request("GET", path, headers={"Authorization": self.token})
        r = c.getresponse()
        h1 = hashlib.sha1()
        n = 0
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            if n <= 68 * 1024 * 1024 - 5 < n + len(chunk):
                off = 68 * 1024 * 1024 - 5 - n
                self.assertEqual(chunk[off:off + 10][:len(chunk) - off], body[:len(chunk) - off])
            h1.update(chunk)
            n += len(chunk)
        c.close()
        self.assertEqual(n, 70 * 1024 * 1024)
        self.assertEqual(h1.hexdigest(), big["sha1"])

    def test_download_errors(self):
        self.assertB2Error(self.get(self.by_id(), token=False), 400, "bad_request")
        self.assertB2Error(self.get(self.by_id(), {"Authorization": "4_bogus"}), 401, "bad_auth_token")
        self.assertB2Error(self.get("/b2api/v2/b2_download_file_by_id?fileId=4_nope"), 404, "not_found")
        self.assertB2Error(self.get("/b2api/v2/b2_download_file_by_id"), 400, "bad_request")
        self.assertB2Error(self.get("/file/test-bucket/no-such-file"), 404, "not_found")
        self.assertB2Error(self.get("/file/no-such-bucket/x"), 404, "not_found")
        st, _, body = self.get("/file/test-bucket/no-such-file", method="HEAD")
        self.assertEqual((st, body), (404, b""))

    def test_api_token_errors(self):
        bid = {"bucketId": self.bucket["bucketId"]}
        self.assertB2Error(self.emu.b2("b2_list_file_names", "", bid), 401, "missing_auth_token")
        self.assertB2Error(self.emu.b2("b2_list_file_names", "4_bogus", bid), 401, "bad_auth_token")
        self.assertB2Error(self.emu.request("POST", "/b2api/v2/b2_list_file_names", b"{not json",
                                            {"Authorization": self.token}), 400, "bad_request")
        self.assertB2Error(self.emu.b2("b2_no_such_call", self.token, bid), 404, "not_found")

    def test_expire_control(self):
        old = self.token
        self.emu.control("POST", "/_emu/b2/expire")
        self.assertB2Error(self.get(self.by_id(), {"Authorization": old}), 401, "expired_auth_token")
        self.assertB2Error(self.emu.b2("b2_list_file_names", old, {"bucketId": self.bucket["bucketId"]}),
                           401, "expired_auth_token")
        fresh = self.emu.token()
        st, _, _ = self.get(self.by_id(), {"Authorization": fresh})
        self.assertEqual(st, 200)

    def test_capabilities_buckets_and_prefix(self):
        other = self.emu.control("POST", "/_emu/b2/buckets", {"name": "other-bucket"})
        self.emu.control("POST", "/_emu/b2/files", {"bucket": "other-bucket", "name": "o.txt", "data": "o"})
        e = self.emu
        e.control("POST", "/_emu/b2/keys", {"key_id": "Klist", "key": "k1", "capabilities": ["listFiles"]})
        e.control("POST", "/_emu/b2/keys", {"key_id": "Kread", "key": "k2", "capabilities": ["readFiles"]})
        e.control("POST", "/_emu/b2/keys", {"key_id": "Kbkt", "key": "k3",
                                            "capabilities": ["listBuckets", "listFiles", "readFiles"],
                                            "bucket_ids": [self.bucket["bucketId"]], "name_prefix": "dir/"})
        t_list, t_read, t_bkt = (e.token(key_id=k, key=s) for k, s in
                                 (("Klist", "k1"), ("Kread", "k2"), ("Kbkt", "k3")))
        bid = {"bucketId": self.bucket["bucketId"]}
        self.assertB2Error(self.get(self.by_id(), {"Authorization": t_list}), 401, "unauthorized")
        self.assertB2Error(e.b2("b2_list_file_names", t_read, bid), 401, "unauthorized")
        self.assertEqual(self.get(self.by_id(), {"Authorization": t_read})[0], 200)
        self.assertEqual(e.b2("b2_list_file_names", t_list, bid)[0], 200)
        # bucket + prefix restricted key
        v2 = json.loads(e.authorize(key_id="Kbkt", key="k3")[2])
        self.assertEqual(v2["allowed"]["bucketName"], "test-bucket")
        self.assertEqual(v2["allowed"]["namePrefix"], "dir/")
        self.assertEqual(self.get(self.by_id(), {"Authorization": t_bkt})[0], 200)
        self.assertB2Error(self.get("/file/other-bucket/o.txt", {"Authorization": t_bkt}), 401, "unauthorized")
        self.add("outside.txt", data="no")
        self.assertB2Error(self.get("/file/test-bucket/outside.txt", {"Authorization": t_bkt}), 401, "unauthorized")
        self.assertB2Error(e.b2("b2_list_file_names", t_bkt, bid), 401, "unauthorized")
        self.assertEqual(e.b2("b2_list_file_names", t_bkt, dict(bid, prefix="dir/"))[0], 200)
        self.assertB2Error(e.b2("b2_list_file_names", t_bkt, {"bucketId": other["bucketId"], "prefix": "dir/"}),
                           401, "unauthorized")
        acct = e.info["b2"]["account_id"]
        self.assertB2Error(e.b2("b2_list_buckets", t_bkt, {"accountId": acct}), 401, "unauthorized")
        r = json.loads(e.b2("b2_list_buckets", t_bkt, {"accountId": acct, "bucketName": "test-bucket"})[2])
        self.assertEqual(len(r["buckets"]), 1)

    def test_upload_and_sha1_check(self):
        up = json.loads(self.emu.b2("b2_get_upload_url", self.token, {"bucketId": self.bucket["bucketId"]})[2])
        path = urllib.parse.urlsplit(up["uploadUrl"]).path
        data = b"uploaded bytes \xff\x00"

        def upload(sha1, name="up/é f.bin"):
            return self.emu.request("POST", path, data, {
                "Authorization": up["authorizationToken"], "X-Bz-File-Name": urllib.parse.quote(name.encode()),
                "Content-Type": "b2/x-auto", "X-Bz-Content-Sha1": sha1, "X-Bz-Info-color": "bl%C3%BCe"})
        self.assertB2Error(upload("0" * 40), 400, "bad_request")
        st, _, body = upload(hashlib.sha1(data).hexdigest())
        self.assertEqual(st, 200, body)
        r = json.loads(body)
        self.assertEqual((r["fileName"], r["contentLength"], r["fileInfo"]), ("up/é f.bin", len(data), {"color": "blüe"}))
        st, _, body = upload("do_not_verify", "up/unverified.bin")
        self.assertEqual(json.loads(body)["contentSha1"], "unverified:" + hashlib.sha1(data).hexdigest())
        st, h, body = self.get("/b2api/v2/b2_download_file_by_id?fileId=" + r["fileId"])
        self.assertEqual(body, data)
        self.assertEqual(h["x-bz-info-color"], "bl%C3%BCe")
        self.assertB2Error(self.emu.request("POST", path, data, {"Authorization": self.token,
                                                                 "X-Bz-File-Name": "x", "X-Bz-Content-Sha1": "x"}),
                           401, "bad_auth_token")


class TestFaults(B2Fixture):
    def path(self):
        return "/b2api/v2/b2_download_file_by_id?fileId=" + self.file["fileId"]

    def raw_get(self, path, headers=None, timeout=10):
        """Read the raw response over a socket: (head bytes, body bytes up to close or length)."""
        s = socket.create_connection((self.emu.host, self.emu.port), timeout=timeout)
        req = "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n" % (path, self.token)
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        s.sendall((req + "\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        head, _, body = buf.partition(b"\r\n\r\n")
        length = int(next(l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")))
        closed = False
        while len(body) < length:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            body += d
        s.close()
        return head.decode("latin-1"), body, length, closed

    def test_status_with_retry_after_and_count(self):
        f = self.emu.fault(path="b2_download_file_by_id", status=503, retry_after=2, count=2)
        self.assertEqual(f["remaining"], 2)
        for _ in range(2):
            st, h, body = self.emu.request("GET", self.path(), headers={"Authorization": self.token})
            self.assertEqual(st, 503)
            self.assertEqual(h["retry-after"], "2")
            self.assertEqual(json.loads(body)["code"], "service_unavailable")
        st, _, _ = self.emu.request("GET", self.path(), headers={"Authorization": self.token})
        self.assertEqual(st, 200)
        log = self.emu.log_entries()
        self.assertEqual([e["status"] for e in log[-3:]], [503, 503, 200])
        self.assertEqual(log[-1]["path"], "/b2api/v2/b2_download_file_by_id")

    def test_status_with_body_and_method(self):
        self.emu.fault(path="b2_list_file_names", method="POST", status=429,
                       body={"status": 429, "code": "too_many_requests", "message": "slow down"})
        st, _, body = self.emu.b2("b2_list_file_names", self.token, {"bucketId": "x"}, method="GET")
        self.assertEqual(st, 400)   # GET does not match a POST-only fault
        self.assertB2Error(self.emu.b2("b2_list_file_names", self.token, {"bucketId": "x"}), 429,
                           "too_many_requests")

    def test_cut_after(self):
        self.emu.fault(path="b2_download_file_by_id", cut_after=1000)
        head, body, length, closed = self.raw_get(self.path())
        self.assertEqual(length, 10000)
        self.assertEqual(body, self.data[:1000])
        self.assertTrue(closed)
        c = self.emu.conn()
        c.request("GET", self.path(), headers={"Authorization": self.token})
        self.assertEqual(c.getresponse().read(), self.data)   # only the next request
        c.close()

    def test_cut_after_with_http_client(self):
        self.emu.fault(path=self.file["fileId"], cut_after=0)
        c = self.emu.conn()
        c.request("GET", self.path(), headers={"Authorization": self.token})
        r = c.getresponse()
        with self.assertRaises(http.client.IncompleteRead):
            r.read()
        c.close()

    def test_corrupt_at(self):
        self.emu.fault(path="b2_download_file_by_id", corrupt_at=5000)
        st, _, body = self.emu.request("GET", self.path(), headers={"Authorization": self.token})
        self.assertEqual((st, len(body)), (200, 10000))
        diff = [i for i in range(10000) if body[i] != self.data[i]]
        self.assertEqual(diff, [5000])
        self.assertEqual(body[5000], self.data[5000] ^ 0xFF)

    def test_stall_and_trickle(self):
        self.emu.fault(path="b2_download_file_by_id", stall=1.0)
        t = time.time()
        st, _, body = self.emu.request("GET", self.path(), headers={"Authorization": self.token})
        self.assertEqual(body, self.data)
        self.assertGreaterEqual(time.time() - t, 0.9)
        self.emu.fault(path="b2_download_file_by_id", trickle=10000)
        t = time.time()
        c = self.emu.conn()
        c.request("GET", self.path(), headers={"Authorization": self.token, "Range": "bytes=0-4999"})
        r = c.getresponse()
        first = r.read(100)
        body = first + r.read()
        c.close()
        self.assertEqual(body, self.data[:5000])
        self.assertGreaterEqual(time.time() - t, 0.4)

    def test_stall_times_out_client(self):
        self.emu.fault(path="b2_download_file_by_id", stall=3)
        c = self.emu.conn(timeout=0.5)
        c.request("GET", self.path(), headers={"Authorization": self.token})
        r = c.getresponse()   # headers come at once
        self.assertEqual(r.status, 200)
        with self.assertRaises(socket.timeout):
            r.read()
        c.close()

    def test_content_length_delta(self):
        self.emu.fault(path="b2_download_file_by_id", content_length_delta=-100)
        head, body, length, closed = self.raw_get(self.path())
        self.assertEqual(length, 9900)
        self.assertEqual(body, self.data[:9900])
        self.emu.fault(path="b2_download_file_by_id", content_length_delta=50)
        st, h, body = self.emu.request("GET", self.path(), headers={"Authorization": self.token})
        self.assertEqual(h["content-length"], "10050")
        self.assertEqual(body, self.data + b"\0" * 50)

    def test_big_header(self):
        self.emu.fault(path="b2_download_file_by_id", big_header=200000)
        head, body, length, closed = self.raw_get(self.path())
        pad = [l for l in head.split("\r\n") if l.startswith("X-Emu-Padding:")]
        self.assertEqual(len(pad[0]), len("X-Emu-Padding: ") + 200000)
        self.assertEqual(body, self.data)

    def test_disposition(self):
        hostile = ["attachment; filename=../../etc/passwd", "attachment; filename=/etc/shadow",
                   "attachment; filename*=UTF-8''evil%00.txt", "attachment; filename=" + "a" * 5000 + ".txt"]
        for value in hostile:
            self.emu.fault(path="b2_download_file_by_id", disposition=value)
            st, h, body = self.emu.request("GET", self.path(), headers={"Authorization": self.token})
            self.assertEqual(st, 200)
            self.assertEqual(h["content-disposition"], value)

    def test_fault_validation_and_clear(self):
        st, _, _ = self.emu.request("POST", "/_emu/faults", {"path": "x"})
        self.assertEqual(st, 400)
        st, _, _ = self.emu.request("POST", "/_emu/faults", {"status": 500})
        self.assertEqual(st, 400)
        self.emu.fault(path="b2_download", status=500, count=5)
        self.emu.request("DELETE", "/_emu/faults")
        st, _, _ = self.emu.request("GET", self.path(), headers={"Authorization": self.token})
        self.assertEqual(st, 200)

    def test_notary_fault_bodies(self):
        tok = self.emu.notary_token()
        auth = {"Authorization": "Bearer " + tok}
        self.emu.fault(path="/stored-files", method="POST", status=402)
        st, _, body = self.emu.request("POST", "/api/notary/v2/stored-files", b"", auth)
        self.assertEqual(st, 402)
        self.assertEqual(json.loads(body)["message"], "Quota limit reached")
        self.assertIn("quota", json.loads(body))
        self.emu.fault(path="/stored-files", status=503, retry_after=1)
        st, h, _ = self.emu.request("GET", "/api/notary/v2/stored-files", headers=auth)
        self.assertEqual((st, h["retry-after"]), (503, "1"))


class TestKeepAlive(B2Fixture):
    def test_many_requests_one_connection(self):
        self.emu.request("DELETE", "/_emu/log")
        c = self.emu.conn()
        path = "/b2api/v2/b2_download_file_by_id?fileId=" + self.file["fileId"]
        for method, headers, status, size in [
                ("GET", {}, 200, 10000), ("HEAD", {}, 200, 0), ("GET", {"Range": "bytes=0-9"}, 206, 10),
                ("GET", {"Range": "bytes=99999-"}, 416, None), ("GET", {}, 200, 10000)]:
            st, h, body = self.emu.request(method, path, headers=dict(headers, Authorization=self.token), conn=c)
            self.assertEqual(st, status)
            if size is not None:
                self.assertEqual(len(body), size)
        st, _, _ = self.emu.request("POST", "/b2api/v2/b2_list_file_names",
                                    {"bucketId": self.bucket["bucketId"]}, {"Authorization": self.token}, conn=c)
        self.assertEqual(st, 200)
        c.close()
        self.assertEqual(len([e for e in self.emu.log_entries()]), 6)


class TestSeedDemo(Base):
    ARGS = ("--seed-demo",)

    def test_ready_file_and_seed(self):
        info = self.emu.info
        self.assertTrue(info["url"].startswith("http://127.0.0.1:"))
        self.assertEqual(info["b2"]["key_id"], "K000emulator")
        self.assertEqual(info["notary"]["login"], "demo@example.com")
        seed = info["seed"]
        self.assertEqual(seed["b2"]["bucket"], "demo-bucket")
        names = [f["name"] for f in seed["b2"]["files"]]
        self.assertEqual(names, ["hello.txt", "données/été 2026.csv", "big/archive.bin"])
        self.assertEqual(len(seed["notary"]["files"]), 3)
        self.assertTrue(any(any(ord(c) > 127 for c in f["name"]) for f in seed["notary"]["files"]))

    def test_seeded_b2_files_download_with_right_sha1(self):
        tok = self.emu.token()
        for f in self.emu.info["seed"]["b2"]["files"]:
            st, h, body = self.emu.request("GET", "/file/demo-bucket/" + urllib.parse.quote(f["name"].encode()),
                                           headers={"Authorization": tok}, timeout=30)
            self.assertEqual(st, 200)
            self.assertEqual(len(body), f["size"])
            self.assertEqual(hashlib.sha1(body).hexdigest(), f["sha1"])
            self.assertEqual(h["x-bz-file-id"], f["id"])
            if f["name"] == "big/archive.bin":
                self.assertGreater(f["size"], 20 * 1024 * 1024)
                self.assertEqual(h["x-bz-content-sha1"], "none")
                self.assertEqual(h["x-bz-info-large_file_sha1"], f["sha1"])
            if f["name"].endswith(".csv"):
                self.assertIn("filename*=UTF-8''", h["content-disposition"])

    def test_seeded_notary_files(self):
        tok = self.emu.notary_token()
        for f in self.emu.info["seed"]["notary"]["files"]:
            st, h, body = self.emu.request("GET", "/api/notary/v2/stored-files/%s/download" % f["id"],
                                           headers={"Authorization": "Bearer " + tok})
            self.assertEqual(st, 200)
            self.assertEqual(hashlib.sha256(body).hexdigest(), f["sha256"])
            self.assertEqual(len(body), f["size"])

    def test_reset_removes_seed(self):
        self.emu.control("POST", "/_emu/reset")
        try:
            tok = self.emu.token()
            r = json.loads(self.emu.b2("b2_list_buckets", tok, {"accountId": self.emu.info["b2"]["account_id"]})[2])
            self.assertEqual(r["buckets"], [])
        finally:
            self.__class__.tearDownClass()
            self.__class__.setUpClass()


class TestNotary(Base):
    def setUp(self):
        super().setUp()
        e = self.emu
        e.control("POST", "/_emu/reset")
        self.files = [e.control("POST", "/_emu/notary/files", {"name": "f%02d.txt" % i, "data": "content %d" % i})
                      for i in range(45)]
        self.token = e.notary_token()
        self.auth = {"Authorization": "Bearer " + self.token}

    def form(self, fields, headers=None):
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        h.update(headers or {})
        return self.emu.request("POST", "/api/2/idp/token", urllib.parse.urlencode(fields).encode(), h)

    def test_account_lookup(self):
        for login in ("demo@example.com", "nobody@example.com"):
            st, _, body = self.emu.request("GET", "/api/1/accounts?login=" + urllib.parse.quote(login))
            self.assertEqual(st, 200)
            r = json.loads(body)
            self.assertEqual(r["login"], login)
            self.assertEqual(r["server_url"], self.emu.url)
            self.assertIn("id", r)

    def test_password_and_client_credentials_grants(self):
        st, h, body = self.form({"grant_type": "password", "username": "demo@example.com",
                                 "password": "demo-password"})
        self.assertEqual(st, 200)
        r = json.loads(body)
        self.assertEqual(r["token_type"], "bearer")
        self.assertEqual(r["expires_in"], 7200)
        self.assertAlmostEqual(r["expires_on"], time.time() + 7200, delta=5)
        self.assertIn("id_token", r)
        basic = base64.b64encode(b"emulator-client:emulator-client-secret").decode()
        st, _, body = self.form({"grant_type": "client_credentials"}, {"Authorization": "Basic " + basic})
        self.assertEqual(st, 200, body)
        tok = json.loads(body)["access_token"]
        st, _, _ = self.emu.request("GET", "/api/notary/v2/stored-files", headers={"Authorization": "Bearer " + tok})
        self.assertEqual(st, 200)

    def test_token_errors(self):
        st, _, body = self.form({"grant_type": "password", "username": "demo@example.com", "password": "nope"})
        self.assertEqual(st, 401)
        self.assertEqual(json.loads(body)["error"], "access_denied")
        self.assertNotIn(b"nope", body)
        basic = base64.b64encode(b"emulator-client:wrong").decode()
        st, _, body = self.form({"grant_type": "client_credentials"}, {"Authorization": "Basic " + basic})
        self.assertEqual((st, json.loads(body)["error"]), (401, "access_denied"))
        for fields in ({"grant_type": "password", "username": "demo@example.com"}, {},
                       {"grant_type": "client_credentials"}, {"grant_type": "magic"}):
            st, _, body = self.form(fields)
            self.assertEqual(st, 400, fields)
            r = json.loads(body)
            self.assertEqual(r["error"], "invalid_request")
            self.assertIn("error_description", r)
        st, _, _ = self.emu.request("POST", "/api/2/idp/token", {"grant_type": "password"})
        self.assertEqual(st, 400)

    def test_list_paging(self):
        seen, after, pages = [], None, 0
        while True:
            q = "?limit=20" + ("&after=" + urllib.parse.quote(after) if after else "")
            st, _, body = self.emu.request("GET", "/api/notary/v2/stored-files" + q, headers=self.auth)
            self.assertEqual(st, 200)
            r = json.loads(body)
            seen += [f["id"] for f in r["files"]]
            pages += 1
            after = r["paging"]["cursors"].get("after")
            if not after:
                self.assertEqual(r["paging"], {"cursors": {}})
                break
            self.assertLess(pages, 10)
        self.assertEqual(seen, [f["id"] for f in self.files])
        self.assertEqual(pages, 3)
        r = json.loads(self.emu.request("GET", "/api/notary/v2/stored-files", headers=self.auth)[2])
        self.assertEqual(len(r["files"]), 20)   # default page size
        for bad in ("limit=0", "limit=101", "limit=x", "after=%%%"):
            st, _, body = self.emu.request("GET", "/api/notary/v2/stored-files?" + bad, headers=self.auth)
            self.assertEqual(st, 400, bad)
            r = json.loads(body)
            self.assertEqual(set(r), {"domain", "code", "debug"})
            self.assertIn("message", r["debug"])

    def test_info_download_and_disposition(self):
        e = self.emu
        f = e.control("POST", "/_emu/notary/files", {"name": "Übersicht März.txt", "data": "ü"})
        st, _, body = e.request("GET", "/api/notary/v2/stored-files/" + f["id"], headers=self.auth)
        self.assertEqual(st, 200)
        info = json.loads(body)["file"]
        self.assertEqual(info["id"], f["id"])
        self.assertEqual(info["name"], "Übersicht März.txt")
        self.assertEqual(info["size"], 2)
        self.assertIn("created_at", info)
        obj = info["certificate"]["object"]
        self.assertEqual(obj["eTag"], hashlib.sha256("ü".encode()).hexdigest())
        self.assertEqual((obj["key"], obj["size"]), ("Übersicht März.txt", 2))
        self.assertEqual(info["certificate_id"], info["certificate"]["id"])
        self.assertEqual(len(info["certificate_id"]), 64)
        proof = json.loads(info["certificate"]["merkle_proof"])
        root = hashlib.sha256(bytes.fromhex(obj["eTag"]) + bytes.fromhex(proof[0]["right"])).hexdigest()
        self.assertEqual(root, info["certificate"]["merkle_root"])
        st, h, body = e.request("GET", "/api/notary/v2/stored-files/%s/download" % f["id"], headers=self.auth)
        self.assertEqual((st, body), (200, "ü".encode()))
        self.assertEqual(h["content-disposition"],
                         "attachment;filename=\"_bersicht M_rz.txt\";filename*=UTF-8''%C3%9Cbersicht%20M%C3%A4rz.txt")
        st, h, body = e.request("GET", "/api/notary/v2/stored-files/%s/download" % self.files[0]["id"],
                                headers=self.auth)
        self.assertEqual(h["content-disposition"], "attachment;filename=f00.txt")
        st, h, body = e.request("HEAD", "/api/notary/v2/stored-files/%s/download" % self.files[0]["id"],
                                headers=self.auth)
        self.assertEqual((st, body, h["content-length"]), (200, b"", "9"))

    def test_errors_401_403_404(self):
        e = self.emu
        fid = self.files[0]["id"]
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": self.token}):
            st, _, body = e.request("GET", "/api/notary/v2/stored-files/" + fid, headers=headers)
            self.assertEqual((st, body), (401, b""))
        e.control("POST", "/_emu/notary/users", {"login": "other@example.com", "password": "pw"})
        other = e.control("POST", "/_emu/notary/files", {"login": "other@example.com", "name": "o.txt", "size": 10})
        for suffix in ("", "/download"):
            st, _, body = e.request("GET", "/api/notary/v2/stored-files/" + other["id"] + suffix, headers=self.auth)
            self.assertEqual((st, body), (403, b""))
            st, _, body = e.request("GET", "/api/notary/v2/stored-files/nope" + suffix, headers=self.auth)
            self.assertEqual((st, body), (404, b"{}"))
        other_tok = e.notary_token("other@example.com", "pw")
        r = json.loads(e.request("GET", "/api/notary/v2/stored-files",
                                 headers={"Authorization": "Bearer " + other_tok})[2])
        self.assertEqual([f["id"] for f in r["files"]], [other["id"]])

    def test_upload_and_delete(self):
        e = self.emu
        body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"up.txt\"\r\n"
                b"Content-Type: text/plain\r\n\r\nuploaded\r\n--XyZ--\r\n")
        h = dict(self.auth, **{"Content-Type": "multipart/form-data; boundary=XyZ"})
        st, _, resp = e.request("POST", "/api/notary/v2/stored-files", body, h)
        self.assertEqual(st, 201)
        fid = json.loads(resp)["file_id"]
        st, _, resp = e.request("GET", "/api/notary/v2/stored-files/%s/download" % fid, headers=self.auth)
        self.assertEqual(resp, b"uploaded")
        st, _, resp = e.request("POST", "/api/notary/v2/stored-files", b"--XyZ--\r\n", h)
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(resp)["debug"]["message"], "multipart part 'file' is required")
        st, _, resp = e.request("DELETE", "/api/notary/v2/stored-files/" + fid, headers=self.auth)
        self.assertEqual((st, resp), (204, b""))
        st, _, resp = e.request("GET", "/api/notary/v2/stored-files/" + fid, headers=self.auth)
        self.assertEqual((st, resp), (404, b"{}"))

    def test_expire(self):
        e = self.emu
        e.control("POST", "/_emu/notary/expire")
        st, _, body = e.request("GET", "/api/notary/v2/stored-files", headers=self.auth)
        self.assertEqual((st, body), (401, b""))
        st, _, _ = e.request("GET", "/api/notary/v2/stored-files",
                             headers={"Authorization": "Bearer " + e.notary_token()})
        self.assertEqual(st, 200)


class TestTokenTTL(Base):
    ARGS = ("--b2-token-ttl", "1", "--notary-token-ttl", "1", "--seed-demo")

    def test_tokens_expire_by_time(self):
        e = self.emu
        tok = e.token()
        ntok = e.notary_token()
        f = e.info["seed"]["b2"]["files"][0]
        path = "/b2api/v2/b2_download_file_by_id?fileId=" + f["id"]
        self.assertEqual(e.request("GET", path, headers={"Authorization": tok})[0], 200)
        time.sleep(1.3)
        self.assertB2Error(e.request("GET", path, headers={"Authorization": tok}), 401, "expired_auth_token")
        st, _, body = e.request("GET", "/api/notary/v2/stored-files", headers={"Authorization": "Bearer " + ntok})
        self.assertEqual((st, body), (401, b""))


class TestTLS(Base):
    TLS = True
    ARGS = ("--seed-demo",)

    def test_https_verifies_with_generated_ca(self):
        e = self.emu
        self.assertTrue(e.url.startswith("https://127.0.0.1:"))
        self.assertTrue(os.path.isfile(e.ca_file))
        ctx = ssl.create_default_context(cafile=e.ca_file)
        c = http.client.HTTPSConnection("127.0.0.1", e.port, timeout=10, context=ctx)
        tok = e.token()
        f = e.info["seed"]["b2"]["files"][0]
        for _ in range(3):   # keep-alive over TLS
            c.request("GET", "/b2api/v2/b2_download_file_by_id?fileId=" + f["id"], headers={"Authorization": tok})
            r = c.getresponse()
            self.assertEqual(hashlib.sha1(r.read()).hexdigest(), f["sha1"])
        c.close()
        # localhost is in the certificate too
        c = http.client.HTTPSConnection("localhost", e.port, timeout=10, context=ctx)
        c.request("GET", "/api/1/accounts?login=x")
        self.assertEqual(c.getresponse().status, 200)
        c.close()

    def test_https_without_ca_fails(self):
        ctx = ssl.create_default_context()
        c = http.client.HTTPSConnection("127.0.0.1", self.emu.port, timeout=10, context=ctx)
        with self.assertRaises(ssl.SSLCertVerificationError):
            c.request("GET", "/api/1/accounts?login=x")
        c.close()
        # and the server survives the failed handshake
        st, _, _ = self.emu.request("GET", "/api/1/accounts?login=x")
        self.assertEqual(st, 200)


class TestControl(Base):
    def test_control_errors_and_info(self):
        e = self.emu
        for path, body in (("/_emu/b2/files", {"bucket": "none", "name": "x", "data": "x"}),
                           ("/_emu/b2/buckets", {"name": "x"}),
                           ("/_emu/b2/keys", {"key_id": "k"}),
                           ("/_emu/notary/files", {"login": "nobody", "name": "x", "data": "x"})):
            st, _, resp = e.request("POST", path, body)
            self.assertEqual(st, 400, path)
            self.assertIn("error", json.loads(resp))
        st, _, _ = e.request("POST", "/_emu/nope", {})
        self.assertEqual(st, 404)
        self.assertEqual(e.control("GET", "/_emu/info")["url"], e.url)

    def test_listens_on_loopback_only(self):
        out = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        lines = [l for l in out.splitlines() if ":%d " % self.emu.port in l]
        if lines:
            self.assertTrue(all("127.0.0.1:%d" % self.emu.port in l for l in lines), lines)


if __name__ == "__main__":
    unittest.main()
