-- cloudfetch.retry: opening a request with retries (backoff with jitter,
-- Retry-After), and the transparent resume of a body that broke off (a
-- Range request for the missing bytes of the very same entity).
local core = require "cloudfetch.core"
local errors = require "cloudfetch.errors"
local sched = require "cloudfetch.sched"

local retry = {}

local Error = errors.Error

-- Seconds to wait before attempt `attempt` + 1.
function retry.backoff(policy, attempt, retry_after)
  local delay = math.min(policy.max_delay, policy.base_delay * 2 ^ (attempt - 1))
  delay = delay * (0.5 + math.random() * 0.5) -- jitter spreads out synchronized clients
  return math.max(delay, retry_after or 0)
end

-- A refused connection gets at most this many attempts, quickly spaced.
local REFUSED_ATTEMPTS = 3
local REFUSED_DELAY = 0.25

-- Starts the request and waits (sched.wait: yields inside a task) for the
-- headers.  Returns the transfer, or nil, kind, message, code.
local function attempt(req)
  local t = core.start(req)
  sched.wait_ready(t)
  -- Before the first body byte is asked for the transfer is paused there,
  -- so a failure now happened before or with the headers.
  local kind, message, code = t:failure()
  if kind then
    t:close()
    return nil, kind, message, code
  end
  return t
end

local function attempts_note(n)
  return n > 1 and string.format(" (after %d attempts)", n) or ""
end

-- Sends p.req with p.retry's policy: transport failures and retryable
-- statuses are tried again after a backoff (at least the server's
-- Retry-After).  Returns the transfer of the answer to hand out (any
-- status), or nil, err.
function retry.open(p)
  local policy = p.retry
  local n = 0
  while true do
    n = n + 1
    local last = n >= policy.attempts
    local t, kind, message, code = attempt(p.req)
    local wait
    if t then
      local status = t:status()
      if last or not errors.RETRY_STATUS[status] then return t, n end
      local ra = t:headers()["retry-after"]
      local retry_after = ra and core.parse_retry_after(ra)
      if retry_after and retry_after > policy.max_delay then
        return t, n -- the server asks for longer than we may wait
      end
      t:close()
      wait = retry.backoff(policy, n, retry_after)
    else
      -- No descriptor for a socket: another attempt would find none either.
      local retryable = errors.RETRYABLE_KIND[kind] and code ~= "resolve" and code ~= "nofile"
      if code == "refused" then
        last = last or n >= REFUSED_ATTEMPTS
        wait = math.min(REFUSED_DELAY, policy.base_delay) * n
      else
        wait = retry.backoff(policy, n)
      end
      if last or not retryable then
        return nil, Error.new{ kind = kind, code = code, url = p.safe_url, retryable = retryable or false,
          message = message .. " (" .. p.safe_url .. ")" .. attempts_note(n) }
      end
    end
    sched.sleep(wait)
  end
end

-- Headers that identify an entity for a resume: a strong ETag, or
-- Last-Modified (with the total size), plus the caller's own (B2 names
-- its X-Bz-File-Id through the `validators` option).
local function validators_of(headers, extra)
  local etag = headers["etag"]
  if etag and etag:match("^%s*W/") then etag = nil end
  local v = { etag = etag, ["last-modified"] = headers["last-modified"] }
  for _, name in ipairs(extra or {}) do v[name] = headers[name] end
  return v
end

-- How a dropped body of d could be continued, or nil: only a GET whose
-- server advertised ranges and whose entity is identified.
function retry.plan(d, p)
  local h = d.headers
  if p.req.method ~= "GET" or not d.total then return nil end
  if d.status == 200 then
    if not (h["accept-ranges"] or ""):lower():find("bytes", 1, true) then return nil end
  elseif d.status ~= 206 then
    return nil
  end
  local validators = validators_of(h, p.validators)
  if not next(validators) then return nil end
  local first = d.range and d.range.first or 0
  local last = d.range and d.range.last or d.total - 1
  return { first = first, last = last, total = d.total, validators = validators }
end

-- Is this answer bytes first..last of the planned entity?
function retry.same_entity(plan, status, headers, first, last)
  if status ~= 206 then return false end
  local f, l, total = core.parse_content_range(headers["content-range"] or "")
  if f ~= first or l ~= last or total ~= plan.total then return false end
  for name, value in pairs(plan.validators) do
    if headers[name] ~= value then return false end
  end
  return true
end

-- One reconnection of d for the bytes from `offset` on: "ok" when the
-- answer continues the same entity, "changed" when it does not, nil when the
-- request failed in transport.
function retry.reconnect(d, offset)
  local plan, t = d._resume, d._t
  local req = {}
  for k, v in pairs(d._p.req) do req[k] = v end
  req.range_first, req.range_last = offset, plan.last
  if not t:resume(req) then return nil end
  sched.wait_ready(t)
  if t:failure() then return nil end
  return retry.same_entity(plan, t:status(), t:headers(), offset, plan.last) and "ok" or "changed"
end

-- After the body broke off: reconnect for the missing bytes, with backoff.
-- Each drop after progress gets retry.attempts - 1 reconnections; drops that
-- follow a reconnection which delivered nothing share them.  Returns true to
-- carry on reading; false (and why, when the server answered) to fail with
-- the original error.
function retry.resume(d, kind)
  local plan, p = d._resume, d._p
  if not plan or not errors.RETRYABLE_KIND[kind] or p.retry.attempts < 2 then return false end
  if p.req.timeout and core.now() - d._started >= p.req.timeout then return false end
  local accepted = d._t:accepted()
  if d._resume_at ~= accepted then d._resume_at, d._resume_tries = accepted, 0 end
  d._resumes = d._resumes or 0
  while d._resume_tries < p.retry.attempts - 1 do
    -- Bounded overall too, against a server that drops every connection.
    if d._resumes >= 10 * p.retry.attempts then return false end
    d._resumes = d._resumes + 1
    d._resume_tries = d._resume_tries + 1
    sched.sleep(retry.backoff(p.retry, d._resume_tries))
    if d._closed then return false end
    local offset = plan.first + accepted
    if offset > plan.last then return false end
    local how = retry.reconnect(d, offset)
    if how == "ok" then return true end
    if how == "changed" then
      d._resume = nil
      return false, "the server did not continue the same entity"
    end
  end
  return false
end

return retry
