-- make bench (issue 12): cloudfetch's verified download speed against every
-- peer, in one run on a local nginx (a free 127.0.0.1 port), written to
-- bench/results/<date>-<machine>.md.
--
--  1. 1 GiB streamed (no disk): chunks() with and without SHA-1 against
--     `curl -o /dev/null` and `curl | sha1sum`.
--  2. 1 GiB saved to ext4 (/tmp): cf.save (SHA-1 verified; with fsync as by
--     default, and with sync = false) against `curl -o FILE` (+ sync, +
--     sha1sum), `aria2c --checksum`, the seed's Python code (requests,
--     iter_content(1024) + hashlib.sha1 + write) and the same with 1 MiB
--     chunks, LuaSocket's http.request + ltn12 file sink, a libcurl binding
--     with a Lua write callback (Debian's lua-curl, Lua 5.2).
--  3. 1 GiB saved to tmpfs (/dev/shm): cf.save against curl.
--  4. Peak RSS of chunks() and save() at 100 MiB and at 1 GiB.
--  5. bench/concurrency.lua and bench/mirror.lua, reduced (their tables).
--  6. A profile of the verified chunks() path: perf record when perf works,
--     else callgrind on 64 MiB.
--  7. The issue's targets: measured, met or not, and for a target not met
--     what the CPU times and the profile say.
--
-- Each figure is the median of alternated runs (the order rotates every
-- round), each client in its own process, with its ratio to the reference
-- measured in the same round; peak RSS and CPU seconds from /usr/bin/time.
-- Figures only: nothing here fails on a timing.
--
-- Environment: BENCH_QUICK=1 (small sizes, one round, results to
-- bench/out/results-quick.md: for development), BENCH_ROUNDS (3), BENCH_SIZE
-- (bytes), BENCH_MACHINE (name in the results file; hostname -s),
-- BENCH_RESULTS (its path), BENCH_PROFILER (perf|callgrind|none),
-- BENCH_MIRROR (full|reduced|skip), BENCH_CONCURRENCY (skip), BENCH_TIMEOUT
-- (seconds for one run, 300; a run killed counts as failed), BENCH_KEEP=1
-- (keep the served test files in bench/out/www), BENCH_COMMIT (the commit
-- named in the results file, when not run in a git checkout).
local cf = require "cloudfetch"
local nginx = require "bench.nginx"
local H = require "bench.harness"

local sh, q = H.sh, H.q
local MiB = 1024 * 1024
local QUICK = os.getenv("BENCH_QUICK") == "1"
local SIZE = math.tointeger(tonumber(os.getenv("BENCH_SIZE"))) or (QUICK and 64 * MiB or 1024 * MiB)
local MID = QUICK and 16 * MiB or 100 * MiB
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS")) or (QUICK and 1 or 3)
-- The streamed and tmpfs tables are cheap (about 1-2 s a run) and the
-- machine noisy: 5 rounds there, BENCH_ROUNDS if it asks for more.
local FAST_ROUNDS = QUICK and ROUNDS or math.max(ROUNDS, 5)
local LIMIT = tonumber(os.getenv("BENCH_TIMEOUT")) or (QUICK and 60 or 300) -- seconds for one run
-- The mirror figures at bench-mirror's full size take about 100 s of the 10
-- minutes: reduced by default (300 × 4 KiB + 4 × 5 MiB, 3 rounds).
local MIRROR = os.getenv("BENCH_MIRROR") or (QUICK and "quick" or "reduced")
local T0 = cf.now()

local ENV = 'LUA_PATH="./lua/?.lua;./lua/?/init.lua;./?.lua;;" LUA_CPATH="./?.so;;" '
local LUA = ENV .. "lua5.4"

local function first_line(cmd)
  return (sh(cmd .. " 2>&1"):match("[^\n]*"))
end

local function size_name(n)
  if n % (1024 * MiB) == 0 then return ("%d GiB"):format(n // (1024 * MiB)) end
  return ("%g MiB"):format(n / MiB)
end

local function avail(dir)
  return tonumber((sh("df -B1 --output=avail " .. q(dir) .. " | tail -1"))) or 0
end

local function fstype(dir)
  return (sh("df --output=fstype " .. q(dir) .. " | tail -1"):gsub("%s+", ""))
end

---------------------------------------------------------------------------
-- The machine and the versions

local machine = {
  date = os.date("%Y-%m-%d"),
  name = os.getenv("BENCH_MACHINE") or sh("hostname -s"):gsub("%s+", ""),
  cpu = (sh("grep -m1 'model name' /proc/cpuinfo"):match(":%s*(.-)%s*$")) or "?",
  nproc = sh("nproc"):gsub("%s+", ""),
  mem = ("%.1f GiB"):format((tonumber((sh("awk '/MemTotal/ {print $2}' /proc/meminfo"))) or 0) / MiB),
  kernel = sh("uname -sr"):gsub("%s+$", ""),
  curl = table.concat({ first_line("curl -V"):match("^(curl %S+).-(libcurl/%S+) (%S+)") }, " "),
  nginx = first_line("nginx -v"):match("nginx/(%S+)") or "?",
  lua = first_line("lua5.4 -v"):match("^(Lua %S+)"),
  lua52 = first_line("lua5.2 -v"):match("^(Lua %S+)") or "?",
  python = first_line("/usr/bin/python3 -V"),
  requests = first_line("/usr/bin/python3 -c 'import requests; print(requests.__version__)'"),
  aria2 = first_line("aria2c -v"):match("version (%S+)") or "?",
  luasocket = first_line("lua5.4 -e 'print(require(\"socket\")._VERSION)'"):match("[%d.]+$") or "?",
  luacurl = first_line("dpkg-query -W -f='${Version}' lua-curl"),
  cloudfetch = cf.version,
  commit = os.getenv("BENCH_COMMIT") or (first_line("git rev-parse --short HEAD"):match("^%x+$") or "?")
    .. (sh("git status --porcelain -- src lua 2>/dev/null"):find("%S") and " + uncommitted changes in src/ or lua/"
    or ""),
  tmp = fstype("/tmp"),
  shm = fstype("/dev/shm"),
}

print(("make bench: %s; %s cores (%s), %s; %s"):format(machine.name, machine.nproc, machine.cpu, machine.kernel,
  QUICK and "QUICK mode (small sizes, 1 round)" or ("%s, %d rounds"):format(size_name(SIZE), ROUNDS)))

---------------------------------------------------------------------------
-- The server and its files

local srv <close> = nginx.start{}
local md = { "## One download\n" } -- markdown sections, in order
local notes = {} -- lines for the notes section
local cases_all = {} -- every cloudfetch case with its size, for the RSS target
local skipped = {}

local function served(n)
  local name = ("bench-%d.bin"):format(n)
  local path = srv.www .. "/" .. name
  local f = io.open(path, "rb")
  local have = f and f:seek("end")
  if f then f:close() end
  if have ~= n then
    assert(avail(srv.www) > n + 256 * MiB, "not enough room for the test file in " .. srv.www)
    print(("creating a %s test file..."):format(size_name(n)))
    assert(os.execute(("head -c %d /dev/urandom > %s"):format(n, q(path))))
  end
  return srv.url .. "/" .. name, sh("sha1sum " .. q(path)):match("^(%x+)"), path
end

local url, sha1, big_path = served(SIZE)
local mid_url, mid_sha1, mid_path = served(MID)

local function fresh_dir(base)
  return function()
    local dir = base .. "/cfbench-" .. math.random(1e9)
    os.execute("mkdir -p " .. q(dir))
    return dir
  end
end

local function row(c, bytes)
  return { c.name .. (c.failed and " **FAILED**" or ""), H.s(c.time), H.mbs(bytes, c.time), H.x(c.ratio),
    ("%.2f"):format(c.cpu), H.mib(c.rss) }
end
local COLS = { "client", "seconds", "MB/s", "time vs ref.", "CPU s", "peak RSS MiB" }

---------------------------------------------------------------------------
-- 1. Streamed: nothing written

local s_curl = { name = "ref.: `curl -o /dev/null`", key = "ref",
  cmd = function() return ("curl -sS -o /dev/null %s"):format(url) end }
s_curl.ref = s_curl
local s_cases = {
  s_curl,
  { name = "`curl | sha1sum` (checked)", ref = s_curl, key = "curl|sha1sum",
    cmd = function() return ("curl -sS %s | sha1sum | grep -q ^%s"):format(url, sha1) end },
  { name = "cloudfetch `chunks()`, SHA-1 verified", ref = s_curl, cf = "chunks", size = SIZE,
    cmd = function() return ("%s bench/stream.lua chunks %s %s %d"):format(LUA, url, sha1, SIZE) end },
  { name = "cloudfetch `chunks()`, SHA-1 verified, `hash_thread = false` (hashed inline)", ref = s_curl,
    cf = "chunks-inline", size = SIZE,
    cmd = function()
      return ("BENCH_HASH_THREAD=0 %s bench/stream.lua chunks %s %s %d"):format(LUA, url, sha1, SIZE)
    end },
  { name = "cloudfetch `chunks()`, no digest", ref = s_curl, cf = "chunks-raw", size = SIZE,
    cmd = function() return ("%s bench/stream.lua chunks %s - %d"):format(LUA, url, SIZE) end },
}
H.measure(s_cases, FAST_ROUNDS, { limit = LIMIT })
local rows = {}
for _, c in ipairs(s_cases) do rows[#rows + 1] = row(c, SIZE) end
md[#md + 1] = H.emit{ title = ("%s streamed from nginx on 127.0.0.1, nothing written, median of %d alternated runs")
  :format(size_name(SIZE), FAST_ROUNDS), cols = COLS, rows = rows }

---------------------------------------------------------------------------
-- 2. and 3. Saved to a file

local function file_cases(with_peers)
  local ref = { name = "ref.: `curl -o FILE`", key = "ref",
    cmd = function(dir) return ("curl -sS -o %s/f %s"):format(dir, url) end }
  ref.ref = ref
  local cases = {
    ref,
    { name = "`curl -o FILE` + `sha1sum FILE` (checked)", key = "curl+sha1sum",
      cmd = function(dir)
        return ("curl -sS -o %s/f %s && sha1sum %s/f | grep -q ^%s"):format(dir, url, dir, sha1)
      end },
    { name = "`aria2c --checksum=sha-1=…`", key = "aria2",
      cmd = function(dir)
        return ("aria2c -q --checksum=sha-1=%s -d %s -o f --allow-overwrite=true --file-allocation=none"
          .. " --console-log-level=error --summary-interval=0 %s"):format(sha1, dir, url)
      end },
    { name = "cloudfetch `cf.save`, SHA-1 verified (fsync + rename, the default)", cf = "save", size = SIZE,
      cmd = function(dir) return ("%s bench/stream.lua save %s %s %d %s/f"):format(LUA, url, sha1, SIZE, dir) end },
  }
  if with_peers then
    local more = {
      { name = "`curl -o FILE && sync FILE`", key = "curl+sync",
        cmd = function(dir) return ("curl -sS -o %s/f %s && sync %s/f"):format(dir, url, dir) end },
      { name = "cloudfetch `cf.save`, SHA-1 verified, `sync = false`", cf = "save-nosync", size = SIZE,
        cmd = function(dir)
          return ("%s bench/stream.lua save %s %s %d %s/f nosync"):format(LUA, url, sha1, SIZE, dir)
        end },
      { name = "cloudfetch `cf.save`, SHA-1 verified, `sync = false`, `hash_thread = false`", cf = "save-inline",
        size = SIZE,
        cmd = function(dir)
          return ("BENCH_HASH_THREAD=0 %s bench/stream.lua save %s %s %d %s/f nosync"):format(LUA, url, sha1, SIZE, dir)
        end },
      { name = "the seed's Python code: requests, `iter_content(1024)` + sha1 + write", key = "seed",
        cmd = function(dir) return ("/usr/bin/python3 bench/seed.py %s %s/f %s 1024"):format(url, dir, sha1) end },
      { name = "the same with `iter_content(1048576)`", key = "seed-1m",
        cmd = function(dir) return ("/usr/bin/python3 bench/seed.py %s %s/f %s 1048576"):format(url, dir, sha1) end },
      { name = "LuaSocket `http.request` + `ltn12.sink.file` (not verified)", key = "luasocket",
        cmd = function(dir) return ("%s bench/luasocket_get.lua %s %s/f %d"):format(LUA, url, dir, SIZE) end },
      { name = "lua-curl (Lua 5.2) write callback + `file:write` (not verified)", key = "luacurl",
        cmd = function(dir) return ("lua5.2 bench/luacurl_get.lua %s %s/f %d"):format(url, dir, SIZE) end },
    }
    for _, c in ipairs(more) do cases[#cases + 1] = c end
  else
    -- In memory, where the disk does not hide it: the hasher thread's
    -- share, in a plain save and in a parallel one (its in-order prefix).
    local function save_case(name, key, env)
      return { name = name, cf = key, size = SIZE, parallel = env:find("PARALLEL") ~= nil,
        cmd = function(dir)
          return ("%s%s bench/stream.lua save %s %s %d %s/f nosync"):format(env, LUA, url, sha1, SIZE, dir)
        end }
    end
    local more = {
      save_case("cloudfetch `cf.save`, SHA-1 verified, `sync = false`", "save-nosync", ""),
      save_case("cloudfetch `cf.save`, SHA-1 verified, `sync = false`, `hash_thread = false`", "save-inline",
        "BENCH_HASH_THREAD=0 "),
      save_case("cloudfetch `cf.save`, `parallel = 4`, SHA-1 verified, `sync = false`", "save-par4",
        "BENCH_PARALLEL=4 "),
      save_case("cloudfetch `cf.save`, `parallel = 4`, SHA-1 verified, `sync = false`, `hash_thread = false`",
        "save-par4-inline", "BENCH_PARALLEL=4 BENCH_HASH_THREAD=0 "),
    }
    for _, c in ipairs(more) do cases[#cases + 1] = c end
  end
  for _, c in ipairs(cases) do c.ref = ref end
  return cases
end

local by = {} -- [section][key] = case
local function index(section, cases)
  by[section] = {}
  for _, c in ipairs(cases) do
    by[section][c.key or c.cf] = c
    if c.cf then cases_all[#cases_all + 1] = c end
  end
end
index("stream", s_cases)

for _, target in ipairs{ { "ext4", "/tmp", true }, { "tmpfs", "/dev/shm", false } } do
  local label, dir = target[1], target[2]
  local fs = fstype(dir)
  if avail(dir) < 2 * SIZE + 256 * MiB then
    skipped[#skipped + 1] = ("saves to %s: not enough room in %s"):format(dir, dir)
    print("skipped: " .. skipped[#skipped])
  else
    local cases = file_cases(target[3])
    -- `sync` after each run (untimed): no write-back of one run in the next.
    local rounds = label == "tmpfs" and FAST_ROUNDS or ROUNDS
    H.measure(cases, rounds, { prepare = fresh_dir(dir), settle = function() os.execute("sync") end,
      limit = LIMIT })
    index(label, cases)
    rows = {}
    for _, c in ipairs(cases) do rows[#rows + 1] = row(c, SIZE) end
    md[#md + 1] = H.emit{ title = ("%s saved to %s (%s, %s), median of %d alternated runs"):format(size_name(SIZE),
      dir, fs, label == "ext4" and "real disk" or "memory", rounds), cols = COLS, rows = rows }
  end
end

---------------------------------------------------------------------------
-- 4. Memory: peak RSS at two sizes

local m_cases = {
  { name = "chunks() verified", cf = "chunks", size = MID,
    cmd = function() return ("%s bench/stream.lua chunks %s %s %d"):format(LUA, mid_url, mid_sha1, MID) end },
  { name = "chunks() no digest", cf = "chunks-raw", size = MID,
    cmd = function() return ("%s bench/stream.lua chunks %s - %d"):format(LUA, mid_url, MID) end },
  { name = "save() verified, ext4", cf = "save", size = MID,
    cmd = function(dir)
      return ("%s bench/stream.lua save %s %s %d %s/f"):format(LUA, mid_url, mid_sha1, MID, dir)
    end },
}
H.measure(m_cases, ROUNDS, { prepare = function(c) return c.cf == "save" and fresh_dir("/tmp")() or nil end,
  limit = LIMIT })
for _, c in ipairs(m_cases) do cases_all[#cases_all + 1] = c end
rows = {}
local big_rss = { chunks = by.stream.chunks, ["chunks-raw"] = by.stream["chunks-raw"], save = by.ext4 and by.ext4.save }
for _, c in ipairs(m_cases) do
  local b = big_rss[c.cf]
  local function mib(x) return x.failed and "failed" or H.mib(x.rss) end
  rows[#rows + 1] = { c.name, mib(c), b and mib(b) or "–", b and not b.failed and not c.failed
    and ("%+.1f"):format((b.rss - c.rss) / 1024) or "–" }
end
md[#md + 1] = H.emit{ title = ("Peak RSS (MiB) by body size: %s and %s"):format(size_name(MID), size_name(SIZE)),
  cols = { "cloudfetch", size_name(MID), size_name(SIZE), "difference" }, rows = rows,
  note = "Each figure is the largest peak RSS of its runs (the whole lua5.4 process, the interpreter included)." }

---------------------------------------------------------------------------
-- 5. Concurrency and mirror, reduced: their own scripts, their tables

local function sub(script, env, lua_path)
  local report = os.tmpname()
  local cmd = ("BENCH_REPORT=%s BENCH_TIMEOUT=%d %s LUA_PATH=%s LUA_CPATH='./?.so;;' timeout -k 5 %d lua5.4 %s")
    :format(q(report), LIMIT, env, q(lua_path), 4 * LIMIT, script)
  print("\n$ " .. env .. " lua5.4 " .. script)
  local ok = os.execute(cmd)
  local f = io.open(report)
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(report)
  if not ok then text = text .. ("\n%s **failed** (exit status), see the console output.\n"):format(script) end
  return text, env
end

if os.getenv("BENCH_CONCURRENCY") ~= "skip" then
  local env = QUICK and "BENCH_FILES=100 BENCH_ROUNDS=1 BENCH_BIG=8388608 BENCH_BIG_ROUNDS=1 BENCH_CONNS=4"
    or "BENCH_FILES=1000 BENCH_ROUNDS=3 BENCH_BIG=67108864 BENCH_BIG_ROUNDS=3 BENCH_CONNS=8"
  local text = sub("bench/concurrency.lua", env, "./lua/?.lua;./lua/?/init.lua;./?.lua;;")
  md[#md + 1] = ("## Concurrency (`bench/concurrency.lua`, reduced: `%s`)\n\n"):format(env)
    .. "`make bench-concurrency` runs the full set (2,000 files, 256 MiB, 1/4/8/16 connections).\n\n" .. text
end
if MIRROR ~= "skip" then
  local env = ({ quick = "BENCH_SMALL=100 BENCH_BIG=1048576 BENCH_ROUNDS=1",
    reduced = "BENCH_SMALL=300 BENCH_BIG=5242880 BENCH_ROUNDS=3",
    full = "BENCH_ROUNDS=3" })[MIRROR] or error("BENCH_MIRROR must be full, reduced or skip")
  local text = sub("bench/mirror.lua", env, "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;;")
  md[#md + 1] = ("## Mirror (`bench/mirror.lua`, `%s`)\n\n"):format(env)
    .. (MIRROR == "full" and "The same sizes as `make bench-mirror`.\n\n" or "Reduced sizes; `make bench-mirror` "
    .. "runs 1,000 × 4 KiB + 4 × 20 MiB.\n\n") .. text
end

---------------------------------------------------------------------------
-- 6. Profile of the verified chunks() path

-- { pct, shared object, symbol } from `perf report` or `callgrind_annotate`;
-- code without symbols (libcrypto's assembly, for one) comes as one address
-- per line: summed per shared object.
local function profile_entries(raw)
  local entries, unnamed = {}, {}
  for _, e in ipairs(raw) do
    local pct, dso, sym = e[1], e[2], e[3]
    if sym == "" or sym:match("^0x%x+$") then
      if not unnamed[dso] then
        unnamed[dso] = { 0, dso, "", n = 0 }
        entries[#entries + 1] = unnamed[dso]
      end
      local u = unnamed[dso]
      u[1], u.n = u[1] + pct, u.n + 1
      u[3] = ("(%d address%s without a symbol)"):format(u.n, u.n > 1 and "es" or "")
    else
      entries[#entries + 1] = { pct, dso, sym }
    end
  end
  table.sort(entries, function(a, b) return a[1] > b[1] end)
  return entries
end

local profile = { lines = {}, share = {} }
do
  local tool = os.getenv("BENCH_PROFILER")
  if not tool then
    tool = select(2, sh("perf record -q -o /dev/null -e cpu-clock -- true 2>&1")) and "perf" or "callgrind"
  end
  local out = srv.www:gsub("/www$", "")
  local raw = {}
  if tool == "perf" then
    local data = out .. "/perf.data"
    local run = ("timeout -k 5 %d perf record -q -o %s -F 1999 -e cpu-clock -- sh -c %s >/dev/null 2>&1"):format(
      LIMIT, q(data),
      q(("%s bench/stream.lua chunks %s %s %d"):format(LUA, url, sha1, SIZE)))
    local ok
    for _ = 1, 3 do -- a failed run is tried again (twice): a profile is wanted anyway
      ok = os.execute(run)
      if ok then break end
    end
    profile.how = ("`perf record -F 1999 -e cpu-clock` of one verified `chunks()` run over %s (the lua5.4 process "
      .. "and its threads; nginx not included)%s"):format(size_name(SIZE), ok and "" or "; **the run failed**")
    local function report(sort)
      return sh(("perf report -i %s --stdio --no-children --sort %s -q --percent-limit 0.05 2>/dev/null")
        :format(q(data), sort))
    end
    for l in report("dso"):gmatch("[^\n]+") do
      local pct, dso = l:match("^%s*([%d.]+)%%%s+(.-)%s*$")
      if pct then profile.share[dso] = (profile.share[dso] or 0) + tonumber(pct) end
    end
    for l in report("dso,sym"):gmatch("[^\n]+") do
      local pct, dso, sym = l:match("^%s*([%d.]+)%%%s+(%S+)%s+%[.%]%s+(.-)%s*$")
      if pct then raw[#raw + 1] = { tonumber(pct), dso, sym } end
    end
    os.remove(data)
  elseif tool == "callgrind" then
    local n = math.min(SIZE, 64 * MiB)
    local pu, ps, pp = served(n)
    local data = out .. "/callgrind.out"
    local ok = os.execute(("%s timeout -k 5 %d valgrind -q --tool=callgrind --callgrind-out-file=%s lua5.4"
      .. " bench/stream.lua chunks %s %s %d"):format(ENV, 4 * LIMIT, q(data), pu, ps, n))
    profile.how = ("callgrind (instructions executed) of one verified `chunks()` run over %s%s"):format(size_name(n),
      ok and "" or "; **the run failed**")
    local text = sh(("callgrind_annotate --inclusive=no --threshold=100 %s 2>/dev/null"):format(q(data)))
    for l in text:gmatch("[^\n]+") do
      local pct, what = l:match("^%s*[%d,]+%s+%(%s*([%d.]+)%%%)%s+(.-)%s*$")
      if pct and not what:find("PROGRAM TOTALS", 1, true) then
        local dso = what:match("%[(.-)%]$")
        what = what:gsub("%s*%[.-%]$", "")
        dso = dso and dso:match("[^/]+$") or "?"
        raw[#raw + 1] = { tonumber(pct), dso, what:match(":([^:]*)$") or what }
        profile.share[dso] = (profile.share[dso] or 0) + tonumber(pct)
      end
    end
    os.remove(data)
    if n ~= SIZE and n ~= MID then os.remove(pp) end
  end
  for i, e in ipairs(profile_entries(raw)) do
    if i > 20 or e[1] < 0.5 then break end
    profile.lines[#profile.lines + 1] = { ("%.2f"):format(e[1]), e[2], e[3] }
  end
  profile.dso = {}
  for dso, pct in pairs(profile.share) do profile.dso[#profile.dso + 1] = { pct, dso } end
  table.sort(profile.dso, function(a, b) return a[1] > b[1] end)
  profile.tool = tool
end

---------------------------------------------------------------------------
-- 7. Targets

local function share(pattern)
  local s = 0
  for dso, pct in pairs(profile.share) do if dso:find(pattern) then s = s + pct end end
  return s
end

local function cpu_line(c)
  return ("%s: %.2f s wall, %.2f s CPU"):format(c.name, c.time, c.cpu)
end

local function why_profile()
  if not next(profile.share) then return "no profile" end
  local top = {}
  for i = 1, math.min(3, #profile.lines) do
    local l = profile.lines[i]
    top[i] = ("%s %s %%"):format(l[3]:find("^%(") and l[2] .. " " .. l[3] or l[3], l[1])
  end
  return ("The profile of the verified chunks() path (below) has libcrypto (SHA-1) %.0f %%, the kernel %.0f %%, "
    .. "libc %.0f %%, libcurl %.0f %%, cloudfetch's core.so %.0f %%, Lua %.0f %%; its top entries: %s."):format(
    share("^libcrypto"), share("kernel"), share("^libc%."), share("^libcurl"), share("^core%.so"), share("lua"),
    table.concat(top, ", "))
end

local targets = {}
-- A target: its name, the cases it compares (a failed run makes it "failed"),
-- measured text, met (nil: for the record), why (when not met).
local function target(name, cases, measured, met, why)
  for _, c in ipairs(cases) do
    if c.failed then
      measured, met, why = "FAILED", false, c.name .. ": a run failed or timed out (see the console output)"
    end
  end
  targets[#targets + 1] = { name, measured, met == nil and "–" or (met and "yes" or "**no**"), met == false and why
    or nil }
end

local st = by.stream
target("verified `chunks()` ≤ 1.4× `curl -o /dev/null`", { st.chunks, s_curl }, H.x(st.chunks.ratio),
  st.chunks.ratio <= 1.4, cpu_line(st.chunks) .. "; " .. cpu_line(s_curl) .. "; see the profile")
target("unverified `chunks()` ≤ 1.0× `curl -o /dev/null`", { st["chunks-raw"], s_curl }, H.x(st["chunks-raw"].ratio),
  st["chunks-raw"].ratio <= 1.0, cpu_line(st["chunks-raw"]) .. "; " .. cpu_line(s_curl) .. "; see the profile")
if by.tmpfs then
  local t = by.tmpfs
  target("verified `save()` ≤ 1.1× `curl -o FILE`, tmpfs", { t.save, t.ref }, H.x(t.save.ratio), t.save.ratio <= 1.1,
    cpu_line(t.save) .. "; " .. cpu_line(t.ref) .. "; see the profile")
end
if by.ext4 then
  local e = by.ext4
  local r = e["save-nosync"].ratio
  target("verified `save()` ≤ 1.1× `curl -o FILE`, ext4, `sync = false` (neither fsyncs)", { e["save-nosync"], e.ref },
    H.x(r), r <= 1.1, cpu_line(e["save-nosync"]) .. "; " .. cpu_line(e.ref) .. "; see the profile")
  r = H.ratio(e.save, e["curl+sync"])
  target("verified `save()` (default: fsync) ≤ 1.1× `curl -o FILE && sync FILE`, ext4", { e.save, e["curl+sync"] },
    H.x(r), r <= 1.1, cpu_line(e.save) .. "; " .. cpu_line(e["curl+sync"]) .. "; see the profile")
  target("(for the record) verified `save()` (default: fsync) vs `curl -o FILE` (no fsync), ext4", { e.save, e.ref },
    H.x(e.save.ratio))
  local seed = H.ratio(e.seed, e.save)
  target("≥ 5× faster than the seed's Python code (ext4, `save()` with its fsync)", { e.save, e.seed, e["seed-1m"] },
    ("%.1f× faster (%.1f× with 1 MiB chunks)"):format(seed, H.ratio(e["seed-1m"], e.save)), seed >= 5,
    cpu_line(e.save) .. "; " .. cpu_line(e.seed))
end
-- One download's memory (a parallel save holds a buffer per connection).
local max_rss, max_case, one = 0, nil, {}
for _, c in ipairs(cases_all) do
  if not c.parallel then
    one[#one + 1] = c
    if c.rss > max_rss then max_rss, max_case = c.rss, c end
  end
end
target(("peak RSS < 16 MiB at any size (%s and %s), one connection"):format(size_name(MID), size_name(SIZE)), one,
  ("%s MiB (%s, %s)"):format(H.mib(max_rss), max_case.name, size_name(max_case.size)), max_rss < 16 * 1024,
  "the largest is the whole lua5.4 process of " .. max_case.name)

rows = {}
local why = {}
for _, t in ipairs(targets) do
  rows[#rows + 1] = { t[1], t[2], t[3] }
  if t[4] then why[#why + 1] = ("- %s: %s."):format(t[1], t[4]) end
end
local targets_md = H.emit{ title = "Targets (issue 12)", cols = { "target", "measured", "met" }, align = "lrl",
  rows = rows, heading = false }
if #why > 0 then
  targets_md = targets_md .. "\nNot met, and what the run shows (CPU seconds are user + system of all the client's "
    .. "processes):\n\n" .. table.concat(why, "\n") .. "\n\n" .. why_profile() .. "\n"
  print("\nnot met:\n" .. table.concat(why, "\n"))
end

local prof_md = { ("%s.\n"):format(profile.how or "No profile") }
local pvm = false
for _, l in ipairs(profile.lines) do pvm = pvm or l[3] == "pvm_irq_enable" end
if pvm then
  prof_md[1] = prof_md[1] .. "\nIn this VM the kernel's samples gather on `pvm_irq_enable` (where interrupts come "
    .. "back on, so a sample taken during a system call lands there): the kernel's share is real, its split among "
    .. "kernel functions is not.\n"
end
if profile.dso then
  local t = {}
  for i, e in ipairs(profile.dso) do
    if i > 10 then break end
    t[#t + 1] = { e[2], ("%.2f"):format(e[1]) }
  end
  prof_md[#prof_md + 1] = H.emit{ title = "By shared object", cols = { "shared object",
    profile.tool == "perf" and "% of samples" or "% of instructions" }, rows = t }
end
if #profile.lines > 0 then
  local t = {}
  for _, l in ipairs(profile.lines) do t[#t + 1] = { l[1], l[2], l[3] } end
  prof_md[#prof_md + 1] = H.emit{ title = "Top entries", cols = { "%", "shared object", "symbol" }, align = "rll",
    rows = t }
end

---------------------------------------------------------------------------
-- The results file

local wall = cf.now() - T0
local path = os.getenv("BENCH_RESULTS") or (QUICK and "bench/out/results-quick.md"
  or ("bench/results/%s-%s.md"):format(machine.date, machine.name))
os.execute("mkdir -p " .. q(path:match("^(.*)/") or "."))
local f = assert(io.open(path, "w"))
local m = machine
f:write(("# `make bench` on %s, %s%s\n\n"):format(m.name, m.date,
  QUICK and " (QUICK mode: small sizes, 1 round)" or ""))
f:write(("- machine: %s cores, %s, %s RAM, %s; /tmp is %s, /dev/shm is %s\n"):format(m.nproc, m.cpu, m.mem, m.kernel,
  m.tmp, m.shm))
f:write(("- cloudfetch %s (commit %s), %s, server nginx %s on 127.0.0.1 (sendfile, one worker)\n"):format(
  m.cloudfetch, m.commit, m.lua, m.nginx))
f:write(("- peers: %s; aria2 %s; %s with requests %s; LuaSocket %s (%s); lua-curl %s (%s)\n"):format(m.curl, m.aria2,
  m.python, m.requests, m.luasocket, m.lua, m.luacurl, m.lua52))
f:write(("- each figure: the median of alternated runs (%d rounds; %d for the streamed and tmpfs tables; the "
  .. "order rotated every round), each client in its own process; \"time vs ref.\" is the median of the "
  .. "same-round ratios to the table's reference; peak RSS from `/usr/bin/time`; MB/s are 10^6 bytes per "
  .. "second\n"):format(ROUNDS, FAST_ROUNDS))
f:write(("- this run took %.0f s of wall time\n"):format(wall))
for _, s in ipairs(skipped) do f:write("- skipped: ", s, "\n") end
for _, s in ipairs(notes) do f:write("- ", s, "\n") end
f:write("\n## Targets\n\n", targets_md)
f:write("\n", table.concat(md, "\n"))
f:write("\n## Profile\n\n", table.concat(prof_md, "\n"))
f:close()

srv.stop()
if not QUICK and os.getenv("BENCH_KEEP") ~= "1" then
  os.remove(big_path)
  os.remove(mid_path)
end
print(("\nwrote %s (%.0f s)"):format(path, wall))
