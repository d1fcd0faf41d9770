-- cloudfetch.mirror: a service's file listing brought down to a directory,
-- verified, concurrent, incremental.  The service modules (b2, notary) give
-- the listing and the download; this module decides what to do with each
-- file and does it in a group.
--
-- Memory stays bounded for listings of millions of names: the listing is
-- streamed, downloads start while later pages are still being listed (at
-- most 2 x max_active files wait for a slot), finished downloads are not
-- kept, and `delete` merges the sorted listing (B2 lists by name, in bytes)
-- with a walk of the local directory in the same order instead of holding a
-- set of all names.  A service whose listing is not sorted (Notary) keeps
-- the set of its local paths instead.
local core = require "cloudfetch.core"
local errors = require "cloudfetch.errors"
local group = require "cloudfetch.group"
local options = require "cloudfetch.options"
local save = require "cloudfetch.save"
local sched = require "cloudfetch.sched"

local mirror = {}

local Error = errors.Error
local PROGRESS_INTERVAL = 0.1

mirror.OPTIONS = {
  dir = "string", max_active = "number", compare = "string", delete = "boolean", dry_run = "boolean",
  filter = "function", shard = "table", progress = "function", parallel = "number", sync = "boolean",
}
local COMPARE = { modtime = true, size = true, hash = true }

-- Checks mirror options common to every service (misuse raises).
function mirror.check(fn, opts)
  if type(opts) ~= "table" then options.misuse(fn, "options table expected, got " .. type(opts)) end
  local own = {}
  for k, v in pairs(opts) do
    if mirror.OPTIONS[k] then own[k] = v end
  end
  options.check_types(fn, own, mirror.OPTIONS)
  if type(opts.dir) ~= "string" or opts.dir == "" then options.misuse(fn, "option 'dir' (a directory) is required") end
  options.number_in(fn, "max_active", opts.max_active, 1, 10000, true)
  options.number_in(fn, "parallel", opts.parallel, 1, 64, true)
  if opts.compare and not COMPARE[opts.compare] then
    options.misuse(fn, "compare must be \"modtime\", \"size\" or \"hash\"")
  end
  local shard = opts.shard
  if shard then
    local k, n = shard.index, shard.count
    if math.type(n) ~= "integer" or n < 1 or math.type(k) ~= "integer" or k < 1 or k > n then
      options.misuse(fn, "shard must be { index = k, count = n } with integers 1 <= k <= n")
    end
  end
end

-- The shard (1..count) of a file name: FNV-1a (32 bits) of the name's bytes,
-- modulo count, plus one.  The same on every machine and every version.
function mirror.shard_of(name, count)
  local h = 2166136261
  for i = 1, #name do
    h = ((h ~ name:byte(i)) * 16777619) & 0xffffffff
  end
  return h % count + 1
end

-- The local path (relative to dir) for a service name: every /-component
-- sanitised as d:filename() is ("_" where nothing is left, e.g. for "..");
-- empty components dropped.  nil when the name has no file part.
function mirror.local_path(name)
  if name:sub(-1) == "/" then return nil end -- a folder marker, not a file
  local parts = {}
  for c in name:gmatch("[^/]+") do
    parts[#parts + 1] = core.sanitize_filename(c) or "_"
  end
  if #parts == 0 then return nil end
  return table.concat(parts, "/")
end

-- Regular files (and links and other non-directories) below dir, as paths
-- relative to it, in B2's order; the temporary files of saves in progress
-- are left out.  One directory's entries are held at a time per level.
local function walk(dir)
  local stack = {}
  local entries = core.listdir(dir)
  if entries then stack[1] = { rel = "", entries = entries, i = 0 } end
  return function()
    while #stack > 0 do
      local top = stack[#stack]
      top.i = top.i + 1
      local e = top.entries[top.i]
      if not e then
        stack[#stack] = nil
      else
        local rel = top.rel .. e.name
        if e.kind == "directory" then
          local sub = core.listdir(dir .. "/" .. rel)
          if sub then stack[#stack + 1] = { rel = rel .. "/", entries = sub, i = 0 } end
        elseif not e.name:match("^%.cloudfetch%-") then
          return rel, e
        end
      end
    end
    return nil
  end
end

-- Is the local copy (size, mtime from stat or the walk) up to date?
local function up_to_date(entry, path, size, mtime, compare)
  if size ~= entry.size then return false end
  if compare == "size" then return true end
  if compare == "hash" and entry.hash then
    local sums = save.hash_file(path, { entry.hash.alg })
    return sums ~= nil and sums[entry.hash.alg] == entry.hash.hex
  end
  -- modtime, to the millisecond (what B2 keeps)
  return entry.mtime ~= nil and mtime ~= nil and math.abs(mtime - entry.mtime) < 0.001
end

-- Runs a mirror.  svc = {
--   list = function() -> iterator of entries { name =, rel =, size =, mtime =, hash = { alg, hex }?, file = },
--          raising a cloudfetch.Error when the listing fails,
--   sorted = true when list yields rel in B2's byte order,
--   download = function(entry, target, save_opts) -> path, bytes | nil, err,
--   exists = function(name) -> true when the listing has that exact name (collision checks) }
-- Returns the report, or nil, err when the listing failed.
function mirror.run(svc, opts)
  local dir = opts.dir:gsub("(.)/+$", "%1")
  local compare = opts.compare or "modtime"
  local max_active = opts.max_active or 8
  local report = { downloaded = 0, skipped = 0, deleted = 0, bytes = 0, failed = {} }
  local taken, settled = 0, 0
  local g <close> = group.new{ max_active = max_active + 1, keep_results = false }
  local pending = 0        -- downloads spawned and not finished
  local running = {}       -- their tasks (a set), for the bytes they received so far
  local diverted = {}      -- local paths of names the sanitiser changed -> name
  local seen = not svc.sorted and {} or nil -- unsorted listings: every local path taken
  local extras = {}        -- local files the listing lacks (deleted at the end)
  local listing_err, raised
  local last_report = -math.huge

  local function progress(final)
    if not opts.progress then return end
    local now = sched.clock()
    if not final and now - last_report < PROGRESS_INTERVAL then return end
    last_report = now
    local bytes, current = report.bytes, {}
    for task, entry in pairs(running) do
      bytes = bytes + (task.bytes or 0)
      current[#current + 1] = { name = entry.name, bytes = task.bytes or 0, size = entry.size }
    end
    table.sort(current, function(a, b) return a.name < b.name end)
    opts.progress{ total = taken, done = settled, failed = #report.failed, active = pending, bytes = bytes,
      current = current }
  end

  local function fail(entry, err)
    report.failed[#report.failed + 1] = { name = entry.name, err = err }
    settled = settled + 1
    progress()
  end

  local function download(entry, rel)
    local target = dir .. "/" .. rel
    local parent = rel:match("^(.*)/[^/]*$")
    if parent then
      local ok, _, message = core.mkdirs(dir, parent)
      if not ok then return fail(entry, Error.new{ kind = "io", message = message }) end
    end
    local save_opts = { overwrite = true, mtime = entry.mtime, parallel = opts.parallel, sync = opts.sync }
    local path, bytes = svc.download(entry, target, save_opts)
    if not path and errors.is_error(bytes) and bytes.kind == "integrity" then
      path, bytes = svc.download(entry, target, save_opts) -- corrupted in transit: once more
    end
    if not path then return fail(entry, bytes) end
    report.downloaded = report.downloaded + 1
    settled = settled + 1
    progress()
  end

  -- Decides what to do with one listed file.
  local function take(entry, rel, size, mtime)
    if size and up_to_date(entry, dir .. "/" .. rel, size, mtime, compare) then
      report.skipped = report.skipped + 1
      settled = settled + 1
      return progress()
    end
    if opts.dry_run then
      report.downloaded = report.downloaded + 1
      report.bytes = report.bytes + (entry.size or 0)
      settled = settled + 1
      return progress()
    end
    while pending >= 2 * max_active do
      sched.wait(nil, function() return pending < 2 * max_active end)
    end
    pending = pending + 1
    g:spawn(function()
      local task = sched.context()
      running[task] = entry
      local _ <close> = setmetatable({}, { __close = function()
        pending = pending - 1
        running[task] = nil
        report.bytes = report.bytes + (task.bytes or 0) -- body bytes, retries included
      end })
      local ok, e = pcall(download, entry, rel)
      if not ok then -- raised (a progress callback, a bug): end the mirror, raise it below
        raised = raised or { e }
        g:close()
      end
    end)
  end

  -- Another name of the listing that maps to rel, if any.
  local function clash_of(entry, rel)
    local other = diverted[rel] or (seen and seen[rel])
    if other or rel == entry.rel then return other end
    -- The sanitiser changed this name: is rel itself a name of the listing?
    if svc.exists and svc.exists(rel) then return svc.name_of(rel) end
    return nil
  end

  local function each_entry(walker)
    local wrel, went
    if walker then wrel, went = walker() end
    for entry in svc.list() do
      local take_it = (not opts.filter or opts.filter(entry.file))
        and (not opts.shard or mirror.shard_of(entry.name, opts.shard.count) == opts.shard.index)
      local rel = take_it and mirror.local_path(entry.rel)
      if rel then
        taken = taken + 1
        local other = clash_of(entry, rel)
        if other then
          fail(entry, Error.new{ kind = "io", code = "collision", message = string.format(
            "%s and %s would both be saved as %s/%s; %s is left out", other, entry.name, dir, rel, entry.name) })
        else
          if rel ~= entry.rel then diverted[rel] = entry.name end
          if seen then seen[rel] = entry.name end
          local size, mtime
          if walker and rel == entry.rel then
            -- The merge: local files before rel are not in the listing.
            while wrel and core.bytecmp(wrel, rel) < 0 do
              extras[#extras + 1] = wrel
              wrel, went = walker()
            end
            if wrel == rel then
              if went.kind == "file" then size, mtime = went.size, went.mtime end
              wrel, went = walker()
            end
          else
            local kind, s, m = core.stat(dir .. "/" .. rel)
            if kind == "file" then size, mtime = s, m end
          end
          take(entry, rel, size, mtime)
        end
      end
    end
    while wrel do
      extras[#extras + 1] = wrel
      wrel = walker()
    end
  end

  local function lister()
    if not opts.dry_run then
      local base = dir:match("^/") and "/" or "."
      local ok, _, message = core.mkdirs(base, (dir:gsub("^/+", "")), true)
      if not ok then
        listing_err = Error.new{ kind = "io", message = message }
        return
      end
    end
    local walker = (opts.delete and svc.sorted) and walk(dir) or nil
    local ok, err = pcall(each_entry, walker)
    if not ok then
      if errors.is_error(err) then listing_err = err else raised = raised or { err } end
      return
    end
    if opts.delete and not walker then
      for rel in walk(dir) do
        if not seen[rel] then extras[#extras + 1] = rel end
      end
    end
  end

  g:spawn(lister)
  g:wait()
  if raised then error(raised[1], 0) end
  progress(true)
  if listing_err then return nil, listing_err end
  -- Only after the listing completed without error.
  for _, rel in ipairs(extras) do
    if not diverted[rel] then
      if opts.dry_run or os.remove(dir .. "/" .. rel) then report.deleted = report.deleted + 1 end
    end
  end
  return report
end

return mirror
