-- Spec helper: runs spec/support/emulator.py (B2 + Acronis Notary stand-in) for a spec
-- and drives its /_emu/ control interface through cloudfetch itself.
--
--   local emu = require "support.emulator"
--   local e = emu.start{ tls = false, args = { "--seed-demo" } }
--   e.url, e.info, e.ca_file
--   e:control("POST", "/_emu/b2/buckets", { name = "my-bucket" })  -- decoded JSON; raises on non-2xx
--   e:fault{ path = "b2_download_file_by_id", status = 503, retry_after = 0 }
--   e:log()     -- recent requests { method, path, query, status }
--   e:reset()   -- back to the start state
--   e:stop()
local cf = require "cloudfetch"
local spawn = require "support.spawn"

local emulator = {}

local SCRIPT = "spec/support/emulator.py"

local Emulator = {}
Emulator.__index = Emulator

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- One control call.  Control calls never retry: a failure here is a broken test setup.
function Emulator:control(method, path, tbl)
  local opts = { method = method, retry = false, timeout = 60 }
  if tbl ~= nil then opts.json = tbl end
  if self.ca_file then opts.ca_file = self.ca_file end
  local d, err = cf.open(self.url .. path, opts)
  if not d then
    error("emulator: " .. method .. " " .. path .. " failed: " .. tostring(err), 2)
  end
  local body, rerr = d:read_all()
  d:close()
  if d.status < 200 or d.status > 299 then
    error(string.format("emulator: %s %s -> %d %s", method, path, d.status, tostring(body)), 2)
  end
  if body == nil then
    error("emulator: " .. method .. " " .. path .. ": " .. tostring(rerr), 2)
  end
  if body == "" then return {} end
  local cjson = require "cjson"
  local ok, value = pcall(cjson.decode, body)
  if not ok then error("emulator: " .. path .. " answered non-JSON: " .. body, 2) end
  return value
end

function Emulator:reset()
  return self:control("POST", "/_emu/reset", {})
end

function Emulator:fault(tbl)
  return self:control("POST", "/_emu/faults", tbl)
end

function Emulator:clear_faults()
  return self:control("DELETE", "/_emu/faults")
end

function Emulator:log()
  return self:control("GET", "/_emu/log")
end

-- Logged requests whose path contains `fragment` (and, when given, with that
-- status and method).
function Emulator:requests(fragment, status, method)
  local out = {}
  for _, r in ipairs(self:log()) do
    if r.path:find(fragment, 1, true) and (status == nil or r.status == status)
        and (method == nil or r.method == method) then
      out[#out + 1] = r
    end
  end
  return out
end

function Emulator:clear_log()
  return self:control("DELETE", "/_emu/log")
end

function Emulator:stop()
  if self.server then
    self.server:stop()
    self.server = nil
  end
  if self.tls_dir then
    os.execute("rm -rf " .. shell_quote(self.tls_dir))
    self.tls_dir = nil
  end
end

-- opts: tls (boolean), args (extra command-line arguments), timeout (seconds to get ready).
function emulator.start(opts)
  opts = opts or {}
  local argv = { SCRIPT }
  local tls_dir
  if opts.tls then
    tls_dir = os.tmpname()   -- a unique name; the emulator makes the directory
    os.remove(tls_dir)
    argv[#argv + 1] = "--tls-dir"
    argv[#argv + 1] = tls_dir
  end
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  local ok, server = pcall(spawn.start, argv, opts.timeout)
  if not ok then
    if tls_dir then os.execute("rm -rf " .. shell_quote(tls_dir)) end
    error(server, 2)
  end
  return setmetatable({
    server = server,
    url = server.url,
    info = server.info,
    ca_file = server.info.ca_file,
    tls_dir = tls_dir,
  }, Emulator)
end

return emulator
