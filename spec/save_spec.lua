-- d:save(): streaming a body to disk safely, and d:filename().
local cf = require "cloudfetch"
local fx = require "support.fixtures"

describe("saving a Download", function()
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

  local function open(path, opts)
    return assert(cf.open(url .. path, opts))
  end

  -- A URL serving bytes with this Content-Disposition value.
  local function with_disposition(value, name)
    return "/file/" .. (name or "fallback.bin") .. "?n=100&cd=" .. fx.urlencode(value)
  end

  local function assert_safe_name(name)
    assert.is_string(name)
    assert.is_nil(name:find("[/\\%z\1-\31\127]"), "unsafe byte in " .. string.format("%q", name))
    assert.are_not.equal(".", name)
    assert.are_not.equal("..", name)
    assert.is_true(#name > 0 and #name <= 255, "name of " .. #name .. " bytes")
  end

  describe("d:save(path)", function()
    it("writes the body to the file and returns path, bytes", function()
      local target = dir .. "/out.bin"
      local d = open("/bytes?n=1234567&seed=12")
      local path, bytes = d:save(target)
      assert.are.equal(target, path)
      assert.are.equal(1234567, bytes)
      assert.is_nil(fx.diff(fx.read_file(target), fx.body(1234567, 12)))
      assert.are.same({ "out.bin" }, fx.list(dir))
    end)

    it("saves an empty body as an empty file", function()
      local target = dir .. "/empty"
      local path, bytes = open("/bytes?n=0"):save(target)
      assert.are.equal(target, path)
      assert.are.equal(0, bytes)
      assert.are.equal("", fx.read_file(target))
    end)

    it("verifies expectations and digests before keeping the file", function()
      local meta = fx.meta(server, 300000, 2)
      local d = open("/bytes?n=300000&seed=2", { expect = { sha256 = meta.sha256, size = 300000 } })
      assert(d:save(dir .. "/ok"))
      assert.are.equal(meta.sha256, d:digest("sha256"))
    end)

    it("uses Content-Disposition's name when path is a directory", function()
      local d = open(with_disposition('attachment; filename="report 2024.pdf"'))
      local path, bytes = d:save(dir)
      assert.are.equal(dir .. "/report 2024.pdf", path)
      assert.are.equal(100, bytes)
      assert.are.same({ "report 2024.pdf" }, fx.list(dir))
      assert.is_nil(fx.diff(fx.read_file(path), fx.body(100)))
    end)

    it("accepts a directory path with a trailing slash", function()
      local d = open(with_disposition('attachment; filename="a.txt"'))
      local path = assert(d:save(dir .. "/"))
      assert.is_truthy(path == dir .. "/a.txt" or path == dir .. "//a.txt")
      assert.are.same({ "a.txt" }, fx.list(dir))
    end)

    it("uses the URL's last segment when there is no Content-Disposition", function()
      local path = assert(open("/file/data-set.csv?n=50"):save(dir))
      assert.are.equal(dir .. "/data-set.csv", path)
      assert.are.equal(50, #fx.read_file(path))
    end)

    it("names the file from the URL as requested, though d.url hides what looks like user info", function()
      local d = open("/file/a@b.txt?n=7")
      assert.is_nil(d.url:find("a@b", 1, true)) -- redacted: a raw "@" may end a password
      local path = assert(d:save(dir))
      assert.are.equal(dir .. "/a@b.txt", path)
    end)

    it("refuses to replace an existing file, leaving it untouched", function()
      local target = dir .. "/exists.txt"
      fx.write_file(target, "precious")
      local path, err = open("/bytes?n=100"):save(target)
      assert.is_nil(path)
      assert.is_true(cf.is_error(err))
      assert.are.equal("io", err.kind)
      assert.are.equal("exists", err.code)
      assert.are.equal("precious", fx.read_file(target))
      assert.are.same({ "exists.txt" }, fx.list(dir))
    end)

    it("refuses to replace an existing file named by Content-Disposition", function()
      fx.write_file(dir .. "/a.txt", "precious")
      local path, err = open(with_disposition('attachment; filename="a.txt"')):save(dir)
      assert.is_nil(path)
      assert.are.equal("exists", err.code)
      assert.are.equal("precious", fx.read_file(dir .. "/a.txt"))
    end)

    it("replaces an existing file with overwrite = true", function()
      local target = dir .. "/exists.txt"
      fx.write_file(target, "old contents")
      local path, bytes = open("/bytes?n=100&seed=3"):save(target, { overwrite = true })
      assert.are.equal(target, path)
      assert.are.equal(100, bytes)
      assert.is_nil(fx.diff(fx.read_file(target), fx.body(100, 3)))
      assert.are.same({ "exists.txt" }, fx.list(dir))
    end)

    it("fails with kind \"io\" when the directory does not exist", function()
      local path, err = open("/bytes?n=100"):save(dir .. "/no/such/dir/file")
      assert.is_nil(path)
      assert.are.equal("io", err.kind)
    end)

    describe("writes nothing and leaves no temporary file", function()
      it("on a digest mismatch", function()
        local d = open("/bytes?n=300000", { expect = { sha256 = string.rep("0", 64) } })
        local path, err = d:save(dir .. "/bad.bin")
        assert.is_nil(path)
        assert.are.equal("integrity", err.kind)
        assert.are.same({}, fx.list(dir))
      end)

      it("on a size mismatch found with d:expect", function()
        local d = open("/bytes?n=300000")
        d:expect{ size = 299999 }
        local path, err = d:save(dir .. "/bad.bin")
        assert.is_nil(path)
        assert.are.equal("integrity", err.kind)
        assert.are.same({}, fx.list(dir))
      end)

      it("when the connection drops", function()
        local d = open("/close?n=300000&after=100000&ranges=0")
        local path, err = d:save(dir .. "/cut.bin")
        assert.is_nil(path)
        assert.is_true(cf.is_error(err))
        assert.are.same({}, fx.list(dir))
      end)

      it("on a non-2xx answer, returning kind \"http\" with the status", function()
        local d = open("/status/404?body=missing", { retry = false })
        local path, err = d:save(dir .. "/missing.bin")
        assert.is_nil(path)
        assert.are.equal("http", err.kind)
        assert.are.equal(404, err.status)
        assert.are.same({}, fx.list(dir))
      end)

      it("when progress raises, passing the error on with its message", function()
        local d = open("/bytes?n=500000", {
          progress = function(received) if received > 0 then error("halt from progress") end end })
        local ok, path, err = pcall(d.save, d, dir .. "/p.bin")
        local msg = ok and tostring(err) or tostring(path)
        if ok then assert.is_nil(path) end
        assert.matches("halt from progress", msg)
        assert.are.same({}, fx.list(dir))
      end)

      it("and keeps an existing file intact even with overwrite = true", function()
        local target = dir .. "/keep.bin"
        fx.write_file(target, "precious")
        local d = open("/bytes?n=300000", { expect = { md5 = string.rep("0", 32) } })
        local path, err = d:save(target, { overwrite = true })
        assert.is_nil(path)
        assert.are.equal("integrity", err.kind)
        assert.are.equal("precious", fx.read_file(target))
        assert.are.same({ "keep.bin" }, fx.list(dir))
      end)
    end)

    describe("keeps a hostile Content-Disposition name inside the directory", function()
      local cases = {
        { "parent path", 'attachment; filename="../../etc/passwd"' },
        { "absolute path", 'attachment; filename="/etc/passwd"' },
        { "backslashes", "attachment; filename*=UTF-8''..%5C..%5Cwin.ini" },
        { "escaped backslashes", 'attachment; filename="..\\\\..\\\\win.ini"' },
        { "dot-dot", 'attachment; filename=".."' },
        { "dot", 'attachment; filename="."' },
        { "NUL in filename*", "attachment; filename*=UTF-8''a%00b.txt" },
        { "newline in filename*", "attachment; filename*=UTF-8''a%0Ab.txt" },
        { "slash in filename*", "attachment; filename*=UTF-8''..%2F..%2Fescape.txt" },
        { "1000-byte name", 'attachment; filename="' .. string.rep("x", 1000) .. '.txt"' },
      }
      for _, case in ipairs(cases) do
        it("(" .. case[1] .. ")", function()
          local d = open(with_disposition(case[2]))
          local path, bytes = d:save(dir)
          assert.is_string(path, "save failed: " .. tostring(bytes))
          assert.are.equal(100, bytes)
          local names = fx.list(dir)
          assert.are.equal(1, #names, "expected one file in the directory")
          assert.are.equal(dir .. "/" .. names[1], path)
          assert_safe_name(names[1])
          assert.is_nil(fx.diff(fx.read_file(path), fx.body(100)))
        end)
      end
    end)
  end)

  describe("d:filename()", function()
    local function filename(value)
      local d = open(with_disposition(value))
      local name = d:filename()
      d:close()
      return name
    end

    it("is nil without Content-Disposition", function()
      local d = open("/bytes?n=1")
      assert.is_nil(d:filename())
      d:close()
    end)

    it("reads a quoted filename", function()
      assert.are.equal("report.pdf", filename('attachment; filename="report.pdf"'))
    end)

    it("reads a token filename", function()
      assert.are.equal("report.pdf", filename("attachment; filename=report.pdf"))
    end)

    it("reads inline dispositions too", function()
      assert.are.equal("a.png", filename('inline; filename="a.png"'))
    end)

    it("reads a quoted filename with an escaped quote", function()
      assert.are.equal('say "hi".txt', filename('attachment; filename="say \\"hi\\".txt"'))
    end)

    it("decodes filename* (RFC 8187, UTF-8)", function()
      assert.are.equal("naïve file €.txt", filename("attachment; filename*=UTF-8''na%C3%AFve%20file%20%E2%82%AC.txt"))
    end)

    it("decodes filename* in ISO-8859-1 to UTF-8", function()
      assert.are.equal("café.txt", filename("attachment; filename*=ISO-8859-1''caf%E9.txt"))
    end)

    it("prefers filename* over filename, in either order", function()
      assert.are.equal("ünï.txt",
        filename("attachment; filename=\"plain.txt\"; filename*=UTF-8''%C3%BCn%C3%AF.txt"))
      assert.are.equal("ünï.txt",
        filename("attachment; filename*=UTF-8''%C3%BCn%C3%AF.txt; filename=\"plain.txt\""))
    end)

    it("keeps only the last path component", function()
      assert.are.equal("passwd", filename('attachment; filename="../../etc/passwd"'))
      assert.are.equal("passwd", filename('attachment; filename="/etc/passwd"'))
      assert.are.equal("win.ini", filename("attachment; filename*=UTF-8''..%5C..%5Cwin.ini"))
      -- In a quoted-string a backslash escapes the next character: \\ is one backslash.
      assert.are.equal("win.ini", filename('attachment; filename="..\\\\..\\\\win.ini"'))
      assert.are.equal("....win.ini", filename('attachment; filename="..\\..\\win.ini"'))
    end)

    it("never returns . or ..", function()
      for _, v in ipairs({ 'attachment; filename=".."', 'attachment; filename="."', 'attachment; filename="a/.."' }) do
        local name = filename(v)
        if name ~= nil then assert_safe_name(name) end
      end
    end)

    it("drops NUL and control bytes", function()
      local name = filename("attachment; filename*=UTF-8''a%00b%01c%7F.txt")
      if name ~= nil then assert_safe_name(name) end
    end)

    it("shortens a long name to 255 bytes, keeping the extension", function()
      local name = filename('attachment; filename="' .. string.rep("x", 1000) .. '.tar.gz"')
      assert_safe_name(name)
      assert.matches("%.gz$", name)
    end)

    it("shortens a long UTF-8 name without splitting a character", function()
      local name = filename("attachment; filename*=UTF-8''" .. string.rep("%C3%A9", 300) .. ".txt")
      assert_safe_name(name)
      assert.matches("%.txt$", name)
      assert.is_truthy(utf8.len(name), "not valid UTF-8")
    end)

    it("is nil when the header names no file", function()
      assert.is_nil(filename("attachment"))
    end)
  end)
end)
