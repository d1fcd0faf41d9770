-- cloudfetch.group: many downloads at once in one thread.  A task is a Lua
-- function run as a coroutine; wherever cloudfetch would wait, the task
-- yields (sched.wait) and the group runs the others.  The group itself is
-- driven by step(timeout): run what is ready, then run the engine (epoll on
-- the transfers' sockets, curl's timers) for at most `timeout`.
--
-- A group made inside a task of another group (cf.map in a task, the parts
-- of a parallel save) is nested: its wait() yields to the outer group,
-- which runs the engine for both.
local core = require "cloudfetch.core"
local errors = require "cloudfetch.errors"
local sched = require "cloudfetch.sched"

local group = {}

--- @module cloudfetch

local clock = sched.clock
local WAIT = sched.WAIT
local PROGRESS_INTERVAL = 0.1

local Group = { __name = "cloudfetch.Group" }
Group.__index = Group

local Task = { __name = "cloudfetch.Task" }
Task.__index = Task

local WEAK_KEYS = { __mode = "k" }

function group.new(opts)
  local parent = sched.context()
  local g = setmetatable({
    max_active = opts.max_active or 8,
    progress = opts.progress,
    keep = opts.keep_results ~= false, -- false: results are not kept (a mirror of millions of files)
    tasks = {},         -- every task not yet started, or every task when results are kept, by spawn index
    ntasks = 0,
    results = {},       -- table.pack of each finished task's results
    next_start = 1,     -- the next queued task to start, in spawn order
    active = {},        -- running tasks (a set)
    nactive = 0,
    runq = {},          -- woken tasks (sched.wake), in order
    polled = {},        -- waiting tasks with a predicate or a deadline (a set): asked each round
    done = 0, failed = 0, bytes = 0,
    parent = parent,    -- the task this group was made in: its bytes count there too
    stepping = 0,       -- which step (or round) this is, so a task runs once per step
    last_report = -math.huge,
    final_reported = -1,
  }, Group)
  if parent then sched.track(g, "close") end
  return g
end

-- -------------------------------------------------------------------------
-- Tasks

--- Many downloads at once in one thread: what @{group} returns.  Its
-- tasks are Lua functions run as coroutines; wherever cloudfetch would wait
-- inside a task, the group runs the others.  Fields: `results`, `failed`,
-- `bytes`.  Supports `<close>` and garbage collection, like @{Group:close}.
-- @type Group

--- Queues `fn(...)` as a task; at most `max_active` tasks run at once, the
-- others start in spawn order.  A task may spawn more tasks into its own
-- group.
-- @tparam function fn
-- @param ... its arguments
-- @treturn Task
-- @raise when the group is closed
function Group:spawn(fn, ...)
  if type(fn) ~= "function" then error("group:spawn: fn must be a function, got " .. type(fn), 2) end
  if self.closed then error("group:spawn: the group is closed", 2) end
  self.ntasks = self.ntasks + 1
  local task = setmetatable({ group = self, index = self.ntasks, fn = fn, args = table.pack(...),
    state = "queued" }, Task)
  self.tasks[task.index] = task
  return task
end

--- A task of a @{Group}: what @{Group:spawn} returns.
-- @type Task

--- The task's state.
-- @treturn string `"queued"`, `"running"`, `"done"` or `"canceled"`
function Task:status()
  return self.state
end

--- What the task returned, once it ended.
-- @treturn ?table the `table.pack` of its results (`{ nil, err, n = 2 }` when
-- it raised or was canceled), or nil while it has not ended
function Task:result()
  return self.group.results[self.index]
end

--- Ends the task: a queued task never starts; a running one is not resumed
-- again, its downloads are aborted and its temporary files removed.  Its
-- result becomes `{ nil, err }` with kind `"canceled"`.
function Task:cancel()
  local g = self.group
  if self.state == "queued" then
    self.state = "canceled"
    g:_record(self, { nil, errors.canceled(), n = 2 })
  elseif self.state == "running" then
    g:_cancel_running(self)
  end
end

local function failed(results)
  return results.n == 0 or not results[1]
end

function Group:_record(task, results)
  if self.keep then self.results[task.index] = results end
  self.done = self.done + 1
  if failed(results) then self.failed = self.failed + 1 end
end

-- Takes a task out of every waiting list.
function Group:_unwait(task)
  sched.delist(task)
  self.polled[task] = nil
end

-- A running task ends (state "done" or "canceled") with `results`.  With
-- `unwind`, its pending to-be-closed variables are closed and what it still
-- holds is cleaned up (a task that raised does not unwind its own stack).
function Group:_retire(task, state, results, unwind)
  self:_unwait(task)
  self.active[task] = nil
  self.nactive = self.nactive - 1
  task.state = state
  if unwind then
    coroutine.close(task.co)
    sched.cleanup(task.resources)
  end
  task.co, task.resources, task.ts, task.wait_fn = nil, nil, nil, nil
  self:_record(task, results)
end

function Group:_finish(task, results, raised)
  self:_retire(task, "done", results, raised)
end

function Group:_cancel_running(task)
  if coroutine.status(task.co) ~= "suspended" then
    task.cancel_pending = true -- it is running now (it canceled itself): end it when it yields
    return
  end
  self:_retire(task, "canceled", { nil, errors.canceled(), n = 2 }, true)
end

-- Resumes a task (with the answer to its wait, or its arguments at the
-- start) and files what it did: yielded to wait, ended, or raised.
function Group:_resume(task, ...)
  task.stepped = self.stepping
  self:_unwait(task)
  local r = table.pack(coroutine.resume(task.co, ...))
  if not r[1] then
    self:_finish(task, { nil, r[2], n = 2 }, true)
  elseif coroutine.status(task.co) == "dead" then
    self:_finish(task, table.pack(table.unpack(r, 2, r.n)))
  elseif task.cancel_pending then
    self:_cancel_running(task)
  elseif r[2] == WAIT then
    local ts, fn, deadline = r[3], r[4], r[5]
    sched.enlist(task, ts, fn, deadline)
    if fn or deadline then self.polled[task] = true end
  else
    sched.enlist(task, nil, nil, 0) -- a plain yield: runnable again (next round)
    self.polled[task] = true
  end
end

function Group:_start(task)
  task.state = "running"
  task.co = coroutine.create(task.fn)
  task.resources = setmetatable({}, WEAK_KEYS)
  sched.bind(task.co, task)
  self.active[task] = true
  self.nactive = self.nactive + 1
  local args = task.args
  task.fn, task.args = nil, nil
  self:_resume(task, table.unpack(args, 1, args.n))
end

function Group:_startable()
  return self.nactive < self.max_active and self.next_start <= self.ntasks
end

-- Runs every task that can go on now, each at most once, and starts queued
-- tasks as slots free up.  Does not run the engine.
function Group:_run_ready()
  self.stepping = self.stepping + 1
  local step = self.stepping
  local later, polled = self._later, self._polled
  if not later then
    later, polled = {}, {}
    self._later, self._polled = later, polled
  end
  repeat
    local progressed = false
    while self:_startable() do
      local task = self.tasks[self.next_start]
      if not self.keep then self.tasks[self.next_start] = nil end
      self.next_start = self.next_start + 1
      if task.state == "queued" then
        self:_start(task)
        progressed = true
      end
    end
    -- Woken tasks, in the order they were woken.
    local q = self.runq
    if #q > 0 then
      self.runq = {}
      for i = 1, #q do
        local task = q[i]
        if task.state == "running" and task.woken then
          if task.stepped == step then
            later[#later + 1] = task -- it ran in this step already: the next one
          else
            self:_resume(task, true)
            progressed = true
          end
        end
      end
    end
    -- Sleepers, predicates and deadlines.
    if next(self.polled) then
      local n, now = 0, clock()
      for task in pairs(self.polled) do
        if task.stepped ~= step then n = n + 1; polled[n] = task end
      end
      for i = 1, n do
        local task = polled[i]
        polled[i] = nil
        if task.state == "running" and self.polled[task] then
          local r = sched.check(task.ts, task.wait_fn, task.deadline, now)
          if r ~= nil then
            self:_resume(task, r)
            progressed = true
          end
        end
      end
    end
  until not progressed
  for i = 1, #later do
    self.runq[#self.runq + 1] = later[i]
    later[i] = nil
  end
end

-- Could a task go on now?  (For a group waited on from another group.)
function Group:_has_ready()
  if #self.runq > 0 or self:_startable() then return true end
  local now = clock()
  for task in pairs(self.polled) do
    if sched.check(task.ts, task.wait_fn, task.deadline, now) ~= nil then return true end
  end
  return false
end

-- The earliest deadline of a waiting task (0: something is runnable), or nil.
function Group:_next_deadline()
  if #self.runq > 0 or self:_startable() then return 0 end
  local d
  for task in pairs(self.polled) do
    if task.deadline and (not d or task.deadline < d) then d = task.deadline end
  end
  return d
end

--- @type Group

--- How many tasks have not ended yet (queued or running).
-- @treturn integer
function Group:unfinished()
  return self.ntasks - self.done
end

function Group:_report(final)
  local fn = self.progress
  if not fn then return end
  local now = clock()
  if final then
    if self.final_reported == self.ntasks then return end
    self.final_reported = self.ntasks
  elseif now - self.last_report < PROGRESS_INTERVAL then
    return
  end
  self.last_report = now
  fn{ total = self.ntasks, done = self.done, failed = self.failed, active = self.nactive, bytes = self.bytes }
end

-- -------------------------------------------------------------------------
-- Driving

--- Runs what is ready, waits at most `timeout` seconds for the network or a
-- timer, and runs what became ready.  `g:step(0)` never blocks: a host loop
-- calls it from its own tick.
-- @tparam[opt] number timeout seconds (nil: until something happens;
-- 0: never blocks)
-- @treturn integer the number of unfinished tasks
-- @raise when called from one of the group's own tasks
function Group:step(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    error("group:step: timeout must be a non-negative number", 2)
  end
  local ctx = sched.context()
  if ctx and ctx.group == self then error("group:step: a task cannot step its own group", 2) end
  self:_run_ready()
  if self:unfinished() > 0 then
    local wait = timeout
    local d = self:_next_deadline()
    if d then
      d = math.max(0, d - clock())
      if not wait or d < wait then wait = d end
    end
    if ctx then
      -- Inside another group's task: that group runs the engine.
      if wait ~= 0 then
        sched.wait(nil, function() return self:_has_ready() end, wait and clock() + wait)
      end
    else
      sched.run(wait)
    end
    self:_run_ready()
  end
  local left = self:unfinished()
  self:_report(left == 0)
  return left
end

--- Runs until every task ended.  One task's failure never stops or loses
-- the others.
-- @treturn table results in spawn order: `results[i]` is the `table.pack`
-- of what task i returned, or `{ nil, err, n = 2 }` when it raised
-- @treturn integer how many tasks raised or returned nil or false first
-- @raise when called from one of the group's own tasks
function Group:wait()
  local ctx = sched.context()
  if ctx and ctx.group == self then error("group:wait: a task cannot wait for its own group", 2) end
  while self:step() > 0 do end
  return self.results, self.failed
end

--- Ends every unfinished task: queued ones never start, running ones are
-- not resumed again (their downloads are closed, their temporary files
-- removed); their results are `nil, err` with kind `"canceled"`.  Idempotent;
-- @{Group:wait} afterwards returns all results at once.
function Group:close()
  if self.closed then return end
  self.closed = true
  for i = self.next_start, self.ntasks do
    local task = self.tasks[i]
    if task.state == "queued" then
      task.state = "canceled"
      self:_record(task, { nil, errors.canceled(), n = 2 })
    end
  end
  self.next_start = self.ntasks + 1
  local running = {}
  for task in pairs(self.active) do running[#running + 1] = task end
  for _, task in ipairs(running) do self:_cancel_running(task) end
end

Group.__gc = Group.close
Group.__close = Group.close

--- cqueues' polling protocol, for host event loops: one descriptor that
-- becomes readable when the group has work.
-- @treturn integer a file descriptor
function Group:pollfd()
  return core.pollfd()
end

--- cqueues' polling protocol: which events to watch on @{Group:pollfd}.
-- @treturn string `"r"`
function Group:events()
  return "r"
end

--- cqueues' polling protocol: seconds until the group needs a `step(0)`
-- even without I/O.
-- @treturn ?number seconds, or nil when it waits only on I/O (or has
-- nothing left to do)
function Group:timeout()
  if self:unfinished() == 0 then return nil end
  if self:_has_ready() then return 0 end
  local t
  local d = self:_next_deadline()
  if d then t = math.max(0, d - clock()) end
  local e = core.timeout()
  if e and (not t or e < t) then t = e end
  return t
end

return group
