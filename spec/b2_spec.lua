-- cloudfetch.b2 against the emulator: authorize, buckets, file info,
-- listing, re-authorization, retries and error reporting.
-- Downloads are in b2_download_spec.lua, the example scripts in
-- b2_examples_spec.lua.
local cf = require "cloudfetch"
local b2 = require "cloudfetch.b2"
local emu = require "support.emulator"
local cjson_null = require("cjson").null

local FAST = { attempts = 3, base_delay = 0.01, max_delay = 0.05 }

local e

local function authorize(extra)
  local args = { key_id = e.info.b2.key_id, key = e.info.b2.key, realm = e.url, retry = FAST }
  for k, v in pairs(extra or {}) do args[k] = v end
  return b2.authorize(args)
end

local function new_bucket(name)
  return e:control("POST", "/_emu/b2/buckets", { name = name, type = "allPrivate", bucket_info = {} })
end

local function new_file(bucket, name, data, extra)
  local t = { bucket = bucket, name = name, data_b64 = cf.base64(data or ""), content_type = "text/plain" }
  for k, v in pairs(extra or {}) do t[k] = v end
  return e:control("POST", "/_emu/b2/files", t)
end

-- Requests in the emulator's log whose path contains `needle`.
local function count(needle, status)
  return #e:requests(needle, status)
end

local function collect(iter)
  local out = {}
  for f in iter do out[#out + 1] = f end
  return out
end

local function names(files)
  local out = {}
  for i, f in ipairs(files) do out[i] = f.fileName end
  return out
end

-- Runs fn, which must raise a cloudfetch.Error; returns it.
local function raised(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  assert.is_true(cf.is_error(err), "expected a cloudfetch.Error, got " .. tostring(err))
  return err
end

-- The client's secrets, read the way only a test may (for leak checks).
local function secrets_of(client)
  for i = 1, 64 do
    local name, value = debug.getupvalue(b2.authorize, i)
    if name == nil then break end
    if name == "private" then return value[client] end
  end
  error("no private table")
end

lazy_setup(function()
  e = emu.start{ tls = false }
end)

lazy_teardown(function()
  if e then e:stop() end
end)

before_each(function()
  e:reset()
end)

describe("b2.authorize", function()
  it("authorizes with the v4 call and keeps what the answer says", function()
    local client = assert(authorize())
    assert.is_string(client.account_id)
    assert.equal(e.url, client.api_url)
    assert.equal(e.url, client.download_url)
    assert.is_table(client.allowed.capabilities)
    assert.truthy(table.concat(client.allowed.capabilities, " "):find("readFiles", 1, true))
    assert.equal("integer", math.type(client.recommended_part_size))
    assert.equal("integer", math.type(client.absolute_minimum_part_size))
    assert.equal(1, count("/b2api/v4/b2_authorize_account", 200))
    assert.equal(0, count("/b2api/v2/") + count("/b2api/v3/"))
  end)

  it("tolerates a trailing slash on the realm", function()
    local client = assert(authorize{ realm = e.url .. "/" })
    assert.equal(e.url, client.api_url)
    assert.equal(1, count("/b2api/v4/b2_authorize_account", 200))
  end)

  it("refuses a wrong key at once: kind auth, B2's code, no retry", function()
    local client, err = authorize{ key = "not-the-key" }
    assert.is_nil(client)
    assert.is_true(cf.is_error(err))
    assert.equal("auth", err.kind)
    assert.equal(401, err.status)
    assert.is_string(err.code)
    assert.truthy(tostring(err):find("401", 1, true))
    assert.is_nil(tostring(err):find("not-the-key", 1, true))
    assert.equal(1, count("b2_authorize_account"))
  end)

  it("refuses an unknown key id the same way", function()
    local client, err = authorize{ key_id = "K000nobody" }
    assert.is_nil(client)
    assert.equal("auth", err.kind)
    assert.equal(401, err.status)
  end)

  it("reports a realm that does not answer as a network error", function()
    local client, err = b2.authorize{ key_id = "k", key = "secret-key-123", realm = "http://127.0.0.1:1",
                                      retry = false }
    assert.is_nil(client)
    assert.is_true(cf.is_error(err))
    assert.is_nil(tostring(err):find("secret-key-123", 1, true))
  end)

  it("raises on misuse: unknown options, wrong types, missing key", function()
    assert.has_error(function() authorize{ bogus = 1 } end, "b2: unknown option 'bogus' in authorize")
    assert.has_error(function() authorize{ timeout = "soon" } end)
    assert.has_error(function() authorize{ verify_tls = "yes" } end)
    assert.has_error(function() b2.authorize{ key_id = "k" } end)
    assert.has_error(function() b2.authorize{ key_id = "", key = "x" } end)
    assert.has_error(function() b2.authorize("K000emulator") end)
    assert.equal(0, #e:log() - count("/_emu/"))
  end)

  it("keeps the key and the token out of tostring(client) and the client table", function()
    local client = assert(authorize())
    local s = secrets_of(client)
    assert.is_string(s.token)
    assert.equal(string.format("b2.client(%s, %s)", client.account_id, e.url), tostring(client))
    for _, secret in ipairs{ s.key, s.token } do
      assert.is_nil(tostring(client):find(secret, 1, true))
      for k, v in pairs(client) do
        assert.is_nil(tostring(k):find(secret, 1, true))
        assert.is_nil(tostring(v):find(secret, 1, true))
      end
    end
  end)

  it("applies its transport options (here ca_file) to every request", function()
    local tls = emu.start{ tls = true }
    local ok, err = pcall(function()
      local args = { key_id = tls.info.b2.key_id, key = tls.info.b2.key, realm = tls.url, retry = FAST }
      local refused, terr = b2.authorize(args)
      assert.is_nil(refused)
      assert.equal("tls", terr.kind)
      args.ca_file = tls.ca_file
      local client = assert(b2.authorize(args))
      tls:control("POST", "/_emu/b2/buckets", { name = "tls-bucket" })
      local up = tls:control("POST", "/_emu/b2/files", { bucket = "tls-bucket", name = "t.txt",
                                                         data_b64 = cf.base64("over tls") })
      assert.equal(1, #assert(client:buckets()))
      assert.equal(1, #collect(client:files{ bucket_id = up.bucketId }))
      assert.equal("over tls", assert(client:open_by_id(up.fileId)):read_all())
      tls:control("POST", "/_emu/b2/expire", {})
      assert(client:file_info(up.fileId))   -- the renewal goes over TLS too
    end)
    tls:stop()
    assert(ok, err)
  end)

  it("hides its key and token even when B2's message echoes them", function()
    local client = assert(authorize())
    local s = secrets_of(client)
    e:fault{ path = "b2_get_file_info", status = 400,
             body = { status = 400, code = "bad_request", message = "token " .. s.token .. " key " .. s.key } }
    local _, err = client:file_info("4_zx")
    assert.equal("bad_request", err.code)
    assert.is_nil(tostring(err):find(s.token, 1, true))
    assert.is_nil(tostring(err):find(s.key, 1, true))
    assert.truthy(tostring(err):find("<secret>", 1, true))
  end)

  it("names itself in the User-Agent", function()
    assert.truthy(b2.user_agent():find("^cloudfetch/" .. cf.version:gsub("%.", "%%.") .. " b2 "))
  end)
end)

describe("b2._parse_authorize", function()
  -- The emulator's own answers in each version (the module always calls v4).
  local function answer(version)
    local basic = "Basic " .. cf.base64(e.info.b2.key_id .. ":" .. e.info.b2.key)
    local d = assert(cf.open(e.url .. "/b2api/" .. version .. "/b2_authorize_account",
      { headers = { Authorization = basic }, retry = FAST }))
    assert.equal(200, d.status)
    return assert(d:json())
  end

  for _, version in ipairs{ "v2", "v3", "v4" } do
    it("reads the emulator's " .. version .. " answer", function()
      local raw = answer(version)
      if version == "v2" then
        assert.is_nil(raw.apiInfo)
      else
        assert.is_table(raw.apiInfo.storageApi)
      end
      local info = assert(b2._parse_authorize(raw))
      assert.equal(e.url, info.api_url)
      assert.equal(e.url, info.download_url)
      assert.is_string(info.token)
      assert.equal(raw.accountId, info.account_id)
      assert.truthy(table.concat(info.allowed.capabilities, " "):find("listFiles", 1, true))
      assert.is_nil(info.allowed.buckets)
      assert.equal("integer", math.type(info.recommended_part_size))
    end)
  end

  it("reads a bucket-restricted v2 answer", function()
    local info = assert(b2._parse_authorize{
      accountId = "acc", authorizationToken = "tok", apiUrl = "https://api002.example/",
      downloadUrl = "https://f002.example", recommendedPartSize = 100000000, absoluteMinimumPartSize = 5000000,
      s3ApiUrl = "https://s3.example",
      allowed = { bucketId = "b1", bucketName = "photos", capabilities = { "listFiles", "readFiles" },
                  namePrefix = "cats/" },
    })
    assert.equal("https://api002.example", info.api_url)
    assert.equal("https://s3.example", info.s3_api_url)
    assert.equal("cats/", info.allowed.namePrefix)
    assert.equal("b1", info.allowed.bucketId)
    assert.equal("photos", info.allowed.bucketName)
    assert.same({ { id = "b1", name = "photos" } }, info.allowed.buckets)
  end)

  it("reads a v3 answer with the restrictions flat in storageApi", function()
    local info = assert(b2._parse_authorize{
      accountId = "acc", authorizationToken = "tok",
      apiInfo = { storageApi = { infoType = "storageApi", apiUrl = "https://a", downloadUrl = "https://d",
        bucketId = "b9", bucketName = "logs", namePrefix = "2024/", capabilities = { "readFiles" } },
        groupsApi = { infoType = "groupsApi", capabilities = { "all" } } },
    })
    assert.same({ "readFiles" }, info.allowed.capabilities)
    assert.equal("2024/", info.allowed.namePrefix)
    assert.same({ { id = "b9", name = "logs" } }, info.allowed.buckets)
  end)

  it("reads a v4 multi-bucket answer and skips deleted buckets", function()
    local cjson = require "cjson"
    local raw = cjson.decode([[{"accountId":"acc","authorizationToken":"tok",
      "applicationKeyExpirationTimestamp":1767225600000,
      "apiInfo":{"storageApi":{"apiUrl":"https://a","downloadUrl":"https://d","s3ApiUrl":"https://s",
      "recommendedPartSize":100000000,"absoluteMinimumPartSize":5000000,
      "allowed":{"buckets":[{"id":"b1","name":"one"},{"id":"b2","name":null},{"id":"b3","name":""},
      {"id":"b4","name":"four"}],"capabilities":["listFiles"],"namePrefix":null}}}}]])
    local info = assert(b2._parse_authorize(raw))
    assert.same({ { id = "b1", name = "one" }, { id = "b4", name = "four" } }, info.allowed.buckets)
    assert.is_nil(info.allowed.namePrefix)
    assert.equal(100000000, info.recommended_part_size)
    assert.equal("integer", math.type(info.key_expires))
  end)

  it("rejects answers without a token or URLs", function()
    assert.is_nil((b2._parse_authorize{ accountId = "a", apiUrl = "x", downloadUrl = "y" }))
    assert.is_nil((b2._parse_authorize{ accountId = "a", authorizationToken = "t" }))
    local none, why = b2._parse_authorize("nope")
    assert.is_nil(none)
    assert.is_string(why)
  end)
end)

describe("client:buckets and client:file_info", function()
  it("lists buckets, all or filtered by name or id", function()
    local b = new_bucket("bucket-bravo")
    new_bucket("bucket-alpha")
    local client = assert(authorize())
    local all = assert(client:buckets())
    assert.equal(2, #all)
    assert.equal("bucket-alpha", all[1].bucketName)
    assert.equal("bucket-bravo", all[2].bucketName)
    local by_name = assert(client:buckets{ name = "bucket-bravo" })
    assert.equal(1, #by_name)
    assert.equal(b.bucketId, by_name[1].bucketId)
    local by_id = assert(client:buckets{ id = b.bucketId })
    assert.equal("bucket-bravo", by_id[1].bucketName)
    assert.same({}, assert(client:buckets{ name = "bucket-charlie" }))
    assert.has_error(function() client:buckets{ nme = "x" } end)
  end)

  it("returns a file's info with integer sizes and times", function()
    new_bucket("docs-bucket")
    local up = new_file("docs-bucket", "a/b.txt", "hello world", { info = { author = "me" } })
    local client = assert(authorize())
    local f = assert(client:file_info(up.fileId))
    assert.equal("a/b.txt", f.fileName)
    assert.equal(11, f.contentLength)
    assert.equal("integer", math.type(f.contentLength))
    assert.equal("integer", math.type(f.uploadTimestamp))
    assert.equal(up.contentSha1, f.contentSha1)
    assert.equal("me", f.fileInfo.author)
  end)

  it("reports an unknown file id with B2's status and code", function()
    local client = assert(authorize())
    local f, err = client:file_info("4_zdoesnotexist")
    assert.is_nil(f)
    assert.equal("api", err.kind)
    assert.equal(404, err.status)
    assert.equal("not_found", err.code)
    assert.is_false(err.retryable)
    assert.truthy(err.message:find("b2: file 4_zdoesnotexist not found", 1, true))
    assert.truthy(err.message:find("(404 not_found)", 1, true))
    assert.equal(1, count("b2_get_file_info"))
  end)

  it("gives a download authorization token that opens files under its prefix", function()
    local b = new_bucket("shared-bucket")
    new_file("shared-bucket", "pub/x.txt", "public part")
    local client = assert(authorize())
    local token = assert(client:download_authorization{ bucket_id = b.bucketId, prefix = "pub/", valid_for = 60 })
    assert.is_string(token)
    local d = assert(client:open_by_name("shared-bucket", "pub/x.txt", { authorization = token }))
    assert.equal("public part", d:read_all())
    assert.has_error(function() client:download_authorization{ bucket_id = b.bucketId, valid_for = 0 } end)
    assert.has_error(function() client:download_authorization{ bucket = "shared" } end)
  end)
end)

describe("listing", function()
  local bucket_id

  before_each(function()
    bucket_id = new_bucket("list-bucket").bucketId
  end)

  it("pages through file names by itself (page_size 3 over 8 files)", function()
    for i = 1, 8 do new_file("list-bucket", string.format("f%02d", i), "x") end
    local client = assert(authorize())
    local files = collect(client:files{ bucket_id = bucket_id, page_size = 3 })
    assert.same({ "f01", "f02", "f03", "f04", "f05", "f06", "f07", "f08" }, names(files))
    assert.equal(3, count("b2_list_file_names", 200))
    assert.equal(1, files[1].contentLength)
  end)

  it("stops cleanly on an empty bucket", function()
    local client = assert(authorize())
    assert.same({}, collect(client:files{ bucket_id = bucket_id }))
  end)

  it("lists with prefix, start and delimiter (folder entries)", function()
    for _, n in ipairs{ "a.txt", "docs/1.txt", "docs/2.txt", "docs/sub/3.txt", "pics/p.png", "z.txt" } do
      new_file("list-bucket", n, n)
    end
    local client = assert(authorize())
    assert.same({ "docs/1.txt", "docs/2.txt", "docs/sub/3.txt" },
      names(collect(client:files{ bucket_id = bucket_id, prefix = "docs/", page_size = 2 })))
    assert.same({ "pics/p.png", "z.txt" }, names(collect(client:files{ bucket_id = bucket_id, start = "pics/" })))
    local top = collect(client:files{ bucket_id = bucket_id, delimiter = "/" })
    assert.same({ "a.txt", "docs/", "pics/", "z.txt" }, names(top))
    assert.equal("folder", top[2].action)
    assert.same({ "docs/1.txt", "docs/2.txt", "docs/sub/" },
      names(collect(client:files{ bucket_id = bucket_id, prefix = "docs/", delimiter = "/" })))
  end)

  it("pages through versions with nextFileId (page_size 3)", function()
    new_file("list-bucket", "a", "one")
    new_file("list-bucket", "a", "two!")
    new_file("list-bucket", "b", "x")
    new_file("list-bucket", "b", "xy")
    new_file("list-bucket", "b", "xyz")
    new_file("list-bucket", "c", "c")
    local client = assert(authorize())
    local v = collect(client:versions{ bucket_id = bucket_id, page_size = 3 })
    assert.same({ "a", "a", "b", "b", "b", "c" }, names(v))
    -- Newest first within a name.
    assert.equal(4, v[1].contentLength)
    assert.equal(3, v[2].contentLength)
    assert.equal(3, v[3].contentLength)
    assert.equal(1, v[5].contentLength)
    local seen = {}
    for _, f in ipairs(v) do
      assert.is_nil(seen[f.fileId])
      seen[f.fileId] = true
    end
    assert.equal(2, count("b2_list_file_versions", 200))   -- 6 versions fill two pages exactly
    -- Only the latest version by name.
    assert.same({ "a", "b", "c" }, names(collect(client:files{ bucket_id = bucket_id })))
    -- Resume from one exact version.
    local rest = collect(client:versions{ bucket_id = bucket_id, start = "b", start_id = v[4].fileId })
    assert.same({ v[4].fileId, v[5].fileId, v[6].fileId }, { rest[1].fileId, rest[2].fileId, rest[3].fileId })
  end)

  it("lists names with spaces, '+', '%', non-ASCII and '/' exactly", function()
    local odd = { "a b.txt", "c+d.txt", "e%20f.txt", "dir/ünï €.txt", "自由/ok" }
    for _, n in ipairs(odd) do new_file("list-bucket", n, n) end
    local client = assert(authorize())
    local got = names(collect(client:files{ bucket_id = bucket_id, page_size = 2 }))
    table.sort(odd)
    assert.same(odd, got)
  end)

  it("raises on misuse before any request", function()
    local client = assert(authorize())
    local before = count("b2_list")
    for _, bad in ipairs{ 0, 10001, 1.5, "10" } do
      assert.has_error(function() client:files{ bucket_id = bucket_id, page_size = bad } end)
    end
    assert.has_error(function() client:files{} end)
    assert.has_error(function() client:files{ bucket_id = bucket_id, start_id = "x" } end)
    assert.has_error(function() client:versions{ bucket_id = bucket_id, start_id = "x" } end)
    assert.has_error(function() client:files{ bucket_id = bucket_id, pagesize = 3 } end)
    assert.has_error(function() client:files{ bucket_id = bucket_id, prefix = 3 } end)
    assert.equal(before, count("b2_list"))
  end)

  it("raises a cloudfetch.Error when a page fails, never ending quietly", function()
    for i = 1, 5 do new_file("list-bucket", "n" .. i, "x") end
    local client = assert(authorize())
    e:fault{ path = "b2_list_file_names", status = 400,
             body = { status = 400, code = "bad_request", message = "broken page" } }
    local got = {}
    local err = raised(function()
      for f in client:files{ bucket_id = bucket_id, page_size = 2 } do got[#got + 1] = f end
    end)
    assert.equal("api", err.kind)
    assert.equal(400, err.status)
    assert.equal("bad_request", err.code)
    assert.truthy(err.message:find("broken page", 1, true))
    assert.equal(0, #got)
  end)

  it("reports an unknown bucket id with B2's code", function()
    local client = assert(authorize())
    local err = raised(function() collect(client:files{ bucket_id = "nosuchbucket" }) end)
    assert.equal(400, err.status)
    assert.is_string(err.code)
    assert.truthy(err.message:find("nosuchbucket", 1, true))
  end)
end)

describe("malformed answers", function()
  it("reports an authorize answer without a token as a protocol error", function()
    e:fault{ path = "b2_authorize_account", status = 200, body = { accountId = "x" } }
    local client, err = authorize()
    assert.is_nil(client)
    assert.equal("protocol", err.kind)
    assert.truthy(err.message:find("authorizationToken", 1, true))
  end)

  it("reports a body that is not JSON as a protocol error", function()
    local client = assert(authorize())
    e:fault{ path = "b2_get_file_info", status = 200, body = "<html>maintenance</html>" }
    local f, err = client:file_info("4_zanything")
    assert.is_nil(f)
    assert.equal("protocol", err.kind)
    assert.truthy(err.message:find("^b2: file 4_zanything: "))
  end)

  it("raises instead of looping when the listing cursor does not move", function()
    local b = new_bucket("loop-bucket")
    local client = assert(authorize())
    e:fault{ path = "b2_list_file_names", status = 200, count = 5,
             body = { files = { { fileName = "a", contentLength = 1 } }, nextFileName = "a" } }
    local got = 0
    local err = raised(function()
      for _ in client:files{ bucket_id = b.bucketId } do got = got + 1 end
    end)
    assert.equal("protocol", err.kind)
    assert.equal(1, got)   -- the first page; the second repeats its cursor
    assert.equal(2, count("b2_list_file_names"))
  end)

  it("raises when a page has no files array", function()
    local b = new_bucket("nofiles-bucket")
    local client = assert(authorize())
    e:fault{ path = "b2_list_file_names", status = 200, body = { nextFileName = cjson_null } }
    local err = raised(function() collect(client:files{ bucket_id = b.bucketId }) end)
    assert.equal("protocol", err.kind)
  end)
end)

describe("re-authorization", function()
  local bucket_id

  before_each(function()
    bucket_id = new_bucket("auth-bucket").bucketId
  end)

  it("renews an expired token in the middle of a listing, once, transparently", function()
    for i = 1, 7 do new_file("auth-bucket", "f" .. i, "x") end
    local client = assert(authorize())
    local seen = {}
    for f in client:files{ bucket_id = bucket_id, page_size = 3 } do
      seen[#seen + 1] = f.fileName
      if #seen == 1 then e:control("POST", "/_emu/b2/expire", {}) end
    end
    assert.same({ "f1", "f2", "f3", "f4", "f5", "f6", "f7" }, seen)
    assert.equal(2, count("b2_authorize_account", 200))   -- the first one and one renewal
    assert.equal(1, count("b2_list_file_names", 401))
    assert.equal(3, count("b2_list_file_names", 200))
  end)

  it("renews the token for file_info and for downloads", function()
    local up = new_file("auth-bucket", "doc.txt", "some text")
    local client = assert(authorize())
    e:control("POST", "/_emu/b2/expire", {})
    assert(client:file_info(up.fileId))
    e:control("POST", "/_emu/b2/expire", {})
    local d = assert(client:open_by_id(up.fileId))
    assert.equal("some text", d:read_all())
    assert.equal(3, count("b2_authorize_account", 200))
  end)

  it("renews on a 401 with an empty body (as on HEAD)", function()
    local up = new_file("auth-bucket", "doc.txt", "some text")
    local client = assert(authorize())
    e:fault{ path = "b2_get_file_info", status = 401, body = "" }
    assert(client:file_info(up.fileId))
    assert.equal(2, count("b2_authorize_account", 200))
  end)

  it("renews only once per call: a second 401 is reported", function()
    local up = new_file("auth-bucket", "doc.txt", "some text")
    local client = assert(authorize())
    e:fault{ path = "b2_get_file_info", status = 401, count = 2,
             body = { status = 401, code = "expired_auth_token", message = "Authorization token has expired" } }
    local f, err = client:file_info(up.fileId)
    assert.is_nil(f)
    assert.equal("auth", err.kind)
    assert.equal("expired_auth_token", err.code)
    assert.equal(2, count("b2_authorize_account", 200))
    assert.equal(2, count("b2_get_file_info", 401))
  end)

  it("does not renew on 401 unauthorized and says which capability is missing", function()
    new_file("auth-bucket", "doc.txt", "x")
    e:control("POST", "/_emu/b2/keys", { key_id = "K000nolist", key = "nolist-secret",
      capabilities = { "listBuckets", "readFiles" }, bucket_ids = cjson_null, name_prefix = cjson_null })
    local client = assert(authorize{ key_id = "K000nolist", key = "nolist-secret" })
    local err = raised(function() collect(client:files{ bucket_id = bucket_id }) end)
    assert.equal("auth", err.kind)
    assert.equal(401, err.status)
    assert.equal("unauthorized", err.code)
    assert.truthy(err.message:find("listFiles", 1, true))
    assert.is_nil(tostring(err):find("nolist-secret", 1, true))
    assert.equal(1, count("b2_authorize_account"))
  end)

  it("reports a key without readFiles clearly on download", function()
    local up = new_file("auth-bucket", "doc.txt", "x")
    e:control("POST", "/_emu/b2/keys", { key_id = "K000noread", key = "noread-secret",
      capabilities = { "listBuckets", "listFiles" }, bucket_ids = cjson_null, name_prefix = cjson_null })
    local client = assert(authorize{ key_id = "K000noread", key = "noread-secret" })
    local d, err = client:open_by_id(up.fileId)
    assert.is_nil(d)
    assert.equal("auth", err.kind)
    assert.equal("unauthorized", err.code)
    assert.truthy(err.message:find("readFiles", 1, true))
    assert.equal(1, count("b2_authorize_account"))
  end)

  it("lets a key restricted to one bucket list buckets without naming it", function()
    local other = new_bucket("other-bucket")
    e:control("POST", "/_emu/b2/keys", { key_id = "K000one", key = "one-secret",
      capabilities = { "listBuckets", "listFiles", "readFiles" }, bucket_ids = { other.bucketId },
      name_prefix = cjson_null })
    local client = assert(authorize{ key_id = "K000one", key = "one-secret" })
    assert.same({ { id = other.bucketId, name = "other-bucket" } }, client.allowed.buckets)
    local list = assert(client:buckets())
    assert.equal(1, #list)
    assert.equal("other-bucket", list[1].bucketName)
  end)
end)

describe("transient errors", function()
  local bucket_id

  before_each(function()
    bucket_id = new_bucket("busy-bucket").bucketId
    new_file("busy-bucket", "f", "x")
  end)

  it("retries 503 and 429 (waiting for Retry-After)", function()
    local client = assert(authorize())
    e:fault{ path = "b2_list_file_names", status = 503, retry_after = 0,
             body = { status = 503, code = "service_unavailable", message = "busy" } }
    assert.same({ "f" }, names(collect(client:files{ bucket_id = bucket_id })))
    e:fault{ path = "b2_list_file_names", status = 429, retry_after = 1,
             body = { status = 429, code = "too_many_requests", message = "slow down" } }
    -- A Retry-After longer than retry.max_delay is not waited for, so allow 2 s.
    local patient = assert(authorize{ retry = { attempts = 3, base_delay = 0.01, max_delay = 2 } })
    local t0 = cf.now()
    assert.same({ "f" }, names(collect(patient:files{ bucket_id = bucket_id })))
    assert.is_true(cf.now() - t0 >= 0.9)
    assert.equal(1, count("b2_list_file_names", 503))
    assert.equal(1, count("b2_list_file_names", 429))
    assert.equal(2, count("b2_list_file_names", 200))
  end)

  it("reports a 500 that outlasts the retries as retryable, kind api", function()
    local client = assert(authorize())
    e:fault{ path = "b2_get_file_info", status = 500, count = 10,
             body = { status = 500, code = "internal_error", message = "oops" } }
    local f, err = client:file_info("4_zwhatever")
    assert.is_nil(f)
    assert.equal("api", err.kind)
    assert.equal(500, err.status)
    assert.equal("internal_error", err.code)
    assert.is_true(err.retryable)
    assert.equal(FAST.attempts, count("b2_get_file_info", 500))
  end)

  it("does not retry a 400, and tolerates a body that is not JSON", function()
    local client = assert(authorize())
    e:fault{ path = "b2_get_file_info", status = 400, body = "<html>Bad Request</html>" }
    local f, err = client:file_info("4_zwhatever")
    assert.is_nil(f)
    assert.equal("api", err.kind)
    assert.equal(400, err.status)
    assert.equal(1, count("b2_get_file_info"))
  end)
end)
