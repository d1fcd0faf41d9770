-- https: certificate verification on by default, ca_file, and the insecure opt-out.
local cf = require "cloudfetch"
local fx = require "support.fixtures"

describe("https", function()
  local server, url

  setup(function()
    server = fx.start_server{ tls = true }
    url = server.url
  end)

  teardown(function()
    if server then server:stop() end
  end)

  it("works with ca_file set to the server's CA", function()
    local d = assert(cf.open(url .. "/bytes?n=200000&seed=5", { ca_file = server.info.ca_file }))
    assert.are.equal(200, d.status)
    assert.are.equal(url .. "/bytes?n=200000&seed=5", d.url)
    assert.is_nil(fx.diff(assert(d:read_all()), fx.body(200000, 5)))
  end)

  it("verifies the host name against the certificate (localhost is in it too)", function()
    local d = assert(cf.open(server.info.alt_url .. "/bytes?n=10", { ca_file = server.info.ca_file }))
    assert.are.equal(200, d.status)
    d:close()
  end)

  it("refuses the server with the system's CAs, kind \"tls\"", function()
    local d, err = cf.open(url .. "/bytes?n=10", { retry = false })
    assert.is_nil(d)
    assert.is_true(cf.is_error(err))
    assert.are.equal("tls", err.kind)
    assert.are.equal(url .. "/bytes?n=10", err.url)
  end)

  it("refuses the server with an unrelated CA, kind \"tls\"", function()
    local d, err = cf.open(url .. "/bytes?n=10", { ca_file = server.info.wrong_ca_file, retry = false })
    assert.is_nil(d)
    assert.are.equal("tls", err.kind)
  end)

  it("does not retry a certificate failure", function()
    local t0 = cf.now()
    -- A retry would sleep at least 5 s (half of base_delay, with jitter); a
    -- handshake alone stays far below that, even under valgrind.
    local d, err = cf.open(url .. "/bytes?n=10", { retry = { attempts = 3, base_delay = 10, max_delay = 10 } })
    assert.is_nil(d)
    assert.are.equal("tls", err.kind)
    assert.is_false(err.retryable)
    assert.is_true(cf.now() - t0 < 5, "a certificate failure was retried")
  end)

  it("connects without verification when verify_tls = false", function()
    local d = assert(cf.open(url .. "/bytes?n=1000", { verify_tls = false }))
    assert.are.equal(200, d.status)
    assert.is_nil(fx.diff(assert(d:read_all()), fx.body(1000)))
  end)

  it("keeps hashing, ranges and resumption working over TLS", function()
    local key = fx.key()
    local n = 600000
    local meta = fx.meta(server, n, 2)
    local d = assert(cf.open(string.format("%s/bytes?n=%d&seed=2&key=%s&faults=1&cut=200000", url, n, key),
      { ca_file = server.info.ca_file, hash = { "sha256" }, retry = fx.fast_retry }))
    assert.is_nil(fx.diff(fx.collect(d), fx.body(n, 2)))
    assert.are.equal(meta.sha256, d:digest("sha256"))
  end)

  it("reuses the TLS connection for requests one after another", function()
    local ids = {}
    for i = 1, 2 do
      local d = assert(cf.open(url .. "/conn", { ca_file = server.info.ca_file }))
      ids[i] = assert(d:json()).conn
    end
    assert.are.equal(ids[1], ids[2])
  end)
end)
