-- make bench-b2: downloads one file from the local B2 emulator with
-- cloudfetch.b2, the official b2sdk, rclone and curl, each in its own process
-- and in the same run, and prints MB/s and peak RSS side by side.  The
-- emulator (Python) is the same server for all of them, so the figures
-- compare the clients, not B2.  Figures only: nothing fails on a timing.
local cf = require "cloudfetch"
local emu = require "support.emulator"

local SIZE = tonumber(os.getenv("BENCH_SIZE") or (64 * 1024 * 1024))
local RUNS = tonumber(os.getenv("BENCH_RUNS") or 3)
local out = "bench/out/b2"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local e = emu.start{}
local ok, err = pcall(function()
  os.execute("rm -rf " .. q(out) .. " && mkdir -p " .. q(out))
  e:control("POST", "/_emu/b2/buckets", { name = "bench-bucket" })
  local file = e:control("POST", "/_emu/b2/files", { bucket = "bench-bucket", name = "data/blob.bin", size = SIZE,
    random = "bench" })
  local key_id, key = e.info.b2.key_id, e.info.b2.key
  -- A token for curl, which has no B2 support of its own.
  local auth = assert(cf.open(e.url .. "/b2api/v4/b2_authorize_account",
    { headers = { Authorization = "Basic " .. cf.base64(key_id .. ":" .. key) } })):json()

  local env = ("B2_APPLICATION_KEY_ID=%s B2_APPLICATION_KEY=%s B2_REALM=%s "):format(q(key_id), q(key), q(e.url))
    .. 'LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./?.so;;" '
  local rclone_env = ("HOME=%s RCLONE_CONFIG=/dev/null RCLONE_CONFIG_EMU_TYPE=b2 RCLONE_CONFIG_EMU_ACCOUNT=%s "
    .. "RCLONE_CONFIG_EMU_KEY=%s RCLONE_CONFIG_EMU_ENDPOINT=%s "):format(q(out), q(key_id), q(key), q(e.url))
  local b2sdk = ([[/usr/bin/python3 -c 'import sys
from b2sdk.v2 import B2Api, InMemoryAccountInfo
api = B2Api(InMemoryAccountInfo())
api.authorize_account(sys.argv[1], sys.argv[2], sys.argv[3])
api.download_file_by_id(sys.argv[4]).save_to(sys.argv[5])' %s %s %s %s %s/sdk.bin]]):format(
    q(e.url), q(key_id), q(key), q(file.fileId), out)
  local cases = {
    { "cloudfetch.b2 (SHA-1 verified)", env .. ("lua5.4 examples/b2_download.lua %s %s/cf >/dev/null"):format(
      q(file.fileId), out), out .. "/cf" },
    { "b2sdk 1.17 (SHA-1 verified)", b2sdk, out .. "/sdk.bin" },
    { "rclone 1.60 copy (SHA-1 verified)",
      rclone_env .. ("rclone copy emu:bench-bucket/data/blob.bin %s/rc"):format(out), out .. "/rc" },
    { "curl -o (not verified)", ("curl -sS -H %s -o %s/curl.bin %s"):format(
      q("Authorization: " .. auth.authorizationToken), out,
      q(auth.apiInfo.storageApi.downloadUrl .. "/b2api/v4/b2_download_file_by_id?fileId=" .. file.fileId)),
      out .. "/curl.bin" },
  }
  print(("%d MiB from the B2 emulator on 127.0.0.1, best of %d runs"):format(SIZE // 1048576, RUNS))
  print(("%-36s %8s %14s"):format("client", "MB/s", "peak RSS MiB"))
  for _, case in ipairs(cases) do
    local best, rss, failed = math.huge, 0, false
    for _ = 1, RUNS do
      os.execute("rm -rf " .. q(case[3]) .. " && mkdir -p " .. q(out .. "/cf") .. " " .. q(out .. "/rc"))
      local t0 = cf.now()
      local p = assert(io.popen("/usr/bin/time -f 'RSS %M' sh -c " .. q(case[2]) .. " 2>&1"))
      local res = p:read("a")
      local done = p:close()
      best = math.min(best, cf.now() - t0)
      rss = math.max(rss, tonumber(res:match("RSS (%d+)")) or 0)
      if not done then failed = true; io.stderr:write(res) end
    end
    print(("%-36s %8.0f %14.1f%s"):format(case[1], SIZE / best / 1e6, rss / 1024, failed and "  FAILED" or ""))
  end
end)
e:stop()
os.execute("rm -rf " .. q(out))
if not ok then error(err, 0) end
