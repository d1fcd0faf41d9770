-- cloudfetch: streaming, verified HTTP(S) downloads for Lua 5.4.
--
-- The public face of the module (see README.md / API.md): option checks,
-- `Download` objects, `cloudfetch.Error`, retries and atomic saves.  The
-- bytes themselves move in C (cloudfetch.core); nothing here copies a body
-- except to hand a chunk to the caller.
local core = require "cloudfetch.core"
local cjson = require "cjson"

local cf = { version = core.version }

---------------------------------------------------------------------------
-- Errors
---------------------------------------------------------------------------

local Error = { __name = "cloudfetch.Error" }
Error.__index = Error
Error.__tostring = function(e) return e.kind .. ": " .. e.message end

local KINDS = {
  network = true, timeout = true, tls = true, http = true, api = true, auth = true,
  integrity = true, io = true, protocol = true, canceled = true,
}

-- Error.new{ kind=, message=, status=, code=, retryable=, url= }
function Error.new(t)
  assert(type(t) == "table", "cloudfetch.Error.new: table expected")
  assert(KINDS[t.kind], "cloudfetch.Error.new: unknown kind " .. tostring(t.kind))
  return setmetatable({
    kind = t.kind,
    message = tostring(t.message or t.kind),
    status = t.status,
    code = t.code,
    retryable = t.retryable or false,
    url = t.url,
  }, Error)
end

cf.Error = Error

function cf.is_error(v)
  return getmetatable(v) == Error
end

---------------------------------------------------------------------------
-- Small utilities (also used by the service modules)
---------------------------------------------------------------------------

cf.sleep = core.sleep
cf.now = core.now
cf.base64 = core.base64

local function percent(c)
  return string.format("%%%02X", c:byte())
end

function cf.urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", percent))
end

local SECRET_PARAMS = { authorization = true, token = true, access_token = true, password = true,
  key = true, client_secret = true, signature = true }

-- A URL fit for messages: no user:password@, no secret query values.
local function safe_url(url)
  if not url then return nil end
  url = url:gsub("^(%a[%w+.-]*://)[^/?#@]*@", "%1")
  return (url:gsub("([?&])([^=&#]+)=([^&#]*)", function(sep, name, value)
    if SECRET_PARAMS[name:lower()] then value = "REDACTED" end
    return sep .. name .. "=" .. value
  end))
end
cf.safe_url = safe_url

-- cjson gives JSON null as a sentinel and every number as a float; Lua
-- callers expect absent keys, and sizes and counts as integers.
local function normalize_json(v)
  if type(v) ~= "table" then
    if v == cjson.null then return nil end
    if math.type(v) == "float" then return math.tointeger(v) or v end
    return v
  end
  for k, x in pairs(v) do v[k] = normalize_json(x) end
  return v
end

---------------------------------------------------------------------------
-- Options
---------------------------------------------------------------------------

local OPTION_TYPES = {
  method = "string", headers = "table", query = "table", body = "string", json = "table",
  range = "table", hash = "table", expect = "table", timeout = "number",
  connect_timeout = "number", stall_timeout = "number", chunk_size = "number",
  buffer_size = "number", retry = "table|boolean", progress = "function",
  verify_tls = "boolean", ca_file = "string", ca_path = "string", proxy = "string",
  user_agent = "string", follow_redirects = "boolean", max_redirects = "number",
}
cf.OPTIONS = OPTION_TYPES

-- The subset a service client (b2, notary) keeps and applies to each request.
cf.TRANSPORT_OPTIONS = {
  verify_tls = "boolean", ca_file = "string", ca_path = "string", proxy = "string",
  user_agent = "string", connect_timeout = "number", timeout = "number",
  stall_timeout = "number", retry = "table|boolean",
}

local METHODS = { GET = true, POST = true, HEAD = true, PUT = true, DELETE = true }
local DIGESTS = { sha1 = 40, sha256 = 64, md5 = 32 }
local DEFAULT_RETRY = { attempts = 5, base_delay = 1, max_delay = 64 }
local USER_AGENT = "cloudfetch/" .. core.version .. " libcurl/" .. core.curl_version

local function misuse(fn, msg)
  error(fn .. ": " .. msg, 4)
end

local function check_types(fn, opts, types)
  for k, v in pairs(opts) do
    local want = types[k]
    if not want then misuse(fn, "unknown option '" .. tostring(k) .. "'") end
    if not want:find(type(v), 1, true) then
      misuse(fn, "option '" .. k .. "' must be a " .. want:gsub("|", " or ") .. ", got " .. type(v))
    end
  end
end

local function positive(fn, name, v)
  if v ~= nil and v <= 0 then misuse(fn, "option '" .. name .. "' must be positive") end
end

local function check_expect(fn, expect)
  local out = {}
  for k, v in pairs(expect) do
    if k == "size" then
      if math.type(v) ~= "integer" or v < 0 then misuse(fn, "expect.size must be a non-negative integer") end
      out.size = v
    elseif DIGESTS[k] then
      if type(v) ~= "string" or #v ~= DIGESTS[k] or v:find("[^%x]") then
        misuse(fn, "expect." .. k .. " must be " .. DIGESTS[k] .. " hex digits")
      end
      out[k] = v:lower()
    else
      misuse(fn, "unknown expect key '" .. tostring(k) .. "'")
    end
  end
  return out
end

local function header_lines(fn, headers, extra)
  local lines, seen = {}, {}
  for name, value in pairs(headers or {}) do
    if type(name) ~= "string" or not name:match("^[%w!#$%%&'*+%-.^_`|~]+$") then
      misuse(fn, "bad header name " .. string.format("%q", tostring(name)))
    end
    if type(value) == "number" then value = tostring(value) end
    if type(value) ~= "string" then misuse(fn, "header '" .. name .. "' must be a string") end
    if value:find("[\r\n%z]") then misuse(fn, "header '" .. name .. "' contains CR, LF or NUL") end
    lines[#lines + 1] = name .. ": " .. value
    seen[name:lower()] = true
  end
  for name, value in pairs(extra) do
    if not seen[name:lower()] then lines[#lines + 1] = name .. ": " .. value end
  end
  return lines
end

local function with_query(url, query)
  if not query then return url end
  local keys = {}
  for k in pairs(query) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = query[k]
    if v == nil then v = query[tonumber(k)] end
    parts[#parts + 1] = cf.urlencode(k) .. "=" .. cf.urlencode(tostring(v))
  end
  if #parts == 0 then return url end
  return url .. (url:find("?", 1, true) and "&" or "?") .. table.concat(parts, "&")
end

-- Validates cf.open's arguments; returns the request for the core and the
-- policy the Lua side applies (expectations, retries, chunking, progress).
local function prepare(fn, url, opts)
  if type(url) ~= "string" then misuse(fn, "url must be a string, got " .. type(url)) end
  local scheme = url:match("^(%a[%w+.-]*)://")
  scheme = scheme and scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    misuse(fn, "only http:// and https:// URLs are allowed: " .. safe_url(url))
  end
  opts = opts or {}
  if type(opts) ~= "table" then misuse(fn, "opts must be a table, got " .. type(opts)) end
  check_types(fn, opts, OPTION_TYPES)
  local method = (opts.method or "GET"):upper()
  if not METHODS[method] then misuse(fn, "unsupported method '" .. opts.method .. "'") end
  if opts.body and opts.json then misuse(fn, "give body or json, not both") end
  positive(fn, "chunk_size", opts.chunk_size)
  positive(fn, "buffer_size", opts.buffer_size)
  positive(fn, "timeout", opts.timeout)
  positive(fn, "connect_timeout", opts.connect_timeout)
  positive(fn, "stall_timeout", opts.stall_timeout)

  local range_first, range_last
  if opts.range then
    range_first, range_last = opts.range[1], opts.range[2]
    if math.type(range_first) ~= "integer" or range_first < 0 then
      misuse(fn, "range[1] must be a non-negative integer")
    end
    if range_last ~= nil and (math.type(range_last) ~= "integer" or range_last < range_first) then
      misuse(fn, "range[2] must be an integer >= range[1], or nil")
    end
  end

  local expect = check_expect(fn, opts.expect or {})
  local hash, seen = {}, {}
  for _, alg in ipairs(opts.hash or {}) do
    if not DIGESTS[alg] then misuse(fn, "unknown digest '" .. tostring(alg) .. "' (sha1, sha256, md5)") end
    if not seen[alg] then hash[#hash + 1], seen[alg] = alg, true end
  end
  for alg in pairs(DIGESTS) do
    if expect[alg] and not seen[alg] then hash[#hash + 1], seen[alg] = alg, true end
  end

  local retry = DEFAULT_RETRY
  if opts.retry == false then
    retry = { attempts = 1, base_delay = 0, max_delay = 0 }
  elseif type(opts.retry) == "table" then
    check_types(fn .. " retry", opts.retry, { attempts = "number", base_delay = "number", max_delay = "number" })
    retry = {
      attempts = opts.retry.attempts or DEFAULT_RETRY.attempts,
      base_delay = opts.retry.base_delay or DEFAULT_RETRY.base_delay,
      max_delay = opts.retry.max_delay or DEFAULT_RETRY.max_delay,
    }
    if math.type(retry.attempts) ~= "integer" or retry.attempts < 1 then
      misuse(fn, "retry.attempts must be an integer >= 1")
    end
  end

  local body = opts.body
  local extra = {}
  if opts.json then
    body = cjson.encode(opts.json)
    extra["Content-Type"] = "application/json"
  end
  local full_url = with_query(url, opts.query)
  local req = {
    url = full_url,
    method = method,
    headers = header_lines(fn, opts.headers, extra),
    body = body,
    range_first = range_first,
    range_last = range_last,
    connect_timeout = opts.connect_timeout or 30,
    timeout = opts.timeout,
    stall_timeout = opts.stall_timeout or 60,
    buffer_size = opts.buffer_size or 1024 * 1024,
    verify_tls = opts.verify_tls ~= false,
    ca_file = opts.ca_file,
    ca_path = opts.ca_path,
    proxy = opts.proxy,
    user_agent = opts.user_agent or USER_AGENT,
    follow_redirects = opts.follow_redirects or false,
    max_redirects = opts.max_redirects or 5,
    hash = hash,
  }
  return {
    req = req,
    url = full_url,
    safe_url = safe_url(full_url),
    expect = expect,
    hashed = seen,
    retry = retry,
    chunk_size = opts.chunk_size or 64 * 1024,
    progress = opts.progress,
  }
end

---------------------------------------------------------------------------
-- Download objects
---------------------------------------------------------------------------

local Download = {}
local Download_mt = {
  __name = "cloudfetch.Download",
  __index = function(d, k)
    if k == "received" then return rawget(d, "_t"):received() end
    return Download[k]
  end,
  __close = function(d) d:close() end,
  __tostring = function(d) return "cloudfetch.Download(" .. d.status .. " " .. tostring(d.url) .. ")" end,
}

local RETRYABLE_KIND = { network = true, timeout = true }

-- A dropped body is continued with a Range request only when the server
-- advertised ranges and the entity is provably the same: a strong ETag, or
-- Last-Modified and the total size, or B2's file id.
local function resume_plan(d, p)
  local h = d.headers
  if p.req.method ~= "GET" or not d.total then return nil end
  if d.status == 200 then
    if not (h["accept-ranges"] or ""):lower():find("bytes", 1, true) then return nil end
  elseif d.status ~= 206 then
    return nil
  end
  local etag = h["etag"]
  if etag and etag:match("^%s*W/") then etag = nil end
  local validators = { etag = etag, ["last-modified"] = h["last-modified"], ["x-bz-file-id"] = h["x-bz-file-id"] }
  if not next(validators) then return nil end
  local first = d.range and d.range.first or 0
  local last = d.range and d.range.last or d.total - 1
  return { first = first, last = last, total = d.total, validators = validators }
end

local function backoff(retry, attempt, retry_after)
  local delay = math.min(retry.max_delay, retry.base_delay * 2 ^ (attempt - 1))
  delay = delay * (0.5 + math.random() * 0.5) -- jitter spreads out synchronized clients
  return math.max(delay, retry_after or 0)
end

-- One reconnection of d for the bytes from `offset` on: "ok" when the
-- answer continues the same entity, "changed" when it does not, nil when the
-- request failed in transport.
local function reconnect(d, offset)
  local plan, t = d._resume, d._t
  local req = {}
  for k, v in pairs(d._p.req) do req[k] = v end
  req.range_first, req.range_last = offset, plan.last
  if not t:resume(req) then return nil end
  local h = t:headers()
  local first, last, total = core.parse_content_range(h["content-range"] or "")
  local same = t:status() == 206 and first == offset and last == plan.last and total == plan.total
  for name, value in pairs(plan.validators) do
    if h[name] ~= value then same = false end
  end
  return same and "ok" or "changed"
end

-- After the body broke off: reconnect for the missing bytes, with backoff.
-- Each drop after progress gets retry.attempts - 1 reconnections; drops that
-- follow a reconnection which delivered nothing share them.  Returns true to
-- carry on reading; false (and why, when the server answered) to fail with
-- the original error.
local function resume(d, kind)
  local plan, p = d._resume, d._p
  if not plan or not RETRYABLE_KIND[kind] or p.retry.attempts < 2 then return false end
  if p.req.timeout and core.now() - d._started >= p.req.timeout then return false end
  local accepted = d._t:accepted()
  if d._resume_at ~= accepted then d._resume_at, d._resume_tries = accepted, 0 end
  d._resumes = d._resumes or 0
  while d._resume_tries < p.retry.attempts - 1 do
    -- Bounded overall too, against a server that drops every connection.
    if d._resumes >= 10 * p.retry.attempts then return false end
    d._resumes = d._resumes + 1
    d._resume_tries = d._resume_tries + 1
    core.sleep(backoff(p.retry, d._resume_tries))
    local offset = plan.first + accepted
    if offset > plan.last then return false end
    local how = reconnect(d, offset)
    if how == "ok" then return true end
    if how == "changed" then
      d._resume = nil
      return false, "the server did not continue the same entity"
    end
  end
  return false
end

local function new_download(t, p)
  local headers = t:headers()
  local d = setmetatable({
    _t = t, _p = p, _expect = p.expect, _hashed = p.hashed,
    status = t:status(),
    url = safe_url(t:url() or p.url),
    headers = headers,
  }, Download_mt)
  if headers["content-length"] then -- for HEAD: the size the entity would have
    d.size = core.parse_content_length(headers["content-length"])
  end
  if (d.status == 206 or d.status == 416) and headers["content-range"] then
    local first, last, total = core.parse_content_range(headers["content-range"])
    if first and d.status == 206 then d.range = { first = first, last = last, total = total } end
    d.total = total
  elseif d.status >= 200 and d.status < 300 then
    d.total = d.size
  end
  d._resume = resume_plan(d, p)
  d._started = core.now()
  return d
end

function Download:header(name)
  if type(name) ~= "string" then error("Download:header: name must be a string", 2) end
  return self.headers[name:lower()]
end

local function check_open(d, fn)
  if d._closed then error("attempt to use a closed download (" .. fn .. ")", 3) end
  return d._t
end

-- Adds expectations after open, before the body is read.
function Download:expect(expect)
  local t = check_open(self, "expect")
  if type(expect) ~= "table" then error("Download:expect: table expected", 2) end
  local e = check_expect("Download:expect", expect)
  local algs = {}
  for alg in pairs(DIGESTS) do
    if e[alg] and not self._hashed[alg] then algs[#algs + 1] = alg end
  end
  if #algs > 0 then
    if not t:add_hash(algs) then
      error("Download:expect: the body has started; ask for hash = { '" .. algs[1] .. "' } in cf.open", 2)
    end
    for _, alg in ipairs(algs) do self._hashed[alg] = true end
  end
  local merged = {}
  for k, v in pairs(self._expect) do merged[k] = v end
  for k, v in pairs(e) do merged[k] = v end
  self._expect = merged
  return self
end

function Download:digest(alg)
  if not DIGESTS[alg] then error("Download:digest: unknown digest '" .. tostring(alg) .. "'", 2) end
  if not self._hashed[alg] then
    error("Download:digest: '" .. alg .. "' was not asked for (hash = { '" .. alg .. "' } in cf.open)", 2)
  end
  return self._t:digest(alg)
end

local function fail(d, kind, message)
  local err = Error.new{ kind = kind, message = message, url = d.url, retryable = RETRYABLE_KIND[kind] or false }
  d._ended, d._end_err = true, err
  return err
end

-- The body ended cleanly at the transport level: check expectations once.
local function finish(d)
  if d._ended then return d._end_err end
  d._ended = true
  local e, received = d._expect, d._t:received()
  local problem
  if e.size and received ~= e.size then
    problem = string.format("size mismatch: expected %d bytes, received %d", e.size, received)
  else
    for _, alg in ipairs{ "sha1", "sha256", "md5" } do
      if e[alg] then
        local got = d._t:digest(alg)
        if got ~= e[alg] then
          problem = string.format("%s mismatch: expected %s, received %s", alg, e[alg], tostring(got))
          break
        end
      end
    end
  end
  if problem then
    d._end_err = Error.new{ kind = "integrity", message = problem .. " (" .. tostring(d.url) .. ")", url = d.url }
  end
  return d._end_err
end

-- Next body string, nil at the clean end; raises a cloudfetch.Error.
local function next_chunk(d, size)
  if d._ended then
    if d._end_err then error(d._end_err, 0) end
    return nil
  end
  local t = check_open(d, "chunks")
  local s, kind, message = t:read(size)
  while s == false do
    local resumed, why = resume(d, kind)
    if not resumed then
      if why then message = message .. "; not resumed: " .. why end
      break
    end
    s, kind, message = t:read(size)
  end
  if s then
    local progress = d._p.progress
    if progress then progress(t:received(), d.size) end
    return s
  end
  local err
  if s == nil then err = finish(d) else err = fail(d, kind, message) end
  if err then error(err, 0) end
  return nil
end

function Download:chunks(size)
  check_open(self, "chunks")
  if size ~= nil and (math.type(size) ~= "integer" or size < 1) then
    error("Download:chunks: size must be a positive integer", 2)
  end
  size = size or self._p.chunk_size
  return function() return next_chunk(self, size) end, nil, nil, self
end

-- Runs f; a cloudfetch.Error becomes nil, err, anything else (a progress
-- callback's own error) is raised again unchanged.
local function catch(f, ...)
  local ok, a, b = pcall(f, ...)
  if ok then return a, b end
  if cf.is_error(a) then return nil, a end
  error(a, 0)
end

function Download:read_all()
  check_open(self, "read_all")
  return catch(function()
    local parts = {}
    for s in function() return next_chunk(self, 1024 * 1024) end do parts[#parts + 1] = s end
    return table.concat(parts)
  end)
end

function Download:json()
  local body, err = self:read_all()
  if not body then return nil, err end
  local ok, value = pcall(cjson.decode, body)
  if not ok then
    return nil, Error.new{ kind = "protocol", status = self.status, url = self.url,
      message = "invalid JSON from " .. tostring(self.url) .. ": " .. tostring(value) }
  end
  return normalize_json(value)
end

function Download:filename()
  local cd = self.headers["content-disposition"]
  return cd and core.disposition_filename(cd) or nil
end

local function url_filename(url)
  local path = (url or ""):gsub("[?#].*$", ""):gsub("^%a[%w+.-]*://[^/]*", "")
  local last = path:match("([^/]+)/*$")
  if not last then return nil end
  last = last:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  return core.sanitize_filename(last)
end

local SAVE_OPTIONS = { overwrite = "boolean" }

-- Where a save of d goes: `path`, or `<dir>/<name>` when path is a
-- directory.  Returns the target, or nil, err with d closed.
local function save_target(d, path, overwrite)
  local function failed(e)
    d:close()
    return nil, Error.new(e)
  end
  if d.status < 200 or d.status > 299 then
    return failed{ kind = "http", status = d.status, url = d.url,
      message = "HTTP " .. d.status .. " from " .. tostring(d.url) .. ": nothing saved" }
  end
  local target = path
  if core.stat(path) == "directory" or path:sub(-1) == "/" then
    if core.stat(path) ~= "directory" then
      return failed{ kind = "io", code = "not_found", message = "no such directory: " .. path }
    end
    local name = d:filename() or url_filename(d.url)
    if not name then
      return failed{ kind = "io", code = "no_name", url = d.url,
        message = "no file name in Content-Disposition or the URL; give a file path" }
    end
    target = path:gsub("/+$", "") .. "/" .. name
  end
  if not overwrite and core.stat(target) then
    return failed{ kind = "io", code = "exists",
      message = target .. " exists already (pass overwrite = true to replace it)" }
  end
  return target
end

-- Streams the rest of d's body into the file f, resuming dropped
-- connections.  Returns bytes | nil, err | false, error raised by progress.
local function stream_to(d, f, progress_total)
  local t, progress = d._t, d._p.progress
  local on_data = progress and function(received) progress(received, progress_total) end
  local ok, bytes, kind, msg = pcall(t.pump, t, f, on_data)
  while ok and not bytes do
    local resumed, why = resume(d, kind)
    if not resumed then
      if why then msg = msg .. "; not resumed: " .. why end
      break
    end
    ok, bytes, kind, msg = pcall(t.pump, t, f, on_data)
  end
  if not ok then return false, bytes end
  if not bytes then return nil, fail(d, kind, msg) end
  local err = finish(d)
  if err then return nil, err end
  return bytes
end

local function commit(d, f, target, overwrite, bytes)
  local ok, kind, message, code = f:commit(target, overwrite)
  d:close()
  if not ok then return nil, Error.new{ kind = kind, code = code, message = message } end
  return target, bytes
end

function Download:save(path, opts)
  check_open(self, "save")
  if type(path) ~= "string" or path == "" then error("Download:save: path must be a non-empty string", 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("Download:save: opts must be a table", 2) end
  check_types("Download:save", opts, SAVE_OPTIONS)
  local target, err = save_target(self, path, opts.overwrite)
  if not target then return nil, err end
  local tmp, _, message = core.tempfile(target)
  if not tmp then
    self:close()
    return nil, Error.new{ kind = "io", message = message }
  end
  local bytes
  bytes, err = stream_to(self, tmp, self.size)
  if not bytes then
    tmp:discard()
    self:close()
    if bytes == false then error(err, 0) end -- progress raised; curl is at rest
    return nil, err
  end
  return commit(self, tmp, target, opts.overwrite, bytes)
end

function Download:close()
  if not self._closed then
    self._closed = true
    self._t:close()
  end
end

---------------------------------------------------------------------------
-- cf.open, cf.save
---------------------------------------------------------------------------

local RETRY_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

function cf.open(url, opts)
  local p = prepare("cloudfetch.open", url, opts)
  local retry = p.retry
  for attempt = 1, retry.attempts do
    local last = attempt == retry.attempts
    local t, kind, message = core.open(p.req)
    local retry_after
    if t then
      local status = t:status()
      if last or not RETRY_STATUS[status] then return new_download(t, p) end
      local ra = t:headers()["retry-after"]
      retry_after = ra and core.parse_retry_after(ra)
      if retry_after and retry_after > retry.max_delay then
        return new_download(t, p) -- the server asks for longer than we may wait
      end
      t:close()
    else
      local err = Error.new{ kind = kind, message = message .. " (" .. p.safe_url .. ")", url = p.safe_url,
        retryable = RETRYABLE_KIND[kind] or false }
      if last or not err.retryable then return nil, err end
    end
    core.sleep(backoff(retry, attempt, retry_after))
  end
end

-- What a part file holds: the entity's total size and validators.
local function entity_tag(plan)
  local names = {}
  for name in pairs(plan.validators) do names[#names + 1] = name end
  table.sort(names)
  local lines = { tostring(plan.total) }
  for _, name in ipairs(names) do lines[#lines + 1] = name .. ": " .. plan.validators[name] end
  return table.concat(lines, "\n")
end

-- cf.save(..., { resume = true }): the body goes to <target>.part, kept
-- after a transport failure and continued by a later run when the entity is
-- provably the same (its tag is stored on the part file).
local function save_resumable(url, path, open_opts, opts)
  local part, have
  if core.stat(path) ~= "directory" and path:sub(-1) ~= "/" then
    part = path .. ".part"
    local kind, size = core.stat(part)
    if kind == "file" and size > 0 and core.file_tag(part) then
      have = size
      open_opts.range = { size } -- ask only for what is missing
    end
  end
  local d, err = cf.open(url, open_opts)
  if not d then return nil, err end
  if have and d.status == 416 then -- the part is complete or stale: start over
    d:close()
    open_opts.range = nil
    have = nil
    d, err = cf.open(url, open_opts)
    if not d then return nil, err end
  end
  local target
  target, err = save_target(d, path, opts.overwrite)
  if not target then return nil, err end
  part = target .. ".part"
  local plan = d._resume
  local kind, size = core.stat(part)
  local tag = plan and entity_tag(plan)
  local continued = false
  if plan and kind == "file" and size > 0 and core.file_tag(part) == tag then
    -- Either the answer already starts where the part ends, or ask again.
    local how = (d.status == 206 and plan.first == size) and "ok" or
      (plan.first == 0 and size <= plan.last and reconnect(d, size))
    if how == "ok" then
      local ok, _, message = d._t:prefeed_file(part, size)
      if not ok then
        d:close()
        return nil, Error.new{ kind = "io", message = message }
      end
      plan.first = 0 -- from here on, accepted bytes count from the file's start
      continued = true
    elseif how == nil then
      local fkind, fmsg = d._t:failure()
      d:close()
      return nil, Error.new{ kind = fkind or "network", message = fmsg or "reconnection failed", url = d.url,
        retryable = true }
    end
  end
  if not continued and (d.status == 206 and have) then
    -- A range answer that does not continue this part: fetch the whole file.
    d:close()
    open_opts.range = nil
    os.remove(part)
    return save_resumable(url, path, open_opts, opts)
  end
  local f, _, message = core.part_file(part, continued)
  if not f then
    d:close()
    return nil, Error.new{ kind = "io", message = message }
  end
  if tag and not continued then f:set_tag(tag) end
  local bytes
  bytes, err = stream_to(d, f, d.total)
  if not bytes then
    -- Corrupt bytes cannot be continued; anything else can, later.
    if bytes == nil and err.kind == "integrity" then f:discard() else f:keep() end
    d:close()
    if bytes == false then error(err, 0) end
    return nil, err
  end
  return commit(d, f, target, opts.overwrite, bytes)
end

-- cf.save(..., { parallel = N, part_size = S }): ranged parts over N
-- connections written in place into the temporary file; the whole-file
-- digests are computed by reading the file once at the end.
local function save_parallel(url, path, open_opts, opts)
  local d, err = cf.open(url, open_opts)
  if not d then return nil, err end
  local plan, size = d._resume, opts.part_size or 64 * 1024 * 1024
  if not plan or plan.first ~= 0 or d.status ~= 200 or d.total <= size then
    return d:save(path, { overwrite = opts.overwrite }) -- one stream is all it can be
  end
  local target
  target, err = save_target(d, path, opts.overwrite)
  if not target then return nil, err end
  local tmp, _, message = core.tempfile(target)
  if not tmp then
    d:close()
    return nil, Error.new{ kind = "io", message = message }
  end
  local total, received, progress = d.total, 0, d._p.progress
  local on_data = function(n)
    received = received + n
    if progress then progress(received, total) end
  end
  -- Part 1 is the first answer's own body; the others are ranged requests.
  local active = { { d = d, t = d._t, first = 0, last = size - 1 } }
  local next_first = size
  local part_opts = {}
  for k, v in pairs(open_opts) do part_opts[k] = v end
  part_opts.hash, part_opts.expect, part_opts.progress = nil, nil, nil

  local function abort(e)
    for _, a in ipairs(active) do a.d:close() end
    tmp:discard()
    return nil, e
  end
  while #active > 0 do
    while #active < opts.parallel and next_first < total do
      local last = math.min(next_first + size, total) - 1
      part_opts.range = { next_first, last }
      local pd, perr = cf.open(url, part_opts)
      if not pd then return abort(perr) end
      local same = pd.status == 206 and pd.range and pd.range.first == next_first and pd.range.last == last
        and pd.total == total and pd._resume
      for name, value in pairs(plan.validators) do
        if pd.headers[name] ~= value then same = false end
      end
      if not same then
        pd:close()
        return abort(Error.new{ kind = "protocol", status = pd.status, url = pd.url,
          message = "parallel part " .. next_first .. "-" .. last .. " is not a range of the same entity" })
      end
      active[#active + 1] = { d = pd, t = pd._t, first = next_first, last = last }
      next_first = last + 1
    end
    local ok, i, kind, msg = pcall(core.pump_parts, tmp, active, on_data)
    if not ok then
      abort()
      error(i, 0) -- progress raised
    end
    local a = active[i]
    if kind then
      local resumed, why = resume(a.d, kind)
      if not resumed then
        if why then msg = msg .. "; not resumed: " .. why end
        return abort(fail(a.d, kind, msg))
      end
    else
      a.d:close()
      table.remove(active, i)
    end
  end
  local algs, expect = {}, d._expect
  for alg in pairs(DIGESTS) do
    if expect[alg] then algs[#algs + 1] = alg end
  end
  local sums, _, hmsg = core.hash_file(tmp:path(), algs)
  if not sums then return abort(Error.new{ kind = "io", message = hmsg }) end
  local problem
  if expect.size and expect.size ~= total then
    problem = string.format("size mismatch: expected %d bytes, received %d", expect.size, total)
  end
  for _, alg in ipairs(algs) do
    if not problem and sums[alg] ~= expect[alg] then
      problem = string.format("%s mismatch: expected %s, received %s", alg, expect[alg], sums[alg])
    end
  end
  if problem then
    return abort(Error.new{ kind = "integrity", url = d.url, message = problem .. " (" .. tostring(d.url) .. ")" })
  end
  return commit(d, tmp, target, opts.overwrite, total)
end

local CF_SAVE_OPTIONS = { overwrite = "boolean", resume = "boolean", parallel = "number", part_size = "number" }

function cf.save(url, path, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("cloudfetch.save: opts must be a table", 2) end
  if type(path) ~= "string" or path == "" then error("cloudfetch.save: path must be a non-empty string", 2) end
  local open_opts, save_opts = {}, {}
  for k, v in pairs(opts) do
    if CF_SAVE_OPTIONS[k] then save_opts[k] = v else open_opts[k] = v end
  end
  check_types("cloudfetch.save", save_opts, CF_SAVE_OPTIONS)
  local parallel = save_opts.parallel
  if parallel and (math.type(parallel) ~= "integer" or parallel < 1 or parallel > 64) then
    error("cloudfetch.save: parallel must be an integer from 1 to 64", 2)
  end
  if save_opts.part_size and (math.type(save_opts.part_size) ~= "integer" or save_opts.part_size < 1) then
    error("cloudfetch.save: part_size must be a positive integer", 2)
  end
  if (save_opts.resume or (parallel or 1) > 1) and open_opts.range then
    error("cloudfetch.save: range cannot be combined with resume or parallel", 2)
  end
  if save_opts.resume and (parallel or 1) > 1 then
    error("cloudfetch.save: resume and parallel cannot be combined", 2)
  end
  if save_opts.resume then return save_resumable(url, path, open_opts, save_opts) end
  if (parallel or 1) > 1 then return save_parallel(url, path, open_opts, save_opts) end
  local d, err = cf.open(url, open_opts)
  if not d then return nil, err end
  return d:save(path, { overwrite = save_opts.overwrite })
end

return cf
