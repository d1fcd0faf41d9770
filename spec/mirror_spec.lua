-- client:mirror for B2 and Notary against the emulator: every file with the
-- right bytes and path, incremental runs, compare modes, dry_run, delete,
-- filter, shards, hostile names, corruption, token expiry, bounded memory.
local cf = require "cloudfetch"
local b2 = require "cloudfetch.b2"
local notary = require "cloudfetch.notary"
local mirror = require "cloudfetch.mirror"
local emu = require "support.emulator"
local fx = require "support.fixtures"

local FAST = { attempts = 3, base_delay = 0.01, max_delay = 0.05 }

local e, dir, client

lazy_setup(function()
  e = emu.start{ tls = false }
end)

lazy_teardown(function()
  if e then e:stop() end
end)

local function add(name, size, extra)
  local t = { bucket = "m-bucket", name = name, size = size, random = name }
  for k, v in pairs(extra or {}) do t[k] = v end
  return e:control("POST", "/_emu/b2/files", t)
end

-- Every regular file below root, relative path -> sha1 (by sha1sum).
local function tree(root)
  local out = {}
  local list = fx.run("cd " .. fx.shell_quote(root) .. " && find . -type f -print0 | xargs -0 -r sha1sum")
  for sum, path in list:gmatch("(%x+)  %./([^\n]+)") do out[path] = sum end
  return out
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function downloads()
  return #e:requests("b2_download_file_by_id")
end

before_each(function()
  e:reset()
  e:control("POST", "/_emu/b2/buckets", { name = "m-bucket", type = "allPrivate", bucket_info = {} })
  client = assert(b2.authorize{ key_id = e.info.b2.key_id, key = e.info.b2.key, realm = e.url, retry = FAST })
  dir = fx.tmpdir() .. "/out"
end)

after_each(function()
  fx.rmdir(dir:gsub("/out$", ""))
end)

describe("b2 mirror", function()
  local files

  before_each(function()
    files = {
      add("a.txt", 100),
      add("photos/2024/cat.jpg", 5000, { info = { src_last_modified_millis = "1700000000123" } }),
      add("photos/2024/dog.jpg", 7000),
      add("photos-extra/z.bin", 300),
      add("docs/readme.md", 0),
    }
  end)

  it("brings every file down with its bytes, folder structure and modification time", function()
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir })
    assert.equal(5, report.downloaded)
    assert.equal(0, report.skipped)
    assert.same({}, report.failed)
    assert.equal(12400, report.bytes)
    local got = tree(dir)
    assert.equal(5, count(got))
    for _, f in ipairs(files) do assert.equal(f.sha1, got[f.fileName], f.fileName) end
    local _, _, mtime = require("cloudfetch.core").stat(dir .. "/photos/2024/cat.jpg")
    assert.is_true(math.abs(mtime - 1700000000.123) < 0.001)
  end)

  it("downloads nothing on a second run over an unchanged bucket", function()
    assert(client:mirror{ bucket = "m-bucket", dir = dir })
    e:clear_log()
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir })
    assert.equal(0, report.downloaded)
    assert.equal(5, report.skipped)
    assert.equal(0, report.bytes)
    assert.equal(0, downloads())
    assert.equal(1, #e:requests("b2_list_file_names"))
  end)

  it("takes only the newest version of a name and skips hidden files", function()
    local newer = add("a.txt", 150) -- a second version of a.txt
    local auth = assert(cf.open(e.url .. "/b2api/v2/b2_authorize_account",
      { headers = { Authorization = "Basic " .. cf.base64(e.info.b2.key_id .. ":" .. e.info.b2.key) } })):json()
    local bucket_id = assert(client:buckets{ name = "m-bucket" })[1].bucketId
    local hidden = assert(cf.open(auth.apiUrl .. "/b2api/v2/b2_hide_file", { method = "POST",
      headers = { Authorization = auth.authorizationToken },
      json = { bucketId = bucket_id, fileName = "docs/readme.md" } }))
    assert.equal(200, hidden.status)
    hidden:close()
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir })
    assert.equal(4, report.downloaded)
    local got = tree(dir)
    assert.equal(newer.sha1, got["a.txt"])
    assert.is_nil(got["docs/readme.md"])
  end)

  it("takes only a prefix, removing it from local paths", function()
    local report = assert(client:mirror{ bucket = "m-bucket", prefix = "photos/", dir = dir })
    assert.equal(2, report.downloaded)
    assert.same({ ["2024/cat.jpg"] = files[2].sha1, ["2024/dog.jpg"] = files[3].sha1 }, tree(dir))
  end)

  it("fetches a changed file of the same size with compare = \"hash\", not with \"size\"", function()
    assert(client:mirror{ bucket = "m-bucket", dir = dir })
    local path = dir .. "/photos/2024/dog.jpg"
    fx.write_file(path, string.rep("x", 7000))
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir, compare = "size" })
    assert.equal(0, report.downloaded)
    assert.equal(string.rep("x", 7000), fx.read_file(path))
    report = assert(client:mirror{ bucket = "m-bucket", dir = dir, compare = "hash" })
    assert.equal(1, report.downloaded)
    assert.equal(4, report.skipped)
    assert.equal(files[3].sha1, tree(dir)["photos/2024/dog.jpg"])
  end)

  it("fetches a file whose modification time differs with the default compare", function()
    assert(client:mirror{ bucket = "m-bucket", dir = dir })
    os.execute("touch -d '2001-01-01' " .. fx.shell_quote(dir .. "/a.txt"))
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir })
    assert.equal(1, report.downloaded)
  end)

  it("changes nothing with dry_run, reporting what it would do", function()
    assert(client:mirror{ bucket = "m-bucket", dir = dir, filter = function(f) return f.fileName ~= "a.txt" end })
    fx.write_file(dir .. "/extra.txt", "x")
    local before = tree(dir)
    e:clear_log()
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir, dry_run = true, delete = true })
    assert.equal(1, report.downloaded)
    assert.equal(4, report.skipped)
    assert.equal(1, report.deleted)
    assert.equal(100, report.bytes)
    assert.same(before, tree(dir))
    assert.equal(0, downloads())
  end)

  it("deletes only local files the listing lacks, only under dir", function()
    local outside = dir:gsub("/out$", "") .. "/outside.txt"
    fx.write_file(outside, "keep me")
    assert(client:mirror{ bucket = "m-bucket", dir = dir })
    fx.write_file(dir .. "/old.txt", "gone")
    os.execute("mkdir -p " .. fx.shell_quote(dir .. "/photos/2023"))
    fx.write_file(dir .. "/photos/2023/old.jpg", "gone")
    fx.write_file(dir .. "/photos-extra/zz.bin", "gone")
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir, delete = true })
    assert.equal(3, report.deleted)
    assert.equal(5, report.skipped)
    assert.equal(5, count(tree(dir)))
    assert.equal("keep me", fx.read_file(outside))
  end)

  it("does not delete anything when the listing fails", function()
    assert(client:mirror{ bucket = "m-bucket", dir = dir })
    fx.write_file(dir .. "/extra.txt", "x")
    e:fault{ path = "b2_list_file_names", status = 500, count = 10 }
    local report, err = client:mirror{ bucket = "m-bucket", dir = dir, delete = true }
    assert.is_nil(report)
    assert.equal("api", err.kind)
    assert.equal("x", fx.read_file(dir .. "/extra.txt"))
  end)

  it("takes only the files a filter accepts", function()
    local seen = {}
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir, filter = function(f)
      seen[#seen + 1] = f.fileName
      return f.contentLength >= 1000
    end })
    assert.equal(2, report.downloaded)
    assert.equal(5, #seen)
    assert.same({ ["photos/2024/cat.jpg"] = files[2].sha1, ["photos/2024/dog.jpg"] = files[3].sha1 }, tree(dir))
  end)

  it("splits into disjoint shards that together are everything", function()
    for i = 1, 30 do add("many/f" .. i, 10) end
    local union, total = {}, 0
    for k = 1, 3 do
      local d = dir .. "/" .. k
      local report = assert(client:mirror{ bucket = "m-bucket", dir = d, shard = { index = k, count = 3 } })
      total = total + report.downloaded
      for path in pairs(tree(d)) do
        assert.is_nil(union[path], path .. " in two shards")
        union[path] = k
        assert.equal(k, mirror.shard_of(path, 3))
      end
    end
    assert.equal(35, total)
    assert.equal(35, count(union))
  end)

  it("documents its shard hash: FNV-1a 32-bit of the name, modulo count, plus one", function()
    -- FNV-1a("a") = 0xe40c292c; ("foobar") = 0xbf9cf968 (the published test vectors)
    assert.equal(0xe40c292c % 7 + 1, mirror.shard_of("a", 7))
    assert.equal(0xbf9cf968 % 10 + 1, mirror.shard_of("foobar", 10))
  end)

  it("keeps hostile names inside dir and reports names that would collide", function()
    local hostile = { "../escape.txt", "evil/../../x.txt", "/abs/path.txt", "back\\slash.txt", "a//b.txt",
      "ctl\1name.txt", "dot/./seg.txt" }
    for _, name in ipairs(hostile) do add(name, 10) end
    add("_/escape.txt", 10) -- what "../escape.txt" would become
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir })
    local root = dir:gsub("/out$", "")
    for path in pairs(tree(root)) do
      assert.truthy(path:match("^out/"), path .. " is outside dir")
    end
    assert.equal(1, #report.failed)
    assert.equal("collision", report.failed[1].err.code)
    assert.equal("../escape.txt", report.failed[1].name)
    assert.equal(5 + #hostile - 1 + 1, report.downloaded)
  end)

  it("fetches a file corrupted once in transit again, and verifies it", function()
    e:fault{ path = files[3].fileId, corrupt_at = 10, count = 1 }
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir })
    assert.same({}, report.failed)
    assert.equal(5, report.downloaded)
    assert.equal(files[3].sha1, tree(dir)["photos/2024/dog.jpg"])
  end)

  it("reports a file corrupted on every try (kind integrity), leaves no part of it, and completes the rest", function()
    e:fault{ path = files[3].fileId, corrupt_at = 10, count = 100 }
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir })
    assert.equal(1, #report.failed)
    assert.equal("photos/2024/dog.jpg", report.failed[1].name)
    assert.equal("integrity", report.failed[1].err.kind)
    assert.equal(4, report.downloaded)
    local got = tree(dir)
    assert.equal(4, count(got))
    assert.is_nil(got["photos/2024/dog.jpg"])
    assert.same({}, fx.leftovers(dir .. "/photos/2024"))
  end)

  it("renews an expired token once, transparently", function()
    for i = 1, 20 do add("exp/f" .. i, 1000) end
    e:control("POST", "/_emu/b2/expire", {})
    e:clear_log()
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir, max_active = 8 })
    assert.equal(25, report.downloaded)
    assert.same({}, report.failed)
    assert.equal(1, #e:requests("b2_authorize_account"))
  end)

  it("reports progress in files and bytes, once at the end with everything", function()
    local last
    assert(client:mirror{ bucket = "m-bucket", dir = dir, progress = function(s) last = s end })
    assert.equal(5, last.total)
    assert.equal(5, last.done)
    assert.equal(0, last.failed)
    assert.equal(12400, last.bytes)
  end)

  it("saves big files in parallel parts, verified", function()
    local big = add("big.bin", 3 * 1024 * 1024 + 5, { large = true, large_file_sha1 = true })
    e:clear_log()
    local report = assert(client:mirror{ bucket = "m-bucket", dir = dir, parallel = 3 })
    assert.same({}, report.failed)
    assert.equal(big.sha1, tree(dir)["big.bin"])
    assert.is_true(downloads() >= 5 + 3)
  end)

  it("raises on misuse at the caller's line", function()
    local ok, err = pcall(function() client:mirror{ bucket = "m-bucket" } end)
    assert.is_false(ok)
    assert.matches("mirror_spec.lua:%d+: b2: mirror: option 'dir'", err)
    ok, err = pcall(function() client:mirror{ bucket = "m-bucket", dir = dir, compare = "mtime" } end)
    assert.is_false(ok)
    assert.matches("compare must be", err)
    ok, err = pcall(function() client:mirror{ bucket = "m-bucket", dir = dir, shard = { index = 4, count = 3 } } end)
    assert.is_false(ok)
    assert.matches("shard", err)
  end)

  it("returns nil, err for a bucket that does not exist", function()
    local report, err = client:mirror{ bucket = "no-such-bucket", dir = dir }
    assert.is_nil(report)
    assert.equal("not_found", err.code)
  end)

  it("runs inside a task as one of many", function()
    local results = cf.map({ "photos/", "docs/" }, function(prefix, i)
      return client:mirror{ bucket = "m-bucket", prefix = prefix, dir = dir .. "/" .. i }
    end)
    assert.equal(2, results[1][1].downloaded)
    assert.equal(1, results[2][1].downloaded)
  end)
end)

describe("b2 mirror of a large listing", function()
  -- Peak Lua heap while listing (dry_run) n names: it must not grow with n.
  local function peak_for(n)
    e:control("POST", "/_emu/b2/generate", { bucket = "m-bucket", count = n, prefix = "gen" .. n .. "/", size = 3 })
    collectgarbage()
    local peak = 0
    local report = assert(client:mirror{ bucket = "m-bucket", prefix = "gen" .. n .. "/", dir = dir, dry_run = true,
      progress = function()
        collectgarbage() -- the live heap, not garbage a cycle has yet to reach
        peak = math.max(peak, collectgarbage("count"))
      end })
    assert.equal(n, report.downloaded)
    return peak
  end

  it("runs in bounded memory", function()
    local small, large = 5000, os.getenv("VALGRIND") == "1" and 20000 or 100000
    local p1 = peak_for(small)
    local p2 = peak_for(large)
    print(("\n      peak Lua heap listing %d names: %.0f KiB; %d names: %.0f KiB"):format(small, p1, large, p2))
    assert.is_true(p2 < p1 * 1.5 + 1024, "memory grew with the listing")
  end)
end)

describe("notary mirror", function()
  it("names files from the service and downloads nothing the second time", function()
    local nc = assert(notary.login{ login = "demo@example.com", password = "demo-password", cloud_url = e.url,
      retry = FAST })
    local made = {}
    for i, name in ipairs{ "report.pdf", "scans/page 1.png", "Übersicht.txt" } do
      local obj = e:control("POST", "/_emu/notary/files", { name = name, size = 1000 * i, random = name })
      made[name] = obj.sha256
    end
    local report = assert(nc:mirror{ dir = dir })
    assert.equal(3, report.downloaded)
    for name, sha256 in pairs(made) do
      assert.equal(sha256, fx.run("sha256sum " .. fx.shell_quote(dir .. "/" .. name)):match("^(%x+)"), name)
    end
    e:clear_log()
    report = assert(nc:mirror{ dir = dir })
    assert.equal(0, report.downloaded)
    assert.equal(3, report.skipped)
    assert.equal(0, #e:requests("/download"))
  end)

  it("reports two stored files with the same name instead of overwriting one", function()
    local nc = assert(notary.login{ login = "demo@example.com", password = "demo-password", cloud_url = e.url,
      retry = FAST })
    e:control("POST", "/_emu/notary/files", { name = "same.txt", data = "first" })
    e:control("POST", "/_emu/notary/files", { name = "same.txt", data = "second" })
    local report = assert(nc:mirror{ dir = dir })
    assert.equal(1, report.downloaded)
    assert.equal(1, #report.failed)
    assert.equal("collision", report.failed[1].err.code)
  end)
end)
