--- The Backblaze B2 native API: authorize, list, download, mirror.
--
-- A non-2xx answer from any call is `nil, err` with B2's `status`, `code`
-- and `message` (kind `"auth"` for 401/403, `"api"` otherwise).  A client
-- re-authorizes by itself on an expired token and retries what B2 documents
-- as transient.
-- @module cloudfetch.b2
-- @usage
-- local b2 = require "cloudfetch.b2"
-- local client = assert(b2.authorize{ key_id = ..., key = ... })
-- for f in client:files{ bucket_id = id } do print(f.fileName, f.contentLength) end
-- assert(client:save_by_id(file_id, "downloads/"))

-- Every call is a cf.open request; transient failures (408, 429, 5xx,
-- network) are retried there.  This module adds what is B2's own: the JSON
-- calls, paging, re-authorization on an expired token, B2's name encoding and
-- the SHA-1 the service stores for each file.
local cf = require "cloudfetch"
local codec = require "cloudfetch.b2.codec"
local errors = require "cloudfetch.errors"
local mirror = require "cloudfetch.mirror"
local options = require "cloudfetch.options"
local save = require "cloudfetch.save"
local sched = require "cloudfetch.sched"

local b2 = {}

b2.DEFAULT_REALM = "https://api.backblazeb2.com"
b2.API_VERSION = "v4"

-- Exported for tests and for users who fetch an authorize answer themselves.
b2._parse_authorize = codec.parse_authorize
b2._encode_name = codec.encode_name
b2._decode = codec.decode

local is_null = codec.is_null

-- The C core (loaded by cloudfetch itself): libcurl's version.
local core = require "cloudfetch.core"

-- Options stored by b2.authorize and applied to every request of the client.
local TRANSPORT = options.TRANSPORT

-- Download options that are this module's own (not passed to cf.open).
local DOWNLOAD_OWN = { content_disposition = "string", authorization = "string", verify = "boolean" }

-- Which capability a call needs, to explain a 401 unauthorized.
local CAPABILITY = {
  b2_list_buckets = "listBuckets", b2_list_file_names = "listFiles",
  b2_list_file_versions = "listFiles", b2_get_file_info = "readFiles",
  b2_get_download_authorization = "shareFiles", download = "readFiles",
}

-- Secrets (key, tokens, a proxy URL that may hold a password) live here, not
-- in the client table, so printing or dumping a client cannot leak them.
local private = setmetatable({}, { __mode = "k" })

local Client = {}
Client.__index = Client

function Client:__tostring()
  return string.format("b2.client(%s, %s)", tostring(self.account_id), tostring(self.api_url))
end

-- -------------------------------------------------------------------------
-- Errors

local function check_type(value, expected, name, level)
  local t = type(value)
  if expected:find(t, 1, true) == nil then
    error(string.format("b2: %s must be a %s, got %s", name, expected:gsub("|", " or "), t), level + 1)
  end
end

local function check_string(value, name, level)
  if type(value) ~= "string" or value == "" then
    error(string.format("b2: %s must be a non-empty string, got %s", name,
      type(value) == "string" and "an empty string" or type(value)), level + 1)
  end
end

-- Every secret a message could echo: the key, tokens, a proxy URL that may
-- carry user:password, and a caller's own token.
local function secrets_of(state, extra)
  local list = { key = state.key, proxy = state.transport.proxy, extra = extra }
  for token in pairs(state.tokens) do list[#list + 1] = token end
  return list
end

local function scrub(state, s, extra)
  return errors.scrub(s, secrets_of(state, extra))
end

-- Wraps a cf.open / d:json failure with the B2 operation it belongs to.
local function wrap(state, err, what)
  return errors.wrap(err, "b2: " .. what .. ": ", secrets_of(state))
end

local function protocol_error(what, message, url)
  return cf.Error.new{ kind = "protocol", message = "b2: " .. what .. ": " .. message, url = url }
end

-- A hint for `401 unauthorized`: what the key lacks, when we can tell.
local function unauthorized_hint(client, call, name)
  local allowed = client.allowed
  if not allowed then return nil end
  local need = CAPABILITY[call]
  if need and type(allowed.capabilities) == "table" then
    local has = false
    for _, c in ipairs(allowed.capabilities) do
      if c == need then has = true break end
    end
    if not has then return "the application key lacks the " .. need .. " capability" end
  end
  local prefix = allowed.namePrefix
  if name and type(prefix) == "string" and name:sub(1, #prefix) ~= prefix then
    return "the application key is restricted to names starting with '" .. prefix .. "'"
  end
  return nil
end

-- The error for a non-2xx B2 answer: status, B2's code and message.
local function api_error(client, state, ctx, status, code, message, url)
  local what = ctx.what
  code = code and scrub(state, code, ctx.token) -- a service may echo a secret anywhere
  local detail = code and string.format("%d %s", status, code) or tostring(status)
  if code == "unauthorized" then
    local hint = unauthorized_hint(client, ctx.call, ctx.name)
    if hint then detail = detail .. "; " .. hint end
  end
  message = scrub(state, message, ctx.token)
  local text
  if status == 404 then
    text = what .. " not found"
    if message and message ~= "" then text = text .. ": " .. message end
  elseif message and message ~= "" then
    text = what .. ": " .. message
  else
    text = what .. " failed"
  end
  return cf.Error.new{
    kind = (status == 401 or status == 403) and "auth" or "api",
    message = "b2: " .. text .. " (" .. detail .. ")",
    status = status, code = code, url = url,
    retryable = errors.retryable_status(status),
  }
end

-- Reads B2's {status, code, message} from an error answer.  The body may be
-- empty (HEAD, proxies) or not JSON at all; at most 64 KiB are read.
local function read_error(d)
  local parts, n = {}, 0
  pcall(function()
    for chunk in d:chunks() do
      parts[#parts + 1] = chunk
      n = n + #chunk
      if n >= 65536 then break end
    end
  end)
  d:close()
  local body = codec.decode_json(table.concat(parts))
  local code, message
  if type(body) == "table" then
    if type(body.code) == "string" and body.code ~= "" then code = body.code end
    if type(body.message) == "string" then message = body.message end
  end
  return code, message
end

-- -------------------------------------------------------------------------
-- Requests

local function with_transport(state, opts)
  local o = {}
  for k, v in pairs(state.transport) do o[k] = v end
  for k, v in pairs(opts) do o[k] = v end
  return o
end

local function ok_status(status)
  return status >= 200 and status < 300
end

-- b2_authorize_account (always v4); fills the client and the private state.
local function authorize(client, state)
  local url = state.realm .. "/b2api/" .. b2.API_VERSION .. "/b2_authorize_account"
  local what = "authorize_account"
  local basic = "Basic " .. cf.base64(state.key_id .. ":" .. state.key)
  local d, err = cf.open(url, with_transport(state, { headers = { Authorization = basic } }))
  if not d then return nil, wrap(state, err, what) end
  if not ok_status(d.status) then
    local code, message = read_error(d)
    -- Any 401 here is final: the key id or key is wrong, revoked or unusable.
    if d.status == 401 and (message == nil or message == "") then
      message = "the application key id or key was refused"
    end
    local e = api_error(client, state, { what = what }, d.status, code, message, d.url)
    return nil, e
  end
  local body, jerr = d:json()
  d:close()
  if body == nil then return nil, wrap(state, jerr, what) end
  local info, perr = codec.parse_authorize(body)
  if not info then return nil, protocol_error(what, perr, url) end
  state.token = info.token
  state.tokens[info.token] = true
  client.account_id = info.account_id
  client.api_url = info.api_url
  client.download_url = info.download_url
  client.allowed = info.allowed
  client.recommended_part_size = info.recommended_part_size
  client.absolute_minimum_part_size = info.absolute_minimum_part_size
  client.s3_api_url = info.s3_api_url
  client.key_expires = info.key_expires
  return true
end

-- Authorizes again after `used` (the token a request carried) was refused.
-- Tasks of one client that hit the expiry together share one
-- re-authorization: the first does it, the others wait for it, and a task
-- whose token was already replaced just goes on.
local function renew(client, state, used)
  while state.token == used and state.renewing do
    sched.wait(nil, function() return not state.renewing end)
  end
  if state.token ~= used then return true end
  state.renewing = true
  local _ <close> = setmetatable({}, { __close = function() state.renewing = false end })
  return authorize(client, state)
end

-- Sends one request; on 401 expired_auth_token / bad_auth_token / a 401
-- without a code it authorizes again with the stored key and retries once.
-- `url(client)` is asked again after a renewal, since the new authorization
-- may name other api/download URLs.
-- ctx: { what =, call =, name =, token = (a caller's own token: no re-auth) }.
-- Returns a 2xx Download, or nil, err (the error answer already read).
local function send(client, url, opts, ctx)
  local state = private[client]
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local own_auth
  for k in pairs(headers) do
    if type(k) == "string" and k:lower() == "authorization" then own_auth = k end
  end
  opts.headers = headers
  for attempt = 1, 2 do
    local used = state.token
    if not ctx.token and not own_auth then headers.Authorization = used end
    if ctx.token then headers.Authorization = ctx.token end
    local d, err = cf.open(url(client), with_transport(state, opts))
    if not d then return nil, wrap(state, err, ctx.what) end
    if ok_status(d.status) then return d end
    local status, durl = d.status, d.url
    local code, message = read_error(d)
    local renewable = status == 401 and (code == nil or code == "expired_auth_token" or code == "bad_auth_token")
    if attempt == 2 or not renewable or ctx.token or own_auth then
      return nil, api_error(client, state, ctx, status, code, message, durl)
    end
    local ok, aerr = renew(client, state, used)
    if not ok then return nil, aerr end
  end
end

-- A JSON API call: POST <api_url>/b2api/v4/<call> with a JSON body.
local function call(client, name, body, ctx)
  ctx.call = name
  local function url(c) return c.api_url .. "/b2api/" .. b2.API_VERSION .. "/" .. name end
  local d, err = send(client, url, { method = "POST", json = body }, ctx)
  if not d then return nil, err end
  local res, jerr = d:json()
  d:close()
  if res == nil then return nil, wrap(private[client], jerr, ctx.what) end
  if type(res) ~= "table" then return nil, protocol_error(ctx.what, "the answer is not a JSON object", d.url) end
  return codec.integers(res)
end

-- -------------------------------------------------------------------------
-- Authorize

--- The User-Agent a client sends, as B2 asks clients to name themselves and
-- their dependencies.
-- @treturn string `"cloudfetch/<version> b2 (Lua 5.4) libcurl/<version>"`
function b2.user_agent()
  local curl = core.curl_version
  return string.format("cloudfetch/%s b2 (%s)%s", cf.version, _VERSION, curl and " libcurl/" .. curl or "")
end

--- Authorizes an application key (b2_authorize_account) and returns a
-- client.
-- @tparam table args `key_id`, `key`, optional `realm` (default
-- `"https://api.backblazeb2.com"`), and the transport options of
-- `cloudfetch.open` (`timeout`, `proxy`, `ca_file`, `user_agent`, ...), kept
-- for every request of the client
-- @treturn[1] Client
-- @return[2] nil
-- @treturn[2] cloudfetch.Error kind `"auth"` when the key is refused
-- @raise on misuse: a missing key, an unknown option
function b2.authorize(args)
  check_type(args, "table", "authorize's argument", 2)
  local state = { tokens = {}, transport = {} }
  for k, v in pairs(args) do
    if k == "key_id" or k == "key" then
      check_string(v, k, 2)
      state[k] = v
    elseif k == "realm" then
      check_string(v, "realm", 2)
    elseif TRANSPORT[k] then
      check_type(v, TRANSPORT[k], k, 2)
      state.transport[k] = v
    else
      error("b2: unknown option '" .. tostring(k) .. "' in authorize", 2)
    end
  end
  check_string(args.key_id, "key_id", 2)
  check_string(args.key, "key", 2)
  state.realm = (args.realm or b2.DEFAULT_REALM):gsub("/+$", "")
  if state.transport.user_agent == nil then state.transport.user_agent = b2.user_agent() end
  local client = setmetatable({ realm = state.realm }, Client)
  private[client] = state
  local ok, err = authorize(client, state)
  if not ok then return nil, err end
  return client
end

-- -------------------------------------------------------------------------
-- Buckets and file metadata

--- A B2 client: what @{cloudfetch.b2.authorize|b2.authorize} returns.  Fields: `account_id`,
-- `api_url`, `download_url`, `allowed` (the key's capabilities and
-- restrictions), `realm`, `key_expires`, `recommended_part_size`,
-- `absolute_minimum_part_size`, `s3_api_url`.  Secrets are not kept in the
-- table, so printing it leaks nothing.
-- @type Client

--- The account's buckets (b2_list_buckets).
-- @tparam[opt] table filter `{ name = }` or `{ id = }`
-- @treturn[1] table an array of B2's bucket objects (`bucketId`,
-- `bucketName`, `bucketType`, ...)
-- @return[2] nil
-- @treturn[2] cloudfetch.Error
function Client:buckets(filter)
  if filter ~= nil then check_type(filter, "table", "buckets' filter", 2) end
  filter = filter or {}
  for k, v in pairs(filter) do
    if k ~= "name" and k ~= "id" then error("b2: unknown option '" .. tostring(k) .. "' in buckets", 2) end
    check_string(v, k, 2)
  end
  local body = { accountId = self.account_id, bucketTypes = { "all" },
                 bucketName = filter.name, bucketId = filter.id }
  -- A key restricted to one bucket may only list that bucket (B2 answers
  -- 401 otherwise), so name it when the caller did not.
  local only = self.allowed and self.allowed.buckets
  if not filter.name and not filter.id and type(only) == "table" and #only == 1 then
    body.bucketId = only[1].id
  end
  local what = "list buckets"
  if filter.name then what = "list bucket " .. filter.name end
  local res, err = call(self, "b2_list_buckets", body, { what = what })
  if not res then return nil, err end
  if type(res.buckets) ~= "table" then
    return nil, protocol_error(what, "the answer has no buckets array", self.api_url)
  end
  return res.buckets
end

--- One file's information (b2_get_file_info).
-- @tparam string file_id
-- @treturn[1] table B2's file object (`fileId`, `fileName`, `contentLength`,
-- `contentSha1`, `fileInfo`, ...)
-- @return[2] nil
-- @treturn[2] cloudfetch.Error
function Client:file_info(file_id)
  check_string(file_id, "file_id", 2)
  local res, err = call(self, "b2_get_file_info", { fileId = file_id }, { what = "file " .. file_id })
  if not res then return nil, err end
  return codec.file_table(res)
end

--- A token that lets others download files of a private bucket
-- (b2_get_download_authorization); pass it as `authorization` to
-- @{Client:open_by_name}.
-- @tparam table args `bucket_id`, optional `prefix` (default `""`),
-- `valid_for` (seconds, 1 to 604800, default 3600), `content_disposition`
-- @treturn[1] string the token
-- @return[2] nil
-- @treturn[2] cloudfetch.Error
function Client:download_authorization(args)
  check_type(args, "table", "download_authorization's argument", 2)
  for k in pairs(args) do
    if k ~= "bucket_id" and k ~= "prefix" and k ~= "valid_for" and k ~= "content_disposition" then
      error("b2: unknown option '" .. tostring(k) .. "' in download_authorization", 2)
    end
  end
  check_string(args.bucket_id, "bucket_id", 2)
  local prefix = args.prefix or ""
  check_type(prefix, "string", "prefix", 2)
  local valid_for = args.valid_for or 3600
  if math.type(valid_for) ~= "integer" or valid_for < 1 or valid_for > 604800 then
    error("b2: valid_for must be an integer number of seconds from 1 to 604800", 2)
  end
  if args.content_disposition ~= nil then check_string(args.content_disposition, "content_disposition", 2) end
  local body = {
    bucketId = args.bucket_id, fileNamePrefix = prefix, validDurationInSeconds = valid_for,
    b2ContentDisposition = args.content_disposition,
  }
  local what = "download authorization for bucket " .. args.bucket_id
  local res, err = call(self, "b2_get_download_authorization", body, { what = what })
  if not res then return nil, err end
  if type(res.authorizationToken) ~= "string" or res.authorizationToken == "" then
    return nil, protocol_error(what, "the answer has no authorizationToken", self.api_url)
  end
  private[self].tokens[res.authorizationToken] = true
  return res.authorizationToken
end

-- -------------------------------------------------------------------------
-- Listing

local LIST_ARGS = { bucket_id = true, prefix = true, delimiter = true, start = true, page_size = true }

local function list(client, args, versions)
  local fname = versions and "versions" or "files"
  check_type(args, "table", fname .. "' argument", 3)
  for k in pairs(args) do
    if not LIST_ARGS[k] and not (versions and k == "start_id") then
      error("b2: unknown option '" .. tostring(k) .. "' in " .. fname, 3)
    end
  end
  check_string(args.bucket_id, "bucket_id", 3)
  for _, k in ipairs{ "prefix", "delimiter", "start", "start_id" } do
    if args[k] ~= nil then check_type(args[k], "string", k, 3) end
  end
  if args.delimiter == "" then error("b2: delimiter must not be empty", 3) end
  if args.start_id ~= nil and args.start == nil then
    error("b2: start_id needs start (the file name of that version)", 3)
  end
  local page_size = args.page_size or 1000
  if math.type(page_size) ~= "integer" or page_size < 1 or page_size > 10000 then
    error("b2: page_size must be an integer from 1 to 10000", 3)
  end

  local name = versions and "b2_list_file_versions" or "b2_list_file_names"
  local what = (versions and "list file versions in bucket " or "list files in bucket ") .. args.bucket_id
  local body = {
    bucketId = args.bucket_id, prefix = args.prefix, delimiter = args.delimiter,
    startFileName = args.start, startFileId = args.start_id, maxFileCount = page_size,
  }
  local page, i, more = nil, 0, true
  return function()
    while true do
      if page and i < #page then
        i = i + 1
        return codec.file_table(page[i])
      end
      if not more then return nil end
      local res, err = call(client, name, body, { what = what, name = args.prefix })
      if not res then error(err, 0) end
      if type(res.files) ~= "table" then
        more = false
        error(protocol_error(what, "the answer has no files array", client.api_url), 0)
      end
      page, i = res.files, 0
      local next_name, next_id = res.nextFileName, res.nextFileId
      if is_null(next_name) then
        more = false
      else
        -- A cursor that does not move would loop forever.
        if next_name == body.startFileName and (not versions or next_id == body.startFileId) then
          more = false
          error(protocol_error(what, "the listing did not advance past " .. next_name, client.api_url), 0)
        end
        body.startFileName = next_name
        if versions then body.startFileId = (not is_null(next_id)) and next_id or nil end
      end
    end
  end
end

--- Iterator over the files of a bucket (b2_list_file_names), paging by
-- itself.
-- @tparam table args `bucket_id`, optional `prefix`, `delimiter`, `start`
-- (a file name), `page_size` (1 to 10000, default 1000)
-- @return an iterator over B2's file objects
-- @raise the cloudfetch.Error when a page cannot be listed
function Client:files(args)
  return list(self, args, false)
end

--- Iterator over every version of the files of a bucket
-- (b2_list_file_versions), as @{Client:files}.
-- @tparam table args as @{Client:files}, plus `start_id` (with `start`)
-- @return an iterator over B2's file objects
-- @raise the cloudfetch.Error when a page cannot be listed
function Client:versions(args)
  return list(self, args, true)
end

-- -------------------------------------------------------------------------
-- Downloads

-- Fills the Download's B2 fields from the response headers.
local function describe(d)
  local h = d.headers
  d.file_id = h["x-bz-file-id"]
  d.file_name = h["x-bz-file-name"] and codec.decode(h["x-bz-file-name"]) or nil
  local info = {}
  for k, v in pairs(h) do
    if k:sub(1, 10) == "x-bz-info-" then info[codec.decode(k:sub(11)):lower()] = codec.decode(v) end
  end
  d.info = info
  d.content_sha1 = codec.expected_sha1(h["x-bz-content-sha1"], info.large_file_sha1)
  d.upload_timestamp = math.tointeger(tonumber(h["x-bz-upload-timestamp"] or ""))
  d.content_type = h["content-type"]
end

-- The checks of open_by_* (save = false) and save_by_* options: cf.open's
-- and cf.save's, plus this module's own.
local function check_download_opts(fn, opts, saving)
  local open, save_opts, own = options.split(fn, opts, DOWNLOAD_OWN)
  if not saving then
    local k = next(save_opts)
    if k then options.misuse(fn, "unknown option '" .. k .. "'") end
  end
  options.prepare(fn, "https://b2.invalid/", open) -- raises on misuse
  return open, save_opts, own
end

-- open: cf.open's options (checked); own: this module's.
local function open_download(client, url, query, open, own, ctx)
  local o = {}
  for k, v in pairs(open) do o[k] = v end
  local q = {}
  for k, v in pairs(o.query or {}) do q[k] = v end
  for k, v in pairs(query) do q[k] = v end
  if own.content_disposition then q.b2ContentDisposition = own.content_disposition end
  if next(q) then o.query = q end
  -- B2's file id tells a resumed body is the same file.
  local validators = { "x-bz-file-id" }
  for _, v in ipairs(o.validators or {}) do validators[#validators + 1] = v end
  o.validators = validators
  ctx.call = "download"
  ctx.token = own.authorization
  local d, err = send(client, url, o, ctx)
  if not d then return nil, err end
  describe(d)
  d.name_hint = d.file_name or d.file_id
  d.entity_expect = { sha1 = d.content_sha1, size = d.total }
  local method = (o.method or "GET"):upper()
  if own.verify == false or method == "HEAD" then return d end
  if d.status == 206 then
    -- A range can only be checked for its length: B2's SHA-1 is the whole file's.
    -- B2 may leave Content-Range out when the range covers the whole file
    -- (b2sdk notes it): then Content-Length alone sizes the body.
    local r = d.range
    if not r then
      if not d.size then
        d:close()
        return nil, protocol_error(ctx.what, "206 answer with neither Content-Range nor Content-Length", d.url)
      end
      d:expect{ size = d.size }
      return d
    end
    local want = type(o.range) == "table" and o.range[1]
    if want and want ~= r.first then
      d:close()
      return nil, protocol_error(ctx.what, string.format("asked for bytes from %d, got %d-%d",
        want, r.first, r.last), d.url)
    end
    d:expect{ size = r.last - r.first + 1 }
  elseif d.status == 200 then
    local expect = { size = d.size, sha1 = d.content_sha1 }
    if next(expect) then d:expect(expect) end
  end
  return d
end

local function by_id_url(c) return c.download_url .. "/b2api/" .. b2.API_VERSION .. "/b2_download_file_by_id" end

--- Opens a file by id (b2_download_file_by_id).  The body is verified
-- against the SHA-1 and length B2 gives, unless `verify = false`.
-- @tparam string file_id
-- @tparam[opt] table opts `cloudfetch.open`'s options, plus
-- `content_disposition`, `authorization` (a token from
-- @{Client:download_authorization}) and `verify`
-- @treturn[1] cloudfetch.Download with extra fields `file_id`, `file_name`,
-- `content_sha1`, `info` (`X-Bz-Info-*`, lower-case keys),
-- `upload_timestamp` (ms), `content_type`
-- @return[2] nil
-- @treturn[2] cloudfetch.Error with B2's `status`, `code` and `message`
function Client:open_by_id(file_id, opts)
  check_string(file_id, "file_id", 2)
  local open, _, own = options.checked(check_download_opts, "b2: open_by_id", opts, false)
  return open_download(self, by_id_url, { fileId = file_id }, open, own, { what = "file " .. file_id })
end

local function by_name_url(bucket, name)
  local path = "/file/" .. codec.encode_segment(bucket) .. "/" .. codec.encode_name(name)
  return function(c) return c.download_url .. path end
end

--- Opens a file by bucket name and file name; as @{Client:open_by_id}.
-- @tparam string bucket the bucket name
-- @tparam string name the file name
-- @tparam[opt] table opts as @{Client:open_by_id}
-- @treturn[1] cloudfetch.Download
-- @return[2] nil
-- @treturn[2] cloudfetch.Error
function Client:open_by_name(bucket, name, opts)
  check_string(bucket, "bucket", 2)
  check_string(name, "name", 2)
  local open, _, own = options.checked(check_download_opts, "b2: open_by_name", opts, false)
  return open_download(self, by_name_url(bucket, name), {}, open, own,
    { what = "file " .. bucket .. "/" .. name, name = name })
end

--- @section end

--- Saves a download opened with @{Client:open_by_id} or
-- @{Client:open_by_name} like `d:save`; a directory target gets the name
-- from Content-Disposition, else the last segment of the B2 file name, else
-- the file id.
-- @tparam cloudfetch.Download d
-- @tparam string path a file or directory path
-- @tparam[opt] table opts as `d:save`
-- @treturn[1] string the path written
-- @treturn[1] integer bytes
-- @return[2] nil
-- @treturn[2] cloudfetch.Error
function b2.save(d, path, opts)
  check_type(d, "table", "download", 2)
  check_string(path, "path", 2)
  if opts ~= nil then check_type(opts, "table", "opts", 2) end
  return d:save(path, opts)
end

local function check_save(fn, path, opts)
  options.check_path(fn, path)
  local open, save_opts, own = check_download_opts(fn, opts, true)
  save_opts.auto_parallel = true -- big files in parallel parts, unless parallel says otherwise
  return open, save_opts, own
end

--- @type Client

--- Downloads a file by id to disk, verified (SHA-1 whenever B2 gives one),
-- atomically.  Files of 100 MiB and more come down in 4 parallel parts
-- unless `parallel` says otherwise.
-- @tparam string file_id
-- @tparam string path a file or directory path
-- @tparam[opt] table opts @{Client:open_by_id}'s, plus `cloudfetch.save`'s
-- (`overwrite`, `resume`, `parallel`, `part_size`, `sync`, `mtime`)
-- @treturn[1] string the path written
-- @treturn[1] integer bytes
-- @return[2] nil
-- @treturn[2] cloudfetch.Error
function Client:save_by_id(file_id, path, opts)
  check_string(file_id, "file_id", 2)
  local open, save_opts, own = options.checked(check_save, "b2: save_by_id", path, opts)
  local function opener(o)
    return open_download(self, by_id_url, { fileId = file_id }, o, own, { what = "file " .. file_id })
  end
  return save.run(opener, path, open, save_opts)
end

--- Downloads a file by bucket name and file name; as @{Client:save_by_id}.
-- @tparam string bucket the bucket name
-- @tparam string name the file name
-- @tparam string path a file or directory path
-- @tparam[opt] table opts as @{Client:save_by_id}
-- @treturn[1] string the path written
-- @treturn[1] integer bytes
-- @return[2] nil
-- @treturn[2] cloudfetch.Error
function Client:save_by_name(bucket, name, path, opts)
  check_string(bucket, "bucket", 2)
  check_string(name, "name", 2)
  local open, save_opts, own = options.checked(check_save, "b2: save_by_name", path, opts)
  local function opener(o)
    return open_download(self, by_name_url(bucket, name), {}, o, own,
      { what = "file " .. bucket .. "/" .. name, name = name })
  end
  return save.run(opener, path, open, save_opts)
end

-- -------------------------------------------------------------------------
-- Mirror

local MIRROR_OWN = { bucket = "string", prefix = "string" }

local function check_mirror(fn, opts)
  mirror.check(fn, opts)
  for k, v in pairs(opts) do
    if not mirror.OPTIONS[k] then
      if not MIRROR_OWN[k] then options.misuse(fn, "unknown option '" .. tostring(k) .. "'") end
      if type(v) ~= "string" then options.misuse(fn, "option '" .. k .. "' must be a string") end
    end
  end
  if not opts.bucket or opts.bucket == "" then options.misuse(fn, "option 'bucket' (a bucket name) is required") end
end

-- The modification time a downloaded file gets: the client's
-- src_last_modified_millis (what b2 sync and rclone store), else the upload time.
local function file_mtime(f)
  local ms = tonumber(type(f.fileInfo) == "table" and f.fileInfo.src_last_modified_millis or nil)
    or f.uploadTimestamp
  return ms and ms / 1000 or nil
end

--- Brings the newest version of every file under `prefix` in bucket
-- `bucket` down to `dir`, verified and concurrently; files already up to
-- date are skipped (README, "Mirroring").
-- @tparam table opts `bucket`, `dir`, optional `prefix`, `max_active`,
-- `compare` (`"modtime"`, `"size"` or `"hash"`), `delete`, `dry_run`,
-- `filter`, `shard`, `progress`, `parallel`, `sync`
-- @treturn[1] table the report: `{ downloaded =, skipped =, deleted =,
-- bytes =, failed = { { name =, err = }, ... } }`
-- @return[2] nil
-- @treturn[2] cloudfetch.Error when the bucket cannot be found or listed
function Client:mirror(opts)
  options.checked(check_mirror, "b2: mirror", opts)
  local found, err = self:buckets{ name = opts.bucket }
  if not found then return nil, err end
  if not found[1] then
    return nil, cf.Error.new{ kind = "api", code = "not_found",
      message = "b2: mirror: no bucket named " .. opts.bucket .. " (or the key may not list it)" }
  end
  local bucket_id, prefix, client = found[1].bucketId, opts.prefix or "", self
  return mirror.run({
    sorted = true, -- b2_list_file_names lists by name, in UTF-8 bytes
    list = function()
      local files = client:files{ bucket_id = bucket_id, prefix = prefix }
      return function()
        for f in files do
          if (f.action == nil or f.action == "upload") and type(f.fileName) == "string" then
            local info = type(f.fileInfo) == "table" and f.fileInfo or {}
            local sha1 = codec.expected_sha1(f.contentSha1, info.large_file_sha1)
            return { name = f.fileName, rel = f.fileName:sub(#prefix + 1), size = f.contentLength,
              mtime = file_mtime(f), hash = sha1 and { alg = "sha1", hex = sha1 }, file = f }
          end
        end
        return nil
      end
    end,
    download = function(entry, target, save_opts)
      return client:save_by_id(entry.file.fileId, target, save_opts)
    end,
    exists = function(rel)
      local first = client:files{ bucket_id = bucket_id, start = prefix .. rel, page_size = 1 }()
      return first ~= nil and first.fileName == prefix .. rel
    end,
    name_of = function(rel) return prefix .. rel end,
  }, opts)
end

return b2
