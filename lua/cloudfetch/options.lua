-- cloudfetch.options: every option of the public API, its checks, and the
-- request the C core gets.  Programmer misuse raises a plain error naming
-- the function and pointing at the caller's line (options.checked).
local core = require "cloudfetch.core"
local cjson = require "cjson"
local errors = require "cloudfetch.errors"

local options = {}

-- cf.open's options.
options.OPEN = {
  method = "string", headers = "table", query = "table", body = "string", json = "table",
  range = "table", hash = "table", expect = "table", timeout = "number",
  connect_timeout = "number", stall_timeout = "number", chunk_size = "number",
  buffer_size = "number", retry = "table|boolean", progress = "function",
  verify_tls = "boolean", ca_file = "string", ca_path = "string", proxy = "string",
  user_agent = "string", follow_redirects = "boolean", max_redirects = "number",
  validators = "table", hash_thread = "boolean",
}

-- What cf.save (and the services' saves) take beyond cf.open's options.
options.SAVE = {
  overwrite = "boolean", resume = "boolean", parallel = "number", part_size = "number", sync = "boolean",
  mtime = "number",
}

-- The subset a service client (b2, notary) keeps and applies to each request.
options.TRANSPORT = {
  verify_tls = "boolean", ca_file = "string", ca_path = "string", proxy = "string",
  user_agent = "string", connect_timeout = "number", timeout = "number",
  stall_timeout = "number", retry = "table|boolean",
}

options.DIGESTS = { sha1 = 40, sha256 = 64, md5 = 32 }
options.DEFAULT_RETRY = { attempts = 5, base_delay = 1, max_delay = 64 }
options.USER_AGENT = "cloudfetch/" .. core.version .. " libcurl/" .. core.curl_version

local MAX_SECONDS = 1e7 -- about four months: more than any timeout means
local EMPTY = setmetatable({}, { __newindex = function() error("cloudfetch: internal: EMPTY is read-only", 2) end })
local JSON_HEADERS = { ["Content-Type"] = "application/json" }
-- Options passed to the core as they are (its defaults are the documented
-- ones: connect_timeout 30, stall_timeout 60, buffer_size 1 MiB, verify_tls
-- on, max_redirects 5, user_agent cloudfetch/VERSION libcurl/VERSION).
local REQUEST_FIELDS = {
  timeout = true, connect_timeout = true, stall_timeout = true, buffer_size = true, verify_tls = true,
  ca_file = true, ca_path = true, proxy = true, user_agent = true, follow_redirects = true, max_redirects = true,
  hash_thread = true,
}
local MAX_PARALLEL = 64
local METHODS = { GET = true, POST = true, HEAD = true, PUT = true, DELETE = true }

-- Misuse travels as this table until options.checked re-raises it at the
-- public function's caller.
local Misuse = { __tostring = function(m) return m.message end }

function options.misuse(fn, msg)
  error(setmetatable({ message = fn .. ": " .. msg }, Misuse), 0)
end
local misuse = options.misuse

-- Runs check(...); a misuse it raises is raised again as a plain message at
-- the line that called the public function which called checked (so a
-- public function must not tail-call checked).
function options.checked(check, ...)
  local ok, a, b, c = pcall(check, ...)
  if ok then return a, b, c end
  if getmetatable(a) == Misuse then error(a.message, 3) end
  error(a, 0)
end

function options.check_types(fn, opts, types)
  for k, v in pairs(opts) do
    local want = types[k]
    if not want then misuse(fn, "unknown option '" .. tostring(k) .. "'") end
    if not want:find(type(v), 1, true) then
      misuse(fn, "option '" .. k .. "' must be a " .. want:gsub("|", " or ") .. ", got " .. type(v))
    end
  end
end
local check_types = options.check_types

-- A number option within [lo, hi] (NaN and infinities never pass);
-- `integer` asks for an integer.
local function number_in(fn, name, v, lo, hi, integer)
  if v == nil then return end
  if integer and math.type(v) ~= "integer" then misuse(fn, "option '" .. name .. "' must be an integer") end
  if not (v >= lo and v <= hi) then
    misuse(fn, string.format("option '%s' must be from %s to %s", name, tostring(lo), tostring(hi)))
  end
end
options.number_in = number_in

function options.check_expect(fn, expect)
  local out = {}
  for k, v in pairs(expect) do
    if k == "size" then
      if math.type(v) ~= "integer" or v < 0 then misuse(fn, "expect.size must be a non-negative integer") end
      out.size = v
    elseif options.DIGESTS[k] then
      local n = options.DIGESTS[k]
      if type(v) ~= "string" or #v ~= n or v:find("[^%x]") then
        misuse(fn, "expect." .. k .. " must be " .. n .. " hex digits")
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

local function percent(c)
  return string.format("%%%02X", c:byte())
end

function options.urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", percent))
end

local function with_query(fn, url, query)
  if not query then return url end
  local keys = {}
  for k, v in pairs(query) do
    local tv = type(v)
    if tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
      misuse(fn, "query value '" .. tostring(k) .. "' must be a string, number or boolean, got " .. tv)
    end
    keys[#keys + 1] = tostring(k)
  end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = query[k]
    if v == nil then v = query[tonumber(k)] end
    parts[#parts + 1] = options.urlencode(k) .. "=" .. options.urlencode(tostring(v))
  end
  if #parts == 0 then return url end
  return url .. (url:find("?", 1, true) and "&" or "?") .. table.concat(parts, "&")
end

local function check_retry(fn, retry)
  if retry == false then return { attempts = 1, base_delay = 0, max_delay = 0 } end
  if retry == nil or retry == true then return options.DEFAULT_RETRY end
  check_types(fn .. " retry", retry, { attempts = "number", base_delay = "number", max_delay = "number" })
  local r = {
    attempts = retry.attempts or options.DEFAULT_RETRY.attempts,
    base_delay = retry.base_delay or options.DEFAULT_RETRY.base_delay,
    max_delay = retry.max_delay or options.DEFAULT_RETRY.max_delay,
  }
  if math.type(r.attempts) ~= "integer" or r.attempts < 1 or r.attempts > 1000 then
    misuse(fn, "retry.attempts must be an integer from 1 to 1000")
  end
  number_in(fn, "retry.base_delay", r.base_delay, 0, 3600)
  number_in(fn, "retry.max_delay", r.max_delay, 0, 86400)
  return r
end

-- Validates cf.open's arguments; returns the policy the Lua side applies
-- (expectations, retries, chunking, progress) with `req`, the request for
-- the core.
function options.prepare(fn, url, opts)
  if type(url) ~= "string" then misuse(fn, "url must be a string, got " .. type(url)) end
  if url:find("%z") then misuse(fn, "url contains a NUL byte") end
  local scheme = url:match("^(%a[%w+.-]*)://")
  scheme = scheme and scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    misuse(fn, "only http:// and https:// URLs are allowed: " .. errors.safe_url(url))
  end
  opts = opts or {}
  if type(opts) ~= "table" then misuse(fn, "opts must be a table, got " .. type(opts)) end
  check_types(fn, opts, options.OPEN)
  local method = (opts.method or "GET"):upper()
  if not METHODS[method] then misuse(fn, "unsupported method '" .. opts.method .. "'") end
  if opts.body and opts.json then misuse(fn, "give body or json, not both") end
  number_in(fn, "chunk_size", opts.chunk_size, 1, 1 << 30, true)
  number_in(fn, "buffer_size", opts.buffer_size, 1, 1 << 30, true)
  number_in(fn, "timeout", opts.timeout, 0.001, MAX_SECONDS)
  number_in(fn, "connect_timeout", opts.connect_timeout, 0.001, MAX_SECONDS)
  number_in(fn, "stall_timeout", opts.stall_timeout, 0.001, MAX_SECONDS)
  number_in(fn, "max_redirects", opts.max_redirects, 0, 1000, true)

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

  local expect, hash, seen = EMPTY, EMPTY, EMPTY
  if opts.expect then expect = options.check_expect(fn, opts.expect) end
  if opts.hash or next(expect) then
    hash, seen = {}, {}
    for _, alg in ipairs(opts.hash or EMPTY) do
      if not options.DIGESTS[alg] then misuse(fn, "unknown digest '" .. tostring(alg) .. "' (sha1, sha256, md5)") end
      if not seen[alg] then hash[#hash + 1], seen[alg] = alg, true end
    end
    for alg in pairs(options.DIGESTS) do
      if expect[alg] and not seen[alg] then hash[#hash + 1], seen[alg] = alg, true end
    end
  end
  local validators = EMPTY
  if opts.validators then
    validators = {}
    for _, name in ipairs(opts.validators) do
      if type(name) ~= "string" then misuse(fn, "validators must be a list of header names") end
      validators[#validators + 1] = name:lower()
    end
  end

  local full_url = with_query(fn, url, opts.query)
  -- The core's defaults are the documented ones: only what differs is sent.
  local req = { url = full_url, method = method, range_first = range_first, range_last = range_last,
    body = opts.body }
  if opts.json then
    req.body = cjson.encode(opts.json)
    req.headers = header_lines(fn, opts.headers, JSON_HEADERS)
  elseif opts.headers then
    req.headers = header_lines(fn, opts.headers, EMPTY)
  end
  for k in pairs(REQUEST_FIELDS) do
    local v = opts[k]
    if v ~= nil then req[k] = v end
  end
  if #hash > 0 then req.hash = hash end
  return {
    fn = fn,
    req = req,
    url = full_url,
    safe_url = errors.safe_url(full_url),
    expect = expect,
    hashed = seen,
    retry = check_retry(fn, opts.retry),
    chunk_size = opts.chunk_size or 64 * 1024,
    progress = opts.progress,
    validators = validators,
  }
end

-- Splits a cf.save-style options table into cf.open's options and the save
-- options (checked here); keys in `own` (name -> type) go to a third table.
function options.split(fn, opts, own)
  if opts ~= nil and type(opts) ~= "table" then misuse(fn, "opts must be a table, got " .. type(opts)) end
  local open, save, mine = {}, {}, {}
  for k, v in pairs(opts or {}) do
    if own and own[k] then
      mine[k] = v
    elseif options.SAVE[k] then
      save[k] = v
    else
      open[k] = v
    end
  end
  check_types(fn, save, options.SAVE)
  if own then check_types(fn, mine, own) end
  number_in(fn, "parallel", save.parallel, 1, MAX_PARALLEL, true)
  number_in(fn, "part_size", save.part_size, 1, math.maxinteger, true)
  if (save.resume or (save.parallel or 1) > 1) and open.range then
    misuse(fn, "range cannot be combined with resume or parallel")
  end
  if save.resume and (save.parallel or 1) > 1 then
    misuse(fn, "resume and parallel cannot be combined")
  end
  return open, save, mine
end

-- Checks a save path argument.
function options.check_path(fn, path)
  if type(path) ~= "string" or path == "" then misuse(fn, "path must be a non-empty string") end
  if path:find("%z") then misuse(fn, "path contains a NUL byte") end
end

-- cjson gives JSON null as a sentinel and every number as a float; Lua
-- callers expect absent keys, and sizes and counts as integers.
function options.normalize_json(v)
  if type(v) ~= "table" then
    if v == cjson.null then return nil end
    if math.type(v) == "float" then return math.tointeger(v) or v end
    return v
  end
  for k, x in pairs(v) do v[k] = options.normalize_json(x) end
  return v
end

return options
