-- cloudfetch.b2 and cloudfetch.notary inside groups, against the emulator:
-- tasks share one token renewal, saves take resume/parallel, and big files
-- are saved in verified parallel parts.
local cf = require "cloudfetch"
local b2 = require "cloudfetch.b2"
local notary = require "cloudfetch.notary"
local parallel = require "cloudfetch.parallel"
local emu = require "support.emulator"
local fx = require "support.fixtures"

local FAST = { attempts = 3, base_delay = 0.01, max_delay = 0.05 }
local MiB = 1024 * 1024

local e, dir

lazy_setup(function()
  e = emu.start{ tls = false }
end)

lazy_teardown(function()
  if e then e:stop() end
end)

before_each(function()
  e:reset()
  e:control("POST", "/_emu/b2/buckets", { name = "grp-bucket", type = "allPrivate", bucket_info = {} })
  dir = fx.tmpdir()
end)

after_each(function()
  fx.rmdir(dir)
end)

local function sha1_file(path)
  return fx.run("sha1sum " .. fx.shell_quote(path)):match("^(%x+)")
end

local function sha256_file(path)
  return fx.run("sha256sum " .. fx.shell_quote(path)):match("^(%x+)")
end

local function b2_client()
  return assert(b2.authorize{ key_id = e.info.b2.key_id, key = e.info.b2.key, realm = e.url, retry = FAST })
end

local function b2_file(name, size, extra)
  local t = { bucket = "grp-bucket", name = name, size = size, random = name }
  for k, v in pairs(extra or {}) do t[k] = v end
  return e:control("POST", "/_emu/b2/files", t)
end

local function notary_client()
  return assert(notary.login{ login = "demo@example.com", password = "demo-password", cloud_url = e.url,
    retry = FAST })
end

local function notary_file(name, size)
  local obj = e:control("POST", "/_emu/notary/files", { name = name, size = size, random = name })
  local f = obj.file or obj
  return f.id or f.file_id or f.uuid, obj.sha256
end

describe("b2 in tasks", function()
  it("renews an expired token once for 8 tasks that hit it together", function()
    local client = b2_client()
    local files = {}
    for i = 1, 8 do files[i] = b2_file("f" .. i .. ".bin", 20000) end
    e:control("POST", "/_emu/b2/expire", {})
    e:clear_log()
    local results, failed = cf.map(files, function(f)
      return client:save_by_id(f.fileId, dir .. "/" .. f.fileName)
    end, { max_active = 8 })
    assert.equal(0, failed, failed > 0 and tostring(results[1][2]) or nil)
    assert.equal(1, #e:requests("b2_authorize_account"))
    assert.equal(8, #e:requests("b2_download_file_by_id", 401))
    for i, f in ipairs(files) do
      assert.equal(dir .. "/f" .. i .. ".bin", results[i][1])
      assert.equal(f.sha1, sha1_file(results[i][1]))
    end
  end)

  it("saves a large file in 4 verified parallel parts (save_by_id{ parallel = 4 })", function()
    local client = b2_client()
    local f = b2_file("big/large.bin", 6 * MiB + 12345, { large = true, large_file_sha1 = true })
    e:clear_log()
    local path, bytes = assert(client:save_by_id(f.fileId, dir, { parallel = 4 }))
    assert.equal(dir .. "/large.bin", path)
    assert.equal(6 * MiB + 12345, bytes)
    assert.equal(f.sha1, sha1_file(path))
    assert.is_true(#e:requests("b2_download_file_by_id") >= 4)
    assert.same({ "large.bin" }, fx.list(dir))
  end)

  it("still verifies a parallel save whose parts fail once each", function()
    local client = b2_client()
    local f = b2_file("cut.bin", 3 * MiB, { large = true, large_file_sha1 = true })
    e:fault{ path = f.fileId, cut_after = 100000, count = 3 }
    e:clear_log()
    local path = assert(client:save_by_id(f.fileId, dir .. "/cut.bin", { parallel = 3, part_size = MiB,
      retry = FAST }))
    assert.equal(f.sha1, sha1_file(path))
    assert.equal(6, #e:requests("b2_download_file_by_id")) -- three parts, each resumed once
  end)

  it("rejects a parallel save whose bytes do not match the SHA-1, leaving nothing", function()
    local client = b2_client()
    local f = b2_file("corrupt.bin", 2 * MiB)
    e:fault{ path = f.fileId, corrupt_at = 10, count = 10 }
    local path, err = client:save_by_id(f.fileId, dir .. "/c.bin", { parallel = 2, part_size = MiB // 2 })
    assert.is_nil(path)
    assert.equal("integrity", err.kind)
    assert.same({}, fx.list(dir))
  end)

  it("goes parallel by itself for big files", function()
    local client = b2_client()
    local f = b2_file("auto.bin", 5 * MiB)
    local threshold = parallel.AUTO_THRESHOLD
    parallel.AUTO_THRESHOLD = 2 * MiB
    e:clear_log()
    local ok, path = pcall(client.save_by_id, client, f.fileId, dir)
    parallel.AUTO_THRESHOLD = threshold
    assert.is_true(ok, path)
    assert.equal(f.sha1, sha1_file(path))
    -- 1 MiB parts (the smallest) over AUTO_CONNECTIONS connections
    assert.equal(5, #e:requests("b2_download_file_by_id"))
    assert.equal(MiB, parallel.part_size(5 * MiB, parallel.AUTO_CONNECTIONS))
    -- parallel = 1 keeps one stream
    e:clear_log()
    parallel.AUTO_THRESHOLD = 2 * MiB
    ok, path = pcall(client.save_by_id, client, f.fileId, dir .. "/one.bin", { parallel = 1 })
    parallel.AUTO_THRESHOLD = threshold
    assert.is_true(ok, path)
    assert.equal(1, #e:requests("b2_download_file_by_id"))
  end)

  it("continues a part file with resume = true and verifies the whole file", function()
    local client = b2_client()
    local f = b2_file("resume.bin", 500000)
    e:fault{ path = f.fileId, cut_after = 200000, count = 5 }
    local path, err = client:save_by_id(f.fileId, dir .. "/r.bin", { resume = true, retry = false })
    assert.is_nil(path)
    assert.equal("network", err.kind)
    assert.same({ "r.bin.part" }, fx.list(dir))
    e:clear_faults()
    path = assert(client:save_by_id(f.fileId, dir .. "/r.bin", { resume = true }))
    assert.equal(f.sha1, sha1_file(path))
    assert.same({ "r.bin" }, fx.list(dir))
  end)

  it("points a bad option of save_by_id at the caller, naming it", function()
    local client = b2_client()
    local ok, err = pcall(function() client:save_by_id("x", dir, { timeot = 1 }) end)
    assert.is_false(ok)
    assert.truthy(err:find("services_group_spec.lua:%d+: b2: save_by_id: unknown option 'timeot'"), err)
  end)
end)

describe("notary in tasks", function()
  it("renews an expired token once for 8 tasks that hit it together", function()
    local client = notary_client()
    local ids = {}
    for i = 1, 8 do ids[i] = notary_file("n" .. i .. ".bin", 30000) end
    e:control("POST", "/_emu/notary/expire", {})
    e:clear_log()
    local results, failed = cf.map(ids, function(id)
      return client:save(id, dir .. "/")
    end, { max_active = 8 })
    assert.equal(0, failed, failed > 0 and tostring(results[1][2]) or nil)
    assert.equal(1, #e:requests("/api/2/idp/token"))
    for i = 1, 8 do assert.equal(dir .. "/n" .. i .. ".bin", results[i][1]) end
  end)

  it("saves a big file in verified parallel parts", function()
    local client = notary_client()
    local id, sha256 = notary_file("big-notary.bin", 3 * MiB + 7)
    local path = assert(client:save(id, dir .. "/", { parallel = 3 }))
    assert.equal(dir .. "/big-notary.bin", path)
    assert.equal(sha256, sha256_file(path))
  end)
end)
