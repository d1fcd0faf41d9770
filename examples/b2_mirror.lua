-- Mirror a B2 bucket (or a folder of it) to a directory: every file verified,
-- 8 at a time, and only what is missing or changed.  Run it twice: the second
-- run downloads nothing.
--   B2_APPLICATION_KEY_ID=... B2_APPLICATION_KEY=... \
--     lua5.4 examples/b2_mirror.lua BUCKET[/PREFIX] DIR
local b2 = require "cloudfetch.b2"

local bucket, prefix = (arg[1] or ""):match("^([^/]+)/?(.*)$")
if not bucket or not arg[2] then
  io.stderr:write("usage: lua5.4 examples/b2_mirror.lua BUCKET[/PREFIX] DIR\n")
  os.exit(2)
end
local env = function(k) local v = os.getenv(k); return v ~= "" and v or nil end
local client = assert(b2.authorize{ key_id = env("B2_APPLICATION_KEY_ID"), key = env("B2_APPLICATION_KEY"),
  realm = env("B2_REALM"), ca_file = env("CLOUDFETCH_CA_FILE") })

local report = assert(client:mirror{ bucket = bucket, prefix = prefix, dir = arg[2] })
print(("downloaded %d, up to date %d, %d bytes"):format(report.downloaded, report.skipped, report.bytes))
for _, f in ipairs(report.failed) do print("failed: " .. f.name .. ": " .. tostring(f.err)) end
os.exit(#report.failed == 0 and 0 or 1)
