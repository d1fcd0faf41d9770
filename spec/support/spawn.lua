-- Starts a helper server (the emulator, the test HTTP server) as a child
-- process for a spec, waits until it is ready, and stops it afterwards.
--
--   local server = spawn.start{ "spec/support/testserver.py", "--tls" }
--   server.url   -- "http://127.0.0.1:PORT" (or https), read from the ready file
--   server.info  -- the whole ready file, decoded (ca_file, ... where given)
--   server:stop()
--
-- Every server script takes `--ready-file PATH`: it binds 127.0.0.1 on a free
-- port, then writes one JSON object with at least {"url": ...} to PATH.
local cjson = require "cjson"

local spawn = {}

local PYTHON = os.getenv("PYTHON") or "/usr/bin/python3"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function sleep(seconds)
  os.execute("sleep " .. seconds)
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

local Server = {}
Server.__index = Server

function Server:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    -- Reap it so no zombie or half-closed port outlives the spec.
    for _ = 1, 50 do
      if not os.execute("kill -0 " .. self.pid .. " 2>/dev/null") then break end
      sleep(0.05)
    end
    os.execute("kill -9 " .. self.pid .. " 2>/dev/null")
    self.pid = nil
  end
  if self.ready_file then os.remove(self.ready_file) end
  if self.log_file and not os.getenv("KEEP_SERVER_LOGS") then os.remove(self.log_file) end
end

function Server:log()
  return read_file(self.log_file) or ""
end

-- argv: script path then its arguments.  Returns a Server or raises.
function spawn.start(argv, timeout)
  timeout = timeout or 20
  local ready = os.tmpname()
  os.remove(ready)
  local log = ready .. ".log"
  local parts = { shell_quote(PYTHON) }
  for _, a in ipairs(argv) do parts[#parts + 1] = shell_quote(a) end
  parts[#parts + 1] = "--ready-file " .. shell_quote(ready)
  local cmd = table.concat(parts, " ") .. " >" .. shell_quote(log) .. " 2>&1 & echo $!"
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("l"))
  p:close()
  assert(pid, "spawn: could not start " .. argv[1])
  local server = setmetatable({ pid = pid, ready_file = ready, log_file = log }, Server)
  local deadline = os.time() + timeout
  while os.time() <= deadline do
    local data = read_file(ready)
    if data and data:sub(-1) == "\n" then
      server.info = cjson.decode(data)
      server.url = server.info.url
      return server
    end
    if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
    sleep(0.05)
  end
  local out = server:log()
  server:stop()
  error("spawn: " .. argv[1] .. " did not become ready:\n" .. out)
end

return spawn
