-- bench/luacurl_get.lua URL PATH SIZE: a libcurl binding with a Lua write
-- callback that writes each piece to the file.  Debian's lua-curl (Enrico
-- Tassi's binding, `curl.easy_init`) is built for Lua 5.1 and 5.2 only, so
-- this file runs under lua5.2.  Nothing verified; fails on a short body.
local curl = require "curl"

local url, path, size = arg[1], arg[2], tonumber(arg[3])
local f = assert(io.open(path, "wb"))
local n = 0
local c = curl.easy_init()
c:setopt(curl.OPT_URL, url)
c:setopt(curl.OPT_FAILONERROR, 1)
c:setopt(curl.OPT_WRITEFUNCTION, function(buf)
  f:write(buf)
  n = n + #buf
  return #buf
end)
local rc, err = c:perform()
assert(rc == 0, "lua-curl: " .. tostring(err or rc))
f:close()
assert(n == size, "lua-curl: short body")
