-- Redirects followed by cloudfetch itself (follow_redirects = true): what a
-- request carries to another origin (scheme, host or port), methods after
-- 301/302/303/307/308, limits, the final URL, resuming and parallel parts
-- after a redirect, and following without blocking a group.
local cf = require "cloudfetch"
local cjson = require "cjson"
local fx = require "support.fixtures"

describe("redirects", function()
  local server, url, alt, other_port

  setup(function()
    server = fx.start_server()
    url = server.url                -- http://127.0.0.1:PORT
    alt = server.info.alt_url       -- http://localhost:PORT: another host
    -- http://127.0.0.1:OTHER: the same host on another port (a second listener)
    other_port = fx.curl_json(url .. "/later?delay=0").url
    local t0 = cf.now()
    while cf.now() - t0 < 5 do
      local d = cf.open(other_port .. "/echo", { retry = false })
      if d then d:close() break end
      cf.sleep(0.05)
    end
  end)

  teardown(function()
    if server then server:stop() end
  end)

  local function redirect(from, to, code, extra)
    return from .. "/redirect?code=" .. (code or 302) .. "&to=" .. fx.urlencode(to) .. (extra or "")
  end

  -- Everything the caller may set that carries a credential, and headers
  -- that may go anywhere.
  local SECRET_HEADERS = {
    ["X-Auth-Token"] = "tok-1-do-not-leak", ["X-Bz-Auth"] = "bz-2-do-not-leak",
    Authorization = "Bearer auth-3-do-not-leak", Cookie = "session=cookie-4-do-not-leak",
    ["Proxy-Authorization"] = "Basic proxy-5-do-not-leak", ["X-Api-Key"] = "key-6-do-not-leak",
    ["X-Custom"] = "custom-7-do-not-leak",
  }
  local HARMLESS = {
    Accept = "application/json", ["Accept-Language"] = "de", ["If-None-Match"] = '"v1"',
    ["Cache-Control"] = "no-cache",
  }
  local function all_headers()
    local h = {}
    for k, v in pairs(SECRET_HEADERS) do h[k] = v end
    for k, v in pairs(HARMLESS) do h[k] = v end
    return h
  end

  local function echo_of(d)
    assert.are.equal(200, d.status)
    return assert(d:json())
  end

  local function assert_no_secret(seen)
    local text = cjson.encode(seen)
    for name, value in pairs(SECRET_HEADERS) do
      assert.is_nil(text:find(value, 1, true), name .. " went to another origin: " .. text)
    end
    assert.is_nil(seen.headers.authorization)
    assert.is_nil(seen.headers.cookie)
  end

  for _, code in ipairs({ 301, 302, 303, 307, 308 }) do
    it("send none of the caller's credential headers to another host after a " .. code, function()
      local d = assert(cf.open(redirect(url, alt .. "/echo", code),
        { follow_redirects = true, headers = all_headers() }))
      assert.are.equal(alt .. "/echo", d.url)
      local seen = echo_of(d)
      assert_no_secret(seen)
      -- The harmless ones do go along.
      assert.are.equal("application/json", seen.headers.accept)
      assert.are.equal("de", seen.headers["accept-language"])
      assert.are.equal('"v1"', seen.headers["if-none-match"])
      assert.are.equal("no-cache", seen.headers["cache-control"])
      assert.matches("^cloudfetch/", seen.headers["user-agent"])
    end)
  end

  it("send none of them to another port of the same host", function()
    local d = assert(cf.open(redirect(url, other_port .. "/echo", 307),
      { follow_redirects = true, headers = all_headers() }))
    assert_no_secret(echo_of(d))
  end)

  it("send none of them to the same host by a scheme-relative Location", function()
    local target = "//" .. alt:match("^http://(.*)$") .. "/echo"
    local d = assert(cf.open(redirect(url, target), { follow_redirects = true, headers = all_headers() }))
    assert.are.equal(alt .. "/echo", d.url)
    assert_no_secret(echo_of(d))
  end)

  it("do not get them back when a later redirect returns to the first host", function()
    local back = redirect(alt, url .. "/echo")
    local d = assert(cf.open(redirect(url, back), { follow_redirects = true, headers = all_headers() }))
    assert.are.equal(url .. "/echo", d.url)
    assert_no_secret(echo_of(d))
  end)

  it("keep every header on the same origin, through a relative Location", function()
    local d = assert(cf.open(redirect(url, "/echo?x=1"), { follow_redirects = true, headers = all_headers() }))
    assert.are.equal(url .. "/echo?x=1", d.url)
    local seen = echo_of(d)
    assert.are.equal("tok-1-do-not-leak", seen.headers["x-auth-token"])
    assert.are.equal("Bearer auth-3-do-not-leak", seen.headers.authorization)
  end)

  it("send the URL's user name and password to the same origin only", function()
    local with_user = url:gsub("^http://", "http://alice:pw-do-not-leak@")
    local same = assert(cf.open(redirect(with_user, "/echo"), { follow_redirects = true }))
    assert.matches("^Basic ", echo_of(same).headers.authorization)
    local d = assert(cf.open(redirect(with_user, alt .. "/echo"), { follow_redirects = true }))
    local seen = echo_of(d)
    assert.is_nil(seen.headers.authorization)
    assert.is_nil(d.url:find("pw-do-not-leak", 1, true))
  end)

  it("turn a POST into a GET without its body after a 303, and after a 301 or 302", function()
    for _, code in ipairs({ 301, 302, 303 }) do
      local d = assert(cf.open(redirect(url, "/echo", code),
        { follow_redirects = true, method = "POST", json = { secret = "body-do-not-resend" } }))
      local seen = echo_of(d)
      assert.are.equal("GET", seen.method)
      assert.are.equal("", seen.body)
      assert.is_nil(seen.headers["content-type"])
    end
  end)

  it("keep the method and the body after a 307 or 308 on the same origin", function()
    for _, code in ipairs({ 307, 308 }) do
      local d = assert(cf.open(redirect(url, "/echo", code),
        { follow_redirects = true, method = "POST", body = "payload", headers = { ["Content-Type"] = "text/plain" } }))
      local seen = echo_of(d)
      assert.are.equal("POST", seen.method)
      assert.are.equal("payload", seen.body)
      assert.are.equal("text/plain", seen.headers["content-type"])
    end
  end)

  it("never re-send a body to another origin: the 307 comes back as it is", function()
    local key = fx.key()
    local d = assert(cf.open(redirect(url, alt .. "/echo?key=" .. key, 307),
      { follow_redirects = true, method = "POST", body = "password=body-do-not-leak" }))
    assert.are.equal(307, d.status)
    d:close()
    assert.are.equal(0, (fx.count(server, key)))
  end)

  it("count hops against max_redirects (kind protocol), 0 following none", function()
    local d, err = cf.open(url .. "/hops?n=3", { follow_redirects = true, max_redirects = 2 })
    assert.is_nil(d)
    assert.are.equal("protocol", err.kind)
    assert.matches("too many redirects", err.message)
    d, err = cf.open(url .. "/hops?n=1", { follow_redirects = true, max_redirects = 0 })
    assert.is_nil(d)
    assert.are.equal("protocol", err.kind)
    d = assert(cf.open(url .. "/hops?n=3", { follow_redirects = true, max_redirects = 3 }))
    assert.are.equal("done", d:read_all())
    d = assert(cf.open(url .. "/hops?n=5", { follow_redirects = true }))
    assert.are.equal("done", d:read_all())
    d, err = cf.open(url .. "/hops?n=6", { follow_redirects = true })
    assert.is_nil(d)
    assert.are.equal("protocol", err.kind)
  end)

  for _, target in ipairs({ "ftp://127.0.0.1:21/x", "file:///etc/passwd", "gopher://127.0.0.1/", "http://" }) do
    it("refuse a Location of " .. target .. " (kind protocol)", function()
      local d, err = cf.open(redirect(url, target), { follow_redirects = true, retry = false })
      assert.is_nil(d)
      assert.are.equal("protocol", err.kind)
      assert.matches("redirect to an unusable URL", err.message)
    end)
  end

  it("leave a 3xx without Location, or a 300/304, as the answer", function()
    local d = assert(cf.open(url .. "/status/302", { follow_redirects = true }))
    assert.are.equal(302, d.status)
    d:close()
    d = assert(cf.open(url .. "/status/300?location=/echo", { follow_redirects = true }))
    assert.are.equal(300, d.status)
    d:close()
  end)

  it("resume a cut body at the final URL, not through the redirect again", function()
    local n, rkey, key = 300000, fx.key(), fx.key()
    local final = "/bytes?n=" .. n .. "&seed=3&cut=70000&faults=1&key=" .. key
    local d = assert(cf.open(redirect(url, final, 302, "&key=" .. rkey),
      { follow_redirects = true, retry = fx.fast_retry }))
    -- (key= is a credential-like name: its value is not shown)
    assert.are.equal(url .. final:gsub("key=.*$", "key=REDACTED"), d.url)
    assert.is_nil(fx.diff(assert(d:read_all()), fx.body(n, 3)))
    assert.are.equal(1, (fx.count(server, rkey)))
    assert.are.equal(2, (fx.count(server, key))) -- the cut answer, then the range
  end)

  it("save in parallel parts after a redirect", function()
    local dir = fx.tmpdir()
    local n = 3 * 1024 * 1024 + 17
    local meta = fx.meta(server, n, 4)
    local rkey = fx.key()
    local path = assert(cf.save(redirect(url, "/bytes?n=" .. n .. "&seed=4", 302, "&key=" .. rkey),
      dir .. "/f", { follow_redirects = true, parallel = 3, part_size = 1024 * 1024,
        expect = { sha256 = meta.sha256 } }))
    assert.are.equal(dir .. "/f", path)
    assert.are.equal(1, (fx.count(server, rkey)))
    fx.rmdir(dir)
  end)

  it("retry a 503 from a redirect target, then follow on", function()
    local key = fx.key()
    local d = assert(cf.open(redirect(url, "/flaky?fail=1&key=" .. key .. "&n=16"),
      { follow_redirects = true, retry = fx.fast_retry }))
    assert.are.equal(200, d.status)
    assert.are.equal(16, #assert(d:read_all()))
  end)

  it("resolve Location as libcurl does (core.resolve_url)", function()
    local core = require "cloudfetch.core"
    local base = "http://u:pw@Example.COM/a/b?x=1"
    assert.same({ "http://u:pw@Example.COM/a/c", "http://example.com:80" }, { core.resolve_url(base, "c") })
    assert.same({ "http://u:pw@Example.COM/z?y", "http://example.com:80" }, { core.resolve_url(base, "/z?y") })
    assert.same({ "https://h:8443/p", "https://h:8443" }, { core.resolve_url(base, "https://h:8443/p") })
    assert.same({ "http://other/q", "http://other:80" }, { core.resolve_url(base, "//other/q") })
    assert.same({ "http://u:pw@Example.COM/a/c%20d", "http://example.com:80" }, { core.resolve_url(base, "c d") })
    assert.same({ "http://Example.COM/a/b?x=1", "http://example.com:80" }, { core.resolve_url(base, nil, true) })
    assert.same({ "http://[::1]:81/", "http://[::1]:81" }, { core.resolve_url("http://[::1]:81/") })
    for _, bad in ipairs({ "ftp://h/", "file:///etc/passwd", "javascript:alert(1)", "http://", "http://h:99999/" }) do
      local u, why = core.resolve_url(base, bad)
      assert.is_nil(u, bad)
      assert.is_string(why)
    end
  end)

  it("never block a group while a redirect chain is slow", function()
    local g = cf.group{}
    local slow = redirect(url, redirect(url, "/bytes?n=500&delay=0.5", 302, "&delay=0.5"), 302, "&delay=0.5")
    for _ = 1, 3 do
      g:spawn(function()
        local d = assert(cf.open(slow, { follow_redirects = true }))
        return #assert(d:read_all()), d.url
      end)
    end
    local t0, longest, left = cf.now(), 0, 3
    while left > 0 and cf.now() - t0 < 20 do
      local s0 = cf.now()
      left = g:step(0)
      longest = math.max(longest, cf.now() - s0)
      cf.sleep(0.005)
    end
    assert.are.equal(0, left)
    assert.is_true(longest < 0.1, "a step took " .. longest .. " s")
    local results, failed = g:wait()
    assert.are.equal(0, failed)
    for i = 1, 3 do
      assert.are.equal(500, results[i][1])
      assert.are.equal(url .. "/bytes?n=500&delay=0.5", results[i][2])
    end
  end)
end)
