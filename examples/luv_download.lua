-- A luv (libuv) application that downloads every file of a Backblaze B2
-- bucket concurrently while its own timer keeps ticking: the loop never
-- freezes, because cloudfetch runs as tasks of a group that the loop drives
-- by the group's descriptor and timer (cloudfetch.luv).  The same code runs
-- inside Neovim with `vim.uv` in place of `require "luv"`.
--
--   B2_APPLICATION_KEY_ID=... B2_APPLICATION_KEY=... \
--     lua5.4 examples/luv_download.lua BUCKET [DEST_DIR]
--
-- Optional: B2_REALM and CLOUDFETCH_CA_FILE, as for the other examples.
-- Prints "saved: PATH SHA1" per file, then the longest time the app's
-- 20 ms timer had to wait.
local uv = require "luv"
local cf = require "cloudfetch"
local b2 = require "cloudfetch.b2"
local cfluv = require "cloudfetch.luv"

local function fail(message)
  io.stderr:write("luv_download: ", tostring(message), "\n")
  os.exit(1)
end

local bucket, dest = arg[1], arg[2] or "."
if not bucket or bucket == "" then
  io.stderr:write("usage: lua5.4 examples/luv_download.lua BUCKET [DEST_DIR]\n")
  os.exit(2)
end
local key_id, key = os.getenv("B2_APPLICATION_KEY_ID"), os.getenv("B2_APPLICATION_KEY")
if not key_id or key_id == "" or not key or key == "" then fail("set B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY") end
local realm, ca_file = os.getenv("B2_REALM"), os.getenv("CLOUDFETCH_CA_FILE")

-- The app: a timer standing in for a UI that must stay responsive.
local last, worst, ticks = uv.hrtime(), 0, 0
local ui = uv.new_timer()
ui:start(20, 20, function()
  local now = uv.hrtime()
  worst = math.max(worst, (now - last) / 1e6)
  last, ticks = now, ticks + 1
end)

-- The work: one task authorizes and lists, and spawns a task per file.
local g = cf.group{ max_active = 8 }
g:spawn(function()
  local client = assert(b2.authorize{ key_id = key_id, key = key,
    realm = realm ~= "" and realm or nil, ca_file = ca_file ~= "" and ca_file or nil })
  local found = assert(client:buckets{ name = bucket })
  if not found[1] then error("no bucket named " .. bucket, 0) end
  for file in client:files{ bucket_id = found[1].bucketId } do
    g:spawn(function()
      local d = assert(client:open_by_id(file.fileId, { hash = { "sha1" } }))
      local path = assert(d:save(dest))
      print(("saved: %s %s"):format(path, d:digest("sha1")))
      return path
    end)
  end
  return true
end)

local failed
cfluv.attach(g, uv, { on_done = function(results, n)
  failed = n
  for _, r in ipairs(results) do
    if not r[1] then io.stderr:write("luv_download: ", tostring(r[2]), "\n") end
  end
  ui:close()
end })
uv.run()

print(("files: %d, failed: %d; the app's timer ticked %d times, longest wait %.1f ms")
  :format(#g.results - 1, failed, ticks, worst))
os.exit(failed == 0 and 0 or 1)
