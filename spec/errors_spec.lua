-- cloudfetch.Error: its fields, how it prints, and that secrets never show.
local cf = require "cloudfetch"
local fx = require "support.fixtures"

describe("cloudfetch.Error", function()
  local server, url

  setup(function()
    server = fx.start_server()
    url = server.url
  end)

  teardown(function()
    if server then server:stop() end
  end)

  local function with_credentials(u, user, password)
    return (u:gsub("^(https?://)", "%1" .. user .. ":" .. password .. "@"))
  end

  local function no_secret(err, ...)
    for _, secret in ipairs({ ... }) do
      for _, text in ipairs({ tostring(err), tostring(err.message), tostring(err.url) }) do
        assert.is_nil(text:find(secret, 1, true), "secret in: " .. text)
      end
    end
  end

  it("is built by Error.new and recognised by is_error", function()
    local err = cf.Error.new{ kind = "api", message = "file not found", status = 404,
                              code = "not_found", retryable = false, url = "http://h/x" }
    assert.is_true(cf.is_error(err))
    assert.are.equal("api", err.kind)
    assert.are.equal("file not found", err.message)
    assert.are.equal(404, err.status)
    assert.are.equal("not_found", err.code)
    assert.is_false(err.retryable)
    assert.are.equal("http://h/x", err.url)
    assert.are.equal("api: file not found", tostring(err))
    assert.are.equal(cf.Error, getmetatable(err))
  end)

  it("is not confused with other values", function()
    assert.is_false(cf.is_error("network: x"))
    assert.is_false(cf.is_error({ kind = "network", message = "x" }))
    assert.is_false(cf.is_error(nil))
    assert.is_false(cf.is_error(setmetatable({}, {})))
  end)

  it("can be raised and caught as itself, printing as \"<kind>: <message>\"", function()
    -- (busted replaces the global assert, so Lua's assert(cf.open(...)) is
    -- exercised by the error() it performs.)
    local _, err = cf.open(server.info.closed_url .. "/x", { retry = false })
    local ok, caught = pcall(error, err)
    assert.is_false(ok)
    assert.are.equal(err, caught)
    assert.matches("^network: ", tostring(caught))
    assert.matches("^network: ", string.format("%s", caught))
  end)

  it("of a transport failure has kind, message, retryable and url but no status", function()
    local target = server.info.closed_url .. "/some/file?x=1"
    local _, err = cf.open(target, { retry = false })
    assert.is_true(cf.is_error(err))
    assert.are.equal("network", err.kind)
    assert.is_string(err.message)
    assert.is_true(#err.message > 0)
    assert.is_boolean(err.retryable)
    assert.are.equal(target, err.url)
    assert.is_nil(err.status)
    assert.are.equal(err.kind .. ": " .. err.message, tostring(err))
  end)

  it("of a non-2xx save has kind \"http\", the status and the url", function()
    local d = assert(cf.open(url .. "/status/403?body=denied", { retry = false }))
    local dir = fx.tmpdir()
    local path, err = d:save(dir .. "/x")
    fx.rmdir(dir)
    assert.is_nil(path)
    assert.are.equal("http", err.kind)
    assert.are.equal(403, err.status)
    assert.are.equal(url .. "/status/403?body=denied", err.url)
    assert.is_boolean(err.retryable)
  end)

  it("of an integrity failure is not retryable", function()
    local d = assert(cf.open(url .. "/bytes?n=100", { expect = { size = 99 } }))
    local _, err = d:read_all()
    assert.are.equal("integrity", err.kind)
    assert.is_false(err.retryable)
  end)

  describe("never shows a secret", function()
    it("from the URL's user:password, on a refused connection", function()
      local target = with_credentials(server.info.closed_url, "alice", "s3cr3t-pw") .. "/x"
      local d, err = cf.open(target, { retry = false })
      assert.is_nil(d)
      no_secret(err, "s3cr3t-pw")
      assert.are.equal(server.info.closed_url .. "/x", err.url)
    end)

    it("from the URL's user:password, on a timeout", function()
      local target = with_credentials(url, "alice", "s3cr3t-pw") .. "/bytes?delay=2"
      local _, err = cf.open(target, { timeout = 0.3, retry = false })
      assert.are.equal("timeout", err.kind)
      no_secret(err, "s3cr3t-pw")
    end)

    it("from the URL's user:password, in d.url", function()
      local d = assert(cf.open(with_credentials(url, "alice", "s3cr3t-pw") .. "/echo"))
      assert.are.equal(200, d.status)
      assert.is_nil(d.url:find("s3cr3t-pw", 1, true))
      assert.is_nil(d.url:find("@", 1, true))
      assert.are.equal(url .. "/echo", d.url)
      -- The credentials were still used for this request.
      assert.matches("^Basic ", assert(d:json()).headers.authorization)
    end)

    it("from an Authorization header, on failures before and after the headers", function()
      local headers = { Authorization = "Bearer tok-very-secret" }
      local _, err = cf.open(server.info.closed_url .. "/x", { retry = false, headers = headers })
      no_secret(err, "tok-very-secret")
      _, err = cf.open(url .. "/bytes?delay=2", { retry = false, timeout = 0.3, headers = headers })
      no_secret(err, "tok-very-secret")
      local d = assert(cf.open(url .. "/close?n=10000&after=10&ranges=0", { headers = headers }))
      err = fx.raises(fx.collect, d)
      assert.is_true(cf.is_error(err))
      no_secret(err, "tok-very-secret")
    end)

    it("from the URL's credentials, in a mid-body error", function()
      local d = assert(cf.open(with_credentials(url, "bob", "pw-mid-body") .. "/close?n=10000&after=10&ranges=0"))
      local err = fx.raises(fx.collect, d)
      assert.is_true(cf.is_error(err))
      no_secret(err, "pw-mid-body")
    end)
  end)
end)
