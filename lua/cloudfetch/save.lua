-- cloudfetch.save: saving a body to disk.  Atomic (a temporary file beside
-- the target, renamed once every check passed), never clobbering unless
-- asked, resumable (`<target>.part`), and in ranged parts over several
-- connections (cloudfetch.parallel).  Inside a task the last step (fsync,
-- rename, directory fsync) runs on a worker thread, so other tasks go on.
local core = require "cloudfetch.core"
local download = require "cloudfetch.download"
local errors = require "cloudfetch.errors"
local retry = require "cloudfetch.retry"
local sched = require "cloudfetch.sched"

local save = {}

local Error = errors.Error

-- Bytes of a part file hashed between two yields, when a resumable save
-- continues a big one.
local PREFEED_STEP = 4 * 1024 * 1024

local function url_filename(url)
  local path = (url or ""):gsub("[?#].*$", ""):gsub("^%a[%w+.-]*://[^/]*", "")
  local last = path:match("([^/]+)/*$")
  if not last then return nil end
  last = last:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  return core.sanitize_filename(last)
end

local function is_dir_path(path)
  return path:sub(-1) == "/" or core.stat(path) == "directory"
end

-- The name a download gets inside a directory: Content-Disposition's, else
-- the service's own name for the file (d.name_hint, set by b2 and notary),
-- else the URL's last segment; always sanitised.
function save.name_of(d)
  -- The URL as requested (after redirects), not d.url: redaction may have
  -- hidden part of it (a raw "@" in the path reads as user information).
  return d:filename() or (d.name_hint and core.sanitize_filename(d.name_hint)) or url_filename(d._p.url)
end

-- Where a save of d goes: `path`, or `<dir>/<name>` when path is a
-- directory.  Returns the target, or nil, err.
function save.target(d, path, overwrite)
  if d.status < 200 or d.status > 299 then
    return nil, Error.new{ kind = "http", status = d.status, url = d.url,
      message = "HTTP " .. d.status .. " from " .. tostring(d.url) .. ": nothing saved" }
  end
  if d._p.req.method == "HEAD" then
    return nil, Error.new{ kind = "protocol", status = d.status, url = d.url,
      message = "the answer to a HEAD request has no body to save" }
  end
  local target, kind = path, core.stat(path)
  if kind == "directory" or path:sub(-1) == "/" then
    if kind ~= "directory" then
      return nil, Error.new{ kind = "io", code = "not_found", message = "no such directory: " .. path }
    end
    local name = save.name_of(d)
    if not name then
      return nil, Error.new{ kind = "io", code = "no_name", url = d.url,
        message = "no file name in Content-Disposition or the URL; give a file path" }
    end
    target = path:gsub("/+$", "") .. "/" .. name
    kind = core.stat(target)
  end
  if not overwrite and kind then
    return nil, Error.new{ kind = "io", code = "exists",
      message = target .. " exists already (pass overwrite = true to replace it)" }
  end
  return target
end

local function io_error(message, code)
  return Error.new{ kind = "io", message = message, code = code }
end

-- A temporary file beside target, removed if the save does not finish:
-- `<dir>/.cloudfetch-<name>.<slot>.tmp`, locked while it is open, so that
-- core.tempfile first removes the ones of this target that a killed save
-- left (nobody holds their lock) and leaves those of live saves alone.
function save.tempfile(target)
  local f, kind, message, code = core.tempfile(target)
  if not f then return nil, Error.new{ kind = kind, message = message, code = code } end
  return sched.track(f, "discard")
end

-- Finishes a save: the temporary (or part) file f becomes target.  Inside a
-- task, with sync, the disk work runs on a worker thread while the task
-- waits (yields); elsewhere it runs here.  Returns target, bytes or nil, err.
function save.commit(f, target, opts, bytes)
  local overwrite, sync = opts.overwrite or false, opts.sync ~= false
  if opts.mtime then f:set_mtime(opts.mtime) end
  local ok, kind, message, code
  if sync and sched.context() then
    local job = sched.track(f:start_commit(target, overwrite, sync), "cancel")
    sched.untrack(f)
    sched.wait(nil, function() return job:done() end)
    ok, kind, message, code = job:result()
    sched.untrack(job)
  else
    ok, kind, message, code = f:commit(target, overwrite, sync)
  end
  if not ok then return nil, Error.new{ kind = kind, code = code, message = message } end
  return target, bytes
end

-- Runs pump() until the body (or a part of it) is in: pump returns the
-- bytes it wrote (> 0), 0 when done, false when nothing is there yet (then
-- this waits for d's transfer), or nil, kind, message.  A dropped connection
-- is resumed (retry.resume).  Returns true, or nil, err.
function save.drive(d, pump, on_bytes)
  while true do
    local over = download.overrun(d)
    if over then return nil, over end
    local n, kind, message = pump()
    if n == false then
      sched.wait(d._t)
    elseif n == 0 then
      return true
    elseif n then
      on_bytes(n)
    elseif kind == "io" then
      return nil, download.fail(d, kind, message)
    else
      local resumed, why = retry.resume(d, kind)
      if not resumed then
        if why then message = message .. "; not resumed: " .. why end
        return nil, download.fail(d, kind, message)
      end
    end
  end
end

-- Streams the rest of d's body into the file f.  Returns the bytes the body
-- has, or nil, err.
function save.stream(d, f)
  local t, progress = d._t, d._p.progress
  local ok, err = save.drive(d, function() return t:pump(f) end, function(n)
    sched.count(n)
    if progress then progress(t:received(), d.total) end
  end)
  if not ok then return nil, err end
  err = download.finish(d)
  if err then return nil, err end
  return t:received()
end

-- d:save(path) and the plain cf.save: the body into a temporary file,
-- committed once the checks passed.  d is closed afterwards.
function save.body(d, path, opts)
  local _ <close> = d
  local target, err = save.target(d, path, opts.overwrite)
  if not target then return nil, err end
  local tmp <close>, terr = save.tempfile(target)
  if not tmp then return nil, terr end
  local bytes
  bytes, err = save.stream(d, tmp)
  if not bytes then return nil, err end
  return save.commit(tmp, target, opts, bytes)
end

---------------------------------------------------------------------------
-- Resumable saves: the body goes to <target>.part, kept after a transport
-- failure and continued by a later run when the entity is provably the same
-- (its tag is stored on the part file).

-- What a part file holds: the entity's total size and validators.
local function entity_tag(plan)
  local names = {}
  for name in pairs(plan.validators) do names[#names + 1] = name end
  table.sort(names)
  local lines = { tostring(plan.total) }
  for _, name in ipairs(names) do lines[#lines + 1] = name .. ": " .. plan.validators[name] end
  return table.concat(lines, "\n")
end

-- Hashes and counts the first `size` bytes of the part file, in steps so
-- that a group's other tasks run between them.
local function prefeed(d, f, size)
  local done, more = 0, true
  while more do
    local message
    done, more, message = d._t:prefeed(f, size, done, PREFEED_STEP)
    if not done then return nil, io_error(message) end
    if more then sched.pause() end
  end
  return true
end

-- opener(open_opts) -> Download | nil, err: cf.open, or a service's own open.
local function resumable(opener, path, open_opts, opts)
  local part, have
  local o = open_opts
  if not is_dir_path(path) then
    part = path .. ".part"
    local kind, size = core.stat(part)
    if kind == "file" and size > 0 and core.file_tag(part) then
      have = size
      o = {}
      for k, v in pairs(open_opts) do o[k] = v end
      o.range = { size } -- ask only for what is missing
    end
  end
  local d, err = opener(o)
  if not d then return nil, err end
  if have and d.status == 416 then -- the part is complete or stale: start over
    d:close()
    have = nil
    d, err = opener(open_opts)
    if not d then return nil, err end
  end
  local _ <close> = d
  local target
  target, err = save.target(d, path, opts.overwrite)
  if not target then return nil, err end
  part = target .. ".part"
  local plan = d._resume
  local kind, size = core.stat(part)
  local tag = plan and entity_tag(plan)
  local continued = false
  if plan and kind == "file" and size > 0 and core.file_tag(part) == tag then
    -- Either the answer already starts where the part ends, or ask again.
    local how = (d.status == 206 and plan.first == size) and "ok" or
      (plan.first == 0 and size <= plan.last and retry.reconnect(d, size))
    if how == "ok" then
      continued = true
    elseif how == nil then
      local fkind, fmsg = d._t:failure()
      return nil, Error.new{ kind = fkind or "network", message = fmsg or "reconnection failed", url = d.url,
        retryable = true }
    end
  end
  if not continued and (d.status == 206 and have) then
    -- A range answer that does not continue this part: fetch the whole file.
    d:close()
    os.remove(part)
    return resumable(opener, path, open_opts, opts)
  end
  local f, _, message = core.part_file(part, continued)
  if not f then return nil, io_error(message) end
  sched.track(f, "keep")
  -- However this ends (a raising progress callback included), the part
  -- file stays for a later run unless committed or discarded below.
  local _ <close> = setmetatable({}, { __close = function() f:keep() end })
  if continued then
    if d.entity_expect then
      -- A service's checks of the range answer are about the range; what
      -- is saved is the whole entity.
      d._expect = {}
      d:expect(d.entity_expect)
    end
    local ok
    ok, err = prefeed(d, f, size)
    if not ok then return nil, err end
    plan.first = 0 -- from here on, accepted bytes count from the file's start
  elseif tag then
    f:set_tag(tag)
  end
  local bytes
  bytes, err = save.stream(d, f)
  if not bytes then
    -- Corrupt bytes cannot be continued; anything else can, later (the
    -- guard above keeps the part).
    if err.kind == "integrity" then f:discard() end
    sched.untrack(f)
    return nil, err
  end
  return save.commit(f, target, opts, bytes)
end

-- A local file's digests ({ alg = hex }), or nil, err (kind "io").  Inside a
-- task, big files are hashed in steps with the other tasks running between.
local HASH_STEP = 8 * 1024 * 1024

function save.hash_file(path, algs)
  local h, _, message = core.filehash(path, algs)
  if not h then return nil, io_error(message) end
  local _ <close> = h
  while true do
    local more, _, err = h:step(HASH_STEP)
    if more == nil then return nil, io_error(path .. ": " .. err) end
    if not more then break end
    sched.pause()
  end
  return h:digests()
end

-- A save with `opts` (cf.save's own options): resumable, in parallel parts,
-- or plain.  opener(open_opts) opens the download.
function save.run(opener, path, open_opts, opts)
  if opts.resume then return resumable(opener, path, open_opts, opts) end
  local d, err = opener(open_opts)
  if not d then return nil, err end
  if (opts.parallel or 1) > 1 or opts.auto_parallel then
    return require("cloudfetch.parallel").save(d, path, opts)
  end
  return save.body(d, path, opts)
end

return save
