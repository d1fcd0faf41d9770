-- Shared helpers for the core specs: the test server, the bytes it serves,
-- and scratch directories.  Expectations never come from the code under test:
-- bodies are rebuilt here from the server's generator, digests come from the
-- server's /meta (Python's hashlib) through the curl command line tool.
local cjson = require "cjson"
local spawn = require "support.spawn"

local fx = {}

-- Fast retries for specs that exercise failures.
fx.fast_retry = { attempts = 3, base_delay = 0.01, max_delay = 0.05 }

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
fx.shell_quote = shell_quote

local function run(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  p:close()
  return out
end
fx.run = run

-- Starts spec/support/testserver.py; opts.tls = true serves https with a fresh CA.
function fx.start_server(opts)
  opts = opts or {}
  local argv = { "spec/support/testserver.py" }
  local tls_dir
  if opts.tls then
    tls_dir = fx.tmpdir()
    argv[#argv + 1] = "--tls-dir"
    argv[#argv + 1] = tls_dir
  end
  local server = spawn.start(argv, 60)
  server.tls_dir = tls_dir
  local stop = server.stop
  function server.stop(self)
    stop(self)
    if self.tls_dir then fx.rmdir(self.tls_dir) end
    self.tls_dir = nil
  end
  return server
end

-- ---- the served bytes -----------------------------------------------------

local PATTERN_LEN = 65521
local patterns = {}

-- The same 64-bit LCG as testserver.py; Lua integers wrap modulo 2^64.
local function pattern(seed)
  local p = patterns[seed]
  if p then return p end
  local x = seed * 0x9E3779B97F4A7C15 + 1
  local bytes, parts = {}, {}
  for i = 1, PATTERN_LEN do
    x = x * 6364136223846793005 + 1442695040888963407
    bytes[#bytes + 1] = x >> 56
    if #bytes == 4096 or i == PATTERN_LEN then
      parts[#parts + 1] = string.char(table.unpack(bytes))
      bytes = {}
    end
  end
  p = table.concat(parts)
  patterns[seed] = p
  return p
end

-- Bytes [first, first + n) of the body with this seed (seed 1 by default).
function fx.body(n, seed, first)
  seed, first = seed or 1, first or 0
  if n <= 0 then return "" end
  local p = pattern(seed)
  local off = first % PATTERN_LEN
  local reps = (off + n + PATTERN_LEN - 1) // PATTERN_LEN
  return string.rep(p, reps):sub(off + 1, off + n)
end

-- nil when equal, else a short description (never the whole body).
function fx.diff(got, want)
  if got == want then return nil end
  if type(got) ~= "string" then return "got a " .. type(got) .. ", not a string" end
  local n = math.min(#got, #want)
  local i = 1
  local step = 65536
  while i <= n and got:sub(i, i + step - 1) == want:sub(i, i + step - 1) do i = i + step end
  while i <= n and got:byte(i) == want:byte(i) do i = i + 1 end
  return string.format("bodies differ: got %d bytes, want %d, first difference at offset %d",
    #got, #want, i - 1)
end

-- ---- asking the server without the code under test ------------------------

local function curl_json(url, ca_file)
  local cmd = "curl -s --max-time 10 " .. shell_quote(url)
  if ca_file then cmd = cmd .. " --cacert " .. shell_quote(ca_file) end
  local out = run(cmd)
  local ok, v = pcall(cjson.decode, out)
  assert(ok, "bad JSON from " .. url .. ": " .. out)
  return v
end
fx.curl_json = curl_json

-- {size, sha1, sha256, md5} of the body n/seed, or of its slice [first, last].
function fx.meta(server, n, seed, first, last, gzip)
  local url = string.format("%s/meta?n=%d&seed=%d", server.url, n, seed or 1)
  if first then url = url .. "&first=" .. first end
  if last then url = url .. "&last=" .. last end
  if gzip then url = url .. "&gzip=1" end
  return curl_json(url, server.info.ca_file)
end

-- How many requests carried key=K, and body bytes the last of them sent so far.
function fx.count(server, key)
  local v = curl_json(server.url .. "/count?key=" .. key, server.info.ca_file)
  return math.tointeger(v.count), math.tointeger(v.sent)
end

-- The server's whole record of key=K: count, sent, inflight, max_inflight.
function fx.count_info(server, key)
  return curl_json(server.url .. "/count?key=" .. key, server.info.ca_file)
end

-- Files in dir that are not whole downloads: temporary and part files.
function fx.leftovers(dir)
  local out = {}
  for _, name in ipairs(fx.list(dir)) do
    if name:match("^%.cloudfetch%-") or name:match("%.part$") then out[#out + 1] = name end
  end
  return out
end

local key_seq = 0
-- A key no other spec uses, for the server's per-key fault counters.
function fx.key()
  key_seq = key_seq + 1
  return string.format("k%d-%d-%d", os.time(), math.random(1, 1e9), key_seq)
end

function fx.urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- ---- files and directories ------------------------------------------------

function fx.tmpdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p " .. shell_quote(path)))
  return path
end

function fx.rmdir(path)
  if path and path:match("^/tmp/") then os.execute("rm -rf " .. shell_quote(path)) end
end

-- Sorted names in dir (hidden ones too).
function fx.list(dir)
  local names = {}
  for name in run("ls -A " .. shell_quote(dir)):gmatch("[^\n]+") do names[#names + 1] = name end
  table.sort(names)
  return names
end

function fx.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

function fx.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

function fx.is_dir(path)
  return os.execute("test -d " .. shell_quote(path)) == true
end

-- ---- reading a download ---------------------------------------------------

-- Runs the chunks() loop; returns the body and the list of chunk lengths.
function fx.collect(d, size)
  local parts, sizes = {}, {}
  for chunk in d:chunks(size) do
    parts[#parts + 1] = chunk
    sizes[#sizes + 1] = #chunk
  end
  return table.concat(parts), sizes
end

-- pcall(f, ...) that returns the error value (or nil when f did not raise).
function fx.raises(f, ...)
  local ok, err = pcall(f, ...)
  if ok then return nil end
  return err
end

return fx
