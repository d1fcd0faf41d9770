-- bench/luasocket_get.lua URL PATH SIZE: LuaSocket's http.request with an
-- ltn12 file sink (Debian's lua-socket), the plain-Lua way to save a URL.
-- Nothing verified; fails if the file is not SIZE bytes.
local http = require "socket.http"
local ltn12 = require "ltn12"

local url, path, size = arg[1], arg[2], math.tointeger(tonumber(arg[3]))
local ok, code = http.request{ url = url, sink = ltn12.sink.file(assert(io.open(path, "wb"))) }
assert(ok and code == 200, "LuaSocket: " .. tostring(code))
local f = assert(io.open(path, "rb"))
assert(f:seek("end") == size, "LuaSocket: short file")
f:close()
