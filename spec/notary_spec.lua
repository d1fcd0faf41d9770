-- cloudfetch.notary against the emulator (spec/support/emulator.py): login,
-- listing, file info, downloads, verification, token renewal and errors.
local cf = require "cloudfetch"
local notary = require "cloudfetch.notary"
local emu = require "support.emulator"
local fx = require "support.fixtures"
local shell_quote, tmpdir, rmtree, listdir, read_file = fx.shell_quote, fx.tmpdir, fx.rmdir, fx.list, fx.read_file

local PASSWORD = "demo-password"
local CLIENT_SECRET = "emulator-client-secret"
local FAST = { attempts = 3, base_delay = 0.01, max_delay = 0.05 }

-- SHA-256 by an independent tool, not by the code under test.
local function sha256_of(data)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(data)
  f:close()
  local p = assert(io.popen("sha256sum " .. shell_quote(name)))
  local out = p:read("a")
  p:close()
  os.remove(name)
  return out:match("^(%x+)")
end

local function random_bytes(n, seed)
  local t, x = {}, seed or 1
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = string.char((x >> 16) % 256)
  end
  return table.concat(t)
end

-- The stored-file id from whatever the control endpoint returns.
local function id_of(obj)
  local f = obj.file or obj
  return f.id or f.file_id or f.uuid
end

local function add_file(e, name, data, login)
  local obj = e:control("POST", "/_emu/notary/files", {
    login = login or "demo@example.com", name = name, data_b64 = cf.base64(data),
  })
  local id = id_of(obj)
  assert(type(id) == "string", "emulator gave no file id")
  return id
end

local function login(e, extra)
  local opts = { login = "demo@example.com", password = PASSWORD, cloud_url = e.url, retry = FAST }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return notary.login(opts)
end

local function query_of(entry)
  local q = entry.query
  if type(q) == "table" then
    local parts = {}
    for k, v in pairs(q) do
      if type(v) == "table" then v = v[1] end
      parts[#parts + 1] = k .. "=" .. tostring(v)
    end
    return table.concat(parts, "&")
  end
  return q or ""
end

-- Log entries whose path contains `fragment` (and, if given, with `method`).
local function requests(e, fragment, method)
  return e:requests(fragment, nil, method)
end

-- Neither the message, tostring(err) nor any string field carries a secret.
local function assert_no_secret(err, ...)
  local secrets = { PASSWORD, CLIENT_SECRET, ... }
  local texts = { tostring(err) }
  if type(err) == "table" then
    for _, v in pairs(err) do
      if type(v) == "string" then texts[#texts + 1] = v end
    end
  end
  for _, text in ipairs(texts) do
    for _, secret in ipairs(secrets) do
      assert.is_nil(text:find(secret, 1, true), "secret found in: " .. text)
    end
  end
end

-- A token taken directly from the IdP, as another program would.
local function raw_token(e)
  local d = assert(cf.open(e.url .. "/api/2/idp/token", {
    method = "POST",
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
    body = "grant_type=password&username=" .. cf.urlencode("demo@example.com")
      .. "&password=" .. cf.urlencode(PASSWORD),
  }))
  assert.equal(200, d.status)
  return assert(d:json()).access_token
end

describe("cloudfetch.notary", function()
  local e

  lazy_setup(function()
    e = emu.start { tls = false }
  end)

  lazy_teardown(function()
    if e then e:stop() end
  end)

  before_each(function()
    e:reset()
  end)

  describe("login", function()
    it("logs in with login and password through the account router", function()
      local client, err = login(e)
      assert.is_nil(err)
      assert.equal(e.url, client.server_url)
      assert.equal(e.url .. "/api/notary/v2", client.base_url)
      assert.equal("notary.client(" .. e.url .. ")", tostring(client))
      local router = requests(e, "/api/1/accounts", "GET")
      assert.equal(1, #router)
      assert.truthy(query_of(router[1]):find("login=", 1, true))
      assert.equal(1, #requests(e, "/api/2/idp/token", "POST"))
    end)

    it("takes the token from the data centre the router names", function()
      local dc = emu.start { tls = false }
      local ok, err = pcall(function()
        e:fault { path = "/api/1/accounts", status = 200,
                  body = { login = "demo@example.com", id = 1, server_url = dc.url .. "/" } }
        local client = assert(login(e))
        assert.equal(dc.url, client.server_url)
        assert.equal(0, #requests(e, "/api/2/idp/token"))
        assert.equal(1, #requests(dc, "/api/2/idp/token", "POST"))
        -- Later calls go to the data centre too.
        local n = 0
        for _ in client:files() do n = n + 1 end
        assert.equal(0, n)
        assert.equal(1, #requests(dc, "/stored-files", "GET"))
      end)
      dc:stop()
      assert(ok, err)
    end)

    it("refuses a wrong password with kind auth and the OAuth error", function()
      local client, err = notary.login { login = "demo@example.com", password = "wrong-password",
                                         cloud_url = e.url, retry = FAST }
      assert.is_nil(client)
      assert.is_true(cf.is_error(err))
      assert.equal("auth", err.kind)
      assert.truthy(err.status == 400 or err.status == 401 or err.status == 403)
      assert.is_string(err.code)
      assert.truthy(err.message:find("^notary: login failed"))
      assert_no_secret(err, "wrong-password")
    end)

    it("refuses an unknown login with kind auth", function()
      local client, err = notary.login { login = "nobody@example.com", password = PASSWORD,
                                         cloud_url = e.url, retry = FAST }
      assert.is_nil(client)
      assert.equal("auth", err.kind)
      assert_no_secret(err)
    end)

    it("logs in a service client with client credentials and no router", function()
      local client, err = notary.login { client_id = "emulator-client", client_secret = CLIENT_SECRET,
                                         server_url = e.url, retry = FAST }
      assert.is_nil(err)
      assert.equal(e.url, client.server_url)
      assert.equal(0, #requests(e, "/api/1/accounts"))
      local id = add_file(e, "svc.txt", "service data")
      assert.equal("svc.txt", assert(client:file_info(id)).name)
    end)

    it("refuses a wrong client secret with kind auth", function()
      local client, err = notary.login { client_id = "emulator-client", client_secret = "not-the-secret",
                                         server_url = e.url, retry = FAST }
      assert.is_nil(client)
      assert.equal("auth", err.kind)
      assert_no_secret(err, "not-the-secret")
    end)

    it("reports an IdP that stays unavailable as a retryable api error", function()
      e:fault { path = "/api/2/idp/token", status = 503, retry_after = 0, count = 5 }
      local client, err = login(e)
      assert.is_nil(client)
      assert.equal("api", err.kind)
      assert.equal(503, err.status)
      assert.is_true(err.retryable)
      assert.equal(FAST.attempts, #requests(e, "/api/2/idp/token", "POST"))
      assert_no_secret(err)
    end)

    it("reports an unreachable cloud as a network error", function()
      local client, err = notary.login { login = "demo@example.com", password = PASSWORD,
                                         cloud_url = "http://127.0.0.1:9", retry = false }
      assert.is_nil(client)
      assert.is_true(cf.is_error(err))
      assert.equal("network", err.kind)
      assert_no_secret(err)
    end)

    it("keeps secrets out of the client table and tostring", function()
      local client = assert(login(e))
      local text = tostring(client)
      assert.is_nil(text:find(PASSWORD, 1, true))
      for k, v in pairs(client) do
        assert.is_nil(tostring(k):find(PASSWORD, 1, true))
        if type(v) == "string" then assert.is_nil(v:find(PASSWORD, 1, true)) end
        assert.is_false(k == "password" or k == "token" or k == "client_secret")
      end
    end)

    it("raises on misuse, naming the argument", function()
      assert.has_error(function() notary.login() end)
      assert.has_error(function() notary.login { login = "a" } end,
        "notary.login: option 'password' (a non-empty string) is required")
      assert.has_error(function() notary.login { client_id = "a", client_secret = "b" } end,
        "notary.login: option 'server_url' (a non-empty string) is required")
      assert.has_error(function() notary.login { login = "a", password = "b", colud_url = "x" } end,
        "notary.login: unknown option 'colud_url'")
      assert.has_error(function() notary.login { login = "a", password = "b", timeout = "1" } end,
        "notary.login: option 'timeout' must be a number, got string")
      assert.has_error(function() notary.connect { server_url = e.url } end,
        "notary.connect: option 'token' (a non-empty string) is required")
      assert.has_error(function() notary.connect { token = "t" } end,
        "notary.connect: option 'server_url' (a non-empty string) is required")
      local client = notary.connect { server_url = e.url, token = "t" }
      assert.has_error(function() client:file_info(42) end)
      assert.has_error(function() client:files { limit = 0 } end)
      assert.has_error(function() client:files { page_size = 2 } end,
        "client:files: unknown option 'page_size'")
      assert.has_error(function() client:save("id", nil) end)
    end)
  end)

  describe("connect", function()
    it("uses a token obtained elsewhere", function()
      local token = raw_token(e)
      local client = notary.connect { server_url = e.url .. "/", token = token, retry = FAST }
      assert.equal(e.url, client.server_url)
      assert.is_nil(tostring(client):find(token, 1, true))
      local id = add_file(e, "c.txt", "connected")
      assert.equal("c.txt", assert(client:file_info(id)).name)
    end)

    it("reports an expired token as final (kind auth, no renewal)", function()
      local token = raw_token(e)
      local client = notary.connect { server_url = e.url, token = token, retry = FAST }
      local id = add_file(e, "c.txt", "connected")
      e:control("POST", "/_emu/notary/expire", {})
      local before = #requests(e, "/api/2/idp/token")
      local info, err = client:file_info(id)
      assert.is_nil(info)
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      assert.truthy(err.message:find("cannot be renewed", 1, true))
      assert.equal(before, #requests(e, "/api/2/idp/token"))
      assert_no_secret(err, token)
      local d, derr = client:open(id)
      assert.is_nil(d)
      assert.equal("auth", derr.kind)
      assert_no_secret(derr, token)
      assert.has_error(function() for _ in client:files() do end end)
    end)
  end)

  describe("listing", function()
    it("yields nothing for an empty account", function()
      e:control("POST", "/_emu/notary/users", { login = "empty@example.com", password = "empty-pass" })
      local client = assert(notary.login { login = "empty@example.com", password = "empty-pass",
                                           cloud_url = e.url, retry = FAST })
      local n = 0
      for _ in client:files() do n = n + 1 end
      assert.equal(0, n)
    end)

    it("pages through 5 files two at a time with the service's cursor", function()
      local ids = {}
      for i = 1, 5 do ids[add_file(e, "f" .. i .. ".txt", ("x"):rep(i))] = i end
      local client = assert(login(e))
      local seen, n = {}, 0
      for f in client:files { limit = 2 } do
        n = n + 1
        assert.is_string(f.id)
        assert.is_nil(seen[f.id], "file listed twice")
        seen[f.id] = true
        local i = assert(ids[f.id], "unknown file listed")
        assert.equal("f" .. i .. ".txt", f.name)
        assert.equal(i, f.size)
        assert.equal("integer", math.type(f.size))
        assert.is_table(f.raw)
      end
      assert.equal(5, n)
      local pages = requests(e, "/stored-files", "GET")
      assert.equal(3, #pages)
      for i, p in ipairs(pages) do
        local q = query_of(p)
        assert.truthy(q:find("limit=2", 1, true))
        if i == 1 then
          assert.is_nil(q:find("after=", 1, true))
        else
          assert.truthy(q:find("after=", 1, true))
        end
      end
    end)

    it("treats a page without paging as the last one", function()
      local client = assert(login(e))
      e:fault { path = "/stored-files", method = "GET", status = 200,
                body = { files = { { id = "a1", name = "one.txt", size = 3 } } } }
      local names = {}
      for f in client:files { limit = 2 } do names[#names + 1] = f.name end
      assert.same({ "one.txt" }, names)
      assert.equal(1, #requests(e, "/stored-files", "GET"))
    end)

    it("raises a protocol error instead of looping on a repeated cursor", function()
      local client = assert(login(e))
      e:fault { path = "/stored-files", method = "GET", status = 200, count = 3,
                body = { files = { { id = "a1" } }, paging = { cursors = { after = "same" } } } }
      local n = 0
      local ok, err = pcall(function() for _ in client:files() do n = n + 1 end end)
      assert.is_false(ok)
      assert.equal("protocol", err.kind)
      assert.equal(1, n) -- the page that repeats the cursor is not trusted
      assert.equal(2, #requests(e, "/stored-files", "GET"))
    end)

    it("raises a cloudfetch.Error when a page fails", function()
      for i = 1, 3 do add_file(e, "f" .. i, "data") end
      local client = assert(login(e))
      e:fault { path = "/stored-files", method = "GET", count = 10, status = 400,
                body = { domain = "Storage", code = "ELIST", debug = { message = "listing broke" } } }
      local ok, err = pcall(function() for _ in client:files { limit = 2 } do end end)
      assert.is_false(ok)
      assert.is_true(cf.is_error(err))
      assert.equal("api", err.kind)
      assert.equal(400, err.status)
      assert.equal("ELIST", err.code)
      assert.truthy(err.message:find("listing broke", 1, true))
    end)
  end)

  describe("file info", function()
    it("gives id, name, size, sha256, created_at and raw", function()
      local data = random_bytes(3000, 7)
      local id = add_file(e, "report.pdf", data)
      local client = assert(login(e))
      local f = assert(client:file_info(id))
      assert.equal(id, f.id)
      assert.equal("report.pdf", f.name)
      assert.equal(3000, f.size)
      assert.equal("integer", math.type(f.size))
      assert.equal(sha256_of(data), f.sha256)
      assert.is_string(f.created_at)
      assert.is_table(f.raw)
      assert.equal(f.sha256, f.raw.certificate.object.eTag:lower())
    end)

    it("finds name, size and hash in the certificate when the top level lacks them", function()
      local client = assert(login(e))
      local etag = ("AB"):rep(32)
      e:fault { path = "/stored-files/cc3ecc8d", method = "GET", status = 200, body = { file = {
        file_id = "cc3ecc8d-de0e-4809-8bc2-3a6368110824", created_at = "2019-11-11T13:07:05.63Z",
        certificate_id = ("59"):rep(32),
        certificate = { id = ("59"):rep(32), blockchain = "eth", timestamp = 1573572432,
                        object = { eTag = etag, key = "lorem_ipsum.txt", sequencer = "01", size = 446 } },
      } } }
      local f = assert(client:file_info("cc3ecc8d-de0e-4809-8bc2-3a6368110824"))
      assert.equal("cc3ecc8d-de0e-4809-8bc2-3a6368110824", f.id)
      assert.equal("lorem_ipsum.txt", f.name)
      assert.equal(446, f.size)
      assert.equal("integer", math.type(f.size))
      assert.equal(etag:lower(), f.sha256)
      assert.equal("2019-11-11T13:07:05.63Z", f.created_at)
      assert.equal(("59"):rep(32), f.certificate_id)
      assert.equal(1573572432, f.raw.certificate.timestamp)
    end)

    it("reports a missing file clearly", function()
      local client = assert(login(e))
      local f, err = client:file_info("00000000-0000-4000-8000-000000000000")
      assert.is_nil(f)
      assert.equal(404, err.status)
      assert.equal("api", err.kind)
      assert.truthy(err.message:find(
        "notary: file 00000000-0000-4000-8000-000000000000 does not exist or was deleted", 1, true))
    end)
  end)

  describe("download", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() rmtree(dir) end)

    it("opens a file and names it from the seed's unquoted Content-Disposition", function()
      local data = random_bytes(1000, 3)
      local id = add_file(e, "lorem_ipsum.txt", data)
      local client = assert(login(e))
      e:fault { path = "/download", disposition = "attachment;filename=lorem_ipsum.txt" }
      local d = assert(client:open(id))
      assert.equal(200, d.status)
      assert.equal(id, d.file_id)
      assert.equal("lorem_ipsum.txt", d:filename())
      assert.equal(data, d:read_all())
      d:close()
    end)

    it("saves into a directory under the server's name, verified", function()
      local data = random_bytes(200000, 5)
      local id = add_file(e, "big.bin", data)
      local client = assert(login(e))
      local path, bytes = client:save(id, dir)
      assert.equal(dir .. "/big.bin", path)
      assert.equal(#data, bytes)
      assert.equal(data, read_file(path))
      assert.same({ "big.bin" }, listdir(dir))
    end)

    it("saves to an explicit file path", function()
      local id = add_file(e, "a.txt", "hello")
      local client = assert(login(e))
      local path, bytes = client:save(id, dir .. "/renamed.txt")
      assert.equal(dir .. "/renamed.txt", path)
      assert.equal(5, bytes)
      assert.equal("hello", read_file(path))
    end)

    local forms = {
      { "quoted", 'attachment; filename="quoted name.txt"', "quoted name.txt" },
      { "filename*", "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.txt; filename=\"resume.txt\"",
        "r\xC3\xA9sum\xC3\xA9.txt" },
      { "seed's unquoted", "attachment;filename=lorem_ipsum.txt", "lorem_ipsum.txt" },
    }
    for _, form in ipairs(forms) do
      it("saves under the name of a " .. form[1] .. " Content-Disposition", function()
        local id = add_file(e, "stored.txt", "content")
        local client = assert(login(e))
        e:fault { path = "/download", disposition = form[2] }
        local path = assert(client:save(id, dir))
        assert.equal(dir .. "/" .. form[3], path)
        assert.same({ form[3] }, listdir(dir))
        assert.equal("content", read_file(path))
      end)
    end

    it("saves hostile names safely inside the directory", function()
      local client = assert(login(e))
      local hostile = {
        'attachment; filename="../../escape.txt"',
        'attachment; filename="..\\\\..\\\\win.txt"',
        "attachment; filename*=UTF-8''%2E%2E%2Fup.txt",
        'attachment; filename="/etc/passwd"',
      }
      for i, value in ipairs(hostile) do
        local sub = dir .. "/" .. i
        assert(os.execute("mkdir " .. shell_quote(sub)))
        local id = add_file(e, "stored" .. i .. ".txt", "payload" .. i)
        e:fault { path = "/download", disposition = value }
        local path = assert(client:save(id, sub))
        local name = path:sub(#sub + 2)
        assert.equal(sub .. "/" .. name, path)
        assert.is_nil(name:find("/", 1, true))
        assert.is_nil(name:find("\\", 1, true))
        assert.is_true(name ~= "." and name ~= "..")
        assert.same({ name }, listdir(sub))
        assert.equal("payload" .. i, read_file(path))
      end
      assert.same({ "1", "2", "3", "4" }, listdir(dir))
    end)

    it("falls back to the file info's name when the header names no file", function()
      local id = add_file(e, "fallback.txt", "abc")
      local client = assert(login(e))
      e:fault { path = "/download", disposition = "attachment" }
      local path = assert(client:save(id, dir))
      assert.equal(dir .. "/fallback.txt", path)
    end)

    it("catches a corrupted body and leaves nothing on disk", function()
      local data = random_bytes(50000, 9)
      local id = add_file(e, "c.bin", data)
      local client = assert(login(e))
      e:fault { path = "/download", corrupt_at = 1234 }
      local path, err = client:save(id, dir)
      assert.is_nil(path)
      assert.equal("integrity", err.kind)
      assert.same({}, listdir(dir))
    end)

    it("catches a body cut short by its Content-Length and leaves nothing on disk", function()
      local id = add_file(e, "short.bin", random_bytes(5000, 11))
      local client = assert(login(e))
      e:fault { path = "/download", content_length_delta = -10 }
      local path, err = client:save(id, dir)
      assert.is_nil(path)
      assert.equal("integrity", err.kind)
      assert.same({}, listdir(dir))
    end)

    it("catches a body longer than the file (lying Content-Length) and leaves nothing on disk", function()
      local id = add_file(e, "long.bin", random_bytes(5000, 13))
      local client = assert(login(e))
      e:fault { path = "/download", content_length_delta = 10 }
      local path, err = client:save(id, dir, { stall_timeout = 2, timeout = 10 })
      assert.is_nil(path)
      assert.equal("integrity", err.kind)
      assert.same({}, listdir(dir))
    end)

    it("does not replace an existing file unless asked to", function()
      local id = add_file(e, "same.txt", "one")
      local client = assert(login(e))
      assert(client:save(id, dir))
      local path, err = client:save(id, dir)
      assert.is_nil(path)
      assert.equal("io", err.kind)
      assert.equal("exists", err.code)
      assert.equal(dir .. "/same.txt", (client:save(id, dir, { overwrite = true })))
    end)

    it("reports a missing file clearly and writes nothing", function()
      local client = assert(login(e))
      local d, err = client:open("no-such-file")
      assert.is_nil(d)
      assert.equal(404, err.status)
      assert.equal("api", err.kind)
      assert.truthy(err.message:find("notary: file no-such-file does not exist or was deleted", 1, true))
      local path, serr = client:save("no-such-file", dir)
      assert.is_nil(path)
      assert.equal(404, serr.status)
      assert.same({}, listdir(dir))
    end)

    it("refuses another user's file with kind auth (403)", function()
      e:control("POST", "/_emu/notary/users", { login = "other@example.com", password = "other-pass" })
      local id = add_file(e, "theirs.txt", "private", "other@example.com")
      local client = assert(login(e))
      local d, err = client:open(id)
      assert.is_nil(d)
      assert.equal("auth", err.kind)
      assert.equal(403, err.status)
      local path, serr = client:save(id, dir)
      assert.is_nil(path)
      assert.equal(403, serr.status)
      assert.same({}, listdir(dir))
    end)

    it("reports a used-up quota (402) with the quota figures", function()
      local id = add_file(e, "q.txt", "quota")
      local client = assert(login(e))
      e:fault { path = "/download", status = 402, body = {
        message = "Quota limit reached",
        quota = { name = "notarizations", quota = 1000, overage = 100, usage = 1100 } } }
      local d, err = client:open(id)
      assert.is_nil(d)
      assert.equal("api", err.kind)
      assert.equal(402, err.status)
      assert.truthy(err.message:find("Quota limit reached", 1, true))
      assert.truthy(err.message:find("notarizations: 1100 used of 1000", 1, true))
      assert.equal("notarizations", err.quota.name)
    end)

    it("reports the platform's error shape with its code", function()
      local id = add_file(e, "p.txt", "platform")
      local client = assert(login(e))
      e:fault { path = "/download", status = 409, body = {
        error = { code = 1006, message = "It is prohibited", domain = "PlatformAccountServer",
                  details = { info = "x" } } } }
      local d, err = client:open(id)
      assert.is_nil(d)
      assert.equal("api", err.kind)
      assert.equal("1006", err.code)
      assert.truthy(err.message:find("It is prohibited", 1, true))
    end)

    it("rides over a transient 503 (the core's retry)", function()
      local id = add_file(e, "t.txt", "transient")
      local client = assert(login(e))
      e:fault { path = "/download", status = 503, retry_after = 0 }
      local path = assert(client:save(id, dir))
      assert.equal("transient", read_file(path))
      assert.equal(2, #requests(e, "/download"))
    end)
  end)

  describe("token renewal", function()
    it("renews an expired token once and repeats the call", function()
      local id = add_file(e, "r.txt", "renew")
      local client = assert(login(e))
      e:control("POST", "/_emu/notary/expire", {})
      local f = assert(client:file_info(id))
      assert.equal("r.txt", f.name)
      assert.equal(2, #requests(e, "/api/2/idp/token", "POST"))
      local calls = requests(e, "/stored-files/" .. id, "GET")
      assert.equal(2, #calls)
      assert.equal(401, calls[1].status)
      assert.equal(200, calls[2].status)
    end)

    it("renews during a download and a listing", function()
      local id = add_file(e, "r.txt", "renew")
      local client = assert(login(e))
      e:control("POST", "/_emu/notary/expire", {})
      local d = assert(client:open(id))
      assert.equal("renew", d:read_all())
      d:close()
      e:control("POST", "/_emu/notary/expire", {})
      local n = 0
      for _ in client:files() do n = n + 1 end
      assert.equal(1, n)
      assert.equal(3, #requests(e, "/api/2/idp/token", "POST"))
    end)

    it("reads the expiry from expires_on and renews before it", function()
      local id = add_file(e, "r.txt", "renew")
      e:fault { path = "/api/2/idp/token", status = 200,
                body = { access_token = raw_token(e), token_type = "bearer", id_token = "x",
                         expires_on = math.floor(cf.now()) + 2 } }
      local client = assert(login(e))
      cf.sleep(1.5)
      assert.equal("r.txt", assert(client:file_info(id)).name)
      assert.equal(3, #requests(e, "/api/2/idp/token", "POST")) -- raw_token, login, renewal
      assert.equal(1, #requests(e, "/stored-files/" .. id, "GET"))
    end)

    it("gives up after one renewal when the service keeps answering 401", function()
      local id = add_file(e, "r.txt", "renew")
      local client = assert(login(e))
      e:fault { path = "/stored-files/", status = 401, count = 5 }
      local f, err = client:file_info(id)
      assert.is_nil(f)
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      assert.equal(2, #requests(e, "/api/2/idp/token", "POST"))
      assert_no_secret(err)
    end)

    it("reports a refused renewal as kind auth", function()
      local id = add_file(e, "r.txt", "renew")
      local client = assert(login(e))
      e:control("POST", "/_emu/notary/expire", {})
      e:fault { path = "/api/2/idp/token", status = 401,
                body = { error = "access_denied", error_description = "Account locked" } }
      local f, err = client:file_info(id)
      assert.is_nil(f)
      assert.equal("auth", err.kind)
      assert.equal("access_denied", err.code)
      assert.truthy(err.message:find("Account locked", 1, true))
      assert_no_secret(err)
    end)
  end)

  describe("examples/notary_download.lua", function()
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() rmtree(dir) end)

    local function run(args, env)
      local parts = { 'LUA_PATH="./lua/?.lua;./lua/?/init.lua;;"', 'LUA_CPATH="./?.so;;"' }
      for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. shell_quote(v) end
      parts[#parts + 1] = "lua5.4 examples/notary_download.lua"
      for _, a in ipairs(args) do parts[#parts + 1] = shell_quote(a) end
      local p = assert(io.popen(table.concat(parts, " ") .. " 2>&1"))
      local out = p:read("a")
      local _, _, code = p:close()
      return code, out
    end

    local function env_for()
      return { ACRONIS_LOGIN = "demo@example.com", ACRONIS_PASSWORD = PASSWORD,
               ACRONIS_CLOUD_URL = e.url }
    end

    it("downloads a file by id into DEST_DIR and checks it", function()
      local data = random_bytes(4096, 17)
      local id = add_file(e, "lorem_ipsum.txt", data)
      local code, out = run({ id, dir }, env_for())
      assert.equal(0, code, out)
      assert.truthy(out:find("lorem_ipsum.txt", 1, true), out)
      assert.truthy(out:find("4096", 1, true), out)
      assert.truthy(out:find(sha256_of(data), 1, true), out)
      assert.equal(data, read_file(dir .. "/lorem_ipsum.txt"))
    end)

    it("exits non-zero with a clear message for a missing file", function()
      local code, out = run({ "no-such-file", dir }, env_for())
      assert.is_not.equal(0, code)
      assert.truthy(out:find("does not exist or was deleted", 1, true), out)
      assert.is_nil(out:find(PASSWORD, 1, true))
      assert.same({}, listdir(dir))
    end)

    it("exits non-zero on a wrong password without printing it", function()
      local env = env_for()
      env.ACRONIS_PASSWORD = "bad-password-123"
      local code, out = run({ "x", dir }, env)
      assert.is_not.equal(0, code)
      assert.truthy(out:find("auth", 1, true), out)
      assert.is_nil(out:find("bad-password-123", 1, true))
    end)

    it("exits non-zero with usage when no id is given", function()
      local code, out = run({}, env_for())
      assert.is_not.equal(0, code)
      assert.truthy(out:find("usage", 1, true), out)
    end)
  end)
end)

describe("cloudfetch.notary with short-lived tokens", function()
  local e

  lazy_setup(function()
    e = emu.start { tls = false, args = { "--notary-token-ttl", "2" } }
  end)

  lazy_teardown(function()
    if e then e:stop() end
  end)

  it("renews the token before it expires, without a 401", function()
    local id = add_file(e, "s.txt", "short")
    local client = assert(login(e))
    cf.sleep(1.3)
    assert.equal("s.txt", assert(client:file_info(id)).name)
    assert.equal(2, #requests(e, "/api/2/idp/token", "POST"))
    for _, entry in ipairs(e:log()) do
      assert.is_true(entry.status ~= 401, "unexpected 401 on " .. entry.path)
    end
  end)
end)

describe("cloudfetch.notary over TLS", function()
  local e

  lazy_setup(function()
    e = emu.start { tls = true }
  end)

  lazy_teardown(function()
    if e then e:stop() end
  end)

  it("applies the transport options to the router, the token and every call", function()
    local data = random_bytes(10000, 21)
    local id = add_file(e, "tls.bin", data)
    local client = assert(login(e, { ca_file = e.ca_file }))
    local dir = tmpdir()
    local path, bytes = client:save(id, dir)
    local saved = path and read_file(path)
    rmtree(dir)
    assert.equal(#data, bytes)
    assert.equal(data, saved)
    local n = 0
    for _ in client:files() do n = n + 1 end
    assert.equal(1, n)
  end)

  it("fails with kind tls when the server's certificate is not trusted", function()
    local client, err = login(e)
    assert.is_nil(client)
    assert.equal("tls", err.kind)
    assert_no_secret(err)
  end)
end)
