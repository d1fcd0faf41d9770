-- cloudfetch.download: `Download` objects (cf.open's result): headers,
-- reading the body (chunks, read_chunk, read_all, json), digests and the
-- integrity check at the end of the body.
local core = require "cloudfetch.core"
local cjson = require "cjson"
local errors = require "cloudfetch.errors"
local options = require "cloudfetch.options"
local retry = require "cloudfetch.retry"
local sched = require "cloudfetch.sched"

local download = {}

local Error = errors.Error
local clock = sched.clock

--- @module cloudfetch

-- (LDoc takes the class's description from init.lua, above Download:save.)

--- @type Download
local Download = {}
download.Download = Download

local Download_mt = {
  __name = "cloudfetch.Download",
  __index = function(d, k)
    if k == "received" then return rawget(d, "_t"):received() end
    return Download[k]
  end,
  __close = function(d) d:close() end,
  __tostring = function(d) return "cloudfetch.Download(" .. d.status .. " " .. tostring(d.url) .. ")" end,
}

-- A Download over the transfer t, whose headers are in.
function download.new(t, p, attempts)
  local headers = t:headers()
  local hashed = {}
  for alg in pairs(p.hashed) do hashed[alg] = true end -- d:expect may add to it
  local d = setmetatable({
    _t = t, _p = p, _expect = p.expect, _hashed = hashed, _attempts = attempts,
    status = t:status(),
    url = errors.safe_url(t:url() or p.url),
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
  d._resume = retry.plan(d, p)
  d._started = core.now()
  return sched.track(d, "close")
end

-- cf.open after its arguments were checked (p from options.prepare).
local function protocol_error(d, message)
  return Error.new{ kind = "protocol", status = d.status, url = d.url,
    message = message .. " (" .. tostring(d.url) .. ")" }
end

-- What is wrong with an answer's framing, before any body byte is taken:
-- a Content-Length that is not one valid number (RFC 9110 8.6: repeats must
-- agree), one beside Transfer-Encoding (RFC 9112 6.3: "ought to be handled
-- as an error"; libcurl would go by the chunks and end cleanly however few
-- bytes they hold, while d.size says otherwise), and a 206 that is not the
-- range asked for.  nil when nothing.
local function framing_problem(d, p)
  local cl = d.headers["content-length"]
  if cl and d.headers["transfer-encoding"] then
    return "both Transfer-Encoding and Content-Length in one answer"
  end
  if cl then
    local first
    for v in (cl .. ","):gmatch("%s*([^,]*),") do
      if not core.parse_content_length(v) or (first and v ~= first) then
        return "malformed or conflicting Content-Length: " .. cl
      end
      first = first or v
    end
  end
  if d.status ~= 206 then return nil end
  local want_first, want_last = p.req.range_first, p.req.range_last
  if not want_first then return "a 206 Partial Content answer to a request for the whole entity" end
  local cr = d.headers["content-range"]
  if not cr then return nil end -- B2 leaves it out for a range covering the whole file
  local r = d.range
  if not r or not r.first then return "malformed Content-Range: " .. cr end
  if r.first ~= want_first or r.last < r.first or (want_last and r.last > want_last) then
    return string.format("asked for bytes %d-%s, got %s", want_first, want_last and tostring(want_last) or "", cr)
  end
  if d.size and d.size ~= r.last - r.first + 1 then
    return string.format("Content-Range %s does not match Content-Length %d", cr, d.size)
  end
  return nil
end

---------------------------------------------------------------------------
-- Redirects.  With follow_redirects the core is asked not to follow (libcurl
-- would carry the caller's headers to any host): each 3xx answer comes back
-- here, and what the next request carries is decided here.

local REDIRECTS = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }
local DEFAULT_MAX_REDIRECTS = 5

-- The caller's request headers that may go to another origin (scheme, host
-- or port): content negotiation, the range and conditions.  Every other one
-- (Authorization, Cookie, X-Auth-Token, X-Bz-Auth, ...) is dropped, and so are
-- the URL's user name and password.
download.CROSS_ORIGIN_HEADERS = {
  accept = true, ["accept-encoding"] = true, ["accept-language"] = true, ["user-agent"] = true,
  range = true, ["if-range"] = true, ["if-match"] = true, ["if-none-match"] = true,
  ["if-modified-since"] = true, ["if-unmodified-since"] = true, ["cache-control"] = true, pragma = true,
}

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- Header lines ("Name: value") whose lower-case name keep(name) accepts.
local function header_lines_where(lines, keep)
  if not lines then return nil end
  local out = {}
  for _, line in ipairs(lines) do
    local name = line:match("^([^:]*):")
    if name and keep(name:lower()) then out[#out + 1] = line end
  end
  return out
end

local function not_content(name) return name:sub(1, 8) ~= "content-" end
local function cross_origin_safe(name) return download.CROSS_ORIGIN_HEADERS[name] == true end

-- A redirect's body is read away when it is small, so that the connection
-- can carry the next request; else the connection goes.
local function discard_body(t)
  local cl = core.parse_content_length(t:headers()["content-length"] or "")
  if not cl or cl > 64 * 1024 then return end
  local deadline = clock() + 1
  while true do
    local s = t:read(64 * 1024)
    if not s then return end -- the end, or a failure: either way done with it
    if s == false and not sched.wait(t, nil, deadline) then return end
  end
end

local function redirect_error(p, message)
  return Error.new{ kind = "protocol", url = p.safe_url, message = message .. " (" .. p.safe_url .. ")" }
end

-- Sends p's request (retry.open) and follows redirects when asked to.
-- Returns the transfer of the answer to hand out, retry.open's attempts and
-- the p that request was made with (the final URL, the headers it kept);
-- or nil, err.
local function open_following(p)
  local max = p.max_redirects
  if not max then
    if not p.req.follow_redirects then
      local t, n = retry.open(p)
      return t, n, p
    end
    max = p.req.max_redirects or DEFAULT_MAX_REDIRECTS
    p = copy(p)
    p.req = copy(p.req)
    p.req.follow_redirects, p.req.max_redirects = nil, nil
    p.max_redirects = max -- later opens from this p (parallel parts) follow too
  end
  local ok, origin = core.resolve_url(p.req.url)
  if not ok then origin = nil end -- (the request itself will fail)
  local hops = 0
  while true do
    local t, n = retry.open(p)
    if not t then return nil, n end
    local status = t:status()
    local location = REDIRECTS[status] and t:headers()["location"]
    if not location then return t, n, p end
    if hops >= max then
      t:close()
      return nil, redirect_error(p, string.format("too many redirects (max_redirects = %d)", max))
    end
    local target, target_origin = core.resolve_url(p.req.url, location)
    if not target then
      t:close()
      local why = target_origin -- resolve_url's message
      return nil, redirect_error(p, "redirect to an unusable URL " .. errors.safe_url(location) .. ": " .. why)
    end
    local req = copy(p.req)
    req.url = target
    -- 303 asks for a GET; after a POST, so do 301 and 302 (as browsers and
    -- curl do).  The body and the headers describing it are dropped.
    if (status == 303 and req.method ~= "HEAD") or ((status == 301 or status == 302) and req.method == "POST") then
      req.method, req.body = "GET", nil
      req.headers = header_lines_where(req.headers, not_content)
    end
    if target_origin ~= origin then
      -- Nothing of the caller's goes to another origin: a body is not sent
      -- there at all (the 3xx answer is returned as it is), and only
      -- harmless headers follow.
      if req.body then return t, n, p end
      req.url = assert(core.resolve_url(target, nil, true))
      req.headers = header_lines_where(req.headers, cross_origin_safe)
    end
    discard_body(t)
    t:close()
    hops = hops + 1
    p = copy(p)
    p.req, p.url, p.safe_url = req, req.url, errors.safe_url(req.url)
    origin = target_origin
  end
end

function download.open(p)
  local t, err, final = open_following(p)
  if not t then return nil, errors.scrub_url_secrets(err, p.url) end
  p = final
  local d = download.new(t, p, err)
  local problem = framing_problem(d, p)
  if problem then
    d:close()
    return nil, protocol_error(d, problem)
  end
  return d
end

-- A body that cannot match `expect.size` fails before (or as soon as) it
-- goes over: Content-Length already says otherwise, or more bytes came.
-- Ends d with that integrity error and returns it; nil when all is well.
function download.overrun(d)
  local want = d._expect.size
  if not want then return nil end
  local got, problem = d._t:accepted(), nil
  if got > want then
    problem = string.format("size mismatch: expected %d bytes, received more", want)
  elseif got == 0 and d.status == 200 and d.size and d.size ~= want then
    problem = string.format("size mismatch: expected %d bytes, the answer has %d", want, d.size)
  end
  if not problem then return nil end
  d._ended, d._end_err = true, download.integrity_error(problem, d.url)
  return d._end_err
end

local function check_open(d)
  if d._closed then error("attempt to use a closed download", 3) end
  return d._t
end

--- A response header, by case-insensitive name.
-- @tparam string name
-- @treturn ?string its value, or nil
function Download:header(name)
  if type(name) ~= "string" then error("Download:header: name must be a string", 2) end
  return self.headers[name:lower()]
end

--- Adds expectations after @{open} returned, before the body is read;
-- checked at the end of the body exactly like `opts.expect`.
-- @tparam table expect `{ sha1 =, sha256 =, md5 = (lowercase hex), size = }`
-- @treturn Download the download itself
-- @raise when the body has started and a new digest would be needed
function Download:expect(expect)
  local t = check_open(self)
  if type(expect) ~= "table" then error("Download:expect: table expected", 2) end
  local e = options.checked(options.check_expect, "Download:expect", expect)
  local algs = {}
  for alg in pairs(options.DIGESTS) do
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

--- Lowercase hex digest of the body received so far (final once the body
-- ended); still readable after @{Download:close}.
-- @tparam string alg `"sha1"`, `"sha256"` or `"md5"`
-- @treturn string
-- @raise when `alg` was neither in `opts.hash` nor in the expectations
function Download:digest(alg)
  if not options.DIGESTS[alg] then error("Download:digest: unknown digest '" .. tostring(alg) .. "'", 2) end
  if not self._hashed[alg] then
    error("Download:digest: '" .. alg .. "' was not asked for (hash = { '" .. alg .. "' } in cf.open)", 2)
  end
  return self._t:digest(alg)
end

--- A safe file name from Content-Disposition (`filename*` preferred): never
-- contains `/`, `\`, NUL or control bytes, never `.` or `..`, at most 255
-- bytes.
-- @treturn ?string the name, or nil
function Download:filename()
  local cd = self.headers["content-disposition"]
  return cd and core.disposition_filename(cd) or nil
end

-- What is wrong with a body of `size` bytes whose digests digest(alg)
-- gives, against `expect`; nil when nothing.
function download.integrity_problem(expect, size, digest)
  if expect.size and size ~= expect.size then
    return string.format("size mismatch: expected %d bytes, received %d", expect.size, size)
  end
  for _, alg in ipairs{ "sha1", "sha256", "md5" } do
    if expect[alg] then
      local got = digest(alg)
      if got ~= expect[alg] then
        return string.format("%s mismatch: expected %s, received %s", alg, expect[alg], tostring(got))
      end
    end
  end
  return nil
end

function download.integrity_error(problem, url)
  return Error.new{ kind = "integrity", message = problem .. " (" .. tostring(url) .. ")", url = url }
end

-- Ends d with a transport failure.
function download.fail(d, kind, message)
  local err = Error.new{ kind = kind, message = errors.scrub(message, errors.url_secrets(d._p.url)), url = d.url,
    retryable = errors.RETRYABLE_KIND[kind] or false }
  d._ended, d._end_err = true, err
  return err
end
local fail = download.fail

-- The body ended cleanly at the transport level: check expectations once.
function download.finish(d)
  if d._ended then return d._end_err end
  d._ended = true
  local t = d._t
  local problem = download.integrity_problem(d._expect, t:accepted(), function(alg) return t:digest(alg) end)
  if problem then d._end_err = download.integrity_error(problem, d.url) end
  return d._end_err
end
local finish = download.finish

local function progress(d, n)
  sched.count(n)
  local fn = d._p.progress
  if fn then fn(d._t:received(), d.size) end
end

-- The next body string without waiting: a string, nil at the clean end,
-- or false when nothing is there yet (d._op then holds a resume in
-- progress, when there is one).  Raises a cloudfetch.Error on failure.
local function poll_chunk(d, size)
  if d._ended then
    if d._end_err then error(d._end_err, 0) end
    return nil
  end
  local t = check_open(d)
  local op = d._op
  if op then
    local done, resumed, why = op:poll()
    if not done then return false end
    d._op = nil
    if not resumed then
      local kind, message = op.kind, op.message
      if why then message = message .. "; not resumed: " .. why end
      error(fail(d, kind, message), 0)
    end
  end
  local over = download.overrun(d)
  if over then error(over, 0) end
  local s, kind, message = t:read(size)
  if s then
    progress(d, #s)
    return s
  end
  if s == false then return false end
  if kind == nil then
    local err = finish(d)
    if err then error(err, 0) end
    return nil
  end
  d._op = sched.op(retry.resume, d, kind)
  d._op.kind, d._op.message = kind, message
  return poll_chunk(d, size)
end

-- What poll_chunk waits for.
local function wait_chunk(d, deadline)
  if d._op then return d._op:wait(deadline) end
  return sched.wait(d._t, nil, deadline)
end

-- Next body string, nil at the clean end; raises a cloudfetch.Error.
local function next_chunk(d, size)
  while true do
    local s = poll_chunk(d, size)
    if s ~= false then return s end
    wait_chunk(d)
  end
end

--- Iterator over the body, for a generic `for`.  Raises the @{Error} on a
-- failure, including a digest or size mismatch found at the end, so a
-- failed transfer never looks like a clean end; `break` aborts the
-- transfer at once.
-- @tparam[opt] integer size largest string per chunk (default `chunk_size`)
-- @return iterator function, nil, nil, and the download as closing value
-- @usage for chunk in d:chunks() do io.write(chunk) end
function Download:chunks(size)
  check_open(self)
  if size ~= nil and (math.type(size) ~= "integer" or size < 1) then
    error("Download:chunks: size must be a positive integer", 2)
  end
  size = size or self._p.chunk_size
  return function() return next_chunk(self, size) end, nil, nil, self
end

--- The next body string without blocking longer than `timeout`; for host
-- loops.  Inside a task it waits by yielding.
-- @tparam[opt=0] number timeout seconds to wait at most (0: never blocks)
-- @return a string (at most `chunk_size` bytes); nil when the body ended and
-- every check passed; false when nothing arrived in time
-- @raise the @{Error} on failure, as @{Download:chunks}
function Download:read_chunk(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    error("Download:read_chunk: timeout must be a non-negative number", 2)
  end
  check_open(self)
  local size = self._p.chunk_size
  local deadline = clock() + (timeout or 0)
  while true do
    local s = poll_chunk(self, size)
    if s ~= false then return s end
    -- Run the engine at least once, even with no time to wait.
    if not wait_chunk(self, deadline) and clock() >= deadline then
      s = poll_chunk(self, size)
      return s
    end
  end
end

-- Runs f; a cloudfetch.Error becomes nil, err, anything else (a progress
-- callback's own error) is raised again unchanged.
local function catch(f, ...)
  local ok, a, b = pcall(f, ...)
  if ok then return a, b end
  if errors.is_error(a) then return nil, a end
  error(a, 0)
end

--- The whole body as one string.
-- @treturn[1] string
-- @return[2] nil
-- @treturn[2] Error
function Download:read_all()
  check_open(self)
  return catch(function()
    local parts = {}
    for s in function() return next_chunk(self, 1024 * 1024) end do parts[#parts + 1] = s end
    return table.concat(parts)
  end)
end

--- The body decoded as JSON (JSON `null` becomes an absent key, integral
-- numbers integers).
-- @return[1] the decoded value
-- @return[2] nil
-- @treturn[2] Error kind `"protocol"` for invalid JSON
function Download:json()
  local body, err = self:read_all()
  if not body then return nil, err end
  local ok, value = pcall(cjson.decode, body)
  if not ok then
    return nil, Error.new{ kind = "protocol", status = self.status, url = self.url,
      message = "invalid JSON from " .. tostring(self.url) .. ": " .. tostring(value) }
  end
  return options.normalize_json(value)
end

--- Aborts the transfer if it is still running.  Idempotent; `status`,
-- `headers`, `received` and the digests stay readable.
function Download:close()
  if not self._closed then
    self._closed = true
    self._t:close()
    sched.untrack(self)
  end
end

download.check_open = check_open

return download
