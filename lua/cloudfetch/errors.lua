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
--   mismatch), `"io"` (disk), `"protocol"` (malformed answer), `"canceled"`,
--   `"memory"` (out of memory)
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
  integrity = true, io = true, protocol = true, canceled = true, memory = true,
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

-- Query (and fragment) parameters whose names, percent-decoded and in lower
-- case, contain one of these are taken for credentials: their values are
-- never shown (X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token,
-- X-Goog-Signature, sig, api_key, apikey, access_token, client_secret,
-- password, session_id, ...).
errors.SECRET_NAME_PARTS = { "sig", "token", "key", "secret", "pass", "pwd", "auth", "cred", "sess",
  "jwt", "hmac", "ticket", "private" }
errors.REDACTED = "REDACTED"

local function hex_byte(h) return string.char(tonumber(h, 16)) end

-- Percent-decoded (repeatedly, so that an encoded "%" hides nothing).
local function decoded(s)
  for _ = 1, 4 do
    local d = s:gsub("%%(%x%x)", hex_byte)
    if d == s then break end
    s = d
  end
  return s
end

-- Does a query parameter of this name hold a credential?
function errors.is_secret_name(name)
  local n = decoded(name):lower()
  for _, part in ipairs(errors.SECRET_NAME_PARTS) do
    if n:find(part, 1, true) then return true end
  end
  return false
end

-- url split as prefix (scheme and slashes), user information, rest.  A user
-- name or password may hold "/", "?", "#" and "@" (malformed, but libcurl
-- decides where its host starts, and such a URL still reaches messages), so
-- everything up to the LAST "@" counts as user information.  `clean` is
-- false when that "@" lies past the first "/", "?" or "#" (the host the URL
-- names cannot be told).
local function split_userinfo(url)
  local prefix = url:match("^%a[%w+.-]*:[/\\]*") or url:match("^[/\\]*")
  local rest = url:sub(#prefix + 1)
  local at = rest:match("^.*()@")
  if not at then return prefix, nil, rest, true end
  local stop = rest:find("[/\\?#]")
  return prefix, rest:sub(1, at - 1), rest:sub(at + 1), not stop or at < stop
end

-- A parameter's value that is itself a URL with something to hide (a
-- redirect_uri carrying a token, say).
local function nested_secret(value)
  local d = decoded(value)
  return d:find("^%a[%w+.-]*://") and errors.safe_url(d) ~= d
end

-- Calls f(piece, name, value) for each query and fragment parameter (the
-- pieces between "?", "&", ";" and "#") that holds a secret, replacing the
-- piece with what f returns.
local function each_param(tail, f)
  return (tail:gsub("[^?&;#]+", function(piece)
    local name, value = piece:match("^([^=]*)=(.*)$")
    if name and value ~= "" and (errors.is_secret_name(name) or nested_secret(value)) then
      return f(piece, name, value)
    end
    return nil
  end))
end

-- A URL fit for messages: no user information (however malformed), no
-- credential values in the query or the fragment (nor URLs in parameter
-- values that have either).
function errors.safe_url(url)
  if type(url) ~= "string" then return url end
  if not url:find("[@?#]") then return url end -- nothing to hide
  local prefix, userinfo, rest, clean = split_userinfo(url)
  if userinfo and not clean then rest = errors.REDACTED .. "@" .. rest end
  local q = rest:find("[?#]")
  if q then
    rest = rest:sub(1, q - 1) .. each_param(rest:sub(q), function(_, name)
      return name .. "=" .. errors.REDACTED
    end)
  end
  return prefix .. rest
end

-- What safe_url hides of url, for scrubbing other text (libcurl's messages
-- name the host it parsed, which a malformed password may be part of): the
-- user information and its pieces, and the credential values as given and
-- decoded.
function errors.url_secrets(url)
  local secrets = {}
  if type(url) ~= "string" or not url:find("[@?#]") then return secrets end
  local _, userinfo, rest = split_userinfo(url)
  if userinfo then
    secrets[#secrets + 1] = userinfo
    for piece in userinfo:gmatch("[^:/\\?#@]+") do
      secrets[#secrets + 1] = piece
      secrets[#secrets + 1] = decoded(piece)
    end
  end
  local q = rest:find("[?#]")
  if q then
    each_param(rest:sub(q), function(piece, _, value)
      secrets[#secrets + 1] = value
      secrets[#secrets + 1] = decoded(value)
      return piece
    end)
  end
  -- Longest first, so that a piece never splits a longer secret's mark.
  table.sort(secrets, function(a, b) return #a > #b end)
  return secrets
end

-- err (a cloudfetch.Error) with url's secrets scrubbed from its message.
function errors.scrub_url_secrets(err, url)
  local secrets = errors.url_secrets(url)
  if not errors.is_error(err) or #secrets == 0 then return err end
  return errors.wrap(err, "", secrets)
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
