-- `make demo`: start the local B2 + Acronis Notary emulator with demo data (over https,
-- with its own throw-away CA), then run the example scripts against it as a user would:
--
--   examples/b2_list.lua demo-bucket
--   examples/b2_download.lua <id> demo-out/b2         (each seeded B2 file)
--   examples/notary_download.lua <id> demo-out/notary (each seeded Notary file)
--   examples/luv_download.lua demo-bucket demo-out/luv (the whole bucket at once, in a luv loop)
--   examples/b2_mirror.lua demo-bucket demo-out/mirror, twice (the second run downloads nothing)
--   examples/notary_mirror.lua demo-out/notary-mirror, twice
--
-- Every download is also checked on disk against the seed's SHA-1 / SHA-256.
-- Run from the repository root:
--   LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./?.so;;" lua5.4 examples/demo.lua
-- Exits non-zero if anything failed.
local cjson = require "cjson"

local PYTHON = os.getenv("PYTHON") or "/usr/bin/python3"
local LUA = arg and arg[-1] or "lua5.4"
local OUT = "demo-out"

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

local function sleep(seconds)
  os.execute("sleep " .. seconds)
end

-- Runs a shell command; returns ok, combined output.
local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok == true, out
end

local function digest_of(tool, path)
  local ok, out = run(tool .. " " .. q(path))
  return ok and out:match("^(%x+)") or nil
end

-- Start the emulator (port 0, ready file) -------------------------------------------------
local work = os.tmpname()
os.remove(work)
assert(os.execute("mkdir -p " .. q(work)), "demo: cannot make a temporary directory")
local ready, log = work .. "/ready.json", work .. "/emulator.log"

local function start_emulator(tls)
  local cmd = q(PYTHON) .. " spec/support/emulator.py --seed-demo --ready-file " .. q(ready)
  if tls then cmd = cmd .. " --tls-dir " .. q(work .. "/tls") end
  local p = assert(io.popen(cmd .. " >" .. q(log) .. " 2>&1 & echo $!"))
  local pid = tonumber(p:read("l"))
  p:close()
  if not pid then return nil end
  for _ = 1, 400 do   -- at most ~20 s
    local data = read_file(ready)
    if data and data:sub(-1) == "\n" then return pid, cjson.decode(data) end
    if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
    sleep(0.05)
  end
  os.execute("kill " .. pid .. " 2>/dev/null")
  return nil
end

local function stop_emulator(pid)
  if not pid then return end
  os.execute("kill " .. pid .. " 2>/dev/null")
  for _ = 1, 50 do
    if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
    sleep(0.05)
  end
  os.execute("kill -9 " .. pid .. " 2>/dev/null")
end

print("== cloudfetch demo: a local Backblaze B2 + Acronis Notary emulator")
local pid, info = start_emulator(true)
if not pid then
  -- TLS needs the openssl tool; plain http still shows everything else.
  print("   (could not start with TLS, trying plain http)")
  os.remove(ready)
  pid, info = start_emulator(false)
end
if not pid then
  io.stderr:write("demo: the emulator did not start:\n", read_file(log) or "", "\n")
  os.execute("rm -rf " .. q(work))
  os.exit(1)
end
print("   emulator at " .. info.url .. (info.ca_file and "  (https, CA " .. info.ca_file .. ")" or ""))

-- Run the examples ------------------------------------------------------------------------
local env = {
  B2_APPLICATION_KEY_ID = info.b2.key_id,
  B2_APPLICATION_KEY = info.b2.key,
  B2_REALM = info.url,
  ACRONIS_LOGIN = info.notary.login,
  ACRONIS_PASSWORD = info.notary.password,
  ACRONIS_CLOUD_URL = info.url,
  CLOUDFETCH_CA_FILE = info.ca_file or "",
}
local env_prefix = {}
for _, k in ipairs{ "B2_APPLICATION_KEY_ID", "B2_APPLICATION_KEY", "B2_REALM", "ACRONIS_LOGIN",
                    "ACRONIS_PASSWORD", "ACRONIS_CLOUD_URL", "CLOUDFETCH_CA_FILE" } do
  env_prefix[#env_prefix + 1] = k .. "=" .. q(env[k])
end
env_prefix = "env " .. table.concat(env_prefix, " ") .. " "

local failures, steps = 0, 0

local function step(title, script, args, check)
  steps = steps + 1
  local parts = { q(LUA), q(script) }
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  print("\n-- " .. title)
  print("   $ " .. LUA .. " " .. script .. " " .. table.concat(args, " "))
  local ok, out = run(env_prefix .. table.concat(parts, " "))
  for line in out:gmatch("[^\n]+") do print("   | " .. line) end
  if ok and check then
    local good, why = check(out)
    if not good then ok = false; print("   ! " .. why) end
  end
  print(ok and "   ok" or "   FAILED")
  if not ok then failures = failures + 1 end
end

-- The saved file must hold exactly the seeded bytes.
local function saved_with(tool, want)
  return function(out)
    local path = out:match("saved:%s*([^\n]-)%s*\n") or out:match("saved:%s*([^\n]-)%s*$")
    if not path then return false, "the script did not say where it saved the file" end
    local got = digest_of(tool, path)
    if got ~= want then
      return false, string.format("%s of %s is %s, expected %s", tool, path, tostring(got), want)
    end
    return true
  end
end

local ok, err = pcall(function()
  os.execute("rm -rf " .. q(OUT .. "/b2") .. " " .. q(OUT .. "/notary") .. " " .. q(OUT .. "/luv"))
  assert(os.execute("mkdir -p " .. q(OUT .. "/b2") .. " " .. q(OUT .. "/notary")))
  local seed = info.seed
  step("List the B2 bucket", "examples/b2_list.lua", { seed.b2.bucket })
  for _, f in ipairs(seed.b2.files) do
    step(string.format("Download B2 file %q (%d bytes)", f.name, math.tointeger(f.size) or f.size),
      "examples/b2_download.lua", { f.id, OUT .. "/b2" }, saved_with("sha1sum", f.sha1))
  end
  for _, f in ipairs(seed.notary.files) do
    step(string.format("Download Notary file %q (%d bytes)", f.name, math.tointeger(f.size) or f.size),
      "examples/notary_download.lua", { f.id, OUT .. "/notary" }, saved_with("sha256sum", f.sha256))
  end
  os.execute("rm -rf " .. q(OUT .. "/mirror") .. " " .. q(OUT .. "/notary-mirror"))
  local function mirrored(want_downloaded, want_skipped, files, tool, root)
    return function(out)
      local d, s = out:match("downloaded (%d+), up to date (%d+)")
      if tonumber(d) ~= want_downloaded or tonumber(s) ~= want_skipped then
        return false, ("expected %d downloaded and %d up to date"):format(want_downloaded, want_skipped)
      end
      for _, f in ipairs(files) do
        local path = root .. "/" .. f.name
        if digest_of(tool, path) ~= (f.sha1 or f.sha256) then return false, path .. " does not hold the file" end
      end
      return true
    end
  end
  local nb, nn = #seed.b2.files, #seed.notary.files
  step("Mirror the B2 bucket", "examples/b2_mirror.lua", { seed.b2.bucket, OUT .. "/mirror" },
    mirrored(nb, 0, seed.b2.files, "sha1sum", OUT .. "/mirror"))
  step("Mirror it again: nothing to download", "examples/b2_mirror.lua", { seed.b2.bucket, OUT .. "/mirror" },
    mirrored(0, nb, seed.b2.files, "sha1sum", OUT .. "/mirror"))
  step("Mirror the Notary account", "examples/notary_mirror.lua", { OUT .. "/notary-mirror" },
    mirrored(nn, 0, seed.notary.files, "sha256sum", OUT .. "/notary-mirror"))
  step("Mirror it again: nothing to download", "examples/notary_mirror.lua", { OUT .. "/notary-mirror" },
    mirrored(0, nn, seed.notary.files, "sha256sum", OUT .. "/notary-mirror"))
  os.execute("rm -rf " .. q(OUT .. "/luv"))
  assert(os.execute("mkdir -p " .. q(OUT .. "/luv")))
  step("Download the whole B2 bucket at once inside a luv event loop", "examples/luv_download.lua",
    { seed.b2.bucket, OUT .. "/luv" }, function(out)
      for _, f in ipairs(seed.b2.files) do
        local name = f.name:match("[^/]*$")
        local path = OUT .. "/luv/" .. name
        if not out:find("saved: " .. path .. " " .. f.sha1, 1, true) then
          return false, "no verified save of " .. path
        end
        if digest_of("sha1sum", path) ~= f.sha1 then return false, path .. " does not hold the file" end
      end
      return true
    end)
end)

stop_emulator(pid)
os.execute("rm -rf " .. q(work))

if not ok then
  io.stderr:write("demo: ", tostring(err), "\n")
  os.exit(1)
end
print(string.format("\n== %d of %d steps succeeded; files are in %s/", steps - failures, steps, OUT))
os.exit(failures == 0 and 0 or 1)
