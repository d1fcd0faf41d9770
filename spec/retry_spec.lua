-- Retries before the body, and transparent resumption once the body started.
local cf = require "cloudfetch"
local fx = require "support.fixtures"

describe("retries", function()
  local server, url

  setup(function()
    server = fx.start_server()
    url = server.url
  end)

  teardown(function()
    if server then server:stop() end
  end)

  local function flaky(key, params)
    return url .. "/flaky?n=100&key=" .. key .. "&" .. params
  end

  it("retry 503 answers until one succeeds", function()
    local key = fx.key()
    local d = assert(cf.open(flaky(key, "fail=2&status=503"), { retry = fx.fast_retry }))
    assert.are.equal(200, d.status)
    assert.is_nil(fx.diff(assert(d:read_all()), fx.body(100)))
    assert.are.equal(3, (fx.count(server, key)))
  end)

  for _, status in ipairs({ 408, 429, 500, 502, 504 }) do
    it("retry a " .. status .. " answer", function()
      local key = fx.key()
      local d = assert(cf.open(flaky(key, "fail=1&status=" .. status), { retry = fx.fast_retry }))
      assert.are.equal(200, d.status)
      assert.are.equal(2, (fx.count(server, key)))
      d:close()
    end)
  end

  it("return the last answer as it is when attempts run out", function()
    local key = fx.key()
    local d = assert(cf.open(flaky(key, "fail=5&status=503"), { retry = fx.fast_retry }))
    assert.are.equal(503, d.status)
    assert.are.equal("flaky", assert(d:json()).error)
    assert.are.equal(3, (fx.count(server, key)))
  end)

  it("are off with retry = false", function()
    local key = fx.key()
    local d = assert(cf.open(flaky(key, "fail=1&status=503"), { retry = false }))
    assert.are.equal(503, d.status)
    assert.are.equal(1, (fx.count(server, key)))
    d:close()
  end)

  it("are not made for a 404", function()
    local key = fx.key()
    local d = assert(cf.open(flaky(key, "fail=1&status=404"), { retry = fx.fast_retry }))
    assert.are.equal(404, d.status)
    assert.are.equal(1, (fx.count(server, key)))
    d:close()
  end)

  it("are not made for a POST's 400", function()
    local key = fx.key()
    local d = assert(cf.open(flaky(key, "fail=1&status=400"),
      { method = "POST", body = "x", retry = fx.fast_retry }))
    assert.are.equal(400, d.status)
    assert.are.equal(1, (fx.count(server, key)))
    d:close()
  end)

  it("wait at least the server's Retry-After", function()
    local key = fx.key()
    local t0 = cf.now()
    local d = assert(cf.open(flaky(key, "fail=1&status=429&retry_after=1"),
      { retry = { attempts = 3, base_delay = 0.01 } }))
    local elapsed = cf.now() - t0
    assert.are.equal(200, d.status)
    assert.are.equal(2, (fx.count(server, key)))
    assert.is_true(elapsed >= 0.95, string.format("retried after %.3f s", elapsed))
    assert.is_true(elapsed < 5)
    d:close()
  end)

  it("retry a refused connection until the server comes up", function()
    local later = fx.curl_json(url .. "/later?delay=0.05")
    local d = assert(cf.open(later.url .. "/bytes?n=10",
      { retry = { attempts = 6, base_delay = 0.2, max_delay = 0.5 } }))
    assert.are.equal(200, d.status)
    assert.is_nil(fx.diff(assert(d:read_all()), fx.body(10)))
  end)

  it("return the transport error when attempts run out", function()
    local t0 = cf.now()
    local d, err = cf.open(server.info.closed_url .. "/x", { retry = fx.fast_retry })
    assert.is_nil(d)
    assert.are.equal("network", err.kind)
    assert.is_true(err.retryable)
    assert.is_true(cf.now() - t0 < 2)
  end)

  it("retry a timeout before the headers", function()
    local key = fx.key()
    local d = assert(cf.open(url .. "/bytes?n=10&delay=3&faults=1&key=" .. key,
      { timeout = 0.5, retry = fx.fast_retry }))
    assert.are.equal(200, d.status)
    assert.are.equal(2, (fx.count(server, key)))
    d:close()
  end)
end)

describe("resuming", function()
  local server, url
  local N = 1000000

  setup(function()
    server = fx.start_server()
    url = server.url
  end)

  teardown(function()
    if server then server:stop() end
  end)

  -- The first request with this key is cut (or stalled); later ones are served.
  local function faulty(key, fault, extra)
    return string.format("%s/bytes?n=%d&seed=21&key=%s&faults=1&%s%s", url, N, key, fault, extra or "")
  end

  local function raises_error(d)
    local err = fx.raises(fx.collect, d)
    assert.is_not_nil(err, "the loop ended cleanly over a broken body")
    assert.is_true(cf.is_error(err), tostring(err))
    return err
  end

  it("resumes after the connection drops mid-body, yielding every byte once", function()
    local key = fx.key()
    local meta = fx.meta(server, N, 21)
    local d = assert(cf.open(faulty(key, "cut=300001"), { retry = fx.fast_retry, hash = { "sha256" } }))
    assert.is_nil(fx.diff(fx.collect(d), fx.body(N, 21)))
    assert.are.equal(2, (fx.count(server, key)))
    assert.are.equal(meta.sha256, d:digest("sha256"))
    assert.are.equal(200, d.status)
    assert.are.equal(N, d.size)
    assert.are.equal(N, d.received)
    assert.is_nil(d.range)
  end)

  it("resumes after a stall longer than stall_timeout", function()
    local key = fx.key()
    local d = assert(cf.open(faulty(key, "stall=4&after=200000"),
      { retry = fx.fast_retry, stall_timeout = 1 }))
    assert.is_nil(fx.diff(fx.collect(d), fx.body(N, 21)))
    assert.are.equal(2, (fx.count(server, key)))
  end)

  it("resumes inside a ranged request", function()
    local key = fx.key()
    local d = assert(cf.open(faulty(key, "cut=5000"), { retry = fx.fast_retry, range = { 100000, 299999 } }))
    assert.are.equal(206, d.status)
    assert.is_nil(fx.diff(fx.collect(d), fx.body(200000, 21, 100000)))
    assert.are.same({ first = 100000, last = 299999, total = N }, d.range)
  end)

  it("resumes when only Last-Modified and the size identify the entity", function()
    local key = fx.key()
    local d = assert(cf.open(faulty(key, "cut=400000", "&etag=0"), { retry = fx.fast_retry }))
    assert.is_nil(fx.diff(fx.collect(d), fx.body(N, 21)))
  end)

  it("checks expectations over the resumed body", function()
    local key = fx.key()
    local meta = fx.meta(server, N, 21)
    local d = assert(cf.open(faulty(key, "cut=100"),
      { retry = fx.fast_retry, expect = { sha1 = meta.sha1, size = N } }))
    assert.are.equal(N, #fx.collect(d))
    local d2 = assert(cf.open(faulty(fx.key(), "cut=100"),
      { retry = fx.fast_retry, expect = { sha1 = string.rep("0", 40) } }))
    assert.are.equal("integrity", raises_error(d2).kind)
  end)

  it("reports progress up to the full size across a resume", function()
    local key = fx.key()
    local last_received, last_total
    local d = assert(cf.open(faulty(key, "cut=250000"), { retry = fx.fast_retry,
      progress = function(received, total) last_received, last_total = received, total end }))
    fx.collect(d)
    assert.are.equal(N, last_received)
    assert.are.equal(N, last_total)
  end)

  it("does not resume when the server does not accept ranges", function()
    local d = assert(cf.open(faulty(fx.key(), "cut=300000", "&ranges=0"), { retry = fx.fast_retry }))
    raises_error(d)
  end)

  it("does not resume when the entity changed", function()
    local d = assert(cf.open(faulty(fx.key(), "cut=300000", "&change=1"), { retry = fx.fast_retry }))
    raises_error(d)
  end)

  it("does not resume on a weak ETag alone", function()
    local d = assert(cf.open(faulty(fx.key(), "cut=300000", "&etag=weak&lm=0"), { retry = fx.fast_retry }))
    raises_error(d)
  end)

  it("does not resume with retry = false", function()
    local key = fx.key()
    local d = assert(cf.open(faulty(key, "cut=300000"), { retry = false }))
    raises_error(d)
    assert.are.equal(1, (fx.count(server, key)))
  end)

  it("raises once attempts run out", function()
    local key = fx.key()
    -- Every resume is cut before its first byte, so no attempt makes progress.
    local d = assert(cf.open(string.format("%s/bytes?n=%d&key=%s&cut=1000&rcut=0", url, N, key),
      { retry = fx.fast_retry }))
    raises_error(d)
    assert.are.equal(1000, d.received)
    local count = fx.count(server, key)
    assert.is_true(count >= 2 and count <= 4, count .. " requests for 3 attempts")
  end)
end)
