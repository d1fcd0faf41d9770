-- cf.save(url, path, opts): open + save in one call, with resume and parallel parts.
local cf = require "cloudfetch"
local fx = require "support.fixtures"

describe("cloudfetch.save", function()
  local server, url, dir
  local N = 1000000

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

  it("downloads a URL to a file, returning path, bytes", function()
    local target = dir .. "/out.bin"
    local path, bytes = cf.save(url .. "/bytes?n=" .. N .. "&seed=31", target)
    assert.are.equal(target, path)
    assert.are.equal(N, bytes)
    assert.is_nil(fx.diff(fx.read_file(target), fx.body(N, 31)))
  end)

  it("names the file from the response when path is a directory", function()
    local path = assert(cf.save(url .. "/file/named.dat?n=10&cd=" ..
      fx.urlencode('attachment; filename="from-header.dat"'), dir))
    assert.are.equal(dir .. "/from-header.dat", path)
  end)

  it("returns nil, err kind \"http\" for a non-2xx answer and writes nothing", function()
    local path, err = cf.save(url .. "/status/404", dir .. "/x", { retry = false })
    assert.is_nil(path)
    assert.are.equal("http", err.kind)
    assert.are.equal(404, err.status)
    assert.are.same({}, fx.list(dir))
  end)

  it("returns nil, err for a refused connection and writes nothing", function()
    local path, err = cf.save(server.info.closed_url .. "/x", dir .. "/x", { retry = false })
    assert.is_nil(path)
    assert.are.equal("network", err.kind)
    assert.are.same({}, fx.list(dir))
  end)

  it("verifies expect and removes everything on a mismatch", function()
    local path, err = cf.save(url .. "/bytes?n=1000", dir .. "/x",
      { expect = { sha256 = string.rep("0", 64) } })
    assert.is_nil(path)
    assert.are.equal("integrity", err.kind)
    assert.are.same({}, fx.list(dir))
  end)

  it("passes an error raised in progress to its caller and leaves no file", function()
    local ok, a, b = pcall(cf.save, url .. "/bytes?n=" .. N, dir .. "/x", {
      progress = function(received) if received > 0 then error("stop from progress") end end })
    local msg = ok and tostring(b) or tostring(a)
    if ok then assert.is_nil(a) end
    assert.matches("stop from progress", msg)
    assert.are.same({}, fx.list(dir))
  end)

  describe("with resume = true", function()
    it("keeps <target>.part after a transport failure and continues it later", function()
      local key = fx.key()
      local src = string.format("%s/bytes?n=%d&seed=32&key=%s&faults=1&cut=300000", url, N, key)
      local target = dir .. "/big.bin"
      local path, err = cf.save(src, target, { resume = true, retry = false })
      assert.is_nil(path)
      assert.is_true(cf.is_error(err))
      assert.are.same({ "big.bin.part" }, fx.list(dir))
      local part = fx.read_file(target .. ".part")
      assert.is_true(#part > 0 and #part <= 300000)
      assert.is_nil(fx.diff(part, fx.body(#part, 32)))

      local meta = fx.meta(server, N, 32)
      path = assert(cf.save(src, target, { resume = true, expect = { sha256 = meta.sha256 } }))
      assert.are.equal(target, path)
      assert.is_nil(fx.diff(fx.read_file(target), fx.body(N, 32)))
      assert.are.same({ "big.bin" }, fx.list(dir))
      -- The second run asked only for the missing bytes.
      local count, sent = fx.count(server, key)
      assert.are.equal(2, count)
      assert.are.equal(N - #part, sent)
    end)

    it("never follows a planted <target>.part symbolic link", function()
      local victim = fx.tmpdir()
      fx.write_file(victim .. "/victim", "precious")
      os.execute("ln -s " .. fx.shell_quote(victim .. "/victim") .. " " .. fx.shell_quote(dir .. "/f.part"))
      local path, err = cf.save(url .. "/bytes?n=1000", dir .. "/f", { resume = true, retry = false })
      assert.is_nil(path)
      assert.equal("io", err.kind)
      assert.matches("symbolic link", err.message)
      assert.equal("precious", fx.read_file(victim .. "/victim"))
      assert.is_nil(fx.read_file(dir .. "/f"))
      fx.rmdir(victim)
    end)

    it("deletes the part file after an integrity failure", function()
      local key = fx.key()
      local src = string.format("%s/bytes?n=%d&key=%s&faults=1&cut=300000", url, N, key)
      local target = dir .. "/big.bin"
      assert.is_nil((cf.save(src, target, { resume = true, retry = false })))
      assert.are.same({ "big.bin.part" }, fx.list(dir))
      local path, err = cf.save(src, target, { resume = true, expect = { sha1 = string.rep("0", 40) } })
      assert.is_nil(path)
      assert.are.equal("integrity", err.kind)
      assert.are.same({}, fx.list(dir))
    end)

    it("continues a part saved into a directory under the server's name", function()
      local key = fx.key()
      local src = string.format("%s/file/named.bin?n=%d&seed=34&key=%s&faults=1&cut=250000", url, N, key)
      assert.is_nil((cf.save(src, dir, { resume = true, retry = false })))
      assert.are.same({ "named.bin.part" }, fx.list(dir))
      local meta = fx.meta(server, N, 34)
      local path = assert(cf.save(src, dir, { resume = true, expect = { sha256 = meta.sha256 } }))
      assert.are.equal(dir .. "/named.bin", path)
      assert.is_nil(fx.diff(fx.read_file(path), fx.body(N, 34)))
      assert.are.same({ "named.bin" }, fx.list(dir))
    end)

    it("keeps the part when continuing it fails in transport", function()
      local key = fx.key()
      -- Run 1 is cut mid-body; in run 2 the range request that would continue
      -- the part gets no answer at all (faults apply to the first 3 requests).
      local src = string.format("%s/file/kept.bin?n=%d&seed=39&key=%s&faults=3&cut=250000&rdrop=1",
        url, N, key)
      assert.is_nil((cf.save(src, dir, { resume = true, retry = false })))
      assert.are.same({ "kept.bin.part" }, fx.list(dir))
      local before = fx.read_file(dir .. "/kept.bin.part")
      local path, err = cf.save(src, dir, { resume = true, retry = false })
      assert.is_nil(path)
      assert.is_true(cf.is_error(err))
      assert.are.equal("network", err.kind)
      assert.is_true(err.retryable)
      assert.are.same({ "kept.bin.part" }, fx.list(dir))
      assert.are.equal(before, fx.read_file(dir .. "/kept.bin.part"))
      -- Once the server behaves, a third run finishes the same part.
      local ok_src = string.format("%s/file/kept.bin?n=%d&seed=39", url, N)
      path = assert(cf.save(ok_src, dir, { resume = true }))
      assert.is_nil(fx.diff(fx.read_file(path), fx.body(N, 39)))
    end)

    it("starts over when the entity changed between runs", function()
      local key = fx.key()
      local src = string.format("%s/bytes?n=%d&seed=35&key=%s&faults=1&cut=200000&change=1", url, N, key)
      local target = dir .. "/c.bin"
      assert.is_nil((cf.save(src, target, { resume = true, retry = false })))
      assert.are.same({ "c.bin.part" }, fx.list(dir))
      local path, bytes = assert(cf.save(src, target, { resume = true }))
      assert.are.equal(N, bytes)
      assert.are.equal(N, #fx.read_file(path))
      assert.are.same({ "c.bin" }, fx.list(dir))
      -- The second run did not splice: its last request sent the whole body
      -- (at least: an aborted earlier answer may still add its last bytes).
      local _, sent = fx.count(server, key)
      assert.is_true(sent >= N, "sent " .. sent)
    end)

    it("keeps the part after a progress callback raised, and a later run finishes it", function()
      local target = dir .. "/p.bin"
      local src = url .. "/bytes?n=" .. N .. "&seed=36"
      local ok, msg = pcall(cf.save, src, target, { resume = true,
        progress = function(received) if received >= 100000 then error("user stop") end end })
      assert.is_false(ok)
      assert.matches("user stop", tostring(msg))
      assert.are.same({ "p.bin.part" }, fx.list(dir))
      local path = assert(cf.save(src, target, { resume = true }))
      assert.is_nil(fx.diff(fx.read_file(path), fx.body(N, 36)))
    end)

    it("rejects resume combined with range or parallel (misuse)", function()
      assert.has_error(function() cf.save(url .. "/bytes", dir .. "/x", { resume = true, range = { 0, 9 } }) end)
      assert.has_error(function() cf.save(url .. "/bytes", dir .. "/x", { resume = true, parallel = 2 }) end)
      assert.has_error(function() cf.save(url .. "/bytes", dir .. "/x", { parallel = 0 }) end)
      assert.has_error(function() cf.save(url .. "/bytes", dir .. "/x", { resume = "yes" }) end)
    end)

    it("removes no part file when the transfer succeeds at once", function()
      local path = assert(cf.save(url .. "/bytes?n=1000", dir .. "/a", { resume = true }))
      assert.are.same({ "a" }, fx.list(dir))
      assert.are.equal(1000, #fx.read_file(path))
    end)
  end)

  describe("with parallel parts", function()
    it("assembles the file from ranged parts and verifies the whole digest", function()
      local key = fx.key()
      local n = 2000003
      local meta = fx.meta(server, n, 33)
      local target = dir .. "/par.bin"
      local path, bytes = cf.save(string.format("%s/bytes?n=%d&seed=33&key=%s", url, n, key), target,
        { parallel = 3, part_size = 300000, expect = { sha256 = meta.sha256 } })
      assert.are.equal(target, path)
      assert.are.equal(n, bytes)
      assert.is_nil(fx.diff(fx.read_file(target), fx.body(n, 33)))
      assert.is_true(fx.count(server, key) >= 3)
      assert.are.same({ "par.bin" }, fx.list(dir))
    end)

    it("resumes a part whose connection drops, and reports monotonic progress", function()
      local key = fx.key()
      local n = 1500000
      local meta = fx.meta(server, n, 37)
      local seen, last = {}, -1
      local path = assert(cf.save(
        string.format("%s/bytes?n=%d&seed=37&key=%s&faults=2&rcut=50000", url, n, key), dir .. "/r.bin",
        { parallel = 2, part_size = 400000, retry = fx.fast_retry, expect = { sha256 = meta.sha256 },
          progress = function(received, total)
            assert.is_true(received > last)
            last = received
            seen.total = total
          end }))
      assert.is_nil(fx.diff(fx.read_file(path), fx.body(n, 37)))
      assert.are.equal(n, last)
      assert.are.equal(n, seen.total)
      -- 4 parts, and part 2 (the first ranged request) was cut once and continued
      assert.are.equal(5, fx.count(server, key))
    end)

    it("falls back to one stream when the server has no ranges", function()
      local key = fx.key()
      local path, bytes = assert(cf.save(string.format("%s/bytes?n=%d&seed=38&key=%s&ranges=0", url, N, key),
        dir .. "/one.bin", { parallel = 4, part_size = 100000 }))
      assert.are.equal(N, bytes)
      assert.is_nil(fx.diff(fx.read_file(path), fx.body(N, 38)))
      assert.are.equal(1, fx.count(server, key))
    end)

    it("fails on a whole-file digest mismatch and leaves nothing", function()
      local path, err = cf.save(url .. "/bytes?n=1000000", dir .. "/par.bin",
        { parallel = 2, part_size = 200000, expect = { sha256 = string.rep("0", 64) } })
      assert.is_nil(path)
      assert.are.equal("integrity", err.kind)
      assert.are.same({}, fx.list(dir))
    end)

    it("fails when a part breaks and cannot be resumed, leaving nothing", function()
      local path, err = cf.save(url .. "/bytes?n=1000000&cut=100000&rcut=0", dir .. "/par.bin",
        { parallel = 2, part_size = 200000, retry = fx.fast_retry })
      assert.is_nil(path)
      assert.is_true(cf.is_error(err))
      assert.are.same({}, fx.list(dir))
    end)
  end)
end)
