-- bench/many.lua LIST DIR ACTIVE [nosync]: saves every URL of LIST (lines
-- "url name") into DIR with cf.map and ACTIVE tasks at once, or with a
-- plain loop of cf.save when ACTIVE is 0.  Exits non-zero if any failed.
local cf = require "cloudfetch"

local list, dir, active, nosync = arg[1], arg[2], tonumber(arg[3]), arg[4] == "nosync"
local urls, names = {}, {}
for line in io.lines(list) do
  local u, n = line:match("^(%S+)%s+(%S+)$")
  urls[#urls + 1], names[#names + 1] = u, n
end
local opts = { sync = not nosync }
if active == 0 then
  for i, u in ipairs(urls) do assert(cf.save(u, dir .. "/" .. names[i], opts)) end
else
  local results, failed = cf.map(urls, function(u, i) return cf.save(u, dir .. "/" .. names[i], opts) end,
    { max_active = active })
  if failed > 0 then
    for _, r in ipairs(results) do if not r[1] then error(tostring(r[2])) end end
  end
end
