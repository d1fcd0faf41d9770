-- cloudfetch.sched: the one place where cloudfetch waits.
--
-- A call that would block asks "ready?" without blocking (the core never
-- waits by itself), then calls sched.wait.  Inside a task (a coroutine a
-- group runs) sched.wait yields to the group, which resumes the task when
-- what it waits for is ready; anywhere else it blocks in C, running the
-- engine.  So the same code serves both, and no C frame ever sits between a
-- task's yield and its resumption.
--
-- What can be waited for: transfers (one, or a list: any of them ready), a
-- predicate (a function returning true when the wait is over, for commit
-- jobs, token renewals, inner groups), and a deadline (monotonic seconds).
local core = require "cloudfetch.core"

local sched = {}

local clock = core.clock
sched.clock = clock

-- The token a waiting task yields, so a group tells our yields from a
-- user's own coroutine.yield inside a task.
local WAIT = setmetatable({}, { __name = "cloudfetch.wait" })
sched.WAIT = WAIT

-- coroutine -> its context: a task of a group, or a polled operation.
-- Weak keys: a finished coroutine takes its context with it.
local contexts = setmetatable({}, { __mode = "k" })

function sched.context()
  return contexts[coroutine.running()]
end

function sched.bind(co, ctx)
  contexts[co] = ctx
end

---------------------------------------------------------------------------
-- Waking waiters.  A group does not ask every waiting transfer whether it
-- is ready: the engine lists the transfers that had news (core.run fills
-- their ids), and sched.run wakes the tasks registered on them.

local function any_ready(ts)
  if ts.ready then return ts:ready() end
  for i = 1, #ts do
    if ts[i]:ready() then return true end
  end
  return false
end

local waiting = {}   -- transfer id -> the task waiting on it
local ready_ids = {}

local function each_transfer(ts, f, ...)
  if ts.ready then return f(ts, ...) end
  for i = 1, #ts do f(ts[i], ...) end
end

-- Marks a task runnable: it goes on its group's run queue.
function sched.wake(ctx)
  if ctx.woken then return end
  ctx.woken = true
  local g = ctx.group
  if g then g.runq[#g.runq + 1] = ctx end
end

local function enlist(t, ctx) waiting[t:id()] = ctx end
local function delist(t, ctx)
  local id = t:id()
  if waiting[id] == ctx then waiting[id] = nil end
end

-- A task starts waiting (what it yielded: transfers, predicate, deadline).
-- It is woken by news of one of its transfers; what it waits for that
-- already happened wakes it at once.
function sched.enlist(ctx, ts, fn, deadline)
  ctx.ts, ctx.wait_fn, ctx.deadline, ctx.woken = ts, fn, deadline, false
  if ts then
    each_transfer(ts, enlist, ctx)
    if any_ready(ts) then sched.wake(ctx) end
  end
end

function sched.delist(ctx)
  if ctx.ts then each_transfer(ctx.ts, delist, ctx) end
  ctx.ts, ctx.wait_fn, ctx.deadline, ctx.woken = nil, nil, nil, false
end

-- Runs the engine once, waiting at most `timeout` seconds, and wakes the
-- tasks whose transfers had news.
function sched.run(timeout)
  local n = core.run(timeout, ready_ids)
  for i = 1, n do
    local ctx = waiting[ready_ids[i]]
    ready_ids[i] = nil
    if ctx then sched.wake(ctx) end
  end
end

-- Is a wait over?  true (what it waited for is there), false (its deadline
-- passed), nil (not yet).
function sched.check(ts, fn, deadline, now)
  if ts and any_ready(ts) then return true end
  if fn and fn() then return true end
  if deadline and (now or clock()) >= deadline then return false end
  return nil
end

-- Waits until one of the transfers `ts` is ready, or fn() is true, or the
-- deadline passed.  Returns true, or false when the deadline came first.
-- A deadline alone is a sleep.
function sched.wait(ts, fn, deadline)
  local co = coroutine.running()
  if contexts[co] then return coroutine.yield(WAIT, ts, fn, deadline) end
  local ran = false
  while true do
    if sched.check(ts, fn) then return true end
    local left = deadline and math.max(0, deadline - clock())
    -- The engine runs at least once, even when there is no time to wait.
    if left == 0 and ran then return false end
    ran = true
    if ts and not fn then
      core.wait(ts, left)
    elseif not ts and not fn then
      core.sleep(left)
    else
      core.run(left)
    end
  end
end

-- Lets the group's other tasks run once (in a long computation, between
-- steps of hashing a big file); does nothing outside a task.
function sched.pause()
  if contexts[coroutine.running()] then coroutine.yield(WAIT, nil, nil, 0) end
end

function sched.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds then
    error("cloudfetch.sleep: seconds must be a number", 2)
  end
  if seconds <= 0 then
    sched.pause()
    return
  end
  sched.wait(nil, nil, clock() + seconds)
end

-- Waits until the transfer is ready (headers in, or failed).
function sched.wait_ready(t)
  if not t:ready() then sched.wait(t) end
end

-- Body bytes a task received: counted on the task (task.bytes), its group
-- (g.bytes, for progress), and on up through the tasks that made the group.
function sched.count(n)
  local ctx = contexts[coroutine.running()]
  while ctx do
    ctx.bytes = (ctx.bytes or 0) + n
    local g = ctx.group
    if not g then return end
    g.bytes = g.bytes + n
    ctx = g.parent
  end
end

-- Registers an object the current task owns, so that canceling the task
-- cleans it up: how = "close" (downloads, groups), "discard" (temporary
-- files), "keep" (part files: kept, so a later run continues them),
-- "cancel" (commit jobs).  Returns obj.
function sched.track(obj, how)
  local ctx = contexts[coroutine.running()]
  if ctx and ctx.resources then ctx.resources[obj] = how end
  return obj
end

function sched.untrack(obj)
  local ctx = contexts[coroutine.running()]
  if ctx and ctx.resources then ctx.resources[obj] = nil end
end

function sched.cleanup(resources)
  for obj, how in pairs(resources) do
    resources[obj] = nil
    pcall(obj[how], obj)
  end
end

---------------------------------------------------------------------------
-- Polled operations: a function run as a coroutine that is advanced only
-- when someone asks (Download:read_chunk's transparent resume), so a poll
-- never blocks.  Its waits yield to poll().

local Op = {}
Op.__index = Op

function sched.op(fn, ...)
  local op = setmetatable({ co = coroutine.create(fn), args = table.pack(...), started = false }, Op)
  contexts[op.co] = op
  return op
end

-- Advances the operation if what it waits for is there.  Returns false
-- while it is not finished, else true and what the function returned.
function Op:poll()
  if self.finished then return true, table.unpack(self.results, 1, self.results.n) end
  local resumed
  if not self.started then
    self.started = true
    resumed = table.pack(coroutine.resume(self.co, table.unpack(self.args, 1, self.args.n)))
  else
    local r = sched.check(self.ts, self.fn, self.deadline)
    if r == nil then return false end
    resumed = table.pack(coroutine.resume(self.co, r))
  end
  if not resumed[1] then error(resumed[2], 0) end
  if coroutine.status(self.co) == "dead" then
    self.finished = true
    self.results = table.pack(table.unpack(resumed, 2, resumed.n))
    return true, table.unpack(self.results, 1, self.results.n)
  end
  if resumed[2] == WAIT then
    self.ts, self.fn, self.deadline = resumed[3], resumed[4], resumed[5]
  else
    self.ts, self.fn, self.deadline = nil, nil, 0 -- a plain yield: go on at the next poll
  end
  return false
end

-- Waits (as sched.wait does) for what the operation waits for, but not
-- past `deadline`.
function Op:wait(deadline)
  local d = self.deadline
  if deadline and (not d or deadline < d) then d = deadline end
  return sched.wait(self.ts, self.fn, d)
end

return sched
