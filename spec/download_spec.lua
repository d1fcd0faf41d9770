-- Reading a Download: chunks(), read_all(), json(), closing, ranges, bodies
-- that end badly, back-pressure and progress.
local cf = require "cloudfetch"
local fx = require "support.fixtures"

describe("a Download", function()
  local server, url

  setup(function()
    server = fx.start_server()
    url = server.url
  end)

  teardown(function()
    if server then server:stop() end
  end)

  -- Runs f and returns the cloudfetch.Error it raised (fails if it did not).
  local function raised_error(f)
    local err = fx.raises(f)
    assert.is_not_nil(err, "expected an error, the loop ended cleanly")
    assert.is_true(cf.is_error(err), "expected a cloudfetch.Error, got: " .. tostring(err))
    return err
  end

  describe("chunks()", function()
    it("yields the whole body in order", function()
      local n = 1000003
      local d = assert(cf.open(url .. "/bytes?n=" .. n .. "&seed=4"))
      local body = fx.collect(d)
      assert.is_nil(fx.diff(body, fx.body(n, 4)))
      assert.are.equal(n, d.received)
    end)

    it("never yields a chunk longer than the size asked", function()
      local d = assert(cf.open(url .. "/bytes?n=100000"))
      local body, sizes = fx.collect(d, 1000)
      assert.is_nil(fx.diff(body, fx.body(100000)))
      for _, s in ipairs(sizes) do assert.is_true(s > 0 and s <= 1000, "chunk of " .. s) end
    end)

    it("respects the chunk_size option, and 64 KiB by default", function()
      local d = assert(cf.open(url .. "/bytes?n=300000", { chunk_size = 4096 }))
      local body, sizes = fx.collect(d)
      assert.are.equal(300000, #body)
      for _, s in ipairs(sizes) do assert.is_true(s <= 4096, "chunk of " .. s) end

      d = assert(cf.open(url .. "/bytes?n=1000000"))
      body, sizes = fx.collect(d)
      assert.are.equal(1000000, #body)
      for _, s in ipairs(sizes) do assert.is_true(s <= 65536, "chunk of " .. s) end
    end)

    it("yields nothing for an empty body", function()
      local d = assert(cf.open(url .. "/bytes?n=0"))
      local body, sizes = fx.collect(d)
      assert.are.equal("", body)
      assert.are.equal(0, #sizes)
    end)

    it("reads a chunked (no Content-Length) body with odd chunk sizes", function()
      local d = assert(cf.open(url .. "/chunked?n=200000&seed=5"))
      assert.is_nil(d.size)
      assert.is_nil(fx.diff(fx.collect(d), fx.body(200000, 5)))
    end)

    it("delivers gzip-encoded bodies undecoded", function()
      local meta = fx.meta(server, 50000, 3, nil, nil, true)
      local d = assert(cf.open(url .. "/gzip?n=50000&seed=3", { hash = { "sha256" } }))
      assert.are.equal("gzip", d:header("content-encoding"))
      local body = fx.collect(d)
      assert.are.equal(meta.size, #body)
      assert.are.equal("\31\139", body:sub(1, 2))
      assert.are.equal(meta.sha256, d:digest("sha256"))
    end)

    it("stops the transfer and closes the download at break", function()
      local n = 8 * 1024 * 1024
      local key = fx.key()
      local d = assert(cf.open(url .. "/bytes?sndbuf=65536&n=" .. n .. "&key=" .. key, { buffer_size = 65536 }))
      local t0 = cf.now()
      for _ in d:chunks() do break end -- luacheck: ignore 512
      assert.is_true(cf.now() - t0 < 2, "break waited for the rest of the body")
      assert.is_true(d.received < n)
      cf.sleep(0.2)
      local _, sent = fx.count(server, key)
      assert.is_true(sent < n / 2, "the server went on sending after break: " .. sent)
      local err = fx.raises(d.chunks, d)
      assert.is_not_nil(err, "chunks() on a closed download did not raise")
      assert.matches("attempt to use a closed", tostring(err))
      assert.are.equal(200, d.status)
    end)

    it("closes the download when the loop ends", function()
      local d = assert(cf.open(url .. "/bytes?n=100"))
      fx.collect(d)
      assert.are.equal(100, d.received)
      assert.matches("attempt to use a closed", tostring(fx.raises(d.chunks, d)))
    end)

    it("raises when iterated a second time after the body ended", function()
      local d = assert(cf.open(url .. "/bytes?n=100"))
      assert.are.equal(100, #fx.collect(d))
      assert.is_not_nil(fx.raises(fx.collect, d))
    end)
  end)

  describe("closing", function()
    it("is idempotent and leaves status, headers and received readable", function()
      local d = assert(cf.open(url .. "/bytes?n=100000"))
      local it = d:chunks()
      local first = it()
      assert.is_true(#first > 0)
      d:close()
      d:close()
      assert.are.equal(200, d.status)
      assert.are.equal("100000", d.headers["content-length"])
      assert.are.equal(#first, d.received)
    end)

    it("makes methods that need the body raise or fail", function()
      local d = assert(cf.open(url .. "/bytes?n=100"))
      d:close()
      assert.matches("attempt to use a closed", tostring(fx.raises(d.chunks, d)))
      local ok, body, err = pcall(d.read_all, d)
      assert.is_true(not ok or (body == nil and err ~= nil), "read_all on a closed download succeeded")
    end)

    it("happens at the end of a <close> block", function()
      local ref
      do
        local d <close> = assert(cf.open(url .. "/bytes?n=100000"))
        ref = d
      end
      assert.matches("attempt to use a closed", tostring(fx.raises(ref.chunks, ref)))
      assert.are.equal(200, ref.status)
    end)

    it("is done by the garbage collector for an abandoned download", function()
      for _ = 1, 20 do
        cf.open(url .. "/bytes?n=1000000")
      end
      collectgarbage()
      collectgarbage()
      local d = assert(cf.open(url .. "/bytes?n=10"))
      assert.are.equal(10, #assert(d:read_all()))
    end)
  end)

  describe("connections", function()
    it("are reused for requests one after another", function()
      local ids = {}
      for i = 1, 3 do
        local d = assert(cf.open(url .. "/conn"))
        ids[i] = assert(d:json()).conn
      end
      assert.are.equal(ids[1], ids[2])
      assert.are.equal(ids[2], ids[3])
    end)

    it("still work after an aborted transfer", function()
      local d = assert(cf.open(url .. "/bytes?n=4000000"))
      for _ in d:chunks() do break end -- luacheck: ignore 512
      local d2 = assert(cf.open(url .. "/bytes?n=1000"))
      assert.is_nil(fx.diff(assert(d2:read_all()), fx.body(1000)))
    end)

    it("can run two downloads side by side", function()
      local a = assert(cf.open(url .. "/bytes?n=300000&seed=1", { buffer_size = 65536 }))
      local b = assert(cf.open(url .. "/bytes?n=300000&seed=2", { buffer_size = 65536 }))
      local ia, ib = a:chunks(), b:chunks()
      local pa, pb = {}, {}
      local done_a, done_b = false, false
      while not (done_a and done_b) do
        if not done_a then
          local c = ia()
          if c then pa[#pa + 1] = c else done_a = true end
        end
        if not done_b then
          local c = ib()
          if c then pb[#pb + 1] = c else done_b = true end
        end
      end
      assert.is_nil(fx.diff(table.concat(pa), fx.body(300000, 1)))
      assert.is_nil(fx.diff(table.concat(pb), fx.body(300000, 2)))
    end)
  end)

  describe("ranges", function()
    it("yields exactly the bytes of a range", function()
      local d = assert(cf.open(url .. "/bytes?n=500000&seed=6", { range = { 70000, 139999 } }))
      assert.are.equal(206, d.status)
      assert.is_nil(fx.diff(fx.collect(d), fx.body(70000, 6, 70000)))
    end)

    it("reads to the end when last is nil", function()
      local d = assert(cf.open(url .. "/bytes?n=1000", { range = { 990 } }))
      assert.are.equal(206, d.status)
      assert.are.same({ first = 990, last = 999, total = 1000 }, d.range)
      assert.is_nil(fx.diff(assert(d:read_all()), fx.body(10, 1, 990)))
    end)

    it("gives a 416 answer as a response when the range is past the end", function()
      local d = assert(cf.open(url .. "/bytes?n=1000", { range = { 5000 }, retry = false }))
      assert.are.equal(416, d.status)
      assert.is_nil(d.range)
      assert.are.equal(1000, d.total)
      d:close()
    end)

    it("gives a 200 with the whole body when the server ignores Range", function()
      local d = assert(cf.open(url .. "/bytes?n=1000&ranges=0", { range = { 10, 19 } }))
      assert.are.equal(200, d.status)
      assert.is_nil(d.range)
      assert.are.equal(1000, #assert(d:read_all()))
    end)
  end)

  describe("a body that ends badly", function()
    -- ranges=0: the server cannot resume, so the failure must reach the caller.
    it("raises when the connection drops mid-body", function()
      local d = assert(cf.open(url .. "/close?n=200000&after=50000&ranges=0"))
      assert.are.equal(200, d.status)
      local err = raised_error(function() fx.collect(d) end)
      assert.are.equal("network", err.kind)
      assert.is_true(d.received <= 50000)
    end)

    it("raises when the connection drops mid-body, even if resumable, with retry = false", function()
      local d = assert(cf.open(url .. "/close?n=200000&after=50000", { retry = false }))
      raised_error(function() fx.collect(d) end)
    end)

    it("raises when a chunked body is cut before its last chunk", function()
      local d = assert(cf.open(url .. "/chunked?n=200000&cut=30000", { retry = false }))
      raised_error(function() fx.collect(d) end)
    end)

    it("raises when the body is shorter than Content-Length", function()
      local d = assert(cf.open(url .. "/short?n=10000&send=9999&ranges=0"))
      raised_error(function() fx.collect(d) end)
    end)

    it("returns nil, err from read_all when the connection drops", function()
      local d = assert(cf.open(url .. "/close?n=200000&after=1000&ranges=0"))
      local body, err = d:read_all()
      assert.is_nil(body)
      assert.is_true(cf.is_error(err))
    end)

    it("delivers exactly Content-Length bytes when the server sends more", function()
      local d = assert(cf.open(url .. "/long?n=10000&send=12000"))
      local ok, body = pcall(fx.collect, d)
      if ok then
        assert.is_nil(fx.diff(body, fx.body(10000)))
        assert.are.equal(10000, d.received)
      else
        assert.is_true(cf.is_error(body))
      end
      -- The stray bytes must never be taken for the next answer.  (libcurl may
      -- reuse the connection before they arrive; the next request then fails
      -- with "Received HTTP/0.9", which is an error, not wrong bytes.)
      local d2, err = cf.open(url .. "/bytes?n=500&seed=8", { retry = false })
      if d2 then
        assert.are.equal(200, d2.status)
        assert.is_nil(fx.diff(assert(d2:read_all()), fx.body(500, 8)))
      else
        assert.is_true(cf.is_error(err))
      end
    end)

    it("raises kind \"timeout\" when the body stalls longer than stall_timeout", function()
      local d = assert(cf.open(url .. "/stall?n=100000&after=20000&seconds=8&ranges=0",
        { stall_timeout = 1 }))
      local t0 = cf.now()
      local err = raised_error(function() fx.collect(d) end)
      assert.are.equal("timeout", err.kind)
      assert.is_true(cf.now() - t0 < 5, "stall_timeout was not honoured")
    end)

    it("raises kind \"timeout\" when the whole transfer exceeds timeout", function()
      local d = assert(cf.open(url .. "/slow?n=200000&rate=20000&ranges=0", { timeout = 1 }))
      local t0 = cf.now()
      local err = raised_error(function() fx.collect(d) end)
      assert.are.equal("timeout", err.kind)
      assert.is_true(cf.now() - t0 < 5)
    end)

    it("still delivers a slow body that keeps trickling", function()
      local d = assert(cf.open(url .. "/slow?n=30000&rate=60000", { stall_timeout = 2 }))
      assert.is_nil(fx.diff(fx.collect(d), fx.body(30000)))
    end)
  end)

  describe("back-pressure", function()
    it("pauses the transfer while the reader is slow and still delivers every byte", function()
      local n = 8 * 1024 * 1024
      local key = fx.key()
      local d = assert(cf.open(url .. "/bytes?sndbuf=65536&n=" .. n .. "&key=" .. key,
        { buffer_size = 65536 }))
      local it = d:chunks()
      local parts = { it() }
      cf.sleep(0.3)
      local _, sent = fx.count(server, key)
      assert.is_true(sent < n / 2, "the server could send " .. sent .. " bytes to a reader that stopped")
      for i = 1, 40 do
        parts[#parts + 1] = it()
        if i % 10 == 0 then cf.sleep(0.01) end
      end
      for chunk in it do parts[#parts + 1] = chunk end
      assert.is_nil(fx.diff(table.concat(parts), fx.body(n)))
    end)
  end)

  describe("a reader that pauses", function()
    it("longer than stall_timeout does not make the transfer time out", function()
      local n = 4 * 1024 * 1024
      local d = assert(cf.open(url .. "/bytes?sndbuf=65536&n=" .. n, { buffer_size = 65536, stall_timeout = 1 }))
      local it = d:chunks()
      local parts = { it() }
      cf.sleep(1.6)
      for chunk in it do parts[#parts + 1] = chunk end
      assert.is_nil(fx.diff(table.concat(parts), fx.body(n)))
    end)
  end)

  describe("read_all()", function()
    it("returns the whole body", function()
      local d = assert(cf.open(url .. "/bytes?n=123457&seed=3"))
      assert.is_nil(fx.diff(assert(d:read_all()), fx.body(123457, 3)))
      assert.are.equal(123457, d.received)
    end)

    it("returns the body of a non-2xx answer", function()
      local d = assert(cf.open(url .. "/status/500?body=oops&ct=text/plain", { retry = false }))
      assert.are.equal(500, d.status)
      assert.are.equal("oops", d:read_all())
    end)
  end)

  describe("json()", function()
    it("decodes a JSON body", function()
      local d = assert(cf.open(url .. "/status/200?body=" .. fx.urlencode('{"a":[1,2],"b":"c"}')))
      assert.are.same({ a = { 1, 2 }, b = "c" }, assert(d:json()))
    end)

    it("gives null as an absent key and integral numbers as integers", function()
      local body = '{"next":null,"size":9007199254740993,"n":[1,2.5],"deep":{"x":null,"y":3}}'
      local d = assert(cf.open(url .. "/status/200?body=" .. fx.urlencode(body)))
      local v = assert(d:json())
      assert.is_nil(v.next)
      assert.are.equal("integer", math.type(v.n[1]))
      assert.are.equal(2.5, v.n[2])
      assert.is_nil(v.deep.x)
      assert.are.equal("integer", math.type(v.deep.y))
      assert.are.equal("integer", math.type(v.size))
    end)

    it("returns nil, err kind \"protocol\" for a body that is not JSON", function()
      local d = assert(cf.open(url .. "/status/200?body=not%20json"))
      local v, err = d:json()
      assert.is_nil(v)
      assert.is_true(cf.is_error(err))
      assert.are.equal("protocol", err.kind)
    end)
  end)

  describe("progress", function()
    local function track()
      local calls = {}
      return calls, function(received, total)
        calls[#calls + 1] = { received, total }
      end
    end

    local function assert_increasing(calls, final, total)
      assert.is_true(#calls > 0, "progress was never called")
      local prev = -1
      for _, c in ipairs(calls) do
        assert.is_true(c[1] >= prev, "received went backwards")
        prev = c[1]
        assert.are.equal(total, c[2])
      end
      assert.are.equal(final, calls[#calls][1])
    end

    it("reports received bytes and the body size", function()
      local calls, progress = track()
      local d = assert(cf.open(url .. "/bytes?n=500000", { progress = progress }))
      fx.collect(d)
      assert_increasing(calls, 500000, 500000)
    end)

    it("reports the range length as total for a ranged request", function()
      local calls, progress = track()
      local d = assert(cf.open(url .. "/bytes?n=500000", { progress = progress, range = { 1000, 200999 } }))
      assert(d:read_all())
      assert_increasing(calls, 200000, 200000)
    end)

    it("reports a nil total for a chunked body", function()
      local calls, progress = track()
      local d = assert(cf.open(url .. "/chunked?n=100000", { progress = progress }))
      fx.collect(d)
      assert_increasing(calls, 100000, nil)
    end)

    local function boom(received)
      if received > 0 then error("boom from progress") end
    end

    it("passes an error raised in the callback to the caller of chunks()", function()
      local d = assert(cf.open(url .. "/bytes?n=500000", { progress = boom }))
      local err = fx.raises(fx.collect, d)
      assert.matches("boom from progress", tostring(err))
      d:close()
      local d2 = assert(cf.open(url .. "/bytes?n=1000"))
      assert.is_nil(fx.diff(assert(d2:read_all()), fx.body(1000)))
    end)

    it("passes an error raised in the callback to the caller of read_all()", function()
      local d = assert(cf.open(url .. "/bytes?n=500000", { progress = boom }))
      -- Raised again, or returned as nil, err: either way with the original message.
      local ok, body, err = pcall(d.read_all, d)
      if ok then
        assert.is_nil(body)
      else
        err = body
      end
      assert.matches("boom from progress", tostring(err))
      local d2 = assert(cf.open(url .. "/bytes?n=1000"))
      assert.is_nil(fx.diff(assert(d2:read_all()), fx.body(1000)))
    end)
  end)
end)
