-- Reading without blocking (Download:read_chunk), cf.hash_file, and
-- network failures that are not worth waiting for.  (Host loops: luv_spec.)
local cf = require "cloudfetch"
local fx = require "support.fixtures"

describe("read_chunk", function()
  local server, url

  setup(function()
    server = fx.start_server()
    url = server.url
  end)

  teardown(function()
    if server then server:stop() end
  end)

  it("returns false while nothing arrived, then data, then nil with the digest right", function()
    local n = 300000
    local meta = fx.meta(server, n, 5)
    -- Under valgrind one call may take a collector cycle of 0.1 s or more:
    -- there the server stalls longer, and the bound stays well below it.
    local slow = os.getenv("VALGRIND") == "1"
    local stall, bound = slow and 2 or 0.5, slow and 1 or 0.1
    local d = assert(cf.open(url .. "/stall?n=" .. n .. "&seed=5&stall=" .. stall .. "&after=1000",
      { hash = { "sha1" } }))
    local parts, falses, longest = {}, 0, 0
    local t0 = cf.now()
    while cf.now() - t0 < 20 do
      local s0 = cf.now()
      local s = d:read_chunk()
      longest = math.max(longest, cf.now() - s0)
      if s == nil then break end
      if s == false then
        falses = falses + 1
        cf.sleep(0.002)
      else
        assert.is_true(#s <= 64 * 1024)
        parts[#parts + 1] = s
      end
    end
    assert.is_true(falses > 10, "read_chunk never said false")
    assert.is_true(longest < bound, "read_chunk(0) blocked for " .. longest .. " s")
    assert.is_nil(fx.diff(table.concat(parts), fx.body(n, 5)))
    assert.equal(meta.sha1, d:digest("sha1"))
    assert.is_nil(d:read_chunk()) -- stays at the end
  end)

  it("waits at most its timeout", function()
    local d = assert(cf.open(url .. "/stall?n=1000&stall=2&after=0"))
    local t0 = cf.now()
    assert.is_false(d:read_chunk(0.3))
    local waited = cf.now() - t0
    assert.is_true(waited >= 0.25 and waited < 1.5, "waited " .. waited)
    d:close()
  end)

  it("raises on a cut body that cannot be resumed, never a clean end", function()
    local d = assert(cf.open(url .. "/close?n=100000&after=5000&ranges=0"))
    local err
    local t0 = cf.now()
    while cf.now() - t0 < 20 do
      local ok, s = pcall(d.read_chunk, d, 0.05)
      if not ok then err = s break end
      assert.is_not_nil(s, "a cut body ended cleanly")
    end
    assert.is_true(cf.is_error(err))
    assert.equal("network", err.kind)
  end)

  it("resumes a dropped body transparently without blocking", function()
    local n = 200000
    local key = fx.key()
    local d = assert(cf.open(url .. "/bytes?n=" .. n .. "&seed=9&cut=50000&faults=1&key=" .. key,
      { hash = { "sha256" }, retry = fx.fast_retry }))
    local parts = {}
    local t0 = cf.now()
    while cf.now() - t0 < 20 do
      local s = d:read_chunk(0.01)
      if s == nil then break end
      if s then parts[#parts + 1] = s end
    end
    assert.is_nil(fx.diff(table.concat(parts), fx.body(n, 9)))
    assert.equal(fx.meta(server, n, 9).sha256, d:digest("sha256"))
    assert.equal(2, fx.count(server, key))
  end)

  it("works inside a task, waiting by yielding", function()
    local results = cf.map({ 1, 2 }, function(i)
      local d = assert(cf.open(url .. "/stall?n=20000&stall=0.3&after=100&seed=" .. i))
      local n, falses = 0, 0
      while true do
        local s = d:read_chunk(0.05)
        if s == nil then break end
        if s then n = n + #s else falses = falses + 1 end
      end
      return n, falses
    end)
    for i = 1, 2 do
      assert.equal(20000, results[i][1])
      assert.is_true(results[i][2] >= 2)
    end
  end)
end)

describe("cloudfetch.hash_file", function()
  it("hashes a local file with the digests asked for", function()
    local dir = fx.tmpdir()
    local path = dir .. "/f"
    fx.write_file(path, fx.body(1000000, 4))
    local sums = assert(cf.hash_file(path, { "sha1", "sha256", "md5" }))
    local want = fx.run("sha1sum " .. fx.shell_quote(path)):match("^(%x+)")
    assert.equal(want, sums.sha1)
    assert.equal(fx.run("sha256sum " .. fx.shell_quote(path)):match("^(%x+)"), sums.sha256)
    assert.equal(fx.run("md5sum " .. fx.shell_quote(path)):match("^(%x+)"), sums.md5)
    local in_task = cf.map({ path }, function(p) return cf.hash_file(p, { "sha1" }) end)
    assert.equal(want, in_task[1][1].sha1)
    fx.rmdir(dir)
  end)

  it("returns nil, err (kind io) for a missing file and raises on misuse", function()
    local sums, err = cf.hash_file("/nonexistent/file", { "sha1" })
    assert.is_nil(sums)
    assert.equal("io", err.kind)
    assert.has_error(function() cf.hash_file("/etc/hostname", { "sha512" }) end)
    assert.has_error(function() cf.hash_file("/etc/hostname") end)
  end)
end)

describe("network failures", function()
  local server

  setup(function()
    server = fx.start_server()
  end)

  teardown(function()
    if server then server:stop() end
  end)

  it("does not retry a host name that does not resolve", function()
    local t0 = cf.now()
    local d, err = cf.open("http://no-such-host.invalid/x")
    assert.is_nil(d)
    assert.equal("network", err.kind)
    assert.is_false(err.retryable)
    assert.is_true(cf.now() - t0 < 2, "took " .. (cf.now() - t0) .. " s")
  end)

  it("tries a refused connection a few times quickly, and says how often", function()
    local t0 = cf.now()
    local d, err = cf.open(server.info.closed_url .. "/x")
    assert.is_nil(d)
    assert.equal("network", err.kind)
    assert.truthy(err.message:find("after 3 attempts", 1, true), err.message)
    assert.is_true(cf.now() - t0 < 2, "took " .. (cf.now() - t0) .. " s")
  end)

  it("says how many attempts a failure took", function()
    local d, err = cf.open(server.url .. "/bytes?n=10&delay=3", { timeout = 0.2, retry = fx.fast_retry })
    assert.is_nil(d)
    assert.equal("timeout", err.kind)
    assert.truthy(err.message:find("after 3 attempts", 1, true), err.message)
  end)
end)
