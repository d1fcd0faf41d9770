-- bin/cloudfetch run as a subprocess against the emulator and the test
-- server: every subcommand, exit statuses, one-line errors without secrets,
-- --json documents, progress on a terminal (through `script`) and not on a file.
local cjson = require "cjson"
local emu = require "support.emulator"
local fx = require "support.fixtures"

local q = fx.shell_quote
local FAKE_KEY = "K005-FAKE-SECRET-do-not-print-7d3e"
local FAKE_PASSWORD = "pw-FAKE-SECRET-do-not-print-91a2"

local e, server, dir

-- Runs the CLI; returns exit status, stdout, stderr.
local function cli(env, ...)
  local parts = {}
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
  local argv = {}
  for _, a in ipairs{ ... } do argv[#argv + 1] = q(a) end
  local errfile = os.tmpname()
  local cmd = ("env %s lua5.4 bin/cloudfetch %s 2>%s"):format(table.concat(parts, " "), table.concat(argv, " "),
    q(errfile))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, code = p:close()
  local err = fx.read_file(errfile) or ""
  os.remove(errfile)
  return code, out, err
end

local function b2env(extra)
  local t = { B2_APPLICATION_KEY_ID = e.info.b2.key_id, B2_APPLICATION_KEY = e.info.b2.key, B2_REALM = e.url }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function notary_env(extra)
  local t = { ACRONIS_LOGIN = "demo@example.com", ACRONIS_PASSWORD = "demo-password", ACRONIS_CLOUD_URL = e.url }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- An error report: one line, the pinned prefix, no trace, no secret.
local function one_line_error(err, out)
  assert.matches("^cloudfetch: [%w_]+: [^\n]+\n$", err)
  assert.is_nil(err:find("traceback", 1, true))
  for _, s in ipairs{ FAKE_KEY, FAKE_PASSWORD, e.info.b2.key } do
    assert.is_nil(err:find(s, 1, true), "secret in stderr")
    assert.is_nil((out or ""):find(s, 1, true), "secret in stdout")
  end
end

local function sha1_of(path)
  return fx.run("sha1sum " .. q(path)):match("^(%x+)")
end

lazy_setup(function()
  e = emu.start{ tls = false }
  server = fx.start_server()
end)

lazy_teardown(function()
  if e then e:stop() end
  if server then server:stop() end
end)

local files

before_each(function()
  e:reset()
  e:control("POST", "/_emu/b2/buckets", { name = "cli-bucket", type = "allPrivate", bucket_info = {} })
  files = {
    e:control("POST", "/_emu/b2/files", { bucket = "cli-bucket", name = "docs/a.txt", data = "alpha\n" }),
    e:control("POST", "/_emu/b2/files", { bucket = "cli-bucket", name = "docs/b.bin", size = 300000, random = "b" }),
    e:control("POST", "/_emu/b2/files", { bucket = "cli-bucket", name = "top.txt", data = "top\n" }),
  }
  dir = fx.tmpdir()
end)

after_each(function()
  fx.rmdir(dir)
end)

describe("cloudfetch (command line)", function()
  it("prints help and the version on stdout, exit 0", function()
    local code, out = cli(nil, "--help")
    assert.equal(0, code)
    assert.matches("Usage: cloudfetch", out)
    code, out = cli(nil, "--version")
    assert.equal(0, code)
    assert.matches("^cloudfetch %d+%.%d+%.%d+\n$", out)
    code, out = cli(nil, "b2", "mirror", "--help")
    assert.equal(0, code)
    assert.matches("%-%-shard", out)
  end)

  it("exits 2 on a usage error, saying what is wrong", function()
    local code, _, err = cli(nil, "frobnicate")
    assert.equal(2, code)
    assert.matches("cloudfetch: ", err)
    assert.equal(2, (cli(nil, "get")))
    assert.equal(2, (cli(b2env(), "b2", "mirror", "b2://cli-bucket", dir, "--shard", "4/3")))
    assert.equal(2, (cli(nil, "get", "ftp://example.com/x")))
    assert.equal(2, (cli(nil, "get", server.url .. "/bytes", "--sha1", "nothex")))
    code, _, err = cli({ B2_APPLICATION_KEY_ID = "" }, "b2", "ls", "cli-bucket")
    assert.equal(2, code)
    assert.matches("B2_APPLICATION_KEY_ID", err)
  end)

  describe("get", function()
    it("downloads a URL, verified, naming the file from the server", function()
      local meta = fx.meta(server, 5000, 3)
      local code, out, err = cli(nil, "get", server.url .. "/file/data.bin?n=5000&seed=3", "-o", dir .. "/",
        "--sha256", meta.sha256)
      assert.equal(0, code, err)
      assert.equal("", out)
      assert.equal("", err) -- stderr is a file: no progress, no summary
      assert.equal(meta.sha1, sha1_of(dir .. "/data.bin"))
    end)

    it("exits 4 on a digest mismatch and leaves no file", function()
      local code, out, err = cli(nil, "get", server.url .. "/bytes?n=5000", "-o", dir .. "/x.bin",
        "--sha256", string.rep("0", 64))
      assert.equal(4, code)
      one_line_error(err, out)
      assert.matches("^cloudfetch: integrity: sha256 mismatch", err)
      assert.same({}, fx.list(dir))
    end)

    it("exits 7 when the target exists, unless --overwrite", function()
      fx.write_file(dir .. "/x.bin", "old")
      local code, out, err = cli(nil, "get", server.url .. "/bytes?n=10", "-o", dir .. "/x.bin")
      assert.equal(7, code)
      one_line_error(err, out)
      assert.matches("%-%-overwrite", err)
      assert.equal("old", fx.read_file(dir .. "/x.bin"))
      assert.equal(0, (cli(nil, "get", server.url .. "/bytes?n=10", "-o", dir .. "/x.bin", "--overwrite")))
      assert.equal(fx.body(10), fx.read_file(dir .. "/x.bin"))
    end)

    it("exits 3 when the server's certificate is not trusted, and 0 with --ca-file", function()
      local tls = fx.start_server{ tls = true }
      local ok, why = pcall(function()
        local code, out, err = cli(nil, "get", tls.url .. "/bytes?n=10", "-o", dir .. "/t")
        assert.equal(3, code)
        one_line_error(err, out)
        assert.matches("^cloudfetch: tls: ", err)
        code = cli(nil, "get", tls.url .. "/bytes?n=10", "-o", dir .. "/t", "--ca-file", tls.info.ca_file)
        assert.equal(0, code)
        code = cli({ CLOUDFETCH_CA_FILE = tls.info.ca_file }, "get", tls.url .. "/bytes?n=10", "-o", dir .. "/u")
        assert.equal(0, code)
      end)
      tls:stop()
      assert(ok, why)
    end)

    it("exits 6 on a 404 and 3 on a network failure, with one line each", function()
      local code, out, err = cli(nil, "get", server.url .. "/status/404", "-o", dir .. "/x")
      assert.equal(6, code)
      one_line_error(err, out)
      code, out, err = cli(nil, "get", server.info.closed_url .. "/x", "-o", dir .. "/x")
      assert.equal(3, code)
      one_line_error(err, out)
      assert.same({}, fx.list(dir))
    end)

    it("streams to stdout with -o -, and reports a mismatch after the bytes went out (exit 4)", function()
      local code, out = cli(nil, "get", server.url .. "/bytes?n=3000&seed=2", "-o", "-")
      assert.equal(0, code)
      assert.is_nil(fx.diff(out, fx.body(3000, 2)))
      local err
      code, out, err = cli(nil, "get", server.url .. "/bytes?n=3000&seed=2", "-o", "-", "--sha1", string.rep("a", 40))
      assert.equal(4, code)
      assert.equal(3000, #out)
      assert.matches("already went to stdout", err)
    end)

    it("prints the result as one JSON document with --json, and errors too", function()
      local code, out = cli(nil, "get", server.url .. "/bytes?n=100&seed=4", "-o", dir .. "/j.bin", "--json")
      assert.equal(0, code)
      local doc = cjson.decode(out)
      assert.equal(dir .. "/j.bin", doc.path)
      assert.equal(100, doc.bytes)
      assert.equal(fx.meta(server, 100, 4).sha1, doc.sha1)
      code, out = cli(nil, "--json", "get", server.url .. "/status/404", "-o", dir .. "/k")
      assert.equal(6, code)
      doc = cjson.decode(out)
      assert.equal("http", doc.error.kind)
      assert.equal(404, doc.error.status)
      assert.is_string(doc.error.message)
    end)
  end)

  describe("b2", function()
    it("ls lists recursively with ids, sizes and names; its ids feed get", function()
      local code, out = cli(b2env(), "b2", "ls", "cli-bucket")
      assert.equal(0, code)
      local lines = {}
      for id, size, name in out:gmatch("(%S+)%s+(%d+)%s+([^\n]+)\n") do lines[#lines + 1] = { id, size, name } end
      assert.equal(3, #lines)
      assert.same({ files[2].fileId, "300000", "docs/b.bin" }, lines[2])
      code, out = cli(b2env(), "b2", "ls", "cli-bucket/docs/", "--long")
      assert.equal(0, code)
      assert.matches("%d%d%d%d%-%d%d%-%d%dT", out)
      assert.equal(2, select(2, out:gsub("\n", "")))
      code = cli(b2env(), "b2", "get", lines[2][1], "-o", dir .. "/")
      assert.equal(0, code)
      assert.equal(files[2].sha1, sha1_of(dir .. "/b.bin"))
    end)

    it("ls --json prints the service's file tables", function()
      local code, out = cli(b2env(), "b2", "ls", "cli-bucket", "--json")
      assert.equal(0, code)
      local doc = cjson.decode(out)
      assert.equal(3, #doc)
      assert.equal("docs/a.txt", doc[1].fileName)
      assert.equal(files[1].fileId, doc[1].fileId)
      assert.equal(6, doc[1].contentLength)
    end)

    it("get downloads by name from b2://BUCKET/NAME, keeping the name in a directory", function()
      local code, out, err = cli(b2env(), "b2", "get", "b2://cli-bucket/docs/a.txt", "-o", dir .. "/", "--json")
      assert.equal(0, code, err)
      local doc = cjson.decode(out)
      assert.equal(dir .. "/a.txt", doc.path)
      assert.equal(files[1].sha1, doc.sha1)
      assert.equal("alpha\n", fx.read_file(dir .. "/a.txt"))
    end)

    it("info shows a file's information", function()
      local code, out = cli(b2env(), "b2", "info", files[3].fileId, "--json")
      assert.equal(0, code)
      assert.equal("top.txt", cjson.decode(out).fileName)
    end)

    it("exits 5 on a refused key and 6 on a missing file, never showing the key", function()
      local code, out, err = cli(b2env{ B2_APPLICATION_KEY = FAKE_KEY }, "b2", "ls", "cli-bucket")
      assert.equal(5, code)
      one_line_error(err, out)
      code, out, err = cli(b2env{ B2_APPLICATION_KEY = FAKE_KEY }, "--json", "b2", "get", files[1].fileId)
      assert.equal(5, code)
      one_line_error(err, out)
      assert.equal("auth", cjson.decode(out).error.kind)
      code, out, err = cli(b2env(), "b2", "get", "4_no_such_file", "-o", dir .. "/")
      assert.equal(6, code)
      one_line_error(err, out)
      code, out, err = cli(b2env(), "b2", "ls", "no-such-bucket")
      assert.equal(6, code)
      one_line_error(err, out)
    end)

    it("mirror brings the bucket down, and a second run downloads nothing", function()
      local code, out, err = cli(b2env(), "b2", "mirror", "b2://cli-bucket", dir .. "/m")
      assert.equal(0, code, err)
      assert.matches("downloaded 3", out)
      assert.equal(files[2].sha1, sha1_of(dir .. "/m/docs/b.bin"))
      e:clear_log()
      code, out = cli(b2env(), "b2", "mirror", "b2://cli-bucket", dir .. "/m", "--json")
      assert.equal(0, code)
      local report = cjson.decode(out)
      assert.equal(0, report.downloaded)
      assert.equal(3, report.skipped)
      assert.same({}, report.failed)
      assert.equal(0, #e:requests("b2_download_file_by_id"))
    end)

    it("mirror takes a prefix, --dry-run, --delete, --compare and --shard", function()
      local code, out = cli(b2env(), "b2", "mirror", "b2://cli-bucket/docs/", dir .. "/m", "--dry-run", "--json")
      assert.equal(0, code)
      assert.equal(2, cjson.decode(out).downloaded)
      assert.is_false(fx.is_dir(dir .. "/m"))
      assert.equal(0, (cli(b2env(), "b2", "mirror", "b2://cli-bucket/docs/", dir .. "/m")))
      fx.write_file(dir .. "/m/extra", "x")
      code, out = cli(b2env(), "b2", "mirror", "b2://cli-bucket/docs/", dir .. "/m", "--delete", "--compare", "hash",
        "--json")
      assert.equal(0, code)
      local report = cjson.decode(out)
      assert.equal(1, report.deleted)
      assert.equal(2, report.skipped)
      local total = 0
      for k = 1, 2 do
        code, out = cli(b2env(), "b2", "mirror", "b2://cli-bucket", dir .. "/s" .. k, "--shard", k .. "/2", "--json")
        assert.equal(0, code)
        total = total + cjson.decode(out).downloaded
      end
      assert.equal(3, total)
    end)

    it("mirror exits 1 when a file fails, listing it on stderr", function()
      e:fault{ path = files[2].fileId, corrupt_at = 5, count = 10 }
      local code, out, err = cli(b2env(), "b2", "mirror", "b2://cli-bucket", dir .. "/m")
      assert.equal(1, code)
      assert.matches("failed 1", out)
      assert.matches("docs/b.bin: integrity:", err)
    end)
  end)

  describe("notary", function()
    local ids

    before_each(function()
      ids = {}
      for _, name in ipairs{ "n1.txt", "sub/n2.bin" } do
        local obj = e:control("POST", "/_emu/notary/files", { name = name, size = 2000, random = name })
        local f = obj.file or obj
        ids[#ids + 1] = { id = f.id or f.file_id or f.uuid, name = name, sha256 = obj.sha256 }
      end
    end)

    it("ls, get and mirror work", function()
      local code, out, err = cli(notary_env(), "notary", "ls")
      assert.equal(0, code, err)
      assert.truthy(out:find(ids[1].id, 1, true))
      assert.truthy(out:find("sub/n2.bin", 1, true))
      code, out = cli(notary_env(), "notary", "ls", "--json")
      assert.equal(0, code)
      assert.is_true(#cjson.decode(out) >= 2)
      code = cli(notary_env(), "notary", "get", ids[1].id, "-o", dir .. "/")
      assert.equal(0, code)
      assert.equal(ids[1].sha256, fx.run("sha256sum " .. q(dir .. "/n1.txt")):match("^(%x+)"))
      code, out = cli(notary_env(), "notary", "mirror", dir .. "/m", "--json")
      assert.equal(0, code)
      assert.is_true(cjson.decode(out).downloaded >= 2)
      code, out = cli(notary_env(), "notary", "mirror", dir .. "/m", "--json")
      assert.equal(0, code)
      assert.equal(0, cjson.decode(out).downloaded)
    end)

    it("exits 5 on a refused password, never showing it", function()
      local code, out, err = cli(notary_env{ ACRONIS_PASSWORD = FAKE_PASSWORD }, "notary", "ls")
      assert.equal(5, code)
      one_line_error(err, out)
      code, out, err = cli(notary_env{ ACRONIS_PASSWORD = FAKE_PASSWORD }, "--json", "notary", "get", ids[1].id)
      assert.equal(5, code)
      one_line_error(err, out)
    end)

    it("exits 6 for a file that does not exist", function()
      local code, out, err = cli(notary_env(), "notary", "get", "00000000-0000-0000-0000-000000000000",
        "-o", dir .. "/")
      assert.equal(6, code)
      one_line_error(err, out)
    end)
  end)

  describe("progress", function()
    it("draws a bar on a terminal, redrawn in place up to 100 %", function()
      local cmd = ("env LUA_PATH=%s LUA_CPATH=%s COLUMNS=100 lua5.4 bin/cloudfetch get %s -o %s"):format(
        q(os.getenv("LUA_PATH") or ""), q(os.getenv("LUA_CPATH") or ""),
        q(server.url .. "/slow?n=600000&rate=400000"), q(dir .. "/slow.bin"))
      local out = fx.run("script -qfec " .. q(cmd) .. " /dev/null")
      assert.truthy(out:find("\r", 1, true), "no redraw")
      assert.truthy(out:find("100%", 1, true), "the bar did not reach 100 %")
      assert.truthy(out:find("B/s", 1, true), "no rate")
      assert.truthy(out:find("saved " .. dir .. "/slow.bin", 1, true), "no summary")
      for line in out:gsub("\27%[%d*[A-Za-z]", ""):gmatch("[^\r\n]+") do
        assert.is_true(utf8.len(line) <= 100, "a line wider than the terminal")
      end
      assert.equal(600000, #fx.read_file(dir .. "/slow.bin"))
    end)

    it("prints nothing when stderr is a file, plain lines with --progress", function()
      local code, _, err = cli(nil, "get", server.url .. "/slow?n=200000&rate=200000", "-o", dir .. "/a")
      assert.equal(0, code)
      assert.equal("", err)
      code, _, err = cli(nil, "get", server.url .. "/slow?n=600000&rate=200000", "-o", dir .. "/b", "--progress")
      assert.equal(0, code)
      assert.is_nil(err:find("\r", 1, true))
      assert.truthy(err:find("saved ", 1, true))
      assert.truthy(err:find("%", 1, true))
    end)

    it("--quiet prints nothing but errors", function()
      local cmd = ("env LUA_PATH=%s LUA_CPATH=%s lua5.4 bin/cloudfetch get -q %s -o %s"):format(
        q(os.getenv("LUA_PATH") or ""), q(os.getenv("LUA_CPATH") or ""),
        q(server.url .. "/bytes?n=1000"), q(dir .. "/q.bin"))
      assert.equal("", fx.run("script -qfec " .. q(cmd) .. " /dev/null"))
    end)
  end)
end)
