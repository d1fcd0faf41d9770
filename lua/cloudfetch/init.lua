--- Streaming, verified HTTP(S) downloads for Lua 5.4, many at once in one
-- thread.
--
-- An operational failure (network, HTTP, API, disk, integrity) returns
-- `nil, err`, where `err` is an @{Error}; an iterator raises the `Error`
-- instead.  Misuse (a wrong argument type, an unknown option name) raises a
-- plain Lua error at once.  `API.md` is the full contract.
-- @module cloudfetch
-- @alias cf
-- @usage
-- local cf = require "cloudfetch"
-- local d = assert(cf.open("https://example.com/data.csv", { hash = { "sha256" } }))
-- for chunk in d:chunks() do io.write(chunk) end
-- print(d:digest("sha256"))

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

--- The version, `"MAJOR.MINOR.PATCH"`.
-- @class field
-- @name version
local cf = { version = core.version }

cf.Error = errors.Error

--- Whether `v` is an @{Error}.
-- @function is_error
-- @param v any value
-- @treturn boolean
cf.is_error = errors.is_error

--- `url` fit for messages: no user information (however malformed: everything
-- up to the last `@` goes), and the values of query and fragment parameters
-- whose names look like credentials (percent-decoded, lower-cased, containing
-- `sig`, `token`, `key`, `secret`, `pass`, `pwd`, `auth`, `cred`, `sess`, `jwt`,
-- `hmac`, `ticket` or `private`) replaced by `REDACTED`.
-- @function safe_url
-- @tparam string url
-- @treturn string the URL fit for messages (nil when `url` is nil)
cf.safe_url = errors.safe_url

--- Percent-encodes `s` for a URL query (RFC 3986 unreserved characters kept).
-- @function urlencode
-- @tparam string s
-- @treturn string
cf.urlencode = options.urlencode

--- Base64 (standard alphabet, padded) of `s`.
-- @function base64
-- @tparam string s
-- @treturn string
cf.base64 = core.base64

--- The current time, in seconds since the epoch (with a fraction).
-- @function now
-- @treturn number
cf.now = core.now

--- Waits `seconds`.  Inside a task the group's other tasks run meanwhile;
-- outside a task it blocks.
-- @function sleep
-- @tparam number seconds
cf.sleep = sched.sleep

-- Option tables, for the service modules and for callers who build their own.
cf.OPTIONS = options.OPEN
cf.SAVE_OPTIONS = options.SAVE
cf.TRANSPORT_OPTIONS = options.TRANSPORT

local misuse = options.misuse
local checked = options.checked

--- Starts a request and returns once the status line and the headers arrived.
-- A non-2xx status is not an error here: `d.status` tells, and the body is
-- readable.  Transport failures (DNS, connect, TLS, a timeout before the
-- headers) are retried (see `opts.retry`), then returned as `nil, err`.
-- @tparam string url an http or https URL
-- @tparam[opt] table opts `method`, `headers`, `query`, `body` / `json`,
-- `range = {first, last}`, `hash`, `expect = {sha1, sha256, md5, size}`,
-- `timeout`, `connect_timeout`, `stall_timeout`, `chunk_size`, `buffer_size`,
-- `retry`, `progress`, `verify_tls`, `ca_file`, `ca_path`, `proxy`,
-- `user_agent`, `follow_redirects`, `max_redirects`, `validators`
-- (README.md, API.md)
-- @treturn[1] Download
-- @return[2] nil
-- @treturn[2] Error
-- @raise on misuse: an unknown option, a wrong type, CR/LF in a header value
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

--- A download in progress: what @{open} returns once the headers arrived.
-- Read its body once, with @{Download:chunks}, @{Download:read_chunk},
-- @{Download:read_all}, @{Download:json} or @{Download:save}.  Supports
-- `<close>` and garbage collection, like @{Download:close}.
--
-- Fields: `status` (HTTP status of the first response), `url` (effective
-- URL, no credentials), `headers` (lower-case names; repeats joined with
-- `", "`), `size` (Content-Length or nil), `range` (for a 206:
-- `{ first, last, total }`), `total` (size of the whole entity or nil),
-- `received` (body bytes delivered so far).
-- @type Download

--- Streams the body to disk: to a temporary file beside the target, renamed
-- only after every check passed (on failure nothing is left).  When `path`
-- is a directory the file is named by @{Download:filename} (else the URL's
-- last segment), and the returned path is exactly `<dir>/<name>`.  On a
-- non-2xx download nothing is written (error kind `"http"`).
-- @tparam string path a file or directory path
-- @tparam[opt] table opts `overwrite` (replace an existing file; else error
-- kind `"io"`, code `"exists"`), `sync` (fsync, default true), `mtime`
-- @treturn[1] string the path written
-- @treturn[1] integer bytes written
-- @return[2] nil
-- @treturn[2] Error
function Download:save(path, opts)
  download.check_open(self)
  local o = checked(check_save_args, "Download:save", path, opts)
  return save.body(self, path, o)
end

--- @section end

-- cf.save's checks: the save options split off, then cf.open's.
local function prepare_save(fn, url, path, opts)
  options.check_path(fn, path)
  local open_opts, save_opts = options.split(fn, opts)
  return open_opts, save_opts, options.prepare(fn, url, open_opts)
end

--- @{open} and @{Download:save} in one call, with the whole-file features:
-- resuming and parallel ranged parts.  On a 2xx answer the body is
-- verified against `opts.expect` before the file appears.
-- @tparam string url
-- @tparam string path a file or directory path, as in @{Download:save}
-- @tparam[opt] table opts @{open}'s options, plus `overwrite`, `sync`,
-- `mtime`, `resume` (keep `<target>.part` after a transport failure and
-- continue it next time) and `parallel` = N with `part_size` (ranged parts
-- over N connections)
-- @treturn[1] string the path written
-- @treturn[1] integer bytes
-- @return[2] nil
-- @treturn[2] Error
function cf.save(url, path, opts)
  local open_opts, save_opts, p = checked(prepare_save, "cloudfetch.save", url, path, opts)
  local function opener(o)
    if o == open_opts then return download.open(p) end
    return download.open(options.prepare("cloudfetch.save", url, o))
  end
  return save.run(opener, path, open_opts, save_opts)
end

local function check_hash_args(fn, path, algs)
  options.check_path(fn, path)
  if type(algs) ~= "table" or #algs == 0 then misuse(fn, "algs must be a list such as { \"sha1\" }") end
  for _, alg in ipairs(algs) do
    if not options.DIGESTS[alg] then misuse(fn, "unknown digest '" .. tostring(alg) .. "' (sha1, sha256, md5)") end
  end
end

--- Hashes a local file.  Inside a task, big files are hashed in steps with
-- the other tasks running between them.
-- @tparam string path
-- @tparam {string,...} algs digests: `"sha1"`, `"sha256"`, `"md5"`
-- @treturn[1] table `{ alg = lowercase hex, ... }`
-- @return[2] nil
-- @treturn[2] Error kind `"io"`
function cf.hash_file(path, algs)
  checked(check_hash_args, "cloudfetch.hash_file", path, algs)
  local sums, err = save.hash_file(path, algs)
  return sums, err
end

-- -------------------------------------------------------------------------
-- Groups and tasks

local GROUP_OPTIONS = { max_active = "number", progress = "function" }

local function check_group_opts(fn, opts)
  if opts ~= nil and type(opts) ~= "table" then misuse(fn, "opts must be a table, got " .. type(opts)) end
  opts = opts or {}
  options.check_types(fn, opts, GROUP_OPTIONS)
  options.number_in(fn, "max_active", opts.max_active, 1, 100000, true)
  return opts
end

--- Makes a group: many tasks (functions run as coroutines) at once in one
-- thread.  Inside a task every cloudfetch call that would wait lets the
-- other tasks run instead.
-- @tparam[opt] table opts `max_active` (tasks running at once, default 8),
-- `progress` (`function(s)` with `s = { total, done, failed, active, bytes }`,
-- at most ~10 times a second and once at the end)
-- @treturn Group
function cf.group(opts)
  local o = checked(check_group_opts, "cloudfetch.group", opts)
  return group.new(o)
end

local function check_map_args(fn, list, f, opts)
  if type(list) ~= "table" then misuse(fn, "list must be a table, got " .. type(list)) end
  if type(f) ~= "function" then misuse(fn, "fn must be a function, got " .. type(f)) end
  return check_group_opts(fn, opts)
end

--- Runs `fn(item, i)` for every item of `list` as tasks of one group and
-- waits for them all.
-- @tparam table list
-- @tparam function fn
-- @tparam[opt] table opts as @{group}
-- @treturn table results in list order: `results[i]` is the `table.pack` of
-- what `fn` returned, or `{ nil, err, n = 2 }` when it raised
-- @treturn integer how many tasks raised or returned nil or false first
function cf.map(list, fn, opts)
  local o = checked(check_map_args, "cloudfetch.map", list, fn, opts)
  local g <close> = group.new(o)
  for i = 1, #list do g:spawn(fn, list[i], i) end
  local results, failed = g:wait()
  return results, failed
end

return cf
