-- Digests computed while streaming (opts.hash), and expectations checked at
-- the end of the body (opts.expect, d:expect).
local cf = require "cloudfetch"
local fx = require "support.fixtures"

describe("digests", function()
  local server, url
  local N, SEED = 700001, 11
  local meta, body_url

  setup(function()
    server = fx.start_server()
    url = server.url
    meta = fx.meta(server, N, SEED)
    body_url = url .. "/bytes?n=" .. N .. "&seed=" .. SEED
  end)

  teardown(function()
    if server then server:stop() end
  end)

  local function integrity_error(err)
    assert.is_true(cf.is_error(err), "expected a cloudfetch.Error, got: " .. tostring(err))
    assert.are.equal("integrity", err.kind)
  end

  it("computes sha1, sha256 and md5 of the body while streaming", function()
    local d = assert(cf.open(body_url, { hash = { "sha1", "sha256", "md5" } }))
    fx.collect(d)
    assert.are.equal(meta.sha1, d:digest("sha1"))
    assert.are.equal(meta.sha256, d:digest("sha256"))
    assert.are.equal(meta.md5, d:digest("md5"))
  end)

  describe("on the hasher thread (bodies from 1 MiB)", function()
    local BIG, BIG_SEED = 5 * 1024 * 1024 + 333, 12
    local big_meta, big_url
    setup(function()
      big_meta = fx.meta(server, BIG, BIG_SEED)
      big_url = url .. "/bytes?n=" .. BIG .. "&seed=" .. BIG_SEED
    end)

    for _, threaded in ipairs{ true, false } do
      it(("gives the same digests with hash_thread = %s, whatever the reader's pace"):format(threaded), function()
        -- A small buffer makes the writer wait for the reader (and the hasher) often.
        local d = assert(cf.open(big_url, { hash = { "sha1", "sha256" }, hash_thread = threaded,
          buffer_size = 100000, chunk_size = 7777 }))
        local n, k = 0, 0
        for chunk in d:chunks() do
          n, k = n + #chunk, k + 1
          if k % 97 == 0 then cf.sleep(0.001) end -- now and then a slow reader
        end
        assert.are.equal(BIG, n)
        assert.are.equal(big_meta.sha1, d:digest("sha1"))
        assert.are.equal(big_meta.sha256, d:digest("sha256"))
      end)
    end

    it("raises an integrity failure at the end of the body, never a clean end", function()
      local d = assert(cf.open(big_url, { expect = { sha1 = string.rep("0", 40) } }))
      local n = 0
      local ok, err = pcall(function() for chunk in d:chunks() do n = n + #chunk end end)
      assert.is_false(ok)
      integrity_error(err)
      assert.are.equal(BIG, n) -- every byte was handed out first
    end)

    it("verifies a save, and leaves nothing behind when the digest is wrong", function()
      local dir = fx.tmpdir()
      assert(cf.save(big_url, dir .. "/ok.bin", { expect = { sha1 = big_meta.sha1 } }))
      assert.are.equal(BIG, #fx.read_file(dir .. "/ok.bin"))
      local path, err = cf.save(big_url, dir .. "/bad.bin", { expect = { sha1 = string.rep("0", 40) } })
      assert.is_nil(path)
      integrity_error(err)
      assert.same({ "ok.bin" }, fx.list(dir))
    end)

    -- The write callback writes a save's body to the file itself: a write
    -- that fails there (here: past a file size limit, EFBIG) ends the save
    -- with kind "io", and no temporary file stays.  In a child process,
    -- with the limit and SIGXFSZ ignored.
    for _, threaded in ipairs{ true, false } do
      it(("fails a save whose write fails mid-body, hash_thread = %s"):format(threaded), function()
        local dir = fx.tmpdir()
        local script = ([[
          local cf = require "cloudfetch"
          local path, err = cf.save(%q, %q, { hash_thread = %s, retry = false,
            expect = { sha1 = %q } })
          io.write(tostring(path), "|", err and err.kind or "", "|", err and err.message or "")
        ]]):format(big_url, dir .. "/f.bin", tostring(threaded), big_meta.sha1)
        local out = fx.run("ulimit -f 1024; trap '' XFSZ; lua5.4 -e " .. fx.shell_quote(script) .. " 2>&1")
        local path, kind, message = out:match("^(.-)|(.-)|(.*)$")
        assert.are.equal("nil", path, out)
        assert.are.equal("io", kind, out)
        assert.truthy(message:find("cannot write", 1, true), out)
        assert.truthy(message:find("too large", 1, true), out)
        assert.same({}, fx.list(dir))
      end)
    end

    for _, threaded in ipairs{ true, false } do
      it(("verifies a parallel save's in-order prefix with hash_thread = %s"):format(threaded), function()
        -- Small parts over 3 connections: parts finish out of order, the
        -- prefix jumps over the ones already written.
        local dir = fx.tmpdir()
        assert(cf.save(big_url, dir .. "/par.bin", { parallel = 3, part_size = 700000, hash_thread = threaded,
          expect = { sha1 = big_meta.sha1, sha256 = big_meta.sha256 } }))
        assert.are.equal(big_meta.sha1, fx.run("sha1sum " .. fx.shell_quote(dir .. "/par.bin")):match("^(%x+)"))
        local path, err = cf.save(big_url, dir .. "/bad.bin", { parallel = 3, part_size = 700000,
          hash_thread = threaded, expect = { sha1 = string.rep("0", 40) } })
        assert.is_nil(path)
        integrity_error(err)
        assert.same({ "par.bin" }, fx.list(dir))
      end)
    end
  end)

  it("computes the digest of a range's bytes", function()
    local m = fx.meta(server, N, SEED, 1000, 99999)
    local d = assert(cf.open(body_url, { hash = { "sha256" }, range = { 1000, 99999 } }))
    assert(d:read_all())
    assert.are.equal(m.sha256, d:digest("sha256"))
  end)

  it("computes the digest of a chunked body", function()
    local d = assert(cf.open(url .. "/chunked?n=" .. N .. "&seed=" .. SEED, { hash = { "md5" } }))
    fx.collect(d)
    assert.are.equal(meta.md5, d:digest("md5"))
  end)

  it("computes the digest of an empty body", function()
    local m = fx.meta(server, 0, 1)
    local d = assert(cf.open(url .. "/bytes?n=0", { hash = { "sha1" } }))
    assert.are.equal("", d:read_all())
    assert.are.equal(m.sha1, d:digest("sha1"))
  end)

  it("keeps digests readable after the loop closed the download", function()
    local d = assert(cf.open(body_url, { hash = { "sha256" } }))
    for _ in d:chunks() do end
    d:close()
    assert.are.equal(meta.sha256, d:digest("sha256"))
  end)

  it("gives a digest of the bytes received so far", function()
    local d = assert(cf.open(body_url, { hash = { "sha256" } }))
    local first = d:chunks()()
    d:close()
    assert.are.equal(#first, d.received)
    assert.matches("^%x+$", d:digest("sha256"))
    assert.are.equal(64, #d:digest("sha256"))
  end)

  it("raises when asked for an algorithm that was not requested", function()
    local d = assert(cf.open(body_url, { hash = { "sha256" } }))
    assert(d:read_all())
    local err = fx.raises(d.digest, d, "sha1")
    assert.is_not_nil(err)
    assert.is_false(cf.is_error(err))
    assert.is_not_nil(fx.raises(d.digest, d, "crc32"))
  end)

  describe("opts.expect", function()
    it("ends cleanly when every value matches", function()
      local d = assert(cf.open(body_url, {
        expect = { sha1 = meta.sha1, sha256 = meta.sha256, md5 = meta.md5, size = N } }))
      assert.is_nil(fx.diff(fx.collect(d), fx.body(N, SEED)))
      assert.are.equal(meta.sha256, d:digest("sha256"))
    end)

    it("accepts upper-case hex", function()
      local d = assert(cf.open(body_url, { expect = { sha256 = meta.sha256:upper() } }))
      assert.are.equal(N, #fx.collect(d))
    end)

    it("makes chunks() raise kind \"integrity\" on a wrong sha256", function()
      local wrong = string.rep("0", 64)
      local d = assert(cf.open(body_url, { expect = { sha256 = wrong } }))
      integrity_error(fx.raises(fx.collect, d))
    end)

    it("makes read_all() return nil, err kind \"integrity\" on a wrong sha1", function()
      local wrong = meta.sha1:sub(1, 39) .. (meta.sha1:sub(40) == "0" and "1" or "0")
      local d = assert(cf.open(body_url, { expect = { sha1 = wrong } }))
      local body, err = d:read_all()
      assert.is_nil(body)
      integrity_error(err)
    end)

    it("detects a wrong md5", function()
      local d = assert(cf.open(body_url, { expect = { md5 = string.rep("f", 32) } }))
      integrity_error(fx.raises(fx.collect, d))
    end)

    it("detects a body shorter than the expected size", function()
      local d = assert(cf.open(body_url, { expect = { size = N + 1 } }))
      integrity_error(fx.raises(fx.collect, d))
    end)

    it("detects a body longer than the expected size", function()
      local d = assert(cf.open(body_url, { expect = { size = N - 1 } }))
      local body, err = d:read_all()
      assert.is_nil(body)
      integrity_error(err)
    end)

    it("checks the size of a chunked body", function()
      local d = assert(cf.open(url .. "/chunked?n=5000", { expect = { size = 4999 } }))
      integrity_error(fx.raises(fx.collect, d))
    end)

    it("raises on a malformed expected digest", function()
      assert.is_not_nil(fx.raises(cf.open, body_url, { expect = { sha256 = "xyz" } }))
      assert.is_not_nil(fx.raises(cf.open, body_url, { expect = { sha512 = meta.sha256 } }))
    end)
  end)

  describe("d:expect()", function()
    it("adds expectations right after open and turns on hashing", function()
      local d = assert(cf.open(body_url))
      d:expect{ sha1 = meta.sha1, size = N }
      assert.are.equal(N, #fx.collect(d))
      assert.are.equal(meta.sha1, d:digest("sha1"))
    end)

    it("makes chunks() raise on a mismatch", function()
      local d = assert(cf.open(body_url))
      d:expect{ sha256 = string.rep("a", 64) }
      integrity_error(fx.raises(fx.collect, d))
    end)

    it("makes read_all() return nil, err on a size mismatch", function()
      local d = assert(cf.open(body_url))
      d:expect{ size = 5 }
      local body, err = d:read_all()
      assert.is_nil(body)
      integrity_error(err)
    end)
  end)
end)
