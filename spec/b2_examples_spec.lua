-- The B2 example scripts, run as a user would run them, against the emulator.
local cf = require "cloudfetch"
local emu = require "support.emulator"
local fx = require "support.fixtures"
local q, slurp, tmpdir = fx.shell_quote, fx.read_file, fx.tmpdir

local e

-- Runs an example with the B2 environment; returns ok, exit code, stdout, stderr.
local function run(script, args, env)
  env = env or {}
  local vars = {
    B2_APPLICATION_KEY_ID = env.key_id or e.info.b2.key_id,
    B2_APPLICATION_KEY = env.key or e.info.b2.key,
    B2_REALM = e.url,
    LUA_PATH = "./lua/?.lua;./lua/?/init.lua;;",
    LUA_CPATH = "./?.so;;",
  }
  local parts = {}
  for k, v in pairs(vars) do parts[#parts + 1] = k .. "=" .. q(v) end
  for _, a in ipairs(args) do args[_] = q(a) end
  local errfile = os.tmpname()
  local cmd = string.format("env %s lua5.4 %s %s 2>%s", table.concat(parts, " "), q(script),
    table.concat(args, " "), q(errfile))
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok, _, code = p:close()
  local err = slurp(errfile) or ""
  os.remove(errfile)
  return ok, code, out, err
end

local function file(bucket, name, data)
  return e:control("POST", "/_emu/b2/files", { bucket = bucket, name = name, data_b64 = cf.base64(data) })
end

local function sha1_of(path)
  local p = assert(io.popen("sha1sum " .. q(path)))
  local hex = p:read("a"):match("^(%x+)")
  p:close()
  return hex
end

lazy_setup(function()
  e = emu.start{ tls = false }
end)

lazy_teardown(function()
  if e then e:stop() end
end)

before_each(function()
  e:reset()
  e:control("POST", "/_emu/b2/buckets", { name = "example-bucket", type = "allPrivate", bucket_info = {} })
end)

describe("examples/b2_list.lua", function()
  it("lists a bucket's files with sizes and a total", function()
    file("example-bucket", "a.txt", "12345")
    file("example-bucket", "dir/b c.txt", "1234567890")
    file("example-bucket", "zz+%.bin", "")
    local ok, code, out, err = run("examples/b2_list.lua", { "example-bucket" })
    assert.is_true(ok, err)
    assert.equal(0, code)
    assert.truthy(out:find("%s5  a%.txt\n"))
    assert.truthy(out:find("%s10  dir/b c%.txt\n"))
    assert.truthy(out:find("%s0  zz%+%%%.bin\n"))
    assert.truthy(out:find("3 files, 15 bytes", 1, true))
  end)

  it("lists under a prefix", function()
    file("example-bucket", "a.txt", "12345")
    file("example-bucket", "dir/b.txt", "12")
    local ok, _, out = run("examples/b2_list.lua", { "example-bucket", "dir/" })
    assert.is_true(ok)
    assert.is_nil(out:find("a.txt", 1, true))
    assert.truthy(out:find("1 file, 2 bytes", 1, true))
  end)

  it("fails with a message for an unknown bucket or a wrong key", function()
    local ok, code, _, err = run("examples/b2_list.lua", { "no-such-bucket" })
    assert.is_false(not not ok)
    assert.not_equal(0, code)
    assert.truthy(err:find("no-such-bucket", 1, true))
    local ok2, _, _, err2 = run("examples/b2_list.lua", { "example-bucket" }, { key = "wrong-secret-key" })
    assert.is_false(not not ok2)
    assert.truthy(err2:find("auth", 1, true))
    assert.is_nil(err2:find("wrong-secret-key", 1, true))
  end)

  it("prints its usage without arguments", function()
    local ok, code, _, err = run("examples/b2_list.lua", {})
    assert.is_false(not not ok)
    assert.equal(2, code)
    assert.truthy(err:find("usage", 1, true))
  end)
end)

describe("examples/b2_download.lua", function()
  local dir

  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  it("downloads by id, verifies and saves under the file's own name", function()
    local data = string.rep("cloudfetch ", 5000)
    local up = file("example-bucket", "reports/2024/summary report.txt", data)
    local ok, code, out, err = run("examples/b2_download.lua", { up.fileId, dir })
    assert.is_true(ok, err)
    assert.equal(0, code)
    local path = dir .. "/summary report.txt"
    assert.equal(data, slurp(path))
    assert.truthy(out:find("reports/2024/summary report.txt", 1, true))
    assert.truthy(out:find(tostring(#data), 1, true))
    assert.truthy(out:find(sha1_of(path) .. " (verified)", 1, true))
  end)

  it("fails on a corrupted body and leaves no file", function()
    local up = file("example-bucket", "c.bin", string.rep("x", 10000))
    e:fault{ path = "b2_download_file_by_id", corrupt_at = 500, count = 10 }
    local ok, code, _, err = run("examples/b2_download.lua", { up.fileId, dir })
    assert.is_false(not not ok)
    assert.not_equal(0, code)
    assert.truthy(err:find("integrity", 1, true))
    assert.is_nil(slurp(dir .. "/c.bin"))
  end)

  it("fails with B2's code for an unknown file id", function()
    local ok, _, _, err = run("examples/b2_download.lua", { "4_zmissing", dir })
    assert.is_false(not not ok)
    assert.truthy(err:find("not_found", 1, true))
  end)
end)
