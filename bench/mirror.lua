-- make bench-mirror: bring a bucket down from the local B2 emulator with
-- cloudfetch's client:mirror, the B2 command line tool's `sync` (Debian's
-- backblaze-b2), b2sdk's Synchronizer and `rclone copy --transfers 16`: a
-- first run into an empty directory, then a second run with nothing to do.
-- 1,000 small files and 4 files of 20 MiB; each client in its own process,
-- medians of alternated runs, peak RSS from /usr/bin/time.  The emulator
-- (Python) is the same server for all, so the figures compare the clients.
-- Figures only: nothing here fails on a timing.  Smaller runs (as `make
-- bench` does): BENCH_ROUNDS, BENCH_SMALL (files), BENCH_BIG (bytes); with
-- BENCH_REPORT set the table is also appended there as markdown.
package.path = "./?.lua;" .. package.path -- bench.harness, with make bench-mirror's LUA_PATH
local emu = require "support.emulator"
local H = require "bench.harness"

local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS") or 3)
local SMALL = tonumber(os.getenv("BENCH_SMALL") or 1000)
local BIG = tonumber(os.getenv("BENCH_BIG") or 20 * 1024 * 1024)
local OUT = "bench/out/mirror"

local q, sh, median, timed = H.q, H.sh, H.median, H.timed

local e = emu.start{}
local ok, err = pcall(function()
  os.execute("rm -rf " .. q(OUT) .. " && mkdir -p " .. q(OUT))
  e:control("POST", "/_emu/b2/buckets", { name = "bench-bucket" })
  e:control("POST", "/_emu/b2/generate", { bucket = "bench-bucket", count = SMALL, prefix = "small/", size = 4096 })
  for i = 1, 4 do
    e:control("POST", "/_emu/b2/files", { bucket = "bench-bucket", name = "big/file" .. i .. ".bin", size = BIG,
      random = "big" .. i })
  end
  local key_id, key, url = e.info.b2.key_id, e.info.b2.key, e.url
  local lua_env = ("B2_APPLICATION_KEY_ID=%s B2_APPLICATION_KEY=%s B2_REALM=%s "):format(q(key_id), q(key), q(url))
    .. 'LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./?.so;;" '
  local rclone_env = ("HOME=%s RCLONE_CONFIG=/dev/null RCLONE_CONFIG_EMU_TYPE=b2 RCLONE_CONFIG_EMU_ACCOUNT=%s "
    .. "RCLONE_CONFIG_EMU_KEY=%s RCLONE_CONFIG_EMU_ENDPOINT=%s "):format(q(OUT), q(key_id), q(key), q(url))
  -- The B2 CLI knows only Backblaze's realms: point 'production' at the emulator.
  local cli = ([[/usr/bin/python3 -c 'import sys
from b2.account_info.abstract import AbstractAccountInfo
AbstractAccountInfo.REALM_URLS["production"] = sys.argv[1]
from b2.console_tool import main
sys.argv = ["b2"] + sys.argv[2:]
main()' %s]]):format(q(url))
  local cli_env = ("B2_ACCOUNT_INFO=%s/b2_account_info "):format(OUT)
  local sdk = [[/usr/bin/python3 -c 'import sys, time
from b2sdk.v2 import B2Api, InMemoryAccountInfo, Synchronizer, SyncReport, parse_folder
api = B2Api(InMemoryAccountInfo())
api.authorize_account(sys.argv[1], sys.argv[2], sys.argv[3])
src, dst = parse_folder("b2://bench-bucket", api), parse_folder(sys.argv[4], api)
with SyncReport(sys.stdout, True) as report:
    Synchronizer(max_workers=16).sync_folders(src, dst, int(time.time() * 1000), report)']]
  local cases = {
    { "cloudfetch client:mirror (max_active 16)", function(dir)
      return lua_env .. ("lua5.4 bench/mirror_run.lua bench-bucket %s 16"):format(q(dir)) end },
    { "b2 sync 1.3.8 (Debian's CLI, --threads 16)", function(dir)
      return cli_env .. cli .. (" sync --noProgress --threads 16 b2://bench-bucket %s >/dev/null"):format(q(dir))
    end, setup = function()
      assert(select(2, sh(cli_env .. cli .. " authorize-account " .. q(key_id) .. " " .. q(key) .. " >/dev/null")))
    end },
    { "b2sdk 1.17 Synchronizer (16 workers)", function(dir)
      return sdk .. (" %s %s %s %s >/dev/null"):format(q(url), q(key_id), q(key), q(dir)) end },
    { "rclone 1.60 copy --transfers 16", function(dir)
      return rclone_env .. ("rclone copy --transfers 16 emu:bench-bucket %s"):format(q(dir)) end },
  }
  for _, c in ipairs(cases) do if c.setup then c.setup() end end

  local first, second, rss = {}, {}, {}
  for r = 1, ROUNDS do
    for k = 0, #cases - 1 do
      local c = cases[(r + k - 1) % #cases + 1]
      local dir = ("%s/run-%d-%d"):format(OUT, r, k)
      os.execute("rm -rf " .. q(dir))
      local t1, m1, ok1 = timed(c[2](dir))
      local t2, m2, ok2 = timed(c[2](dir))
      local n = tonumber((sh("find " .. q(dir) .. " -type f | wc -l")))
      c.failed = c.failed or not ok1 or not ok2 or n ~= SMALL + 4
      first[c] = first[c] or {}
      second[c] = second[c] or {}
      table.insert(first[c], t1)
      table.insert(second[c], t2)
      rss[c] = math.max(rss[c] or 0, m1, m2)
      os.execute("rm -rf " .. q(dir))
    end
  end
  -- time / cloudfetch's time in the same round
  local function vs(t, c)
    local r = {}
    for i = 1, ROUNDS do r[i] = t[c][i] / t[cases[1]][i] end
    return H.x(median(r))
  end
  local rows = {}
  for _, c in ipairs(cases) do
    rows[#rows + 1] = { c[1] .. (c.failed and " FAILED" or ""), H.s(median(first[c])), vs(first, c),
      H.s(median(second[c])), vs(second, c), H.mib(rss[c]) }
  end
  H.emit{ title = ("Mirror: %d files of 4 KiB and 4 of %g MiB from the B2 emulator, median of %d alternated runs")
      :format(SMALL, BIG / 1048576, ROUNDS),
    cols = { "client", "first run s", "vs cloudfetch", "second run s", "vs cloudfetch", "peak RSS MiB" },
    rows = rows }
end)
e:stop()
os.execute("rm -rf " .. q(OUT))
if not ok then error(err, 0) end
