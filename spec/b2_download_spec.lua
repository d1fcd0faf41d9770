-- cloudfetch.b2 downloads against the emulator: by id and by name, B2's
-- headers, verification (SHA-1, large_file_sha1, unverified:, size, ranges),
-- saving under the file's own name, and download errors.
local cf = require "cloudfetch"
local b2 = require "cloudfetch.b2"
local emu = require "support.emulator"
local cjson_null = require("cjson").null
local fx = require "support.fixtures"
local sh_quote, run, tmpdir, rmdir, ls, slurp = fx.shell_quote, fx.run, fx.tmpdir, fx.rmdir, fx.list, fx.read_file

local FAST = { attempts = 3, base_delay = 0.01, max_delay = 0.05 }

local e

-- Expected digests come from sha1sum, not from the code under test.
local function sha1(data)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  local hex = run("sha1sum " .. sh_quote(path)):match("^(%x+)")
  os.remove(path)
  return hex
end

local function authorize()
  return assert(b2.authorize{ key_id = e.info.b2.key_id, key = e.info.b2.key, realm = e.url, retry = FAST })
end

local function new_file(name, data, extra)
  local t = { bucket = "dl-bucket", name = name, data_b64 = cf.base64(data), content_type = "text/plain" }
  for k, v in pairs(extra or {}) do t[k] = v end
  return e:control("POST", "/_emu/b2/files", t)
end

local function count(needle, status)
  return #e:requests(needle, status)
end

-- Deterministic bytes of every value, long enough to span many chunks.
local function blob(n)
  local parts = {}
  for i = 1, n do parts[i] = string.char((i * 7 + (i >> 8)) % 256) end
  return table.concat(parts)
end

local client, dir

lazy_setup(function()
  e = emu.start{ tls = false }
end)

lazy_teardown(function()
  if e then e:stop() end
end)

before_each(function()
  e:reset()
  e:control("POST", "/_emu/b2/buckets", { name = "dl-bucket", type = "allPrivate", bucket_info = {} })
  client = authorize()
  dir = tmpdir()
end)

after_each(function()
  rmdir(dir)
end)

describe("open_by_id", function()
  it("streams the body and describes the file from B2's headers", function()
    local data = blob(200000)
    local up = new_file("reports/q1 2024.bin", data, { content_type = "application/octet-stream",
      info = { author = "Zoë Smith", src_last_modified_millis = "1700000000000" } })
    local d = assert(client:open_by_id(up.fileId))
    assert.equal(200, d.status)
    assert.equal(up.fileId, d.file_id)
    assert.equal("reports/q1 2024.bin", d.file_name)
    assert.equal(sha1(data), d.content_sha1)
    assert.equal("application/octet-stream", d.content_type)
    assert.equal("Zoë Smith", d.info.author)
    assert.equal("1700000000000", d.info.src_last_modified_millis)
    assert.equal("integer", math.type(d.upload_timestamp))
    assert.equal(up.uploadTimestamp, d.upload_timestamp)
    assert.equal(data, d:read_all())
    assert.equal(1, count("/b2api/v4/b2_download_file_by_id", 200))
  end)

  it("decodes X-Bz-Info-* values: spaces, '+', '%', non-ASCII", function()
    local info = { plain = "x", spaced = "a b  c", plus = "1+1=2", pct = "100%", utf8 = "自由 ü",
                   ["mixed-key"] = "a/b?c&d" }
    local up = new_file("info.txt", "i", { info = info })
    local d = assert(client:open_by_id(up.fileId))
    for k, v in pairs(info) do assert.equal(v, d.info[k]) end
    d:close()
  end)

  it("reports an unknown id with 404 not_found, naming the file", function()
    local d, err = client:open_by_id("4_zmissing_f000")
    assert.is_nil(d)
    assert.equal("api", err.kind)
    assert.equal(404, err.status)
    assert.equal("not_found", err.code)
    assert.truthy(err.message:find("b2: file 4_zmissing_f000 not found", 1, true))
    assert.equal(1, count("b2_download_file_by_id"))
  end)

  it("retries a 503 on the download and then verifies the body", function()
    local up = new_file("busy.txt", "worth the wait")
    e:fault{ path = "b2_download_file_by_id", status = 503, retry_after = 0, count = 2,
             body = { status = 503, code = "service_unavailable", message = "busy" } }
    local d = assert(client:open_by_id(up.fileId))
    assert.equal("worth the wait", d:read_all())
    assert.equal(2, count("b2_download_file_by_id", 503))
  end)

  it("answers HEAD with the file's description and no body check", function()
    local up = new_file("head.txt", "twelve bytes")
    local d = assert(client:open_by_id(up.fileId, { method = "HEAD" }))
    assert.equal(200, d.status)
    assert.equal("head.txt", d.file_name)
    assert.equal("12", d:header("Content-Length"))
    assert.equal("", d:read_all())
  end)

  it("reports a HEAD 404 (empty body) with its status", function()
    local d, err = client:open_by_id("4_zmissing", { method = "HEAD" })
    assert.is_nil(d)
    assert.equal(404, err.status)
    assert.equal("api", err.kind)
  end)
end)

describe("open_by_name", function()
  local odd = { "plain.txt", "with space.txt", "plus+sign.txt", "per%cent.txt", "dir/sub/ünïcødé €.txt",
                "自由/x;y=z@w:(1)!$'*~.txt", "q?h#a&b,c.txt" }
  for _, name in ipairs(odd) do
    it("downloads '" .. name .. "' and decodes its name back", function()
      local data = "body of " .. name
      new_file(name, data)
      local d = assert(client:open_by_name("dl-bucket", name))
      assert.equal(name, d.file_name)
      assert.equal(data, d:read_all())
    end)
  end

  it("encodes the path by B2's rules: '/' and the safe set kept, the rest %XX", function()
    new_file("a b/c+d%e/é;~.txt", "x")
    assert(client:open_by_name("dl-bucket", "a b/c+d%e/é;~.txt")):close()
    local path
    for _, r in ipairs(e:log()) do
      if r.path:find("/file/dl-bucket/", 1, true) then path = r.path end
    end
    assert.equal("/file/dl-bucket/a%20b/c%2Bd%25e/%C3%A9;~.txt", path)
    assert.equal("a%20b/c%2Bd%25e/%C3%A9;~.txt", b2._encode_name("a b/c+d%e/é;~.txt"))
    assert.equal("%E8%87%AA%E7%94%B1", b2._encode_name("自由"))
    assert.equal("%F0%90%90%80", b2._encode_name("\u{10400}"))
  end)

  it("reports a missing name with 404 not_found", function()
    local d, err = client:open_by_name("dl-bucket", "nope.txt")
    assert.is_nil(d)
    assert.equal(404, err.status)
    assert.equal("not_found", err.code)
    assert.truthy(err.message:find("dl-bucket/nope.txt", 1, true))
  end)

  it("serves the latest version by name", function()
    new_file("v.txt", "old")
    new_file("v.txt", "newer")
    assert.equal("newer", assert(client:open_by_name("dl-bucket", "v.txt")):read_all())
  end)
end)

describe("Content-Disposition", function()
  it("comes from the file's b2-content-disposition", function()
    local up = new_file("x/stored.bin", "d",
      { info = { ["b2-content-disposition"] = 'attachment; filename="report.pdf"' } })
    local d = assert(client:open_by_id(up.fileId))
    assert.equal("report.pdf", d:filename())
    assert.is_nil(d.info["b2-content-disposition"])
    d:close()
  end)

  it("is overridden per request (b2ContentDisposition)", function()
    local up = new_file("x/stored.bin", "d",
      { info = { ["b2-content-disposition"] = 'attachment; filename="report.pdf"' } })
    local d = assert(client:open_by_id(up.fileId,
      { content_disposition = "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.txt" }))
    assert.equal("résumé.txt", d:filename())
    d:close()
    local q
    for _, r in ipairs(e:log()) do
      if r.path:find("b2_download_file_by_id", 1, true) then q = r.query end
    end
    assert.truthy(tostring(q):find("b2ContentDisposition", 1, true))
    local d2 = assert(client:open_by_name("dl-bucket", "x/stored.bin",
      { content_disposition = 'inline; filename="n.txt"' }))
    assert.equal("n.txt", d2:filename())
    d2:close()
  end)
end)

describe("ranges", function()
  local data = blob(1000)

  it("downloads a range (206) and checks its length against Content-Range", function()
    local up = new_file("r.bin", data)
    local d = assert(client:open_by_id(up.fileId, { range = { 10, 19 } }))
    assert.equal(206, d.status)
    assert.same({ first = 10, last = 19, total = 1000 },
      { first = d.range.first, last = d.range.last, total = d.range.total })
    assert.equal(data:sub(11, 20), d:read_all())
    local tail = assert(client:open_by_name("dl-bucket", "r.bin", { range = { 990 } }))
    assert.equal(data:sub(991), tail:read_all())
  end)

  it("refuses a 206 whose Content-Length disagrees with its Content-Range (protocol)", function()
    local up = new_file("r.bin", data)
    e:fault{ path = "b2_download_file_by_id", content_length_delta = -1, count = 5 }
    local d, err = client:open_by_id(up.fileId, { range = { 0, 99 }, retry = false })
    assert.is_nil(d)
    assert.equal("protocol", err.kind)
    assert.matches("does not match Content%-Length", err.message)
  end)

  it("accepts a 206 without Content-Range, sized by Content-Length (whole-file ranges)", function()
    local up = new_file("r.bin", data)
    e:fault{ path = "b2_download_file_by_id", status = 206, body = "0123456789" }
    local d = assert(client:open_by_id(up.fileId, { range = { 0, 9 } }))
    assert.equal(206, d.status)
    assert.is_nil(d.range)
    assert.equal("0123456789", assert(d:read_all()))
  end)

  it("reports a range past the end as 416 range_not_satisfiable", function()
    local up = new_file("r.bin", data)
    local d, err = client:open_by_id(up.fileId, { range = { 5000, 6000 } })
    assert.is_nil(d)
    assert.equal("api", err.kind)
    assert.equal(416, err.status)
    assert.equal("range_not_satisfiable", err.code)
    assert.is_false(err.retryable)
  end)
end)

describe("verification", function()
  it("catches a corrupted body (SHA-1) and save_by_id leaves no file", function()
    local data = blob(50000)
    local up = new_file("c.bin", data)
    e:fault{ path = "b2_download_file_by_id", corrupt_at = 1234, count = 10 }
    local d = assert(client:open_by_id(up.fileId))
    local body, err = d:read_all()
    assert.is_nil(body)
    assert.equal("integrity", err.kind)
    e:fault{ path = "b2_download_file_by_id", corrupt_at = 1234, count = 10 }
    local path, serr = client:save_by_id(up.fileId, dir)
    assert.is_nil(path)
    assert.equal("integrity", serr.kind)
    assert.same({}, ls(dir))
    local p2, err2 = client:save_by_id(up.fileId, dir .. "/named.bin")
    assert.is_nil(p2)
    assert.equal("integrity", err2.kind)
    assert.same({}, ls(dir))
  end)

  it("raises from chunks() on corruption, never ending quietly", function()
    local up = new_file("c.bin", blob(5000))
    e:fault{ path = "b2_download_file_by_id", corrupt_at = 10, count = 10 }
    local d = assert(client:open_by_id(up.fileId))
    local ok, err = pcall(function() for _ in d:chunks() do end end)
    assert.is_false(ok)
    assert.equal("integrity", err.kind)
  end)

  it("can be turned off with verify = false", function()
    local up = new_file("c.bin", "abcdefgh")
    e:fault{ path = "b2_download_file_by_id", corrupt_at = 0, count = 10 }
    local d = assert(client:open_by_id(up.fileId, { verify = false }))
    local body = assert(d:read_all())
    assert.equal(8, #body)
    assert.not_equal("abcdefgh", body)
  end)

  it("verifies a large file through large_file_sha1", function()
    local data = blob(30000)
    local up = new_file("big.bin", data, { large = true, large_file_sha1 = true })
    assert.equal("none", up.contentSha1)
    local d = assert(client:open_by_id(up.fileId))
    assert.equal(sha1(data), d.content_sha1)
    assert.equal(data, d:read_all())
    e:fault{ path = "b2_download_file_by_id", corrupt_at = 100, count = 10 }
    local bad = assert(client:open_by_id(up.fileId))
    local body, err = bad:read_all()
    assert.is_nil(body)
    assert.equal("integrity", err.kind)
  end)

  it("catches a wrong large_file_sha1", function()
    local up = new_file("big.bin", blob(3000), { large = true, info = { large_file_sha1 = string.rep("ab", 20) } })
    local d = assert(client:open_by_id(up.fileId))
    assert.equal(string.rep("ab", 20), d.content_sha1)
    local body, err = d:read_all()
    assert.is_nil(body)
    assert.equal("integrity", err.kind)
    local path, serr = client:save_by_id(up.fileId, dir)
    assert.is_nil(path)
    assert.equal("integrity", serr.kind)
    assert.same({}, ls(dir))
  end)

  it("checks only the size of a large file without any SHA-1", function()
    local data = blob(3000)
    local up = new_file("big.bin", data, { large = true })
    local d = assert(client:open_by_id(up.fileId))
    assert.is_nil(d.content_sha1)
    assert.equal(data, d:read_all())
  end)

  it("verifies an unverified: SHA-1 with the prefix stripped", function()
    local data = "uploaded through S3"
    local up = new_file("s3.txt", data, { unverified = true })
    assert.truthy(up.contentSha1:find("^unverified:"))
    local d = assert(client:open_by_id(up.fileId))
    assert.equal(sha1(data), d.content_sha1)
    assert.equal(data, d:read_all())
    e:fault{ path = "b2_download_file_by_id", corrupt_at = 3, count = 10 }
    local body, err = assert(client:open_by_id(up.fileId)):read_all()
    assert.is_nil(body)
    assert.equal("integrity", err.kind)
  end)

  it("resumes a dropped connection and still verifies the whole file", function()
    local data = blob(300000)
    local up = new_file("drop.bin", data)
    e:fault{ path = "b2_download_file_by_id", cut_after = 70000 }
    local path = assert(client:save_by_id(up.fileId, dir))
    assert.equal(dir .. "/drop.bin", path)
    assert.equal(data, slurp(path))
  end)
end)

describe("saving", function()
  it("saves into a directory under the file's own name (last segment)", function()
    local data = blob(10000)
    local up = new_file("photos/2024/cat pic+1.jpg", data)
    local path, bytes = client:save_by_id(up.fileId, dir)
    assert.equal(dir .. "/cat pic+1.jpg", path)
    assert.equal(#data, bytes)
    assert.equal(data, slurp(path))
    local path2 = assert(client:save_by_name("dl-bucket", "photos/2024/cat pic+1.jpg", dir .. "/",
      { overwrite = true }))
    assert.equal(dir .. "/cat pic+1.jpg", path2)
  end)

  it("prefers the Content-Disposition name", function()
    local up = new_file("x/y.bin", "z", { info = { ["b2-content-disposition"] = 'attachment; filename="nice.txt"' } })
    assert.equal(dir .. "/nice.txt", (client:save_by_id(up.fileId, dir)))
    assert.equal(dir .. "/other.txt",
      (client:save_by_id(up.fileId, dir, { content_disposition = 'attachment; filename="other.txt"' })))
  end)

  it("saves to an exact path and refuses to replace a file", function()
    local up = new_file("a.txt", "first")
    local target = dir .. "/out.txt"
    assert.equal(target, (client:save_by_id(up.fileId, target)))
    local p, err = client:save_by_id(up.fileId, target)
    assert.is_nil(p)
    assert.equal("io", err.kind)
    assert.equal("exists", err.code)
    assert.equal(target, (client:save_by_id(up.fileId, target, { overwrite = true })))
    assert.equal("first", slurp(target))
  end)

  it("writes nothing on a download error", function()
    local p, err = client:save_by_id("4_zmissing", dir)
    assert.is_nil(p)
    assert.equal(404, err.status)
    assert.same({}, ls(dir))
  end)

  it("b2.save names an already opened download the same way", function()
    local up = new_file("deep/dir/name.dat", "payload")
    local d = assert(client:open_by_id(up.fileId, { hash = { "sha1" } }))
    local path, bytes = b2.save(d, dir)
    assert.equal(dir .. "/name.dat", path)
    assert.equal(7, bytes)
    assert.equal(sha1("payload"), d:digest("sha1"))
  end)
end)

describe("download authorization and secrets", function()
  it("uses a download token instead of the account token, without renewing it", function()
    local b = client:buckets{ name = "dl-bucket" }[1]
    new_file("pub/a.txt", "A")
    new_file("priv/b.txt", "B")
    local token = assert(client:download_authorization{ bucket_id = b.bucketId, prefix = "pub/" })
    assert.equal("A", assert(client:open_by_name("dl-bucket", "pub/a.txt", { authorization = token })):read_all())
    local d, err = client:open_by_name("dl-bucket", "priv/b.txt", { authorization = token })
    assert.is_nil(d)
    assert.equal("auth", err.kind)
    assert.equal(401, err.status)
    assert.is_nil(tostring(err):find(token, 1, true))
    assert.equal(1, count("b2_authorize_account"))
  end)

  it("never shows the key or a token in errors", function()
    e:control("POST", "/_emu/b2/keys", { key_id = "K000limited", key = "limited-secret-key",
      capabilities = { "listBuckets" }, bucket_ids = cjson_null, name_prefix = cjson_null })
    local limited = assert(b2.authorize{ key_id = "K000limited", key = "limited-secret-key", realm = e.url,
                                         retry = FAST })
    local up = new_file("s.txt", "s")
    local _, err = limited:open_by_id(up.fileId)
    assert.equal("auth", err.kind)
    assert.is_nil(tostring(err):find("limited-secret-key", 1, true))
    local _, err2 = limited:save_by_name("dl-bucket", "s.txt", dir)
    assert.is_nil(tostring(err2):find("limited-secret-key", 1, true))
    assert.is_nil(tostring(limited):find("limited-secret-key", 1, true))
  end)
end)
