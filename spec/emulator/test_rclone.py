"""Conformance: Debian's rclone (b2 backend, API v1 paths) against the emulator over plain http.

Fails (does not skip) when rclone is missing and the environment variable CI is set.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emuhelp import Emulator, require_in_ci  # noqa: E402

RCLONE = shutil.which("rclone")
TEST_TIMEOUT = 120


def sha1_file(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class TestRclone(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_in_ci(RCLONE is not None, "rclone")
        cls.emu = Emulator("--seed-demo")
        assert cls.emu.url.startswith("http://127.0.0.1:")
        cls.seed = cls.emu.info["seed"]["b2"]
        cls.emu.control("POST", "/_emu/b2/buckets", {"name": "rclone-target"})

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        def too_slow(signum, frame):
            raise TimeoutError("test took longer than %d s" % TEST_TIMEOUT)
        signal.signal(signal.SIGALRM, too_slow)
        signal.alarm(TEST_TIMEOUT)
        self.emu.request("DELETE", "/_emu/faults")
        self.tmp = tempfile.TemporaryDirectory(prefix="emu-rclone-")
        config = os.path.join(self.tmp.name, "rclone.conf")
        open(config, "w").close()
        # Only the emulator: an empty config file, the remote from the environment.
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.tmp.name,
            "XDG_CACHE_HOME": os.path.join(self.tmp.name, "cache"),
            "RCLONE_CONFIG": config,
            "RCLONE_CONFIG_EMU_TYPE": "b2",
            "RCLONE_CONFIG_EMU_ACCOUNT": self.emu.info["b2"]["key_id"],
            "RCLONE_CONFIG_EMU_KEY": self.emu.info["b2"]["key"],
            "RCLONE_CONFIG_EMU_ENDPOINT": self.emu.url,
        }

    def tearDown(self):
        signal.alarm(0)
        self.tmp.cleanup()

    def rclone(self, *args, check=True):
        argv = [RCLONE, "--low-level-retries", "1", "--retries", "1", "--contimeout", "5s",
                "--timeout", "30s"] + list(args)
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=90)
        if check and r.returncode != 0:
            self.fail("rclone %s failed (%d):\n%s" % (" ".join(args), r.returncode, r.stderr))
        return r

    def test_lsf(self):
        out = self.rclone("lsf", "emu:demo-bucket").stdout.splitlines()
        self.assertEqual(sorted(out), ["big/", "données/", "hello.txt"])

    def test_lsf_recursive_with_sizes(self):
        out = self.rclone("lsf", "-R", "--files-only", "--format", "ps", "emu:demo-bucket").stdout.splitlines()
        want = sorted("%s;%d" % (f["name"], f["size"]) for f in self.seed["files"])
        self.assertEqual(sorted(out), want)

    def test_copy_down_checks_bytes(self):
        dest = os.path.join(self.tmp.name, "down")
        for f in self.seed["files"]:
            self.rclone("copy", "emu:demo-bucket/" + f["name"], dest)
            path = os.path.join(dest, os.path.basename(f["name"]))
            self.assertEqual(os.path.getsize(path), f["size"])
            self.assertEqual(sha1_file(path), f["sha1"], f["name"])

    def test_copy_up_and_check(self):
        src = os.path.join(self.tmp.name, "up")
        os.makedirs(os.path.join(src, "sub dir"))
        with open(os.path.join(src, "a.txt"), "w") as f:
            f.write("hello from rclone\n")
        with open(os.path.join(src, "sub dir", "b é.bin"), "wb") as f:
            f.write(os.urandom(300_000))
        self.rclone("copy", src, "emu:rclone-target/up")
        out = self.rclone("lsf", "-R", "--files-only", "emu:rclone-target/up").stdout.splitlines()
        self.assertEqual(sorted(out), ["a.txt", "sub dir/b é.bin"])
        r = self.rclone("check", src, "emu:rclone-target/up")
        self.assertIn("0 differences found", r.stderr)
        self.assertTrue(any("b2_upload_file" in e["path"] for e in self.emu.log_entries()))

    def test_corrupted_download_is_refused(self):
        f = next(f for f in self.seed["files"] if f["name"] == "hello.txt")
        self.emu.fault(path="b2_download_file_by_id", corrupt_at=0, count=10)
        dest = os.path.join(self.tmp.name, "bad")
        r = self.rclone("copy", "emu:demo-bucket/hello.txt", dest, check=False)
        self.assertNotEqual(r.returncode, 0)
        # rclone checks the body against X-Bz-Content-Sha1 (1.60 leaves the bad file behind)
        self.assertIn("SHA1 mismatch", r.stderr)
        self.assertIn(f["sha1"], r.stderr)


if __name__ == "__main__":
    unittest.main()
