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

  -- Neither cf.open nor cf.save takes the answer at u: kind protocol, the
  -- message matches why, nothing saved.
  local function refused(u, why)
    local d, err = cf.open(u, { retry = false })
    assert.is_nil(d, "no download for " .. u)
    assert.equal("protocol", err.kind)
    assert.matches(why, err.message)
    local path
    path, err = cf.save(u, dir .. "/x", { retry = false })
    assert.is_nil(path)
    assert.equal("protocol", err.kind)
    assert.same({}, fx.list(dir))
  end

  it("a Content-Length line with a bare CR or a NUL in it is a protocol error, not a short file", function()
    -- libcurl reads "Content-Length: 3<CR>9" as 3 and would end cleanly
    -- after "hel"; the header store reads the CR as SP (RFC 9110 5.5), so
    -- the value is no number and the answer is refused before any byte.
    -- (libcurl refuses a NUL in a header line itself.)
    for bad, why in pairs{ ["3\r9"] = "malformed or conflicting Content%-Length", ["3\0" .. "9"] = "Nul byte" } do
      refused(status_url(200, "hello", { "Content-Length:" .. bad }), why)
    end
  end)

  it("an answer with both Transfer-Encoding and Content-Length is a protocol error, not a short file", function()
    -- libcurl goes by the chunks (3 bytes, a clean end); Content-Length says 13
    refused(status_url(200, "3\r\nhel\r\n0\r\n\r\n", { "Transfer-Encoding:chunked" }),
      "both Transfer%-Encoding and Content%-Length")
  end)

  it("saving the answer to a HEAD request is an error, not an empty file", function()
    local d = assert(cf.open(url .. "/bytes?n=100", { method = "HEAD" }))
    local path, err = d:save(dir .. "/x")
    assert.is_nil(path)
    assert.equal("protocol", err.kind)
    assert.same({}, fx.list(dir))
  end)
end)

describe("a server sending bytes beyond its answer", function()
  -- /poison answers "xxxxx" with Content-Length 5, then (after `gap`
  -- seconds, in a separate segment) 200 bytes nobody asked for, and keeps
  -- the connection open.  Then 20 good requests must all succeed: the
  -- kept-alive connection the junk went to is never used again.
  local function poisoned(base, opts, gap, reps)
    local failures = {}
    for rep = 1, reps do
      local d = assert(cf.open(base .. "/poison?n=5&extra=200&hold=3&gap=" .. gap, opts))
      assert.equal("xxxxx", d:read_all())
      d:close()
      cf.sleep(gap + 0.25) -- the junk is there before the next request starts
      for i = 1, 20 do
        local o = { retry = false }
        for k, v in pairs(opts) do o[k] = v end
        local body, err
        local g
        g, err = cf.open(base .. "/bytes?n=300&seed=" .. i, o)
        if g then body, err = g:read_all() end
        if body ~= fx.body(300, i) then
          failures[#failures + 1] = string.format("repetition %d, request %d: %s", rep, i, tostring(err))
        end
      end
    end
    return failures
  end

  local server, tls_server

  lazy_setup(function()
    server = fx.start_server()
  end)

  lazy_teardown(function()
    if server then server:stop() end
    if tls_server then tls_server:stop() end
  end)

  it("after a pause does not poison the kept-alive connection: 20 of 20 later requests succeed", function()
    assert.same({}, poisoned(server.url, {}, 0.05, 3))
  end)

  it("in the same segment as the answer does not either", function()
    assert.same({}, poisoned(server.url, {}, 0, 2))
  end)

  it("over TLS does not either", function()
    tls_server = fx.start_server{ tls = true }
    assert.same({}, poisoned(tls_server.url, { ca_file = tls_server.info.ca_file }, 0.05, 2))
  end)

  it("does not stop a healthy idle connection from being reused", function()
    local function conn()
      local d = assert(cf.open(server.url .. "/conn"))
      return assert(d:json()).conn
    end
    local first = conn()
    cf.sleep(0.2)
    assert.equal(first, conn())
    assert.equal(first, conn())
  end)
end)

describe("a hostile service", function()
  local emu = require "support.emulator"
  local b2 = require "cloudfetch.b2"
  local notary = require "cloudfetch.notary"
  local e, dir

  lazy_setup(function()
    e = emu.start{ tls = false }
  end)

  lazy_teardown(function()
    if e then e:stop() end
  end)

  before_each(function()
    e:reset()
    dir = fx.tmpdir()
  end)

  after_each(function()
    fx.rmdir(dir)
  end)

  it("naming a non-http(s) apiUrl or downloadUrl in its B2 authorization is refused (protocol)", function()
    for _, field in ipairs{ "apiUrl", "downloadUrl" } do
      local storage = { apiUrl = e.url, downloadUrl = e.url, recommendedPartSize = 100000000,
        absoluteMinimumPartSize = 5000000 }
      storage[field] = field == "apiUrl" and "ftp://127.0.0.1/x" or "file:///etc"
      e:fault{ path = "b2_authorize_account", status = 200, body = { accountId = "a", authorizationToken = "t",
        apiInfo = { storageApi = storage }, allowed = { capabilities = { "listFiles" } } } }
      local client, err = b2.authorize{ key_id = e.info.b2.key_id, key = e.info.b2.key, realm = e.url, retry = false }
      assert.is_nil(client)
      assert.equal("protocol", err.kind)
      assert.matches("not http%(s%)", err.message)
    end
  end)

  it("naming a non-http(s) data centre in the Notary router's answer is refused (protocol)", function()
    e:fault{ path = "/api/1/accounts", status = 200, body = { server_url = "gopher://127.0.0.1/" } }
    local client, err = notary.login{ login = "demo@example.com", password = "demo-password", cloud_url = e.url,
      retry = false }
    assert.is_nil(client)
    assert.equal("protocol", err.kind)
  end)

  it("cannot hide a B2 name with dot segments: it downloads by name, and saves inside the directory", function()
    e:control("POST", "/_emu/b2/buckets", { name = "dots-bucket", type = "allPrivate", bucket_info = {} })
    local up = e:control("POST", "/_emu/b2/files",
      { bucket = "dots-bucket", name = "evil/../../escape.txt", data = "dots" })
    local client = assert(b2.authorize{ key_id = e.info.b2.key_id, key = e.info.b2.key, realm = e.url })
    local d = assert(client:open_by_name("dots-bucket", "evil/../../escape.txt"))
    assert.equal(200, d.status)
    assert.equal(up.fileId, d.file_id)
    assert.equal("dots", d:read_all())
    local path = assert(client:save_by_name("dots-bucket", "evil/../../escape.txt", dir .. "/"))
    assert.equal(dir .. "/escape.txt", path)
    assert.equal("dots", fx.read_file(path))
  end)
end)
