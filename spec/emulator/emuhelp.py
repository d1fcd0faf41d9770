"""Shared helpers for the emulator's Python tests: start/stop it, talk HTTP to it."""

import base64
import http.client
import json
import os
import signal
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EMULATOR = os.path.join(ROOT, "spec", "support", "emulator.py")
PYTHON = "/usr/bin/python3"


class Emulator:
    """The emulator as a child process (port 0 + ready file)."""

    def __init__(self, *args, tls=False, timeout=20):
        self.tmp = tempfile.TemporaryDirectory(prefix="emu-test-")
        ready = os.path.join(self.tmp.name, "ready.json")
        argv = [PYTHON, EMULATOR, "--ready-file", ready] + list(args)
        if tls:
            argv += ["--tls-dir", os.path.join(self.tmp.name, "tls")]
        self.log_path = os.path.join(self.tmp.name, "emulator.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(ready):
                with open(ready, encoding="utf-8") as f:
                    data = f.read()
                if data.endswith("\n"):
                    self.info = json.loads(data)
                    break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("emulator did not become ready")
        if not hasattr(self, "info"):
            self.stop()
            raise RuntimeError("emulator exited: " + open(self.log_path).read())
        self.url = self.info["url"]
        u = urllib.parse.urlsplit(self.url)
        self.host, self.port, self.scheme = u.hostname, u.port, u.scheme
        self.ca_file = self.info.get("ca_file")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        self.tmp.cleanup()

    def conn(self, timeout=10):
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None, timeout=10):
        """Returns (status, headers (lower-case dict), body bytes)."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        own = conn is None
        c = conn or self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            if own:
                c.close()

    def control(self, method, path, body=None):
        status, _, data = self.request(method, path, body if body is not None else {})
        if status != 200:
            raise AssertionError("control %s %s -> %d %s" % (method, path, status, data))
        return json.loads(data)

    def fault(self, **kw):
        return self.control("POST", "/_emu/faults", kw)

    def log_entries(self):
        return self.control("GET", "/_emu/log")

    # -- B2 shortcuts
    def authorize(self, version="v2", key_id=None, key=None):
        key_id = key_id or self.info["b2"]["key_id"]
        key = key or self.info["b2"]["key"]
        basic = base64.b64encode(("%s:%s" % (key_id, key)).encode()).decode()
        return self.request("GET", "/b2api/%s/b2_authorize_account" % version,
                            headers={"Authorization": "Basic " + basic})

    def token(self, **kw):
        status, _, data = self.authorize(**kw)
        assert status == 200, data
        return json.loads(data)["authorizationToken"]

    def b2(self, name, token, params, version="v2", method="POST"):
        path = "/b2api/%s/%s" % (version, name)
        if method == "GET":
            return self.request("GET", path + "?" + urllib.parse.urlencode(params),
                                headers={"Authorization": token})
        return self.request("POST", path, params, headers={"Authorization": token})

    # -- Notary shortcuts
    def notary_token(self, login=None, password=None):
        form = urllib.parse.urlencode({"grant_type": "password",
                                       "username": login or self.info["notary"]["login"],
                                       "password": password or self.info["notary"]["password"]})
        status, _, data = self.request("POST", "/api/2/idp/token", form.encode(),
                                       {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200, data
        return json.loads(data)["access_token"]


def require_in_ci(available, what):
    """Skip when a tool is missing locally, but fail under CI (env CI set)."""
    if available:
        return
    if os.environ.get("CI"):
        raise AssertionError("%s is required under CI but missing" % what)
    raise unittest.SkipTest("%s not installed" % what)
