-- make bench-core: streams a 1 GiB body from nginx on loopback through
-- cloudfetch (chunks() and save() with SHA-1 verified) and through curl,
-- in the same run, and prints MB/s and peak RSS side by side.
-- Figures only: nothing here fails on a timing.
local cf = require "cloudfetch"

local SIZE = tonumber(os.getenv("BENCH_SIZE") or (1024 * 1024 * 1024))
local RUNS = tonumber(os.getenv("BENCH_RUNS") or 2)
local out = "bench/out"

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("a")
  local ok = p:close()
  return s, ok
end

os.execute("mkdir -p " .. out .. "/www " .. out .. "/logs")
local file = out .. "/www/big.bin"
local f = io.open(file, "rb")
local have = f and f:seek("end")
if f then f:close() end
if have ~= SIZE then
  print(("creating a %d MiB test file..."):format(SIZE // 1048576))
  assert(os.execute(("head -c %d /dev/urandom > %s"):format(SIZE, file)))
end
local sha1 = sh("sha1sum " .. file):match("^(%x+)")
local port = sh("/usr/bin/python3 -c 'import socket; s=socket.socket(); "
  .. [[s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']])
port = assert(tonumber(port))
local root = sh("pwd"):gsub("%s+$", "")
local conf = out .. "/nginx.conf"
local cf_file = assert(io.open(conf, "w"))
cf_file:write(([[
daemon off; master_process off; worker_processes 1;
pid %s/%s/nginx.pid; error_log %s/%s/logs/error.log;
events { worker_connections 64; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_timeout 30;
  client_body_temp_path %s/%s/logs; proxy_temp_path %s/%s/logs; fastcgi_temp_path %s/%s/logs;
  uwsgi_temp_path %s/%s/logs; scgi_temp_path %s/%s/logs;
  server { listen 127.0.0.1:%d; root %s/%s/www; } }
]]):format(root, out, root, out, root, out, root, out, root, out, root, out, root, out, port, root, out))
cf_file:close()
local pid = sh("nginx -c " .. root .. "/" .. conf .. " -e " .. root .. "/" .. out .. "/logs/error.log"
  .. " >/dev/null 2>&1 & echo $!"):match("%d+")
local url = ("http://127.0.0.1:%d/big.bin"):format(port)
for _ = 1, 100 do
  local d = cf.open(url, { method = "HEAD", retry = false })
  if d and d.status == 200 then break end
  cf.sleep(0.05)
end

local env = 'LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./?.so;;" '
local lua = os.getenv("LUA") or "lua5.4"
local cases = {
  { "curl -o /dev/null", ("curl -sS -o /dev/null %s"):format(url) },
  { "curl | sha1sum", ("curl -sS %s | sha1sum >/dev/null"):format(url) },
  { "curl -o file", ("curl -sS -o %s/curl.out %s; rm -f %s/curl.out"):format(out, url, out) },
  { "curl -o file && sync", ("curl -sS -o %s/curl.out %s && sync %s/curl.out; rm -f %s/curl.out"):format(
    out, url, out, out) },
  { "cloudfetch chunks() + sha1", ("%s%s bench/stream.lua chunks %s %s %d"):format(env, lua, url, sha1, SIZE) },
  { "cloudfetch save() + sha1",
    ("%s%s bench/stream.lua save %s %s %d %s/cf.out; rm -f %s/cf.out"):format(env, lua, url, sha1, SIZE, out, out) },
}

print(("%d MiB from nginx on 127.0.0.1, best of %d runs"):format(SIZE // 1048576, RUNS))
print(("%-28s %10s %14s"):format("client", "MB/s", "peak RSS MiB"))
for _, case in ipairs(cases) do
  local best, rss, failed = math.huge, 0, false
  for _ = 1, RUNS do
    local t0 = cf.now()
    local res, ok = sh("/usr/bin/time -f 'RSS %M' sh -c '" .. case[2] .. "' 2>&1")
    local dt = cf.now() - t0
    if not ok then failed = true; io.stderr:write(res) end
    best = math.min(best, dt)
    rss = math.max(rss, tonumber(res:match("RSS (%d+)")) or 0)
  end
  print(("%-28s %10.0f %14.1f%s"):format(case[1], SIZE / best / 1e6, rss / 1024, failed and "  FAILED" or ""))
end
os.execute("kill " .. pid)
