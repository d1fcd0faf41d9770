-- Answers a server should not send: sizes that contradict expect.size,
-- ranges that are not the range asked for, Content-Length that is not one
-- valid number, a HEAD answer saved as a file.  Each is an error, with
-- nothing saved.
local cf = require "cloudfetch"
local fx = require "support.fixtures"

describe("a hostile server", function()
  local server, url, dir

  setup(function()
    server = fx.start_server()
    url = server.url
  end)

  teardown(function()
    if server then server:stop() end
  end)

  before_each(function()
    dir = fx.tmpdir()
  end)

  after_each(function()
    fx.rmdir(dir)
  end)

  -- /status/CODE with a body, extra headers ("Name:Value") and query parameters.
  local function status_url(code, body, headers, query)
    local u = ("%s/status/%d?ct=application/octet-stream&body=%s"):format(url, code, fx.urlencode(body))
    for _, h in ipairs(headers or {}) do u = u .. "&set=" .. fx.urlencode(h) end
    return u .. (query or "")
  end

  it("cannot fill the disk past expect.size: a contradicting Content-Length fails before any write", function()
    local key = fx.key()
    local path, err = cf.save(url .. "/bytes?n=20000000&key=" .. key, dir .. "/x", { expect = { size = 1000 } })
    assert.is_nil(path)
    assert.equal("integrity", err.kind)
    assert.same({}, fx.list(dir))
    -- the body was not read: the server could not send it all
    local _, sent = fx.count(server, key)
    assert.is_true(sent < 20000000, "sent " .. sent)
  end)

  it("cannot fill the disk past expect.size with an endless chunked body", function()
    local path, err = cf.save(url .. "/chunked?n=50000000", dir .. "/x", { expect = { size = 1000 } })
    assert.is_nil(path)
    assert.equal("integrity", err.kind)
    assert.matches("received more", err.message)
    assert.same({}, fx.list(dir))
    local d = assert(cf.open(url .. "/chunked?n=50000000", { expect = { size = 1000 } }))
    local got = 0
    local ok, rerr = pcall(function() for s in d:chunks() do got = got + #s end end)
    assert.is_false(ok)
    assert.equal("integrity", rerr.kind)
    assert.is_true(got <= 2 * 1024 * 1024)
  end)

  it("answering a different range than asked is a protocol error, nothing saved", function()
    local d, err = cf.open(status_url(206, "0123456789", { "Content-Range:bytes 0-9/100" }), { range = { 50, 59 } })
    assert.is_nil(d)
    assert.equal("protocol", err.kind)
    assert.matches("asked for bytes 50%-59", err.message)
  end)

  it("an unsolicited 206 to a plain save is a protocol error, nothing saved", function()
    local path, err = cf.save(status_url(206, "0123456789", { "Content-Range:bytes 0-9/100" }), dir .. "/x")
    assert.is_nil(path)
    assert.equal("protocol", err.kind)
    assert.matches("206 Partial Content answer to a request for the whole entity", err.message)
    assert.same({}, fx.list(dir))
  end)

  it("a 206 whose Content-Length disagrees with its Content-Range is a protocol error", function()
    local d, err = cf.open(status_url(206, "0123456789", { "Content-Range:bytes 0-19/100" }), { range = { 0, 19 } })
    assert.is_nil(d)
    assert.equal("protocol", err.kind)
    assert.matches("does not match Content%-Length 10", err.message)
  end)

  it("a Content-Length that overflows, or two that disagree, is a protocol error", function()
    local d, err = cf.open(status_url(200, "hello", nil, "&cl=99999999999999999999"), { retry = false })
    assert.is_nil(d)
    assert.equal("protocol", err.kind)
    assert.matches("Content%-Length", err.message)
    d, err = cf.open(status_url(200, "hello", { "Content-Length:10" }), { retry = false })
    assert.is_nil(d)
    assert.is_true(err.kind == "protocol" or err.kind == "network", tostring(err))
  end)

  it("saving the answer to a HEAD request is an error, not an empty file", function()
    local d = assert(cf.open(url .. "/bytes?n=100", { method = "HEAD" }))
    local path, err = d:save(dir .. "/x")
    assert.is_nil(path)
    assert.equal("protocol", err.kind)
    assert.same({}, fx.list(dir))
  end)
end)
