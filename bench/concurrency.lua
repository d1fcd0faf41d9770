-- make bench-concurrency: many transfers at once, on a local nginx.
--
--  1. 2,000 files of 16 KiB: cloudfetch (cf.map, 16 saves at once; with and
--     without fsync; and a plain cf.save loop) against
--     `curl --parallel --parallel-max 16` and `aria2c -j16`, saved to tmpfs
--     (/dev/shm) and to the real disk (ext4 under /tmp).
--  2. 256 MiB from a location limited to 25 MB/s per connection: cf.save with
--     parallel = 1, 4, 8, 16 (SHA-1 verified) against `aria2c -x N -s N -k1M`
--     and N ranged curl requests in parallel (not assembled, not verified).
--
-- Each figure is the median of alternated runs (the order rotates every
-- round), each client in its own process; peak RSS from /usr/bin/time.
-- Smaller runs (as `make bench` does): BENCH_FILES, BENCH_ROUNDS, BENCH_BIG
-- (bytes), BENCH_BIG_ROUNDS, BENCH_CONNS ("4,8,16"), BENCH_ONLY (small|big).
-- Figures only: nothing here fails on a timing.  With BENCH_REPORT set, the
-- tables are also appended to that file as markdown (bench/harness.lua).
local nginx = require "bench.nginx"
local H = require "bench.harness"

local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS") or 5)
local BIG_ROUNDS = tonumber(os.getenv("BENCH_BIG_ROUNDS") or 3)
local NFILES = tonumber(os.getenv("BENCH_FILES") or 2000)
local SMALL = 16 * 1024
local BIG = tonumber(os.getenv("BENCH_BIG") or 256 * 1024 * 1024)
local ONLY = os.getenv("BENCH_ONLY") -- "small" or "big": one part only
local CONNS = {} -- connection counts for part 2; 1 is always measured (the reference)
for n in (os.getenv("BENCH_CONNS") or "4,8,16"):gmatch("%d+") do
  if tonumber(n) > 1 then CONNS[#CONNS + 1] = tonumber(n) end
end
local sh = nginx.sh

local ENV = 'LUA_PATH="./lua/?.lua;./lua/?/init.lua;./?.lua;;" LUA_CPATH="./?.so;;" '
local LUA = ENV .. (os.getenv("LUA") or "lua5.4")

local srv = nginx.start{ limit_rate = "25m" }
local www = srv.www
local out = www:gsub("/www$", "")

-- The files nginx serves.
if not io.open(www .. "/small/f" .. NFILES) then
  print(("creating %d files of %d KiB..."):format(NFILES, SMALL // 1024))
  os.execute("mkdir -p " .. www .. "/small")
  assert(os.execute(("/usr/bin/python3 -c 'import os\nfor i in range(1, %d + 1):\n"
    .. "  open(\"%s/small/f%%d\" %% i, \"wb\").write(os.urandom(%d))'"):format(NFILES, www, SMALL)))
end
local big = www .. "/limited/big.bin"
local f = io.open(big, "rb")
if not f or f:seek("end") ~= BIG then
  print(("creating a %d MiB file..."):format(BIG // 1048576))
  os.execute("mkdir -p " .. www .. "/limited")
  assert(os.execute(("head -c %d /dev/urandom > %s"):format(BIG, big)))
end
if f then f:close() end
local big_sha1 = sh("sha1sum " .. big):match("^(%x+)")

-- URL lists in each client's format.
local lst = out .. "/small.list"
local curl_cfg = out .. "/small.curl"
local aria_in = out .. "/small.aria2"
do
  local a, b, c = io.open(lst, "w"), io.open(curl_cfg, "w"), io.open(aria_in, "w")
  for i = 1, NFILES do
    local u = ("%s/small/f%d"):format(srv.url, i)
    a:write(u, " f", i, "\n")
    b:write(('url = "%s"\noutput = "f%d"\n'):format(u, i))
    c:write(u, "\n  out=f", i, "\n")
  end
  a:close(); b:close(); c:close()
end

---------------------------------------------------------------------------
-- 1. many small files

local small_cases = {
  { name = "cloudfetch cf.map, 16 saves at once (fsync off the loop)",
    cmd = function(dir) return ("%s bench/many.lua %s %s 16"):format(LUA, lst, dir) end },
  { name = "cloudfetch cf.map, 16 at once, sync = false",
    cmd = function(dir) return ("%s bench/many.lua %s %s 16 nosync"):format(LUA, lst, dir) end },
  { name = "cloudfetch cf.save loop (one at a time)",
    cmd = function(dir) return ("%s bench/many.lua %s %s 0"):format(LUA, lst, dir) end },
  { name = "curl --parallel --parallel-max 16",
    cmd = function(dir) return ("cd %s && curl -sS --parallel --parallel-max 16 -K %s"):format(dir, curl_cfg) end },
  { name = "aria2c -j16",
    cmd = function(dir)
      return ("aria2c -q -j16 -x1 --dir=%s -i %s --file-allocation=none --auto-file-renaming=false"
        .. " --allow-overwrite=true --console-log-level=error --summary-interval=0"):format(dir, aria_in)
    end },
}

for _, c in ipairs(small_cases) do c.ref = small_cases[4] end

local function fresh_dir(base)
  return function()
    local dir = base .. "/cfbench-" .. math.random(1e9)
    os.execute("mkdir -p " .. dir)
    return dir
  end
end

local TARGETS = { { "tmpfs (/dev/shm)", "/dev/shm" }, { "ext4 (/tmp)", "/tmp" } }

local machine = sh("uname -srm"):gsub("%s+$", "") .. ", " .. sh("nproc"):gsub("%s+$", "") .. " cores"
print(("machine: %s; curl %s; aria2c %s"):format(machine, sh("curl -V"):match("^curl (%S+)"),
  (sh("aria2c -v"):match("version (%S+)") or "?")))

for _, target in ipairs(ONLY ~= "big" and TARGETS or {}) do
  H.measure(small_cases, ROUNDS, { prepare = fresh_dir(target[2]) })
  local rows = {}
  for _, c in ipairs(small_cases) do
    rows[#rows + 1] = { c.name .. (c.failed and " FAILED" or ""), H.s(c.time), ("%.0f"):format(NFILES / c.time),
      H.x(c.ratio), H.mib(c.rss) }
  end
  H.emit{ title = ("%d files of %d KiB to %s, median of %d alternated runs"):format(NFILES, SMALL // 1024,
      target[1], ROUNDS),
    cols = { "client", "seconds", "files/s", "time vs curl", "peak RSS MiB" }, rows = rows }
end

---------------------------------------------------------------------------
-- 2. one big file over N rate-limited connections

local url = srv.url .. "/limited/big.bin"
local function part_cmd(n)
  return function(dir)
    local parts, step = {}, -(-BIG // n)
    for i = 0, n - 1 do
      local a, b = i * step, math.min((i + 1) * step, BIG) - 1
      parts[#parts + 1] = ("curl -sS -r %d-%d -o %s/part%d %s &"):format(a, b, dir, i, url)
    end
    return table.concat(parts, " ") .. " wait"
  end
end

local big_cases = {}
for _, n in ipairs{ 1, table.unpack(CONNS) } do
  big_cases[#big_cases + 1] = { name = ("cloudfetch cf.save parallel = %d (SHA-1 verified)"):format(n),
    cmd = function(dir) return ("%s bench/ranged.lua %s %s/big.bin %d %s"):format(LUA, url, dir, n, big_sha1) end }
end
for _, n in ipairs(CONNS) do
  big_cases[#big_cases + 1] = { name = ("aria2c -x %d -s %d -k1M"):format(n, n),
    cmd = function(dir)
      return ("aria2c -q -x %d -s %d -k1M --dir=%s -o big.bin --file-allocation=none --allow-overwrite=true"
        .. " --console-log-level=error --summary-interval=0 %s"):format(n, n, dir, url)
    end }
  big_cases[#big_cases + 1] = { name = ("%d ranged curl requests (parts not joined)"):format(n),
    cmd = part_cmd(n) }
end

for _, c in ipairs(big_cases) do c.ref = big_cases[1] end
for _, target in ipairs(ONLY ~= "small" and TARGETS or {}) do
  H.measure(big_cases, BIG_ROUNDS, { prepare = fresh_dir(target[2]) })
  local rows = {}
  for _, c in ipairs(big_cases) do
    rows[#rows + 1] = { c.name .. (c.failed and " FAILED" or ""), H.s(c.time), H.mbs(BIG, c.time), H.x(1 / c.ratio),
      H.mib(c.rss) }
  end
  H.emit{ title = ("%d MiB at 25 MB/s per connection to %s, median of %d alternated runs"):format(BIG // 1048576,
      target[1], BIG_ROUNDS),
    cols = { "client", "seconds", "MB/s", "speed vs 1 connection", "peak RSS MiB" }, rows = rows }
end
srv.stop()
