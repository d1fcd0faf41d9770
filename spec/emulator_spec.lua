-- The emulator's Lua helper (spec/support/emulator.lua): start, control calls, faults,
-- log, reset, and a plain cf.open download of a seeded file over http and https.
local cf = require "cloudfetch"
local emu = require "support.emulator"

local function b2_token(e)
  local d = assert(cf.open(e.url .. "/b2api/v2/b2_authorize_account", {
    headers = { Authorization = "Basic " .. cf.base64(e.info.b2.key_id .. ":" .. e.info.b2.key) },
    ca_file = e.ca_file, retry = false,
  }))
  assert.equal(200, d.status)
  return assert(d:json()).authorizationToken
end

local function seeded(e, name)
  for _, f in ipairs(e.info.seed.b2.files) do
    if f.name == name then return f end
  end
  error("no seeded file " .. name)
end

describe("support.emulator", function()
  local e

  lazy_setup(function()
    e = emu.start{ tls = false, args = { "--seed-demo" } }
  end)

  lazy_teardown(function()
    if e then e:stop() end
  end)

  it("starts on 127.0.0.1 and reads the ready file", function()
    assert.truthy(e.url:match("^http://127%.0%.0%.1:%d+$"))
    assert.equal("K000emulator", e.info.b2.key_id)
    assert.equal("demo@example.com", e.info.notary.login)
    assert.equal("demo-bucket", e.info.seed.b2.bucket)
    assert.is_nil(e.ca_file)
  end)

  it("downloads a seeded file with plain cf.open and checks its SHA-1", function()
    local f = seeded(e, "hello.txt")
    local d = assert(cf.open(e.url .. "/b2api/v2/b2_download_file_by_id", {
      query = { fileId = f.id }, headers = { Authorization = b2_token(e) },
      expect = { sha1 = f.sha1, size = math.tointeger(f.size) },
    }))
    assert.equal(200, d.status)
    assert.equal(f.id, d:header("X-Bz-File-Id"))
    local body = assert(d:read_all())
    assert.equal(f.size, #body)
    assert.equal(f.sha1, d:digest("sha1"))
  end)

  it("makes buckets and files through control calls", function()
    local b = e:control("POST", "/_emu/b2/buckets", { name = "lua-helper-bucket" })
    assert.is_string(b.bucketId)
    local f = e:control("POST", "/_emu/b2/files",
      { bucket = "lua-helper-bucket", name = "x.txt", data_b64 = cf.base64("hello lua") })
    assert.equal(9, f.contentLength)
    local d = assert(cf.open(e.url .. "/file/lua-helper-bucket/x.txt",
      { headers = { Authorization = b2_token(e) } }))
    assert.equal("hello lua", d:read_all())
  end)

  it("injects a fault for the next request only and logs both", function()
    local f = seeded(e, "hello.txt")
    e:clear_log()
    e:fault{ path = f.id, status = 503, retry_after = 0 }
    local url = e.url .. "/b2api/v2/b2_download_file_by_id?fileId=" .. f.id
    local tok = b2_token(e)
    local d1 = assert(cf.open(url, { headers = { Authorization = tok }, retry = false }))
    assert.equal(503, d1.status)
    assert.equal("0", d1:header("Retry-After"))
    d1:close()
    local d2 = assert(cf.open(url, { headers = { Authorization = tok }, retry = false }))
    assert.equal(200, d2.status)
    d2:close()
    local statuses = {}
    for _, entry in ipairs(e:log()) do
      if entry.path:find("b2_download_file_by_id", 1, true) then statuses[#statuses + 1] = entry.status end
    end
    assert.same({ 503, 200 }, statuses)
  end)

  it("raises on a control call the emulator refuses", function()
    assert.has_error(function() e:control("POST", "/_emu/b2/files", { bucket = "none", name = "x" }) end)
    assert.has_error(function() e:control("GET", "/_emu/no-such-thing") end)
  end)

  it("resets to the start state", function()
    e:reset()
    assert.same({}, e:log())
    local d = assert(cf.open(e.url .. "/file/demo-bucket/hello.txt",
      { headers = { Authorization = b2_token(e) }, retry = false }))
    assert.equal(404, d.status)
    d:close()
  end)
end)

describe("support.emulator with tls", function()
  it("serves https with its own CA", function()
    local e = emu.start{ tls = true, args = { "--seed-demo" } }
    local ok, err = pcall(function()
      assert.truthy(e.url:match("^https://127%.0%.0%.1:%d+$"))
      assert.is_string(e.ca_file)
      local f = seeded(e, "hello.txt")
      local d = assert(cf.open(e.url .. "/b2api/v2/b2_download_file_by_id?fileId=" .. f.id, {
        headers = { Authorization = b2_token(e) }, ca_file = e.ca_file, hash = { "sha1" },
      }))
      assert(d:read_all())
      assert.equal(f.sha1, d:digest("sha1"))
      -- without the CA the certificate is refused
      local d2, err2 = cf.open(e.url .. "/api/1/accounts?login=x", { retry = false })
      assert.is_nil(d2)
      assert.is_true(cf.is_error(err2))
      e:fault{ path = "/api/1/accounts", status = 500 }
      assert.equal(1, #e:control("GET", "/_emu/faults"))
    end)
    local dir = e.tls_dir
    e:stop()
    assert.is_nil(io.open(dir .. "/ca.pem"))
    assert(ok, err)
  end)
end)
