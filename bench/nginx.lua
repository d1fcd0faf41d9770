-- Benchmarks' local nginx: serves bench/out/www on a free 127.0.0.1 port,
-- with sendfile, keep-alive, and /limited/ rate-limited per connection.
--
--   local nginx = require "bench.nginx"   (LUA_PATH with ./?.lua)
--   local srv = nginx.start{ limit_rate = "25m" }
--   srv.url, srv.www ... srv:stop()
--   local srv <close> = nginx.start{}     (stopped however the scope ends)
local cf = require "cloudfetch"

local nginx = {}

local OUT = "bench/out"

function nginx.sh(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("a")
  local ok = p:close()
  return s, ok
end
local sh = nginx.sh

function nginx.start(opts)
  opts = opts or {}
  local root = sh("pwd"):gsub("%s+$", "") .. "/" .. OUT
  os.execute("mkdir -p " .. root .. "/www " .. root .. "/logs")
  local port = assert(tonumber((sh("/usr/bin/python3 -c 'import socket; s=socket.socket(); "
    .. [[s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']]))))
  local conf = root .. "/nginx.conf"
  local f = assert(io.open(conf, "w"))
  f:write((([[
daemon off; master_process off; worker_processes 1;
pid ROOT/nginx.pid; error_log ROOT/logs/error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_timeout 60; keepalive_requests 100000;
  client_body_temp_path ROOT/logs; proxy_temp_path ROOT/logs; fastcgi_temp_path ROOT/logs;
  uwsgi_temp_path ROOT/logs; scgi_temp_path ROOT/logs;
  server { listen 127.0.0.1:PORT; root ROOT/www;
    location /limited/ { limit_rate LIMIT; } } }
]]):gsub("ROOT", root):gsub("PORT", tostring(port)):gsub("LIMIT", opts.limit_rate or "25m")))
  f:close()
  local pid = sh("nginx -c " .. conf .. " -e " .. root .. "/logs/error.log >/dev/null 2>&1 & echo $!"):match("%d+")
  local srv = { url = ("http://127.0.0.1:%d"):format(port), www = root .. "/www", pid = pid }
  for _ = 1, 100 do
    local d = cf.open(srv.url .. "/", { method = "HEAD", retry = false })
    if d then break end
    cf.sleep(0.05)
  end
  function srv.stop()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    pid = nil
  end
  return setmetatable(srv, { __close = srv.stop })
end

-- A shell word: s in single quotes.
function nginx.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command under /usr/bin/time: seconds, peak RSS (KiB), ok,
-- CPU seconds (user + system, all its processes).  With `limit` (seconds)
-- the command is killed after that long (and is not ok).
function nginx.timed(cmd, limit)
  local t0 = cf.now()
  local run = limit and ("timeout -k 5 %d sh -c "):format(limit) or "sh -c "
  local res, ok = sh("/usr/bin/time -f 'RSS %M CPU %U %S' " .. run .. nginx.q(cmd) .. " 2>&1")
  local dt = cf.now() - t0
  if not ok then io.stderr:write(res) end
  local kib, user, sys = res:match("RSS (%d+) CPU (%S+) (%S+)%s*$")
  return dt, tonumber(kib) or 0, ok, (tonumber(user) or 0) + (tonumber(sys) or 0)
end

function nginx.median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

return nginx
