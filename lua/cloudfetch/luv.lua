--- Drives a cloudfetch group from a luv (libuv) loop, the loop of Neovim
-- (`vim.uv`) and Luvit.  Requiring this module does not load luv.
-- @module cloudfetch.luv
-- @alias cfluv
-- @usage
-- local cfluv = require "cloudfetch.luv"
-- local g = cf.group{ max_active = 8 }
-- g:spawn(function() return cf.save(url, "out/") end)
-- cfluv.attach(g)          -- or cfluv.attach(g, vim.uv) inside Neovim
-- uv.run()                 -- returns once the group and the app are done

-- The group's one descriptor (an epoll descriptor holding the transfers'
-- sockets, g:pollfd()) is watched with a uv poll handle, and its next
-- deadline (curl's timers, stall clocks, sleeping tasks: g:timeout()) with a
-- uv timer.  Each wakeup runs g:step(0), which never blocks, so the loop
-- stays free for its other work.  No busy polling: between wakeups nothing
-- of cloudfetch runs.
local cfluv = {}

local Attachment = {}
Attachment.__index = Attachment

--- Makes `uv` drive group `g` by its sockets and timers (no busy polling)
-- until it has no unfinished task; the loop stays free for its other work.
-- @tparam cloudfetch.Group g
-- @param[opt] uv the luv module to use (default `require "luv"`; `vim.uv` in
-- Neovim)
-- @tparam[opt] table opts `on_done = function(results, failed)`, called once
-- when the group finished
-- @treturn Attachment a handle; its field `done` is true once the group
-- finished
function cfluv.attach(g, uv, opts)
  uv = uv or require "luv"
  opts = opts or {}
  local self = setmetatable({ group = g, done = false }, Attachment)
  local poll = uv.new_poll(g:pollfd())
  local timer = uv.new_timer()
  self.poll, self.timer = poll, timer

  local tick
  local function arm()
    timer:stop()
    local t = g:timeout()
    if t then timer:start(math.max(0, math.ceil(t * 1000)), 0, tick) end
  end
  function tick()
    if self.detached then return end
    local ok, left = pcall(g.step, g, 0)
    if not ok then
      self:detach()
      error(left, 0)
    end
    if left == 0 then
      self.done = true
      self:detach()
      if opts.on_done then opts.on_done(g.results, g.failed) end
      return
    end
    arm()
  end
  poll:start("r", tick)
  timer:start(0, 0, tick)
  return self
end

--- What @{attach} returns.
-- @type Attachment

--- Stops driving the group; the group stays as it is.  Idempotent.
function Attachment:detach()
  if self.detached then return end
  self.detached = true
  self.poll:stop()
  self.poll:close()
  self.timer:stop()
  self.timer:close()
end

return cfluv
