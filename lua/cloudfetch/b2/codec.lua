-- cloudfetch.b2.codec: B2's data formats, with no I/O.
-- Name encoding (b2.md §4.6), the authorize answer in its v2/v3/v4 shapes
-- (§1.3, §1.4), SHA-1 header values (§4.7) and JSON number clean-up.
local cjson = require "cjson"

local codec = {}

local NULL = cjson.null

-- JSON null (cjson.null) and a missing value are the same to this module.
function codec.is_null(v)
  return v == nil or v == NULL
end

local function value(v)
  if v == NULL then return nil end
  return v
end

function codec.decode_json(s)
  if type(s) ~= "string" or s == "" then return nil end
  local ok, v = pcall(cjson.decode, s)
  if ok then return v end
  return nil
end

---------------------------------------------------------------------------
-- Percent-encoding

local function hex_byte(c)
  return string.format("%%%02X", c:byte())
end

-- B2's safe bytes: A-Z a-z 0-9 - . _ ~ ! $ ' ( ) * ; = : @ and '/' (kept).
function codec.encode_name(s)
  return (s:gsub("[^A-Za-z0-9%-%._~!%$'%(%)%*;=:@/]", hex_byte))
end

-- The same, for one path segment (a bucket name): '/' is encoded too.
function codec.encode_segment(s)
  return (s:gsub("[^A-Za-z0-9%-%._~!%$'%(%)%*;=:@]", hex_byte))
end

-- Both of B2's encodings: '%XX' is a byte and '+' is a space.
function codec.decode(s)
  s = s:gsub("%+", " ")
  s = s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  return s
end

---------------------------------------------------------------------------
-- SHA-1

-- The SHA-1 a body must have: the header's value without `unverified:`,
-- lower-cased; for a large file (`none`) the `large_file_sha1` file info.
-- Anything that is not 40 hex digits gives nil (nothing to verify against).
function codec.expected_sha1(header, large_file_sha1)
  local v = header
  if v == nil or v == "" or v:lower() == "none" then v = large_file_sha1 end
  if type(v) ~= "string" then return nil end
  v = v:gsub("^%s+", ""):gsub("%s+$", "")
  v = v:gsub("^[Uu][Nn][Vv][Ee][Rr][Ii][Ff][Ii][Ee][Dd]:", "")
  if #v == 40 and not v:find("[^%x]") then return v:lower() end
  return nil
end

---------------------------------------------------------------------------
-- JSON clean-up

-- lua-cjson decodes every number as a float; sizes and timestamps read
-- better (and compare exactly) as integers.
function codec.integers(t)
  for k, v in pairs(t) do
    if type(v) == "table" then
      codec.integers(v)
    elseif math.type(v) == "float" then
      local i = math.tointeger(v)
      if i then t[k] = i end
    end
  end
  return t
end

-- A file table as B2 returned it; v1's `size` is also `contentLength`.
function codec.file_table(f)
  if type(f) ~= "table" then return f end
  codec.integers(f)
  if f.contentLength == nil and f.size ~= nil then f.contentLength = f.size end
  return f
end

---------------------------------------------------------------------------
-- b2_authorize_account

local function string_list(v)
  if type(v) ~= "table" then return nil end
  local out = {}
  for _, s in ipairs(v) do
    if type(s) == "string" then out[#out + 1] = s end
  end
  return out
end

-- `allowed`, the same in every version: capabilities (list), namePrefix
-- (string or nil), buckets ({ {id =, name =}, ... } or nil = any bucket),
-- plus bucketId/bucketName when the answer gave them (v2, v3).
local function normalise_allowed(src)
  local allowed = {
    capabilities = string_list(value(src.capabilities)) or {},
    namePrefix = value(src.namePrefix),
    bucketId = value(src.bucketId),
    bucketName = value(src.bucketName),
  }
  local buckets = value(src.buckets)
  if type(buckets) == "table" then
    allowed.buckets = {}
    for _, b in ipairs(buckets) do
      -- A deleted bucket may be listed with an empty or null name: skip it.
      local id, name = type(b) == "table" and value(b.id), type(b) == "table" and value(b.name)
      if type(id) == "string" and type(name) == "string" and name ~= "" then
        allowed.buckets[#allowed.buckets + 1] = { id = id, name = name }
      end
    end
  elseif type(allowed.bucketId) == "string" then
    allowed.buckets = { { id = allowed.bucketId, name = allowed.bucketName } }
  end
  return allowed
end

local function integer(v)
  v = value(v)
  if type(v) == "number" then return math.tointeger(v) or v end
  return nil
end

-- Takes b2_authorize_account's decoded JSON (v2 flat, v3 apiInfo.storageApi
-- with flat restrictions, v4 apiInfo.storageApi.allowed) and returns
-- { account_id, token, api_url, download_url, s3_api_url, allowed,
--   recommended_part_size, absolute_minimum_part_size, key_expires },
-- or nil, reason.
function codec.parse_authorize(t)
  if type(t) ~= "table" then return nil, "the answer is not a JSON object" end
  local api_info = value(t.apiInfo)
  local storage = type(api_info) == "table" and value(api_info.storageApi)
  if type(storage) ~= "table" then storage = t end
  local token, account = value(t.authorizationToken), value(t.accountId)
  local api_url, download_url = value(storage.apiUrl), value(storage.downloadUrl)
  if type(token) ~= "string" or token == "" then return nil, "the answer has no authorizationToken" end
  if type(account) ~= "string" then return nil, "the answer has no accountId" end
  if type(api_url) ~= "string" or type(download_url) ~= "string" then
    return nil, "the answer has no apiUrl/downloadUrl"
  end
  for _, u in ipairs{ api_url, download_url } do
    if not u:match("^[Hh][Tt][Tt][Pp][Ss]?://[^/]") then
      return nil, "the answer names a URL that is not http(s): " .. u:sub(1, 100)
    end
  end
  local allowed_src = value(storage.allowed)
  if type(allowed_src) ~= "table" then allowed_src = value(t.allowed) end
  if type(allowed_src) ~= "table" then allowed_src = storage end
  return {
    account_id = account,
    token = token,
    api_url = (api_url:gsub("/+$", "")),
    download_url = (download_url:gsub("/+$", "")),
    s3_api_url = value(storage.s3ApiUrl),
    allowed = normalise_allowed(allowed_src),
    recommended_part_size = integer(storage.recommendedPartSize),
    absolute_minimum_part_size = integer(storage.absoluteMinimumPartSize),
    key_expires = integer(t.applicationKeyExpirationTimestamp),
  }
end

return codec
