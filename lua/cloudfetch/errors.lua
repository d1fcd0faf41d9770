-- cloudfetch.errors: the `cloudfetch.Error` type and what every module needs
-- to report failures: which failures are worth retrying, URLs and messages
-- with their secrets removed.
local errors = {}

--- @module cloudfetch

--- An operational failure, as in `nil, err` (and what iterators raise);
-- `cf.Error` is this type.  `tostring(err)` gives `"<kind>: <message>"`,
-- never a secret.
--
-- Fields:
--
-- - `kind`: `"network"`, `"timeout"`, `"tls"`, `"http"` (a non-2xx answer
--   where one was required), `"api"` (a service's error answer), `"auth"`
--   (credentials or token refused), `"integrity"` (digest or size
--   mismatch), `"io"` (disk), `"protocol"` (malformed answer), `"canceled"`
-- - `message`: human text
-- - `status`: the HTTP status, when there was one
-- - `code`: the service's error code (`"not_found"`, ...), when there was one
-- - `retryable`: boolean
-- - `url`: the URL involved, credentials removed
-- @type Error
local Error = { __name = "cloudfetch.Error" }
Error.__index = Error
Error.__tostring = function(e) return e.kind .. ": " .. e.message end

local KINDS = {
  network = true, timeout = true, tls = true, http = true, api = true, auth = true,
  integrity = true, io = true, protocol = true, canceled = true,
}

--- Makes an Error.
-- @tparam table t `{ kind =, message =, status =, code =, retryable =, url = }`
-- (`kind` required, one of the kinds above)
-- @treturn Error
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

errors.Error = Error

function errors.is_error(v)
  return getmetatable(v) == Error
end

-- Transport failures worth another attempt.  A host name that does not
-- resolve will not resolve a second later; a refused connection may (a
-- server restarting), so it gets a few quick attempts only.
errors.RETRYABLE_KIND = { network = true, timeout = true }

-- HTTP answers worth another attempt (B2 and Acronis document the same set).
errors.RETRY_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

function errors.retryable_status(status)
  return errors.RETRY_STATUS[status] == true
end

function errors.canceled(message)
  return Error.new{ kind = "canceled", message = message or "the task was canceled" }
end

local SECRET_PARAMS = { authorization = true, token = true, access_token = true, password = true,
  key = true, client_secret = true, signature = true }

-- A URL fit for messages: no user:password@, no secret query values.
function errors.safe_url(url)
  if not url then return nil end
  if not url:find("[@?]") then return url end -- nothing to hide
  url = url:gsub("^(%a[%w+.-]*://)[^/?#@]*@", "%1")
  return (url:gsub("([?&])([^=&#]+)=([^&#]*)", function(sep, name, value)
    if SECRET_PARAMS[name:lower()] then value = "REDACTED" end
    return sep .. name .. "=" .. value
  end))
end

errors.SECRET_MARK = "<secret>"

-- `s` with every occurrence of each secret (the values of `secrets`, which
-- may have holes; strings of at least 4 bytes count) replaced by <secret>:
-- services echo what they were sent, and their messages reach users.
function errors.scrub(s, secrets)
  if type(s) ~= "string" then return s end
  for _, secret in pairs(secrets) do
    if type(secret) == "string" and #secret >= 4 then
      local parts, pos = {}, 1
      while true do
        local i, j = s:find(secret, pos, true)
        if not i then break end
        parts[#parts + 1] = s:sub(pos, i - 1)
        parts[#parts + 1] = errors.SECRET_MARK
        pos = j + 1
      end
      if pos > 1 then
        parts[#parts + 1] = s:sub(pos)
        s = table.concat(parts)
      end
    end
  end
  return s
end

-- The same error with its message prefixed (`what` says which operation)
-- and scrubbed; anything not a cloudfetch.Error becomes a protocol error.
function errors.wrap(err, prefix, secrets)
  if not errors.is_error(err) then
    return Error.new{ kind = "protocol", message = prefix .. errors.scrub(tostring(err), secrets or {}) }
  end
  return Error.new{
    kind = err.kind, status = err.status, code = err.code, retryable = err.retryable, url = err.url,
    message = prefix .. errors.scrub(tostring(err.message), secrets or {}),
  }
end

return errors
