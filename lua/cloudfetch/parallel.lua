-- cloudfetch.parallel: a save in ranged parts over several connections.
-- Each part is a task of an inner group (so parts run concurrently in one
-- thread, and a save inside a task lets the outer group's tasks run too);
-- each part is resumed on its own when its connection drops.  The parts
-- land in place in one temporary file, whose whole-file digests the core
-- computes in order as the contiguous prefix grows (core.ranged), so the
-- digest is ready with the last byte: no second pass over the file.
local core = require "cloudfetch.core"
local download = require "cloudfetch.download"
local errors = require "cloudfetch.errors"
local group = require "cloudfetch.group"
local options = require "cloudfetch.options"
local retry = require "cloudfetch.retry"
local save = require "cloudfetch.save"
local sched = require "cloudfetch.sched"

local parallel = {}

local MiB = 1024 * 1024
parallel.MIN_PART = 1 * MiB
parallel.MAX_PART = 64 * MiB
parallel.PARTS_PER_CONNECTION = 4
-- B2 and Notary saves go parallel by themselves from this size on.
parallel.AUTO_THRESHOLD = 100 * MiB
parallel.AUTO_CONNECTIONS = 4

local CATCH_UP_STEP = 8 * MiB

-- Several parts per connection, so every connection has work until the end
-- and the finished prefix (what is hashed) keeps growing.
function parallel.part_size(total, n)
  local size = -(-total // (n * parallel.PARTS_PER_CONNECTION))
  return math.max(parallel.MIN_PART, math.min(parallel.MAX_PART, size))
end

-- Opens the ranged request for bytes first..last of d's entity and checks
-- the answer is exactly that.
local function open_part(d, plan, first, last)
  local p = {}
  for k, v in pairs(d._p) do p[k] = v end
  local req = {}
  for k, v in pairs(d._p.req) do req[k] = v end
  req.range_first, req.range_last, req.hash = first, last, nil
  p.req, p.expect, p.hashed, p.progress = req, {}, {}, nil
  local pd, err = download.open(p)
  if not pd then return nil, err end
  if not retry.same_entity(plan, pd.status, pd.headers, first, last) then
    pd:close()
    return nil, errors.Error.new{ kind = "protocol", status = pd.status, url = pd.url,
      message = "parallel part " .. first .. "-" .. last .. " is not a range of the same entity" }
  end
  return pd
end

-- Streams one part's bytes into the ranged file.  Returns true or nil, err.
local function stream_part(r, pd, first, last, on_bytes)
  local pos = first
  return save.drive(pd, function()
    if pos > last then return 0 end
    local npos, k, message = r:pump(pd._t, pos, last)
    if not npos then return npos, k, message end
    pos = npos
    return k
  end, on_bytes)
end

-- Saves d (the answer to a plain GET, whose body is part 1) in parts.
-- Falls back to a plain save when the server offers no ranges, or the file
-- is too small for more than one part.
function parallel.save(d, path, opts)
  local plan = d._resume
  local n = opts.parallel
  if not n and opts.auto_parallel and (d.total or 0) >= parallel.AUTO_THRESHOLD then
    n = parallel.AUTO_CONNECTIONS
  end
  n = n or 1
  local size = opts.part_size or (d.total and parallel.part_size(d.total, n))
  if n < 2 or not plan or plan.first ~= 0 or d.status ~= 200 or d.total <= size then
    return save.body(d, path, opts)
  end
  local _ <close> = d
  local target, err = save.target(d, path, opts.overwrite)
  if not target then return nil, err end
  local tmp <close>, terr = save.tempfile(target)
  if not tmp then return nil, terr end
  local total, expect = d.total, d._expect
  local algs = {}
  for alg in pairs(options.DIGESTS) do
    if expect[alg] then algs[#algs + 1] = alg end
  end
  -- Closed before tmp (its hasher thread joined) however this ends.
  local r <close> = core.ranged(tmp, total, algs, d._p.req.hash_thread ~= false)
  d._t:drop_hash() -- part 1's bytes are hashed by the ranged file, not twice

  local written, progress = 0, d._p.progress
  local function on_bytes(k)
    written = written + k
    sched.count(k)
    if progress then progress(written, total) end
  end
  local g <close> = group.new{ max_active = n }
  local failure
  local function part(first, last)
    -- A part that raises (a progress callback's error) ends the others too.
    local _ <close> = setmetatable({}, { __close = function(_, e) if e then g:close() end end })
    local pd, perr
    if first == 0 then
      pd = d -- part 1 is the first answer's own body
    else
      pd, perr = open_part(d, plan, first, last)
    end
    if pd then
      local ok
      ok, perr = stream_part(r, pd, first, last, on_bytes)
      if pd ~= d then pd:close() end
      if ok then return true end
    end
    failure = failure or perr
    g:close() -- the others cannot make the file whole any more
    return nil, perr
  end
  for first = 0, total - 1, size do
    g:spawn(part, first, math.min(first + size, total) - 1)
  end
  local results = g:wait()
  for _, res in ipairs(results) do
    if not res[1] and not errors.is_error(res[2]) then error(res[2], 0) end -- raised: raise it here
  end
  for _, res in ipairs(results) do
    if not failure and not res[1] then failure = res[2] end
  end
  if failure then return nil, failure end
  d:close()
  -- Parts that finished out of order are hashed as the prefix reaches them;
  -- what is left is read back here, in steps.
  while true do
    local more, _, message = r:catch_up(CATCH_UP_STEP)
    if more == nil then return nil, errors.Error.new{ kind = "io", message = message } end
    if not more then break end
    sched.pause()
  end
  local sums = r:digests()
  local problem = download.integrity_problem(expect, total, function(alg) return sums[alg] end)
  if problem then return nil, download.integrity_error(problem, d.url) end
  return save.commit(tmp, target, opts, total)
end

return parallel
