-- One benchmark run in its own process (so its peak RSS is its own):
--   lua5.4 bench/stream.lua chunks URL SHA1 SIZE
--   lua5.4 bench/stream.lua save   URL SHA1 SIZE PATH [nosync]
-- SHA1 "-" reads without any digest (only the size is checked); "nosync"
-- saves with sync = false (no fsync before the rename).  The saved file is
-- left for the caller to remove (outside the timing).  BENCH_HASH_THREAD=0
-- in the environment hashes inline (hash_thread = false); BENCH_PARALLEL=N
-- saves in ranged parts over N connections.
local cf = require "cloudfetch"
local mode, url, sha1, size, path, nosync = ...
size = math.tointeger(tonumber(size))
local expect = { sha1 = sha1 ~= "-" and sha1 or nil, size = size }
local hash_thread = os.getenv("BENCH_HASH_THREAD") ~= "0"
if mode == "chunks" then
  local d = assert(cf.open(url, { expect = expect, retry = false, hash_thread = hash_thread }))
  local n = 0
  for chunk in d:chunks() do n = n + #chunk end
  assert(n == size, "short body")
elseif mode == "save" then
  os.remove(path)
  assert(cf.save(url, path, { expect = expect, retry = false, sync = nosync ~= "nosync",
    hash_thread = hash_thread, parallel = math.tointeger(tonumber(os.getenv("BENCH_PARALLEL"))) }))
else
  error("mode must be chunks or save")
end
