-- Mirror every file stored in an Acronis Notary account to a directory,
-- size and SHA-256 verified; a second run downloads nothing.
--   ACRONIS_LOGIN=... ACRONIS_PASSWORD=... lua5.4 examples/notary_mirror.lua DIR
local notary = require "cloudfetch.notary"

if not arg[1] then
  io.stderr:write("usage: lua5.4 examples/notary_mirror.lua DIR\n")
  os.exit(2)
end
local env = function(k) local v = os.getenv(k); return v ~= "" and v or nil end
local client = assert(notary.login{ login = env("ACRONIS_LOGIN"), password = env("ACRONIS_PASSWORD"),
  cloud_url = env("ACRONIS_CLOUD_URL"), ca_file = env("CLOUDFETCH_CA_FILE") })

local report = assert(client:mirror{ dir = arg[1] })
print(("downloaded %d, up to date %d, %d bytes"):format(report.downloaded, report.skipped, report.bytes))
for _, f in ipairs(report.failed) do print("failed: " .. f.name .. ": " .. tostring(f.err)) end
os.exit(#report.failed == 0 and 0 or 1)
