-- cf.open: what a caller sees once the status line and headers arrived, the
-- request it sends, transport failures, redirects and misuse.
local cf = require "cloudfetch"
local cjson = require "cjson"
local fx = require "support.fixtures"

describe("cloudfetch.open", function()
  local server, url

  setup(function()
    server = fx.start_server()
    url = server.url
  end)

  teardown(function()
    if server then server:stop() end
  end)

  describe("response", function()
    it("has status, url and size before any of the body is read", function()
      local d = assert(cf.open(url .. "/bytes?n=5000&seed=2"))
      assert.are.equal(200, d.status)
      assert.are.equal(url .. "/bytes?n=5000&seed=2", d.url)
      assert.are.equal(5000, d.size)
      assert.are.equal(5000, d.total)
      assert.is_nil(d.range)
      assert.are.equal(0, d.received)
      d:close()
    end)

    it("returns as soon as the headers arrived, while the body is still on its way", function()
      local t0 = cf.now()
      local d = assert(cf.open(url .. "/stall?n=100&after=0&seconds=6"))
      assert.is_true(cf.now() - t0 < 3, "cf.open waited for the body")
      assert.are.equal(200, d.status)
      assert.are.equal(100, d.size)
      d:close()
    end)

    it("gives headers with lower-case names and a case-insensitive d:header()", function()
      local d = assert(cf.open(url .. "/bytes?n=10"))
      assert.are.equal("bytes", d.headers["accept-ranges"])
      assert.are.equal('"s1-n10"', d.headers["etag"])
      assert.are.equal("10", d.headers["content-length"])
      assert.is_nil(d.headers["Content-Length"])
      assert.are.equal("bytes", d:header("Accept-Ranges"))
      assert.are.equal("bytes", d:header("ACCEPT-RANGES"))
      assert.are.equal("application/octet-stream", d:header("content-type"))
      assert.is_nil(d:header("x-not-there"))
      d:close()
    end)

    it("joins repeated headers with \", \"", function()
      local d = assert(cf.open(url .. "/headers?set=X-Multi:one&set=X-Multi:two&set=X-Single:solo"))
      assert.are.equal("one, two", d.headers["x-multi"])
      assert.are.equal("one, two", d:header("X-Multi"))
      assert.are.equal("solo", d.headers["x-single"])
      d:close()
    end)

    it("accepts a large response header", function()
      local d = assert(cf.open(url .. "/headers?big=60000"))
      assert.are.equal(200, d.status)
      assert.are.equal(string.rep("b", 60000), d:header("x-big"))
      d:close()
    end)

    it("treats a non-2xx answer as a response, not an error, with its body readable", function()
      local body = cjson.encode({ code = "not_found", message = "no such file" })
      local d, err = cf.open(url .. "/status/404?body=" .. fx.urlencode(body), { retry = false })
      assert.is_nil(err)
      assert.are.equal(404, d.status)
      local v = assert(d:json())
      assert.are.equal("not_found", v.code)
      assert.are.equal("no such file", v.message)
      d:close()
    end)

    it("answers HEAD with headers and an empty body", function()
      local d = assert(cf.open(url .. "/bytes?n=777", { method = "HEAD" }))
      assert.are.equal(200, d.status)
      assert.are.equal("777", d:header("content-length"))
      assert.are.equal(777, d.size)
      assert.are.equal(777, d.total)
      assert.are.equal("", assert(d:read_all()))
      d:close()
    end)

    it("describes a 206 partial answer with d.range", function()
      local d = assert(cf.open(url .. "/bytes?n=1000", { range = { 100, 199 } }))
      assert.are.equal(206, d.status)
      assert.are.same({ first = 100, last = 199, total = 1000 }, d.range)
      assert.are.equal(100, d.size)
      assert.are.equal(1000, d.total)
      d:close()
    end)
  end)

  describe("request", function()
    local function echo(opts, path)
      local d = assert(cf.open(url .. (path or "/echo"), opts))
      assert.are.equal(200, d.status)
      local v = assert(d:json())
      d:close()
      return v
    end

    it("sends GET with no Accept-Encoding, cookies or credentials of its own", function()
      local v = echo()
      assert.are.equal("GET", v.method)
      assert.is_nil(v.headers["accept-encoding"])
      assert.is_nil(v.headers["cookie"])
      assert.is_nil(v.headers["authorization"])
      assert.are.equal("", v.body)
    end)

    it("sends the headers it is given", function()
      local v = echo({ headers = { ["X-Test"] = "yes", Authorization = "Bearer abc" } })
      assert.are.equal("yes", v.headers["x-test"])
      assert.are.equal("Bearer abc", v.headers["authorization"])
    end)

    it("sends user_agent as User-Agent", function()
      local v = echo({ user_agent = "cloudfetch-spec/1.0" })
      assert.are.equal("cloudfetch-spec/1.0", v.headers["user-agent"])
    end)

    it("percent-encodes query values and appends them to an existing query", function()
      local v = echo({ query = { q = "a b&c=d", ["x y"] = "ü/+" } }, "/echo?keep=1")
      assert.are.equal("1", v.query.keep)
      assert.are.equal("a b&c=d", v.query.q)
      assert.are.equal("ü/+", v.query["x y"])
      assert.is_nil(v.raw_query:find(" ", 1, true))
    end)

    it("POSTs a body string as is", function()
      local v = echo({ method = "POST", body = "raw\0bytes here",
                       headers = { ["Content-Type"] = "text/plain" } })
      assert.are.equal("POST", v.method)
      assert.are.equal("raw\0bytes here", v.body)
      assert.are.equal("text/plain", v.headers["content-type"])
    end)

    it("POSTs a json table as JSON with its Content-Type", function()
      local v = echo({ method = "POST", json = { name = "x", n = 3, list = { 1, 2 } } })
      assert.are.equal("POST", v.method)
      assert.matches("^application/json", v.headers["content-type"])
      local sent = cjson.decode(v.body)
      assert.are.equal("x", sent.name)
      assert.are.equal(3, sent.n)
      assert.are.same({ 1, 2 }, sent.list)
    end)

    it("sends a large POST body completely", function()
      local big = fx.body(300000, 9):gsub("[^%w]", "x")
      local v = echo({ method = "POST", body = big })
      assert.are.equal(#big, #v.body)
      assert.is_true(v.body == big)
    end)

    it("sends PUT and DELETE", function()
      assert.are.equal("PUT", echo({ method = "PUT", body = "p" }).method)
      assert.are.equal("DELETE", echo({ method = "DELETE" }).method)
    end)

    it("sends a Range header for opts.range", function()
      assert.are.equal("bytes=5-9", echo({ range = { 5, 9 } }).headers.range)
      assert.are.equal("bytes=5-", echo({ range = { 5 } }).headers.range)
    end)
  end)

  describe("transport failures", function()
    it("returns nil, err kind \"network\" when the connection is refused", function()
      local target = server.info.closed_url .. "/bytes"
      local d, err = cf.open(target, { retry = false })
      assert.is_nil(d)
      assert.is_true(cf.is_error(err))
      assert.are.equal("network", err.kind)
      assert.are.equal(target, err.url)
      assert.are.equal("network: " .. err.message, tostring(err))
    end)

    it("returns nil, err kind \"timeout\" when connect_timeout passes", function()
      local t0 = cf.now()
      local d, err = cf.open(server.info.blackhole_url .. "/x",
        { connect_timeout = 0.5, timeout = 5, retry = false })
      assert.is_nil(d)
      assert.are.equal("timeout", err.kind)
      assert.is_true(cf.now() - t0 < 3, "connect_timeout was not honoured")
    end)

    it("returns nil, err kind \"timeout\" when the headers take longer than timeout", function()
      local t0 = cf.now()
      local d, err = cf.open(url .. "/bytes?n=10&delay=8", { timeout = 0.5, retry = false })
      assert.is_nil(d)
      assert.are.equal("timeout", err.kind)
      assert.is_true(cf.now() - t0 < 4)
    end)

    it("returns nil, err kind \"timeout\" when no byte arrives for stall_timeout", function()
      local t0 = cf.now()
      local d, err = cf.open(url .. "/bytes?n=10&delay=8", { stall_timeout = 1, retry = false })
      assert.is_nil(d)
      assert.are.equal("timeout", err.kind)
      assert.is_true(cf.now() - t0 < 5)
    end)

    it("returns nil, err for a host name that does not resolve", function()
      local d, err = cf.open("http://no-such-host.invalid/x", { retry = false })
      assert.is_nil(d)
      assert.are.equal("network", err.kind)
    end)
  end)

  describe("redirects", function()
    it("are not followed by default", function()
      local d = assert(cf.open(url .. "/redirect?to=" .. fx.urlencode("/bytes?n=10")))
      assert.are.equal(302, d.status)
      assert.are.equal("/bytes?n=10", d:header("location"))
      d:close()
    end)

    it("are followed with follow_redirects, d.url being the final URL", function()
      local d = assert(cf.open(url .. "/redirect?code=301&to=" .. fx.urlencode("/bytes?n=10"),
        { follow_redirects = true }))
      assert.are.equal(200, d.status)
      assert.are.equal(url .. "/bytes?n=10", d.url)
      assert.is_nil(fx.diff(assert(d:read_all()), fx.body(10)))
    end)

    it("stop with an error after max_redirects", function()
      local d, err = cf.open(url .. "/hops?n=5", { follow_redirects = true, max_redirects = 2 })
      assert.is_nil(d)
      assert.is_true(cf.is_error(err))
      assert.are.equal("protocol", err.kind)
      assert.matches("too many redirects", err.message)
      local ok = assert(cf.open(url .. "/hops?n=2", { follow_redirects = true, max_redirects = 2 }))
      assert.are.equal(200, ok.status)
      assert.are.equal("done", ok:read_all())
    end)

    it("do not carry the caller's credential headers to another host (more in redirect_spec)", function()
      local other = server.info.alt_url .. "/echo"
      local d = assert(cf.open(url .. "/redirect?to=" .. fx.urlencode(other),
        { follow_redirects = true, headers = { Authorization = "Bearer do-not-leak",
          ["X-Auth-Token"] = "tok-do-not-leak", ["X-Bz-Auth"] = "bz-do-not-leak" } }))
      assert.are.equal(200, d.status)
      assert.are.equal(other, d.url)
      local v = assert(d:json())
      assert.is_nil(v.headers.authorization)
      assert.is_nil(v.headers["x-auth-token"])
      assert.is_nil(v.headers["x-bz-auth"])
    end)

    it("do not carry URL credentials to another host", function()
      local other = server.info.alt_url .. "/echo"
      local base = url:gsub("^http://", "http://user:pw-do-not-leak@")
      local d = assert(cf.open(base .. "/redirect?to=" .. fx.urlencode(other), { follow_redirects = true }))
      local v = assert(d:json())
      assert.is_nil(v.headers.authorization)
    end)

    for _, target in ipairs({ "ftp://127.0.0.1:21/x", "file:///etc/passwd" }) do
      it("refuse to go to " .. target:match("^%a+") .. "://", function()
        local d, err = cf.open(url .. "/redirect?to=" .. fx.urlencode(target),
          { follow_redirects = true, retry = false })
        assert.is_nil(d)
        assert.is_true(cf.is_error(err))
        assert.are.equal("protocol", err.kind)
      end)
    end
  end)

  describe("misuse", function()
    local function raises(pattern, ...)
      local err = fx.raises(cf.open, ...)
      assert.is_not_nil(err, "cf.open did not raise")
      assert.is_false(cf.is_error(err), "misuse must raise a plain error, not a cloudfetch.Error")
      if pattern then assert.matches(pattern, tostring(err)) end
    end

    it("raises on a URL that is not a string", function()
      raises(nil, 42)
      raises(nil, nil)
    end)

    it("points at the caller's line and names the function called", function()
      local ok, err = pcall(function() cf.open(url, { timeot = 3 }) end)
      assert.is_false(ok)
      assert.matches("^spec/open_spec.lua:%d+: cloudfetch.open: unknown option 'timeot'", err)
      ok, err = pcall(function() cf.save(url, "/tmp/x", { timeot = 3 }) end)
      assert.is_false(ok)
      assert.matches("^spec/open_spec.lua:%d+: cloudfetch.save: unknown option 'timeot'", err)
      ok, err = pcall(function() cf.save(url, "/tmp/x", { parallel = 0 }) end)
      assert.is_false(ok)
      assert.matches("^spec/open_spec.lua:%d+: cloudfetch.save: option 'parallel'", err)
    end)

    it("raises on numbers C could not take: NaN, infinities, huge values", function()
      raises("timeout", url, { timeout = 0 / 0 })
      raises("timeout", url, { timeout = 1e300 })
      raises("buffer_size", url, { buffer_size = 1e300 })
      raises("max_redirects", url, { max_redirects = 1e300 })
      raises("chunk_size", url, { chunk_size = 0.5 })
    end)

    it("raises on an unknown option name, naming it", function()
      raises("bogus_option", url .. "/bytes", { bogus_option = 1 })
    end)

    it("raises on options of the wrong type", function()
      raises("timeout", url .. "/bytes", { timeout = "soon" })
      raises("headers", url .. "/bytes", { headers = "X-A: 1" })
      raises("hash", url .. "/bytes", { hash = "sha1" })
      raises("range", url .. "/bytes", { range = "0-10" })
      raises("progress", url .. "/bytes", { progress = 1 })
      raises(nil, url .. "/bytes", "GET")
    end)

    it("raises on an unknown hash algorithm", function()
      raises("sha512", url .. "/bytes", { hash = { "sha512" } })
    end)

    it("raises on a header value containing CR or LF", function()
      raises("X%-A", url .. "/bytes", { headers = { ["X-A"] = "a\r\nX-Injected: 1" } })
      raises("X%-A", url .. "/bytes", { headers = { ["X-A"] = "a\nb" } })
    end)

    it("raises on a method it does not support", function()
      raises("method", url .. "/echo", { method = "TRACE" })
      raises("method", url .. "/echo", { method = "get\r\n" })
    end)

    it("raises on URLs that are not http or https", function()
      for _, bad in ipairs({ "ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/",
                             "not a url", "HTTPX://127.0.0.1/" }) do
        raises("http", bad, { retry = false })
      end
    end)

    it("does not send anything when it raises", function()
      local key = fx.key()
      fx.raises(cf.open, url .. "/echo?key=" .. key, { headers = { ["X-A"] = "a\r\nb" } })
      assert.are.equal(0, (fx.count(server, key)))
    end)
  end)
end)
