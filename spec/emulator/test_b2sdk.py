"""Conformance: the official Backblaze SDK (Debian python3-b2sdk, API v2) against the emulator.

Fails (does not skip) when b2sdk is missing and the environment variable CI is set.
"""

import hashlib
import io
import os
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emuhelp import Emulator, require_in_ci  # noqa: E402

try:
    from b2sdk.v2 import B2Api, InMemoryAccountInfo
    from b2sdk.v2 import exception as b2exc
except ImportError:   # pragma: no cover - depends on the machine
    B2Api = None

TEST_TIMEOUT = 120


class TestB2Sdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_in_ci(B2Api is not None, "python3-b2sdk")
        cls.emu = Emulator("--seed-demo")
        cls.seed = cls.emu.info["seed"]["b2"]

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        def too_slow(signum, frame):
            raise TimeoutError("test took longer than %d s" % TEST_TIMEOUT)
        signal.signal(signal.SIGALRM, too_slow)
        signal.alarm(TEST_TIMEOUT)
        self.emu.request("DELETE", "/_emu/faults")
        self.api = B2Api(InMemoryAccountInfo())
        # b2sdk accepts a realm URL in place of "production"
        self.api.authorize_account(self.emu.url, self.emu.info["b2"]["key_id"], self.emu.info["b2"]["key"])
        self.bucket = self.api.get_bucket_by_name("demo-bucket")

    def tearDown(self):
        signal.alarm(0)
        # close the SDK's pooled connections (requests session)
        self.api.session.raw_api.b2_http.session.close()

    def seeded(self, name):
        return next(f for f in self.seed["files"] if f["name"] == name)

    @staticmethod
    def save(downloaded):
        buf = io.BytesIO()
        downloaded.save(buf)
        return buf.getvalue()

    def test_authorize_and_list_buckets(self):
        self.assertEqual(self.api.account_info.get_api_url(), self.emu.url)
        self.assertEqual(self.api.account_info.get_account_id(), self.emu.info["b2"]["account_id"])
        names = [b.name for b in self.api.list_buckets()]
        self.assertIn("demo-bucket", names)
        self.assertEqual(self.bucket.id_, self.seed["bucket_id"])

    def test_ls(self):
        top = sorted(folder or fv.file_name for fv, folder in self.bucket.ls())
        self.assertIn("hello.txt", top)
        self.assertIn("big/", top)   # b2sdk folders, built client-side
        deep = {fv.file_name: fv for fv, _ in self.bucket.ls(recursive=True)}
        for f in self.seed["files"]:
            self.assertIn(f["name"], deep)
            self.assertEqual(deep[f["name"]].size, f["size"])
            self.assertEqual(deep[f["name"]].id_, f["id"])

    def test_download_by_id_and_by_name(self):
        for f in self.seed["files"]:
            data = self.save(self.api.download_file_by_id(f["id"]))
            self.assertEqual(hashlib.sha1(data).hexdigest(), f["sha1"], f["name"])
            d = self.bucket.download_file_by_name(f["name"])
            self.assertEqual(d.download_version.file_name, f["name"])
            self.assertEqual(d.download_version.id_, f["id"])
            self.assertEqual(hashlib.sha1(self.save(d)).hexdigest(), f["sha1"])
        csv = self.bucket.download_file_by_name("données/été 2026.csv")
        self.assertIn("filename*=UTF-8''", csv.download_version.content_disposition)
        self.assertEqual(csv.download_version.file_info.get("author"), "émulateur")

    def test_ranged_download(self):
        f = self.seeded("big/archive.bin")
        whole = self.save(self.api.download_file_by_id(f["id"]))
        part = self.save(self.api.download_file_by_id(f["id"], range_=(1000, 1999)))
        self.assertEqual(part, whole[1000:2000])

    def test_sha1_checked_by_sdk(self):
        f = self.seeded("hello.txt")
        self.emu.fault(path=f["id"], corrupt_at=3, count=30)
        with self.assertRaises(b2exc.ChecksumMismatch):
            self.save(self.api.download_file_by_id(f["id"]))

    def test_sdk_resumes_a_cut_download_with_ranges(self):
        f = self.seeded("big/archive.bin")
        self.emu.request("DELETE", "/_emu/log")
        self.emu.fault(path=f["id"], cut_after=1_000_000)
        data = self.save(self.api.download_file_by_id(f["id"]))
        self.assertEqual(hashlib.sha1(data).hexdigest(), f["sha1"])
        self.assertGreaterEqual(len([e for e in self.emu.log_entries() if "download" in e["path"]]), 2)

    def test_upload_and_read_back(self):
        data = os.urandom(50_000)
        fv = self.bucket.upload_bytes(data, "uploads/sdk é.bin", file_infos={"color": "blue"})
        self.assertEqual(fv.content_sha1, hashlib.sha1(data).hexdigest())
        self.assertEqual(self.save(self.api.download_file_by_id(fv.id_)), data)
        d = self.bucket.download_file_by_name("uploads/sdk é.bin")
        self.assertEqual(d.download_version.file_info, {"color": "blue"})
        info = self.api.get_file_info(fv.id_)
        self.assertEqual(info.size, 50_000)
        names = [fv.file_name for fv, _ in self.bucket.ls("uploads", recursive=True)]
        self.assertIn("uploads/sdk é.bin", names)

    def test_reauthorizes_after_expiry(self):
        self.emu.control("POST", "/_emu/b2/expire")
        f = self.seeded("hello.txt")
        data = self.save(self.api.download_file_by_id(f["id"]))
        self.assertEqual(hashlib.sha1(data).hexdigest(), f["sha1"])

    def test_large_file_upload(self):
        data = os.urandom(11_000_000)
        with tempfile.NamedTemporaryFile(suffix=".bin") as tmp:
            tmp.write(data)
            tmp.flush()
            fv = self.bucket.upload_local_file(tmp.name, "uploads/large.bin", min_part_size=5_000_000)
        self.assertEqual(fv.size, len(data))
        info = self.api.get_file_info(fv.id_)
        self.assertEqual(info.content_sha1, "none")
        self.assertEqual(self.save(self.api.download_file_by_id(fv.id_)), data)
        self.assertTrue(any(e["path"].startswith("/b2api/v2/b2_upload_part/")
                            for e in self.emu.log_entries()))

    def test_errors_map_to_sdk_exceptions(self):
        with self.assertRaises(b2exc.FileNotPresent):
            self.api.get_file_info("4_zdoes_not_exist")
        with self.assertRaises(b2exc.NonExistentBucket):
            self.api.get_bucket_by_name("no-such-bucket")
        api = B2Api(InMemoryAccountInfo())
        with self.assertRaises(b2exc.InvalidAuthToken):
            api.authorize_account(self.emu.url, self.emu.info["b2"]["key_id"], "wrong-key")


if __name__ == "__main__":
    unittest.main()
