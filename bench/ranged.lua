-- bench/ranged.lua URL PATH N SHA1: one cf.save in N ranged parts, SHA-1
-- verified (parallel = 1: one connection).
local cf = require "cloudfetch"

local url, path, n, sha1 = arg[1], arg[2], tonumber(arg[3]), arg[4]
assert(cf.save(url, path, { parallel = n, expect = { sha1 = sha1 }, overwrite = true }))
