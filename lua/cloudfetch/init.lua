-- cloudfetch: streaming, verified HTTP(S) downloads for Lua 5.4, many at
-- once in one thread.
--
-- The public face of the module (API.md, README.md).  Each concern has its
-- own file: errors, options, sched (the one place that waits), retry,
-- download (Download objects), save, parallel, group.  The bytes
-- themselves move in C (cloudfetch.core).
local core = require "cloudfetch.core"
local download = require "cloudfetch.download"
local errors = require "cloudfetch.errors"
local group = require "cloudfetch.group"
local options = require "cloudfetch.options"
local save = require "cloudfetch.save"
local sched = require "cloudfetch.sched"

local cf = { version = core.version }

cf.Error = errors.Error
cf.is_error = errors.is_error
cf.safe_url = errors.safe_url
cf.urlencode = options.urlencode
cf.base64 = core.base64
cf.now = core.now
cf.sleep = sched.sleep

-- Option tables, for the service modules and for callers who build their own.
cf.OPTIONS = options.OPEN
cf.SAVE_OPTIONS = options.SAVE
cf.TRANSPORT_OPTIONS = options.TRANSPORT

local misuse = options.misuse
local checked = options.checked

function cf.open(url, opts)
  local p = checked(options.prepare, "cloudfetch.open", url, opts)
  return download.open(p)
end

local Download = download.Download

local function check_save_args(fn, path, opts)
  options.check_path(fn, path)
  if opts ~= nil and type(opts) ~= "table" then misuse(fn, "opts must be a table, got " .. type(opts)) end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  options.check_types(fn, o, { overwrite = "boolean", sync = "boolean", mtime = "number" })
  return o
end

function Download:save(path, opts)
  download.check_open(self)
  local o = checked(check_save_args, "Download:save", path, opts)
  return save.body(self, path, o)
end

-- cf.save's checks: the save options split off, then cf.open's.
local function prepare_save(fn, url, path, opts)
  options.check_path(fn, path)
  local open_opts, save_opts = options.split(fn, opts)
  return open_opts, save_opts, options.prepare(fn, url, open_opts)
end

function cf.save(url, path, opts)
  local open_opts, save_opts, p = checked(prepare_save, "cloudfetch.save", url, path, opts)
  local function opener(o)
    if o == open_opts then return download.open(p) end
    return download.open(options.prepare("cloudfetch.save", url, o))
  end
  return save.run(opener, path, open_opts, save_opts)
end

-- cf.hash_file(path, algs) -> { alg = hex } | nil, err (kind "io").
local function check_hash_args(fn, path, algs)
  options.check_path(fn, path)
  if type(algs) ~= "table" or #algs == 0 then misuse(fn, "algs must be a list such as { \"sha1\" }") end
  for _, alg in ipairs(algs) do
    if not options.DIGESTS[alg] then misuse(fn, "unknown digest '" .. tostring(alg) .. "' (sha1, sha256, md5)") end
  end
end

function cf.hash_file(path, algs)
  checked(check_hash_args, "cloudfetch.hash_file", path, algs)
  local sums, err = save.hash_file(path, algs)
  return sums, err
end

---------------------------------------------------------------------------
-- Groups and tasks

local GROUP_OPTIONS = { max_active = "number", progress = "function" }

local function check_group_opts(fn, opts)
  if opts ~= nil and type(opts) ~= "table" then misuse(fn, "opts must be a table, got " .. type(opts)) end
  opts = opts or {}
  options.check_types(fn, opts, GROUP_OPTIONS)
  options.number_in(fn, "max_active", opts.max_active, 1, 100000, true)
  return opts
end

function cf.group(opts)
  local o = checked(check_group_opts, "cloudfetch.group", opts)
  return group.new(o)
end

local function check_map_args(fn, list, f, opts)
  if type(list) ~= "table" then misuse(fn, "list must be a table, got " .. type(list)) end
  if type(f) ~= "function" then misuse(fn, "fn must be a function, got " .. type(f)) end
  return check_group_opts(fn, opts)
end

function cf.map(list, fn, opts)
  local o = checked(check_map_args, "cloudfetch.map", list, fn, opts)
  local g <close> = group.new(o)
  for i = 1, #list do g:spawn(fn, list[i], i) end
  local results, failed = g:wait()
  return results, failed
end

return cf
