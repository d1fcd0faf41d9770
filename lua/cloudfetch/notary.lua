--- Download files kept in Acronis Cyber Cloud Notary storage (Notary API
-- v2), with the Acronis account router and IdP token endpoint.
--
-- A stored-file table has at least `id`, `name`, `size` (integer), `sha256`
-- (the certificate's `eTag`, or nil), `created_at` and `raw` (the service's
-- object as returned).  A client renews its token by itself when it expires
-- (or on a 401), once per call.
-- @module cloudfetch.notary
-- @usage
-- local notary = require "cloudfetch.notary"
-- local client = assert(notary.login{ login = "...", password = "..." })
-- for f in client:files{ limit = 100 } do print(f.id, f.name, f.size) end
-- local path, bytes = assert(client:save(file_id, "downloads/"))

-- Where Acronis documents nothing (the list's paging parameters, where a
-- stored file keeps its name and size) the choices are in README.md
-- (section "Acronis Notary").
local cf = require "cloudfetch"
local cjson = require "cjson.safe"
local errors = require "cloudfetch.errors"
local mirror = require "cloudfetch.mirror"
local options = require "cloudfetch.options"
local save = require "cloudfetch.save"
local sched = require "cloudfetch.sched"

local notary = {}

local DEFAULT_CLOUD_URL = "https://cloud.acronis.com"
local DEFAULT_LIFETIME = 2 * 3600 -- Acronis: tokens expire after 2 hours
local RENEW_MARGIN = 60           -- renew when fewer seconds than this are left

-- Options a client keeps and applies to every request it sends.
local TRANSPORT = options.TRANSPORT

-- Credentials and tokens live here, keyed by client, so they never show up
-- when a client table is printed, dumped or inspected.
local secrets = setmetatable({}, { __mode = "k" })

local Client = {}
Client.__index = Client

-- -------------------------------------------------------------------------
-- small helpers

local function table_or_nil(v)
  if type(v) == "table" then return v end
  return nil
end

local function string_or_nil(v)
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

local function integer_or_nil(v)
  if type(v) == "string" then v = tonumber(v) end
  if type(v) == "number" then return math.tointeger(v) end
  return nil
end

local function strip_slash(url)
  return (url:gsub("/+$", ""))
end

-- A service may echo what it was sent; make sure no secret survives into a message.
local function scrub(message, s)
  if not s then return message end
  return errors.scrub(message, { s.password, s.client_secret, s.token })
end

-- `level` is for error(): the user's call site as seen from here.
local function check_type(fname, name, value, expected, level)
  local t = type(value)
  for alt in expected:gmatch("[^|]+") do
    if t == alt then return end
  end
  error(string.format("%s: option '%s' must be a %s, got %s", fname, name,
    (expected:gsub("|", " or ")), t), level)
end

-- Raises on unknown option names and wrong types; `allowed` maps name -> type.
local function check_options(fname, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(string.format("%s: options must be a table, got %s", fname, type(opts)), 3)
  end
  for name, value in pairs(opts) do
    local expected = allowed[name] or TRANSPORT[name]
    if not expected then
      error(string.format("%s: unknown option '%s'", fname, tostring(name)), 3)
    end
    check_type(fname, name, value, expected, 4)
  end
  return opts
end

local function require_string(fname, opts, name)
  local v = opts[name]
  if type(v) ~= "string" or v == "" then
    error(string.format("%s: option '%s' (a non-empty string) is required", fname, name), 3)
  end
  return v
end

local function check_id(fname, id)
  if type(id) ~= "string" or id == "" then
    error(string.format("%s: file id must be a non-empty string, got %s", fname, type(id)), 3)
  end
end

local function protocol_error(message, url)
  return cf.Error.new { kind = "protocol", message = "notary: " .. message, url = url,
                        retryable = false }
end

-- -------------------------------------------------------------------------
-- error answers -> cloudfetch.Error

local REASONS = {
  [400] = "bad request", [401] = "the access token was refused", [402] = "payment required",
  [403] = "access denied", [404] = "not found", [405] = "method not allowed",
  [409] = "conflict", [413] = "too large", [415] = "unsupported media type",
  [429] = "too many requests", [500] = "internal server error", [502] = "bad gateway",
  [503] = "service unavailable", [504] = "gateway timeout",
}

-- Reads an error body (JSON or empty) and returns code, message, extra fields.
-- Shapes understood: Notary {"domain","code","debug":{"message"}}; the
-- platform's {"error":{"code","message"}}; OAuth's {"error","error_description"};
-- the quota answer {"message","quota":{...}}.
local function parse_error_body(text)
  local body = text and text ~= "" and table_or_nil(cjson.decode(text))
  if not body then return nil, nil, nil end
  local code, message
  local inner = table_or_nil(body.error)
  if inner then
    code = inner.code
    message = string_or_nil(inner.message)
  else
    code = body.error or body.code
    message = string_or_nil(body.error_description)
      or string_or_nil((table_or_nil(body.debug) or {}).message)
      or string_or_nil(body.message)
  end
  if type(code) == "number" then code = tostring(math.tointeger(code) or code) end
  code = string_or_nil(code)
  local quota = table_or_nil(body.quota)
  if quota and not message then message = "quota limit reached" end
  return code, message, quota
end

local function describe_quota(q)
  local name = string_or_nil(q.name) or "quota"
  local usage, limit = integer_or_nil(q.usage), integer_or_nil(q.quota)
  if usage and limit then
    return string.format("%s: %d used of %d", name, usage, limit)
  end
  return name
end

-- Turns a non-2xx Download into a cloudfetch.Error and closes it.
-- ctx: { what = "listing stored files", file_id = id?, kind = "auth"?, s = secrets? }
local function answer_error(d, ctx)
  local status = d.status
  local text = d:read_all()
  d:close()
  local code, detail, quota = parse_error_body(text)
  code = code and scrub(code, ctx.s) -- a service may echo a secret anywhere
  local kind = ctx.kind or ((status == 401 or status == 403) and "auth" or "api")
  local message
  if status == 404 and ctx.file_id then
    message = string.format("notary: file %s does not exist or was deleted", ctx.file_id)
    if detail then message = message .. ": " .. detail end
  else
    detail = detail or REASONS[status] or "unexpected answer"
    if quota then detail = detail .. " (" .. describe_quota(quota) .. ")" end
    if status == 401 and ctx.cannot_renew then
      detail = detail .. "; a token given to connect{} cannot be renewed, log in again"
    end
    message = string.format("notary: %s failed: %s", ctx.what, detail)
  end
  message = string.format("%s (%d%s)", message, status, code and (" " .. code) or "")
  local err = cf.Error.new {
    kind = kind, status = status, code = code, url = d.url,
    message = scrub(message, ctx.s),
    retryable = errors.retryable_status(status),
  }
  if quota then err.quota = quota end
  return err
end

-- The body of a 2xx Download decoded as a JSON object, or nil, err.
local function read_json(d, what)
  local text, err = d:read_all()
  d:close()
  if not text then return nil, err end
  local body = table_or_nil(cjson.decode(text))
  if not body then
    return nil, protocol_error(what .. ": the answer is not a JSON object", d.url)
  end
  return body
end

-- -------------------------------------------------------------------------
-- transport

-- cf.open options: the client's transport options, then the call's, then ours.
local function open_options(transport, call, method, headers)
  local o = {}
  for k, v in pairs(transport) do o[k] = v end
  for k, v in pairs(call or {}) do o[k] = v end
  local h, ours = {}, {}
  for k in pairs(headers or {}) do ours[k:lower()] = true end
  for k, v in pairs(o.headers or {}) do
    -- A caller's header never doubles one the module sets (e.g. Authorization).
    if type(k) ~= "string" or not ours[k:lower()] then h[k] = v end
  end
  for k, v in pairs(headers or {}) do h[k] = v end
  o.headers = h
  o.method = method
  return o
end

-- Token request; `form` is the urlencoded body, `basic` an optional
-- "Authorization: Basic" value.  Returns token, expires_at or nil, err.
local function request_token(server_url, transport, form, basic, s)
  local headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Accept"] = "application/json",
    ["Authorization"] = basic,
  }
  local o = open_options(transport, nil, "POST", headers)
  o.body = form
  local d, err = cf.open(server_url .. "/api/2/idp/token", o)
  if not d then return nil, err end
  if d.status < 200 or d.status > 299 then
    local refused = d.status == 400 or d.status == 401 or d.status == 403
    return nil, answer_error(d, { what = "login", s = s, kind = refused and "auth" or nil })
  end
  local body, jerr = read_json(d, "login")
  if not body then return nil, jerr end
  local token = string_or_nil(body.access_token)
  if not token then
    return nil, protocol_error("login: the token answer has no access_token", d.url)
  end
  local now = cf.now()
  local expires_at = tonumber(body.expires_on)
  if not expires_at and tonumber(body.expires_in) then
    expires_at = now + tonumber(body.expires_in)
  end
  return token, expires_at or (now + DEFAULT_LIFETIME)
end

local function form_encode(fields)
  local parts = {}
  for _, kv in ipairs(fields) do
    parts[#parts + 1] = cf.urlencode(kv[1]) .. "=" .. cf.urlencode(kv[2])
  end
  return table.concat(parts, "&")
end

-- Takes a new token with the credentials the client was made with.
local function renew(self)
  local s = secrets[self]
  local form, basic
  if s.client_id then
    form = form_encode { { "grant_type", "client_credentials" } }
    basic = "Basic " .. cf.base64(s.client_id .. ":" .. s.client_secret)
  else
    form = form_encode { { "grant_type", "password" }, { "username", s.login },
                         { "password", s.password } }
  end
  local token, expires_at = request_token(self.server_url, s.transport, form, basic, s)
  if not token then return nil, expires_at end
  s.token, s.expires_at, s.issued_at = token, expires_at, cf.now()
  return true
end

-- True when the token is close enough to its expiry to renew it now.  The
-- margin shrinks for short-lived tokens so they are not renewed on every call.
local function due(s)
  if not s.expires_at then return false end
  local lifetime = s.expires_at - (s.issued_at or s.expires_at)
  local margin = math.min(RENEW_MARGIN, lifetime / 2)
  return cf.now() >= s.expires_at - margin
end

-- Takes a new token unless `used` was replaced meanwhile.  Tasks of one
-- client that need a new token together share one renewal: the first does
-- it, the others wait for it.
local function renew_once(self, used)
  local s = secrets[self]
  while s.token == used and s.renewing do
    sched.wait(nil, function() return not s.renewing end)
  end
  if s.token ~= used then return true end
  s.renewing = true
  local _ <close> = setmetatable({}, { __close = function() s.renewing = false end })
  return renew(self)
end

-- Sends one authorized request and returns the Download (any status) or
-- nil, err.  The token is renewed first when it is about to expire, and once
-- after a 401, after which the request is sent again.
local function send(self, method, url, call_opts, extra_headers)
  local s = secrets[self]
  if s.renewable and due(s) then
    local ok, err = renew_once(self, s.token)
    if not ok then return nil, err end
  end
  local renewed_after_401 = false
  while true do
    local used = s.token
    local headers = { ["Authorization"] = "Bearer " .. used }
    for k, v in pairs(extra_headers or {}) do headers[k] = v end
    local d, err = cf.open(url, open_options(s.transport, call_opts, method, headers))
    if not d then return nil, err end
    if d.status ~= 401 or not s.renewable or renewed_after_401 then return d end
    d:close()
    local ok, rerr = renew_once(self, used)
    if not ok then return nil, rerr end
    renewed_after_401 = true
  end
end

-- GET a JSON object from the Notary API: the decoded body or nil, err.
local function get_json(self, path, query, ctx)
  local d, err = send(self, "GET", self.base_url .. path, { query = query },
                      { ["Accept"] = "application/json" })
  if not d then return nil, err end
  if d.status < 200 or d.status > 299 then
    ctx.s = secrets[self]
    ctx.cannot_renew = not secrets[self].renewable
    return nil, answer_error(d, ctx)
  end
  return read_json(d, ctx.what)
end

-- -------------------------------------------------------------------------
-- stored-file tables

local function hex64(v)
  if type(v) ~= "string" then return nil end
  v = v:match('^%s*"?(%x+)"?%s*$') -- tolerate an HTTP-style quoted ETag
  if v and #v == 64 then return v:lower() end
  return nil
end

-- The service object made uniform.  Acronis's docs show the certificate part
-- only, so each field is looked for where it may be (README.md, section "Acronis Notary").
local function stored_file(raw)
  local cert = table_or_nil(raw.certificate) or {}
  local obj = table_or_nil(cert.object) or {}
  local id = string_or_nil(raw.id) or string_or_nil(raw.file_id) or string_or_nil(raw.uuid)
  return {
    id = id,
    name = string_or_nil(raw.name) or string_or_nil(raw.key) or string_or_nil(obj.key),
    size = integer_or_nil(raw.size) or integer_or_nil(obj.size),
    sha256 = hex64(obj.eTag) or hex64(raw.sha256),
    created_at = string_or_nil(raw.created_at),
    certificate_id = string_or_nil(raw.certificate_id) or string_or_nil(cert.id),
    raw = raw,
  }
end

-- -------------------------------------------------------------------------
-- clients

local function new_client(server_url, s)
  local self = setmetatable({
    server_url = server_url,
    base_url = server_url .. "/api/notary/v2",
  }, Client)
  secrets[self] = s
  return self
end

-- Copies the transport options out of a login/connect options table.
local function transport_of(opts)
  local t = {}
  for name in pairs(TRANSPORT) do t[name] = opts[name] end
  return t
end

local LOGIN_OPTIONS = {
  login = "string", password = "string", cloud_url = "string", server_url = "string",
  client_id = "string", client_secret = "string",
}

--- Logs in and returns a client.  With `login` and `password` it asks the
-- account router (`<cloud_url>/api/1/accounts`) for the data centre, unless
-- `server_url` is given, then takes a password-grant token; with
-- `client_id`, `client_secret` and `server_url` it takes a
-- client-credentials token.
-- @tparam table opts `login`, `password`, optional `cloud_url` (default
-- `"https://cloud.acronis.com"`) or `server_url`; or `client_id`,
-- `client_secret`, `server_url`; and `cloudfetch.open`'s transport options
-- @treturn[1] Client
-- @return[2] nil
-- @treturn[2] cloudfetch.Error kind `"auth"` when refused
-- @raise on misuse: a missing credential, an unknown option
function notary.login(opts)
  local fname = "notary.login"
  if type(opts) ~= "table" then
    error(fname .. ": options table expected, got " .. type(opts), 2)
  end
  check_options(fname, opts, LOGIN_OPTIONS)
  local transport = transport_of(opts)
  local s = { transport = transport, renewable = true }
  local server_url
  if opts.client_id ~= nil or opts.client_secret ~= nil then
    if opts.login ~= nil or opts.password ~= nil then
      error(fname .. ": give either login/password or client_id/client_secret, not both", 2)
    end
    s.client_id = require_string(fname, opts, "client_id")
    s.client_secret = require_string(fname, opts, "client_secret")
    server_url = strip_slash(require_string(fname, opts, "server_url"))
  else
    s.login = require_string(fname, opts, "login")
    s.password = require_string(fname, opts, "password")
    if opts.server_url then
      server_url = strip_slash(opts.server_url)
    else
      -- The router tells which data centre holds the account.
      local cloud_url = strip_slash(opts.cloud_url or DEFAULT_CLOUD_URL)
      local o = open_options(transport, { query = { login = s.login } }, "GET",
                             { ["Accept"] = "application/json" })
      local d, err = cf.open(cloud_url .. "/api/1/accounts", o)
      if not d then return nil, err end
      if d.status < 200 or d.status > 299 then
        return nil, answer_error(d, { what = "account lookup", s = s })
      end
      local body, jerr = read_json(d, "account lookup")
      if not body then return nil, jerr end
      server_url = string_or_nil(body.server_url)
      if not server_url then
        return nil, protocol_error("account lookup: the router gave no server_url", d.url)
      end
      if not server_url:match("^[Hh][Tt][Tt][Pp][Ss]?://[^/]") then
        return nil, protocol_error("account lookup: the router gave a server_url that is not http(s): "
          .. server_url:sub(1, 100), d.url)
      end
      server_url = strip_slash(server_url)
    end
  end
  local self = new_client(server_url, s)
  local ok, err = renew(self)
  if not ok then
    secrets[self] = nil
    return nil, err
  end
  return self
end

local CONNECT_OPTIONS = { server_url = "string", token = "string", expires_on = "number" }

--- A client for a token obtained elsewhere.  It cannot renew the token: once
-- the service refuses it, calls fail with kind `"auth"`.
-- @tparam table opts `server_url`, `token`, optional `expires_on` (Unix
-- seconds), and `cloudfetch.open`'s transport options
-- @treturn Client
function notary.connect(opts)
  local fname = "notary.connect"
  if type(opts) ~= "table" then
    error(fname .. ": options table expected, got " .. type(opts), 2)
  end
  check_options(fname, opts, CONNECT_OPTIONS)
  local server_url = strip_slash(require_string(fname, opts, "server_url"))
  local s = {
    transport = transport_of(opts), renewable = false,
    token = require_string(fname, opts, "token"), expires_at = opts.expires_on,
  }
  return new_client(server_url, s)
end

Client.__tostring = function(self)
  return "notary.client(" .. self.server_url .. ")"
end

--- A Notary client: what @{login} and @{connect} return.  Fields:
-- `server_url` (the data centre) and `base_url`
-- (`<server_url>/api/notary/v2`).  Credentials and tokens are not kept in
-- the table, so printing it leaks nothing.
-- @type Client

--- Iterator over the stored files, page by page.
-- @tparam[opt] table opts `{ limit = }`: the page size asked of the service
-- @return an iterator over stored-file tables
-- @raise the cloudfetch.Error when a page cannot be listed
function Client:files(opts)
  opts = check_options("client:files", opts, { limit = "number" })
  for name in pairs(opts) do
    if TRANSPORT[name] then error("client:files: unknown option '" .. name .. "'", 2) end
  end
  local limit = opts.limit
  if limit ~= nil and (math.tointeger(limit) == nil or limit < 1) then
    error("client:files: option 'limit' must be a positive integer", 2)
  end
  local page, index = {}, 0
  local after, last_page, seen = nil, false, {}
  return function()
    while true do
      if index < #page then
        index = index + 1
        local raw = page[index]
        if type(raw) ~= "table" then
          error(protocol_error("listing stored files: a list item is not an object"), 0)
        end
        return stored_file(raw)
      end
      if last_page then return nil end
      local body, err = get_json(self, "/stored-files",
                                 { limit = limit and tostring(math.tointeger(limit)), after = after },
                                 { what = "listing stored files" })
      if not body then error(err, 0) end
      local files = body.files
      if files == nil or files == cjson.null then files = {} end
      if type(files) ~= "table" then
        error(protocol_error("listing stored files: 'files' is not a list"), 0)
      end
      page, index = files, 0
      -- No cursor (absent or empty paging/cursors/after) means the last page.
      local cursors = table_or_nil((table_or_nil(body.paging) or {}).cursors) or {}
      local next_after = cursors.after
      if type(next_after) == "number" then next_after = tostring(math.tointeger(next_after) or next_after) end
      next_after = string_or_nil(next_after)
      if not next_after then
        last_page = true
      elseif seen[next_after] then
        -- The same cursor again would loop for ever.
        error(protocol_error("listing stored files: the service repeated a paging cursor"), 0)
      else
        seen[next_after] = true
        after = next_after
      end
    end
  end
end

--- The stored-file table of one file.
-- @tparam string id the file id
-- @treturn[1] table
-- @return[2] nil
-- @treturn[2] cloudfetch.Error (404: the file does not exist or was deleted)
function Client:file_info(id)
  check_id("client:file_info", id)
  local body, err = get_json(self, "/stored-files/" .. cf.urlencode(id), nil,
                             { what = "file info for " .. id, file_id = id })
  if not body then return nil, err end
  local raw = table_or_nil(body.file) or body
  local f = stored_file(raw)
  f.id = f.id or id
  return f
end

-- The checks of open (saving = false) and save options: cf.open's, and
-- cf.save's for a save.
local function check_download_opts(fn, opts, saving)
  local open, save_opts = options.split(fn, opts)
  if not saving then
    local k = next(save_opts)
    if k then options.misuse(fn, "unknown option '" .. k .. "'") end
  end
  options.prepare(fn, "https://notary.invalid/", open) -- raises on misuse
  return open, save_opts
end

local function open_file(self, id, opts)
  local url = self.base_url .. "/stored-files/" .. cf.urlencode(id) .. "/download"
  local d, err = send(self, "GET", url, opts)
  if not d then return nil, err end
  if d.status < 200 or d.status > 299 then
    local s = secrets[self]
    return nil, answer_error(d, { what = "download of file " .. id, file_id = id, s = s,
                                  cannot_renew = not s.renewable })
  end
  d.file_id = id
  return d
end

--- Opens a stored file's bytes (`/stored-files/{id}/download`).
-- @tparam string id the file id
-- @tparam[opt] table opts as `cloudfetch.open` (the method and the
-- Authorization header are the module's)
-- @treturn[1] cloudfetch.Download
-- @return[2] nil
-- @treturn[2] cloudfetch.Error (404: the file does not exist or was deleted)
function Client:open(id, opts)
  check_id("client:open", id)
  local open = options.checked(check_download_opts, "client:open", opts, false)
  return open_file(self, id, open)
end

local function check_save(fn, path, opts)
  options.check_path(fn, path)
  local open, save_opts = check_download_opts(fn, opts, true)
  save_opts.auto_parallel = true -- big files in parallel parts, unless parallel says otherwise
  return open, save_opts
end

-- Saves the file that `info` (a stored-file table) describes.
local function save_file(self, info, path_or_dir, open, save_opts)
  local id = info.id
  local function opener(o)
    local d, oerr = open_file(self, id, o)
    if not d then return nil, oerr end
    d.name_hint = info.name or id
    d.entity_expect = { size = info.size, sha256 = info.sha256 }
    if d.status == 200 then
      d:expect { size = info.size, sha256 = info.sha256 }
    elseif d.status == 206 and d.range then
      d:expect { size = d.range.last - d.range.first + 1 }
    end
    return d
  end
  return save.run(opener, path_or_dir, open, save_opts)
end

--- Downloads a file to `path_or_dir` and verifies its size and SHA-256
-- against the file info.  In a directory the file is named after the
-- server's Content-Disposition (else the info's name).  Nothing is left on
-- disk after a failure.  Files of 100 MiB and more come down in 4 parallel
-- parts unless `parallel` says otherwise.
-- @tparam string id the file id
-- @tparam string path_or_dir a file or directory path
-- @tparam[opt] table opts `cloudfetch.open`'s and `cloudfetch.save`'s
-- (`overwrite`, `resume`, `parallel`, `part_size`, `sync`)
-- @treturn[1] string the path written
-- @treturn[1] integer bytes
-- @return[2] nil
-- @treturn[2] cloudfetch.Error
function Client:save(id, path_or_dir, opts)
  check_id("client:save", id)
  local open, save_opts = options.checked(check_save, "client:save", path_or_dir, opts)
  local info, err = self:file_info(id)
  if not info then return nil, err end
  return save_file(self, info, path_or_dir, open, save_opts)
end

-- Seconds since the epoch of an ISO 8601 time ("2026-03-01T12:34:56.789Z",
-- "+02:00" offsets; UTC when it names no zone), or nil.
local function iso_seconds(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, frac, zone = s:match(
    "^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
  if not y then return nil end
  y, mo = tonumber(y), tonumber(mo)
  -- days from 1970-01-01 to the date (proleptic Gregorian), as in Howard Hinnant's days_from_civil
  local yy = mo <= 2 and y - 1 or y
  local era = yy // 400
  local yoe = yy - era * 400
  local doy = (153 * (mo > 2 and mo - 3 or mo + 9) + 2) // 5 + tonumber(d) - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  local t = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec) + (tonumber("0" .. frac) or 0)
  local sign, zh, zm = zone:match("^([+-])(%d%d):?(%d%d)$")
  if sign then
    local off = tonumber(zh) * 3600 + tonumber(zm) * 60
    t = sign == "+" and t - off or t + off
  elseif zone ~= "" and zone ~= "Z" and zone ~= "z" then
    return nil
  end
  return t
end
notary._iso_seconds = iso_seconds

local function check_mirror(fn, opts)
  mirror.check(fn, opts)
  for k in pairs(opts) do
    if not mirror.OPTIONS[k] then options.misuse(fn, "unknown option '" .. tostring(k) .. "'") end
  end
end

--- Brings every stored file of the account down to `dir`, named as the
-- service names them, verified and concurrently; files already up to date
-- are skipped (README, "Mirroring").
-- @tparam table opts `dir`, optional `max_active`, `compare`, `delete`,
-- `dry_run`, `filter`, `shard`, `progress`, `parallel`, `sync`
-- @treturn[1] table the report, as `cloudfetch.b2`'s `client:mirror`
-- @return[2] nil
-- @treturn[2] cloudfetch.Error when the listing fails
function Client:mirror(opts)
  options.checked(check_mirror, "notary: mirror", opts)
  local client = self
  return mirror.run({
    sorted = false, -- the service lists in its own order: the mirror keeps the set of local paths
    list = function()
      local files = client:files()
      return function()
        local f = files()
        if not f then return nil end
        local name = f.name or f.id
        return { name = name, rel = name, size = f.size, mtime = iso_seconds(f.created_at),
          hash = f.sha256 and { alg = "sha256", hex = f.sha256 }, file = f }
      end
    end,
    download = function(entry, target, save_opts)
      save_opts.auto_parallel = true
      return save_file(client, entry.file, target, {}, save_opts)
    end,
  }, opts)
end

return notary
