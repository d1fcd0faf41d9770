-- bench/mirror_run.lua BUCKET DIR MAX_ACTIVE: one client:mirror, for bench/mirror.lua.
local b2 = require "cloudfetch.b2"

local client = assert(b2.authorize{ key_id = os.getenv("B2_APPLICATION_KEY_ID"), key = os.getenv("B2_APPLICATION_KEY"),
  realm = os.getenv("B2_REALM") })
local report = assert(client:mirror{ bucket = arg[1], dir = arg[2], max_active = tonumber(arg[3]) })
if #report.failed > 0 then error(tostring(report.failed[1].err)) end
