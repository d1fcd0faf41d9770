-- Fuzz loop for the Lua-side decoders of untrusted bytes (run by `make fuzz`,
-- spec/fuzz/run.sh):
--
--   * B2 name codec (cloudfetch.b2.codec): X-Bz-File-Name / X-Bz-Info-*
--     percent-decoding, the encoders it round-trips with, X-Bz-Content-Sha1;
--   * URL redaction and secret scrubbing (cloudfetch.errors): safe_url and
--     scrub, checked by property only (no secret survives), not by their
--     exact output;
--   * B2's authorize answer: codec.parse_authorize on generated tables, and
--     b2.authorize end to end over a fake cf.open answering generated JSON,
--     error bodies echoing the key, transport failures;
--   * Notary's JSON: notary.login (account router, token answers) and
--     client:files / client:file_info pages, over the same fake cf.open.
--
-- Every call must return its documented shape (a value, or nil plus a
-- cloudfetch.Error; an iterator raises only a cloudfetch.Error): a raw Lua
-- error is a failure, and so is a secret in any error a caller could print.
-- The generator is seeded: the seed is printed and FUZZ_SEED=<n> replays the
-- same sequence (FUZZ_ITERATIONS=<n> stops after n iterations; the failing
-- iteration is printed).  It runs for FUZZ_SECONDS (default 10).
--
-- Mutations start from the realistic answers in spec/fuzz/lua_decoders/.
--   LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./?.so;;" \
--     FUZZ_SECONDS=30 lua5.4 spec/fuzz/lua_decoders.lua

local cjson = require "cjson"
local cf = require "cloudfetch"
local errors = require "cloudfetch.errors"
local codec = require "cloudfetch.b2.codec"
local b2 = require "cloudfetch.b2"
local notary = require "cloudfetch.notary"
local download = require "cloudfetch.download"

local seconds = tonumber(os.getenv("FUZZ_SECONDS") or "") or 10
local max_iterations = tonumber(os.getenv("FUZZ_ITERATIONS") or "")
local seed = math.tointeger(tonumber(os.getenv("FUZZ_SEED") or "")) or (os.time() * 1000 + math.random(0, 999))
math.randomseed(seed)
print("lua_decoders: seed " .. seed .. " (FUZZ_SEED=" .. seed .. " replays it)")
io.stdout:flush()

local SEED_DIR = "spec/fuzz/lua_decoders/"
local function read_seed(name)
  local f = assert(io.open(SEED_DIR .. name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local SEEDS = {
  b2_authorize = { read_seed("b2_authorize_v4.json"), read_seed("b2_authorize_v2.json"),
                   read_seed("b2_authorize_v3.json") },
  b2_error = { read_seed("b2_error.json") },
  notary_router = { read_seed("notary_router.json") },
  notary_token = { read_seed("notary_token.json") },
  notary_files = { read_seed("notary_files.json") },
  notary_file = { read_seed("notary_file.json") },
  notary_error = { read_seed("notary_error.json"), read_seed("notary_error_oauth.json"),
                   read_seed("notary_error_quota.json") },
}

-- -------------------------------------------------------------------------
-- generators

local random = math.random

local function pick(list) return list[random(#list)] end

local function bytes(n, lo, hi)
  local t = {}
  for i = 1, n do t[i] = string.char(random(lo or 0, hi or 255)) end
  return table.concat(t)
end

local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local function word(n, alphabet)
  alphabet = alphabet or ALNUM
  local t = {}
  for i = 1, n do
    local k = random(#alphabet)
    t[i] = alphabet:sub(k, k)
  end
  return table.concat(t)
end

-- A secret no other generated text contains by chance: upper case and
-- digits (so never inside "<secret>"), 12 to 40 of them.
local function secret()
  return "S" .. word(random(11, 39), "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
end

-- Strings that stress percent-decoding and name handling.
local function tricky_string()
  local r = random(8)
  if r == 1 then return bytes(random(0, 40)) end
  if r == 2 then return bytes(random(0, 40), 32, 126) end
  if r == 3 then
    local t = {}
    for i = 1, random(0, 20) do
      t[i] = pick{ "%", "%%", "%2", "%41", "%zz", "%ff", "%C3%A9", "+", "%2B", "/", "%2F", "..", ".", " ",
                   "\0", "%00", "\xe2\x80\xae", "a", "Z", "~", "%%25", "%e2%82%ac" }
    end
    return table.concat(t)
  end
  if r == 4 then return word(random(0, 30)) end
  if r == 5 then return ("%"):rep(random(1, 50)) end
  if r == 6 then return ("%41"):rep(random(1, 50)) end
  if r == 7 then return "" end
  return codec.encode_name(bytes(random(0, 30)))
end

local function random_scalar()
  local r = random(14)
  if r == 1 then return cjson.null end
  if r == 2 then return random(0, 1) == 1 end
  if r == 3 then return random(-1000, 1000) end
  if r == 4 then return pick{ 2 ^ 53, 2 ^ 63, -2 ^ 63, 1e308, -0.0, 0.5, 1e-300, math.maxinteger, math.mininteger } end
  if r == 5 then return "" end
  if r == 6 then return pick{ "http://", "https://", "ftp://x", "file:///etc/passwd", "javascript:alert(1)",
                              "https://h.example/", "HTTPS://UP.EXAMPLE//", "http:/x", " https://x", "//x" } end
  if r == 7 then return secret() end
  if r == 8 then return word(64, "0123456789abcdef") end
  if r == 9 then return word(40, "0123456789ABCDEF") end
  if r == 10 then return "\"" .. word(64, "0123456789abcdef") .. "\"" end
  return tricky_string()
end

local function random_value(depth)
  depth = depth or 0
  if depth > 3 or random(3) > 1 then return random_scalar() end
  local t = {}
  if random(2) == 1 then
    for i = 1, random(0, 4) do t[i] = random_value(depth + 1) end
  else
    for _ = 1, random(0, 4) do
      t[pick{ "id", "name", "files", "code", "message", "error", "size", "key", word(random(1, 8)) }] =
        random_value(depth + 1)
    end
  end
  return t
end

-- Changes one spot of a decoded JSON document (in place).
local function mutate_table(t, depth)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local r = random(6)
  if #keys == 0 or r == 1 then
    t[random(2) == 1 and word(random(1, 10)) or random(1, 3)] = random_value()
    return
  end
  local k = pick(keys)
  if r == 2 then
    t[k] = nil
  elseif r == 3 and type(t[k]) == "table" and depth < 6 then
    mutate_table(t[k], depth + 1)
  elseif r == 4 then
    t[k] = cjson.null
  else
    t[k] = random_value()
  end
end

local function mutate_text(s)
  local r = random(5)
  if r == 1 then return s:sub(1, random(0, #s)) end
  if r == 2 then
    local i = random(0, #s)
    return s:sub(1, i) .. bytes(random(1, 4)) .. s:sub(i + 1)
  end
  if r == 3 then
    local i = random(1, math.max(1, #s))
    return s:sub(1, i - 1) .. string.char(random(0, 255)) .. s:sub(i + 1)
  end
  if r == 4 then return pick{ "", "null", "[]", "{}", "\"x\"", "1e999", "NaN", "[[[[[[[[", "{\"a\":", "0x10" } end
  return s .. s
end

-- A JSON text made from one of the seeds: mostly structural mutations of
-- the decoded document, sometimes byte-level ones of the text.
local function answer(kind, extra)
  local text = pick(SEEDS[kind])
  if random(10) == 1 then return mutate_text(text) end
  local doc = cjson.decode(text)
  if extra then extra(doc) end
  for _ = 1, random(0, 3) do mutate_table(doc, 0) end
  local ok, encoded = pcall(cjson.encode, doc)
  if not ok then return text end
  if random(8) == 1 then encoded = mutate_text(encoded) end
  return encoded
end

-- -------------------------------------------------------------------------
-- checks

local current = "" -- what the iteration is doing, for the failure report

local function fail(message)
  error({ fuzz_failure = message }, 0)
end

local function check(cond, message)
  if not cond then fail(message) end
end

local function has(s, needle)
  return type(s) == "string" and s:find(needle, 1, true) ~= nil
end

-- No secret in anything an error shows: tostring, message, url, code.
local function check_error(err, secrets, what)
  check(errors.is_error(err), what .. ": the error is not a cloudfetch.Error: " .. tostring(err))
  check(type(err.message) == "string", what .. ": the error has no message")
  for _, s in ipairs(secrets) do
    for _, field in ipairs{ tostring(err), err.message, err.url, err.code } do
      if has(field, s) then fail(what .. ": a secret is in the error: " .. field) end
    end
  end
end

-- Calls f; a raw Lua error (not a cloudfetch.Error) is a failure.
local function guarded(what, f, ...)
  local res = table.pack(pcall(f, ...))
  if not res[1] then
    local e = res[2]
    if type(e) == "table" and e.fuzz_failure then error(e, 0) end
    if errors.is_error(e) then return "raised", e end
    fail(what .. ": raw Lua error: " .. tostring(e))
  end
  return table.unpack(res, 2, res.n)
end

-- -------------------------------------------------------------------------
-- targets

local SAFE_NAME = "^[A-Za-z0-9%-%._~!%$'%(%)%*;=:@/%%]*$"

local function fuzz_codec()
  local s = tricky_string()
  current = string.format("codec with %q", s)
  local d = guarded("codec.decode", codec.decode, s)
  check(type(d) == "string", "codec.decode did not return a string")
  local enc = guarded("codec.encode_name", codec.encode_name, s)
  check(enc:find(SAFE_NAME), "encode_name left an unsafe byte: " .. enc)
  check(codec.decode(enc) == s, "decode(encode_name(s)) ~= s")
  local seg = codec.encode_segment(s)
  check(not seg:find("/", 1, true), "encode_segment left a '/'")
  check(codec.decode(seg) == s, "decode(encode_segment(s)) ~= s")
  -- X-Bz-Info-* the way b2.lua's describe reads a response's headers
  local info = {}
  local headers = { ["x-bz-info-" .. s:lower()] = tricky_string(), ["x-bz-file-name"] = s }
  for k, v in pairs(headers) do
    if k:sub(1, 10) == "x-bz-info-" then info[codec.decode(k:sub(11)):lower()] = codec.decode(v) end
  end
  check(next(info) ~= nil, "no info decoded")
  -- X-Bz-Content-Sha1
  local hex40 = word(40, "0123456789abcdefABCDEF")
  local header = pick{ hex40, "unverified:" .. hex40, "none", "", s, " " .. hex40 .. " ", "UNVERIFIED:" .. hex40 }
  current = string.format("expected_sha1 with %q", header)
  local sha = guarded("codec.expected_sha1", codec.expected_sha1, header, pick{ nil, hex40, s, 42 })
  check(sha == nil or (type(sha) == "string" and sha:find("^[0-9a-f]+$") and #sha == 40),
    "expected_sha1 gave " .. tostring(sha))
  if header == hex40 or header == "unverified:" .. hex40 then
    check(sha == hex40:lower(), "expected_sha1 lost a valid SHA-1")
  end
end

local PARAMS = { "authorization", "Authorization", "token", "TOKEN", "access_token", "password", "key",
                 "client_secret", "signature", "Signature" }

local function fuzz_redaction()
  local secrets, parts = {}, {}
  local scheme = pick{ "http://", "https://", "HTTPS://" }
  local userinfo = ""
  local r = random(4)
  if r == 1 then
    local pw = secret()
    secrets[#secrets + 1] = pw
    userinfo = word(random(1, 8)) .. ":" .. pw .. "@"
  elseif r == 2 then
    local user = secret()
    secrets[#secrets + 1] = user
    userinfo = user .. "@"
  end
  local path = pick{ "", "/", "/file/bucket/a%20b", "/p@x", "/b2api/v2/b2_download_file_by_id", "/a?b/c" }
  local query = {}
  for _ = 1, random(0, 4) do
    if random(2) == 1 then
      local v = secret()
      secrets[#secrets + 1] = v
      query[#query + 1] = pick(PARAMS) .. "=" .. v
    else
      query[#query + 1] = word(random(1, 6), "abcdefxyz_") .. "=" .. word(random(0, 10))
    end
  end
  parts[1] = scheme .. userinfo .. pick{ "h.example", "127.0.0.1:8080", "[::1]:443" } .. path
  if #query > 0 then
    local sep = path:find("?", 1, true) and "&" or "?"
    parts[2] = sep .. table.concat(query, "&")
  end
  if random(4) == 1 then parts[#parts + 1] = "#" .. word(random(0, 8)) end
  local url = table.concat(parts)
  current = string.format("safe_url(%q)", url)
  local safe = guarded("errors.safe_url", errors.safe_url, url)
  check(type(safe) == "string", "safe_url did not return a string")
  for _, s in ipairs(secrets) do
    check(not has(safe, s), "safe_url left the secret " .. s .. " in " .. safe)
  end

  -- scrub: secrets anywhere in a message, repeated, adjacent, overlapping
  local list = {}
  for i = 1, random(1, 4) do list[i] = secret() end
  if random(3) == 1 then list[#list + 1] = list[1]:sub(1, random(4, #list[1])) end -- a prefix of another
  local pieces = {}
  for i = 1, random(1, 8) do
    pieces[i] = random(2) == 1 and pick(list) or bytes(random(0, 6))
  end
  local message = table.concat(pieces)
  local holes = {}
  for i, s in ipairs(list) do holes[i * 2] = s end -- the table may have holes
  current = string.format("scrub(%q)", message)
  local out = guarded("errors.scrub", errors.scrub, message, holes)
  check(type(out) == "string", "scrub did not return a string")
  for _, s in ipairs(list) do
    check(not has(out, s), "scrub left the secret " .. s .. " in " .. out)
  end
  check(guarded("errors.scrub", errors.scrub, nil, holes) == nil, "scrub(nil) is not nil")
end

-- The fake transport: cf.open answers from `script`, a function of the
-- URL and options returning status, body (or nil, err for a failure).
local script
local opened = {}

local function fake_download(url, status, body)
  local d = { url = url, status = status, headers = { ["content-type"] = "application/json" } }
  local closed = false
  local cut = random(12) == 1 -- the body breaks off with a network error
  function d.read_all()
    if cut then
      return nil, cf.Error.new{ kind = "network", message = "connection reset", retryable = true }
    end
    return body
  end
  function d.json(self) return download.Download.json(self) end
  function d.chunks()
    local pos = 1
    return function()
      if pos > #body then
        if cut then error(cf.Error.new{ kind = "network", message = "connection reset" }, 0) end
        return nil
      end
      local n = random(1, 64)
      local s = body:sub(pos, pos + n - 1)
      pos = pos + n
      return s
    end
  end
  function d.close() closed = true end
  function d.is_closed() return closed end
  return d
end

local real_open = cf.open
cf.open = function(url, opts)
  check(type(url) == "string", "cf.open got a URL that is not a string")
  check(opts == nil or type(opts) == "table", "cf.open got options that are not a table")
  if random(25) == 1 then
    return nil, cf.Error.new{ kind = pick{ "network", "timeout", "tls" }, message = "transport failure", url = url,
                              retryable = true }
  end
  local status, body = script(url, opts)
  local d = fake_download(url, status, body)
  opened[#opened + 1] = d
  return d
end

-- An error answer, sometimes echoing what the caller sent.
local function error_body(kind, secrets)
  return answer(kind, function(doc)
    if random(2) == 1 and #secrets > 0 then
      local s = pick(secrets)
      local field = next(doc) or "message"
      if type(doc[field]) ~= "string" then field = "message" end
      doc[field] = "echo: " .. s .. " :echo"
    end
  end)
end

local ERROR_STATUS = { 400, 401, 403, 404, 429, 500, 503 }

local function fuzz_b2()
  -- codec.parse_authorize on its own, with any table or value
  local doc = random_value()
  if random(5) > 1 then
    local ok, decoded = pcall(cjson.decode, answer("b2_authorize"))
    if ok then doc = decoded end
  end
  current = "parse_authorize(" .. (pcall(cjson.encode, doc) and cjson.encode(doc) or tostring(doc)) .. ")"
  local info, reason = guarded("codec.parse_authorize", codec.parse_authorize, doc)
  if info == nil then
    check(type(reason) == "string", "parse_authorize: nil without a reason")
  else
    check(type(info) == "table", "parse_authorize returned " .. type(info))
    check(type(info.token) == "string" and info.token ~= "", "parse_authorize: no token")
    for _, u in ipairs{ info.api_url, info.download_url } do
      check(type(u) == "string" and u:lower():find("^https?://[^/]"),
        "parse_authorize accepted the URL " .. tostring(u))
    end
    check(type(info.allowed) == "table" and type(info.allowed.capabilities) == "table", "no allowed.capabilities")
  end

  -- b2.authorize end to end
  local key, token = secret(), secret()
  local secrets = { key } -- what the client holds while it authorizes (the token only once it is accepted)
  local texts = {}
  script = function()
    local status = random(4) == 1 and pick(ERROR_STATUS) or 200
    local body
    if status == 200 then
      body = answer("b2_authorize", function(d)
        if type(d) == "table" then d.authorizationToken = token end
      end)
    else
      body = error_body("b2_error", secrets)
    end
    texts[#texts + 1] = body
    return status, body
  end
  current = "b2.authorize"
  local client, err = guarded("b2.authorize", b2.authorize, { key_id = "0012345abcdef0000000001", key = key,
                                                               realm = "https://realm.example" })
  current = "b2.authorize answered " .. table.concat(texts, " | ")
  if client == "raised" then fail("b2.authorize raised " .. tostring(err)) end
  if client == nil then
    check_error(err, secrets, "b2.authorize")
  else
    check(type(client) == "table", "b2.authorize returned " .. type(client))
    check(not has(tostring(client), key) and not has(tostring(client), token), "a secret in tostring(client)")
    for k, v in pairs(client) do
      check(not has(v, key) and not has(v, token), "a secret in client." .. tostring(k))
    end
    check(type(client.api_url) == "string" and client.api_url:lower():find("^https?://"), "client.api_url")
  end
end

local function fuzz_notary()
  local password, client_secret, token = secret(), secret(), secret()
  local secrets = {} -- the secrets the client holds: they may be echoed, and must never show
  local token_intact = true
  local texts = {}
  script = function(url)
    local path = url:match("^https?://[^/]+(/[^?]*)") or url
    local failed = random(6) == 1
    local status = failed and pick(ERROR_STATUS) or 200
    local body
    if failed then
      body = error_body("notary_error", secrets)
    elseif path == "/api/1/accounts" then
      body = answer("notary_router")
    elseif path == "/api/2/idp/token" then
      body = answer("notary_token", function(d)
        if type(d) == "table" then d.access_token = token end
      end)
      local ok, d = pcall(cjson.decode, body)
      -- the client holds exactly `token` only when no answer changed it
      token_intact = token_intact and ok and type(d) == "table" and d.access_token == token
      if not token_intact then secrets[2] = nil end -- replaced: the client holds another token now
    elseif path:find("^/api/notary/v2/stored%-files/") then
      body = answer("notary_file")
    else
      body = answer("notary_files")
    end
    texts[#texts + 1] = path .. " " .. status .. " " .. body
    return status, body
  end
  local opts
  if random(2) == 1 then
    opts = { login = "user@example.com", password = password }
    if random(3) == 1 then opts.server_url = "https://eu2-cloud.example" end
    secrets[1] = password
  else
    opts = { client_id = "7c3f8a6e-client", client_secret = client_secret, server_url = "https://eu2-cloud.example/" }
    secrets[1] = client_secret
  end
  current = "notary.login"
  local client, err = guarded("notary.login", notary.login, opts)
  local function where() return table.concat(texts, " | ") end
  if client == "raised" then fail("notary.login raised " .. tostring(err) .. " after " .. where()) end
  if client == nil then
    current = "notary.login answered " .. where()
    check_error(err, secrets, "notary.login")
    return
  end
  check(not has(tostring(client), password) and not has(tostring(client), token), "a secret in tostring(client)")
  if token_intact then secrets[2] = token end -- accepted by now

  -- the listing: an iterator that raises only cloudfetch.Errors
  current = "client:files"
  local n = 0
  local ok, e = pcall(function()
    for f in client:files{ limit = random(1, 100) } do
      n = n + 1
      check(type(f) == "table", "a listed file is not a table")
      check(f.id == nil or type(f.id) == "string", "file.id is a " .. type(f.id))
      check(f.name == nil or type(f.name) == "string", "file.name is a " .. type(f.name))
      check(f.size == nil or math.type(f.size) == "integer", "file.size is " .. tostring(f.size))
      check(f.sha256 == nil or (#f.sha256 == 64 and f.sha256:find("^[0-9a-f]+$")),
        "file.sha256 " .. tostring(f.sha256))
      if n >= 30 then break end
    end
  end)
  if not ok then
    if type(e) == "table" and e.fuzz_failure then error(e, 0) end
    current = "client:files answered " .. where()
    if not errors.is_error(e) then fail("client:files raised a raw Lua error: " .. tostring(e)) end
    check_error(e, secrets, "client:files")
  end

  current = "client:file_info"
  local info, ierr = guarded("client:file_info", client.file_info, client, "0f6c4d1e-file")
  current = "client:file_info answered " .. where()
  if info == "raised" then fail("client:file_info raised " .. tostring(ierr)) end
  if info == nil then
    check_error(ierr, secrets, "client:file_info")
  else
    check(info.id == "0f6c4d1e-file" or type(info.id) == "string", "file_info without an id")
    check(info.size == nil or math.type(info.size) == "integer", "file_info size " .. tostring(info.size))
  end
end

-- -------------------------------------------------------------------------
-- the loop

local TARGETS = { codec = fuzz_codec, redaction = fuzz_redaction, b2 = fuzz_b2, notary = fuzz_notary }
local NAMES = { "codec", "redaction", "b2", "notary" }
local counts = {}
for _, name in ipairs(NAMES) do counts[name] = 0 end

local started = os.time()
local iteration = 0
while true do
  if max_iterations and iteration >= max_iterations then break end
  if not max_iterations and os.time() - started >= seconds then break end
  iteration = iteration + 1
  local name = NAMES[(iteration - 1) % #NAMES + 1]
  opened = {}
  local ok, e = pcall(TARGETS[name])
  if ok then -- every answer opened was closed again
    for i, d in ipairs(opened) do
      if not d.is_closed() then ok, e = false, { fuzz_failure = "download " .. i .. " (" .. d.url .. ") left open" } end
    end
  end
  if not ok then
    local message = type(e) == "table" and e.fuzz_failure or ("harness error: " .. tostring(e))
    io.stderr:write(string.format("lua_decoders: FAILED at iteration %d (%s), seed %d\n  %s\n  input: %s\n" ..
      "  replay: FUZZ_SEED=%d FUZZ_ITERATIONS=%d lua5.4 spec/fuzz/lua_decoders.lua\n",
      iteration, name, seed, message, current:sub(1, 2000), seed, iteration))
    os.exit(1)
  end
  counts[name] = counts[name] + 1
end
cf.open = real_open

local summary = {}
for _, name in ipairs(NAMES) do summary[#summary + 1] = name .. " " .. counts[name] end
print(string.format("lua_decoders: %d iterations in %d s (%s), seed %d", iteration, os.time() - started,
  table.concat(summary, ", "), seed))
