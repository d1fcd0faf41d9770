-- The core's header parsers, file-name sanitiser and digests, seen from Lua
-- through cloudfetch.core (the C side has its own test in spec/c/test_core.c).
local core = require "cloudfetch.core"

-- Every promise the sanitiser makes about a name it returns.
local function assert_safe(name)
  if name == nil then return end
  assert.is_string(name)
  assert.is_true(#name >= 1 and #name <= 255, "length " .. #name)
  assert.is_nil(name:find("[/\\%z\1-\31\127]"), "forbidden byte in " .. name)
  assert.is_true(name ~= "." and name ~= "..")
  assert.is_nil(name:find("^ "))
  assert.is_nil(name:find("[ .]$"))
  assert.is_truthy(utf8.len(name), "valid UTF-8")
  for _, cp in utf8.codes(name) do -- C1, bidi and invisible characters are removed
    assert.is_false((cp >= 0x80 and cp <= 0x9F) or cp == 0x61C or (cp >= 0x200B and cp <= 0x200F)
      or (cp >= 0x2028 and cp <= 0x202E) or (cp >= 0x2060 and cp <= 0x206F) or cp == 0xFEFF, name)
  end
end

describe("Content-Disposition file names", function()
  local cases = {
    { 'attachment; filename="a.txt"', "a.txt" },
    { "attachment;filename=lorem_ipsum.txt", "lorem_ipsum.txt" },
    { "attachment; filename=a.txt; size=3", "a.txt" },
    { 'inline; filename="report 2024.pdf"', "report 2024.pdf" },
    { 'ATTACHMENT; FILENAME="UP.TXT"', "UP.TXT" },
    { 'attachment; filename="say \\"hi\\".txt"', 'say "hi".txt' },
    { 'attachment; filename="a;b.txt"', "a;b.txt" },
  }
  for _, c in ipairs(cases) do
    it("reads " .. c[1], function()
      assert.equal(c[2], core.disposition_filename(c[1]))
    end)
  end

  it("decodes filename* (RFC 8187) in UTF-8", function()
    assert.equal("\u{20ac} rates.txt",
      core.disposition_filename("attachment; filename*=UTF-8''%e2%82%ac%20rates.txt"))
  end)

  it("converts filename* in ISO-8859-1 to UTF-8 and skips the language tag", function()
    assert.equal("\u{a3} rates.txt",
      core.disposition_filename("attachment; filename*=iso-8859-1'en'%A3%20rates.txt"))
  end)

  it("prefers filename* over filename in either order", function()
    assert.equal("\u{20ac} rates.txt", core.disposition_filename(
      "attachment; filename=\"EURO rates.txt\"; filename*=utf-8''%e2%82%ac%20rates.txt"))
    assert.equal("\u{20ac} rates.txt", core.disposition_filename(
      "attachment; filename*=utf-8''%e2%82%ac%20rates.txt; filename=\"EURO rates.txt\""))
  end)

  it("falls back to filename when filename* is in an unknown charset", function()
    assert.equal("fallback.txt",
      core.disposition_filename("attachment; filename*=KOI8-R''%c1.txt; filename=\"fallback.txt\""))
  end)

  it("drops a %00 inside filename* instead of cutting the name", function()
    assert.equal("evil.txt", core.disposition_filename("attachment; filename*=UTF-8''evil%00.txt"))
  end)

  it("keeps only the last path component", function()
    assert.equal("passwd", core.disposition_filename('attachment; filename="../../etc/passwd"'))
    assert.equal("passwd", core.disposition_filename("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd"))
    assert.equal("evil.dll", core.disposition_filename('attachment; filename="C:\\\\Windows\\\\evil.dll"'))
  end)

  it("gives nil when there is no usable name", function()
    for _, v in ipairs { "", "attachment", "inline", "attachment; filename=", 'attachment; filename=""',
                         'attachment; filename=".."', "attachment; filename*=UTF-8''%2e%2e",
                         ";;;", "=;=;=", '"', "attachment; name=\"x\"" } do
      assert.is_nil(core.disposition_filename(v), v)
    end
  end)

  -- RFC 6266 section 4.1: a value outside the grammar is ignored as a whole
  -- (spec/disposition_spec.lua has the tc2231 cases).
  it("gives nil for values that are not RFC 6266, whatever name they seem to hold", function()
    for _, v in ipairs { "filename=bare.txt", "attachment; filename=my file.txt",
                         "attachment; filename=my file.txt; size=3", 'attachment; filename="unterminated.txt',
                         'attachment; filename=trail.txt"', "attachment; filename=a.txt;",
                         "attachment; filename=a.txt; filename=b.txt" } do
      assert.is_nil(core.disposition_filename(v), v)
    end
  end)

  it("never returns an unsafe name for garbage", function()
    local alphabet = "filename*=;\"'\\%UTF-8a./ \t\1\255\195\194\133\226\128\174"
    local seed = 12345
    for _ = 1, 2000 do
      local parts = {}
      seed = (seed * 1103515245 + 12345) % 2147483648
      for k = 1, seed % 40 do
        local i = (seed + k * 7919) % #alphabet + 1
        parts[k] = alphabet:sub(i, i)
      end
      assert_safe(core.disposition_filename(table.concat(parts)))
    end
  end)
end)

describe("sanitize_filename", function()
  local cases = {
    { "../../etc/passwd", "passwd" },
    { "..\\x", "x" },
    { "/etc/shadow", "shadow" },
    { "C:\\Windows\\evil.dll", "evil.dll" },
    { "  spaced name.txt  ", "spaced name.txt" },
    { "name.txt...", "name.txt" },
    { ".hidden", ".hidden" },
    { "\1\127ok\31", "ok" },
    { "caf\u{e9}.txt", "caf\u{e9}.txt" },
    { "\255\254.txt", "__.txt" },
  }
  for _, c in ipairs(cases) do
    it(("turns %q into %q"):format(c[1], c[2]), function()
      assert.equal(c[2], core.sanitize_filename(c[1]))
    end)
  end

  it("gives nil for names that are nothing or only dots", function()
    for _, v in ipairs { "", ".", "..", "...", "dir/", "/", "\0\0" } do
      assert.is_nil(core.sanitize_filename(v), ("%q"):format(v))
    end
  end)

  it("sees the whole Lua string, embedded NULs included", function()
    -- the binding must pass the length, not stop at the first NUL
    assert.equal("ab.txt", core.sanitize_filename("a\0b.txt"))
    assert.equal("x", core.sanitize_filename("../\0../x"))
  end)

  it("shortens a 1000-byte name to 255 bytes, keeping the extension", function()
    local name = core.sanitize_filename(("a"):rep(996) .. ".txt")
    assert.equal(255, #name)
    assert.equal(".txt", name:sub(-4))
  end)

  it("never cuts a UTF-8 sequence when shortening", function()
    local name = core.sanitize_filename(("\u{20ac}"):rep(300) .. ".txt")
    assert.equal(3 * 83 + 4, #name)
    assert_safe(name)
  end)
end)

describe("parse_content_range", function()
  it("reads a satisfied range with its total", function()
    local first, last, total = core.parse_content_range("bytes 0-99/1000")
    assert.equal(0, first)
    assert.equal(99, last)
    assert.equal(1000, total)
    assert.equal("integer", math.type(first))
    assert.equal("integer", math.type(total))
  end)

  it("gives a nil total for an unknown length", function()
    local first, last, total = core.parse_content_range("bytes 0-99/*")
    assert.equal(0, first)
    assert.equal(99, last)
    assert.is_nil(total)
  end)

  it("gives nil first and last for an unsatisfied range", function()
    local first, last, total = core.parse_content_range("bytes */1000")
    assert.is_nil(first)
    assert.is_nil(last)
    assert.equal(1000, total)
  end)

  it("keeps 64-bit offsets exact", function()
    local first, last, total = core.parse_content_range("bytes 0-9007199254740993/9007199254740994")
    assert.equal(0, first)
    assert.equal(9007199254740993, last)
    assert.equal(9007199254740994, total)
  end)

  it("gives nil for malformed values", function()
    for _, v in ipairs { "", "bytes 5-4/10", "bytes 0-10/10", "bytes */*", "bytes 0-99",
                         "0-99/100", "bytes=0-99/100", "bytes 0-99/100 x", "bytes -5-10/20",
                         "bytes 0-99999999999999999999/*" } do
      local first, last, total = core.parse_content_range(v)
      assert.is_nil(first, v)
      assert.is_nil(last, v)
      assert.is_nil(total, v)
    end
  end)
end)

describe("parse_retry_after", function()
  local t1994 = 784111777 -- Sun, 06 Nov 1994 08:49:37 GMT

  it("reads delta-seconds", function()
    assert.equal(120, core.parse_retry_after("120", 0))
    assert.equal(0, core.parse_retry_after("0", 0))
  end)

  it("caps an enormous delta at 2^31 seconds", function()
    assert.equal(2147483648, core.parse_retry_after("99999999999999999999999", 0))
  end)

  it("reads the three HTTP-date forms relative to now", function()
    assert.equal(30, core.parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t1994 - 30))
    assert.equal(30, core.parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", t1994 - 30))
    assert.equal(30, core.parse_retry_after("Sun Nov  6 08:49:37 1994", t1994 - 30))
  end)

  it("accepts a fractional now, as cf.now() returns", function()
    assert.equal(120, core.parse_retry_after("120", 1700000000.5))
    local s = core.parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t1994 - 29.5)
    assert.is_true(s >= 29 and s <= 30, tostring(s))
  end)

  it("gives 0 for a date in the past", function()
    assert.equal(0, core.parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t1994 + 100))
  end)

  it("gives nil for malformed values", function()
    for _, v in ipairs { "", "-1", "1.5", "soon", "Sun, 31 Feb 1994 08:49:37 GMT",
                         "Sun, 06 Nov 1994 08:49:37 PST" } do
      assert.is_nil(core.parse_retry_after(v, t1994), v)
    end
  end)
end)

describe("digest", function()
  it("computes the FIPS 180 and RFC 1321 vectors", function()
    assert.equal("a9993e364706816aba3e25717850c26c9cd0d89d", core.digest("sha1", "abc"))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      core.digest("sha256", "abc"))
    assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      core.digest("sha256", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
    assert.equal("900150983cd24fb0d6963f7d28e17f72", core.digest("md5", "abc"))
    assert.equal("d41d8cd98f00b204e9800998ecf8427e", core.digest("md5", ""))
  end)

  it("hashes a million bytes", function()
    assert.equal("34aa973cd4c4daa4f61eeb2bdbad27316534016f", core.digest("sha1", ("a"):rep(1000000)))
  end)

  it("hashes embedded NULs", function()
    -- sha1 of the three bytes 00 61 00
    assert.equal("901deb78a528238f8a0ed23fe41ecde5f10f9a43", core.digest("sha1", "\0a\0"))
  end)

  it("raises for an unknown algorithm", function()
    assert.has_error(function() core.digest("sha512", "x") end)
  end)
end)
