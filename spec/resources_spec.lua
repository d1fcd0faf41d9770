-- Resources a long-lived host gives cloudfetch: descriptors, memory, and the
-- temporary files of saves.  Figures are printed so the test output shows
-- them (descriptors from /proc/self/fd, RSS from /proc/self/status).
local cf = require "cloudfetch"
local core = require "cloudfetch.core"
local fx = require "support.fixtures"

local q = fx.shell_quote

-- Valgrind and the sanitizers make everything slower and RSS meaningless:
-- fewer iterations there, and only descriptors are judged.
local TOOL = os.getenv("VALGRIND") == "1" or os.getenv("ASAN_OPTIONS") ~= nil
local IDLE_CAP = 64 -- CURLMOPT_MAXCONNECTS of a session
local SLACK = 8     -- the session's own descriptors that may come and go (commit threads' wakeups, resolver)

local function fds()
  collectgarbage("collect")
  collectgarbage("collect")
  return #assert(core.listdir("/proc/self/fd"))
end

local function rss_kib()
  collectgarbage("collect")
  collectgarbage("collect")
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function lua_env()
  return ("env LUA_PATH=%s LUA_CPATH=%s"):format(q(os.getenv("LUA_PATH") or ""), q(os.getenv("LUA_CPATH") or ""))
end

-- Starts `lua5.4 script` in the background; returns its pid.
local function start_lua(script, log)
  local p = assert(io.popen(("%s lua5.4 %s >%s 2>&1 & echo $!"):format(lua_env(), q(script), q(log))))
  local pid = tonumber(p:read("l"))
  p:close()
  assert(pid, "could not start lua5.4")
  return pid
end

-- Running (a zombie waiting to be reaped counts as gone).
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("a")
  f:close()
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

local function kill9(pid)
  os.execute("kill -9 " .. pid .. " 2>/dev/null")
  for _ = 1, 100 do
    if not alive(pid) then return end
    os.execute("sleep 0.05")
  end
  error("process " .. pid .. " did not die")
end

local function inode(path)
  return fx.run("stat -c %i " .. q(path) .. " 2>/dev/null"):match("%d+")
end

local function size_of(path)
  local _, size = core.stat(path)
  return size
end

-- Waits until path is a file with more than `min` bytes; false after 10 s.
local function wait_for_file(path, min)
  for _ = 1, 200 do
    local kind, size = core.stat(path)
    if kind == "file" and size > (min or 0) then return true end
    os.execute("sleep 0.05")
  end
  return false
end

local function locked(path)
  return os.execute("flock -n " .. q(path) .. " true") ~= true
end

describe("resources", function()
  local server, url, dir

  setup(function()
    server = fx.start_server()
    url = server.url
  end)

  teardown(function()
    if server then server:stop() end
  end)

  before_each(function()
    dir = fx.tmpdir()
  end)

  after_each(function()
    fx.rmdir(dir)
  end)

  describe("temporary files of saves", function()
    local pids = {}

    after_each(function()
      for _, pid in ipairs(pids) do kill9(pid) end
      pids = {}
    end)

    -- A slow save of url's /bytes into target, by another process.
    local function slow_save(target, log)
      local script = dir .. "/slow_save.lua"
      fx.write_file(script, ([[
        local cf = require "cloudfetch"
        local ok, err = cf.save(%q, %q, { retry = false, overwrite = true })
        print(ok, err)
      ]]):format(url .. "/bytes?n=4000000&rate=40000", target))
      local pid = start_lua(script, log or (dir .. "/slow_save.log"))
      pids[#pids + 1] = pid
      return pid
    end

    local function tmp_name(name, slot)
      return ".cloudfetch-" .. name .. "." .. (slot or 0) .. ".tmp"
    end

    it("are named after the target and locked while a save writes them", function()
      local target = dir .. "/victim.bin"
      slow_save(target)
      local tmp = dir .. "/" .. tmp_name("victim.bin")
      assert.is_true(wait_for_file(tmp), "no " .. tmp .. " in " .. table.concat(fx.list(dir), ", "))
      assert.is_true(locked(tmp), "the writer holds the temporary file's lock")
    end)

    it("left by a killed save are removed by the next save of the same target", function()
      local target = dir .. "/victim.bin"
      local pid = slow_save(target)
      local tmp = dir .. "/" .. tmp_name("victim.bin")
      assert.is_true(wait_for_file(tmp, 1000), "the slow save wrote nothing")
      kill9(pid)
      -- The orphan stays, unlocked: its writer is gone.
      assert.equal("file", core.stat(tmp))
      assert.is_false(locked(tmp))
      local path, bytes = cf.save(url .. "/bytes?n=5000&seed=3", target)
      assert.equal(target, path)
      assert.equal(5000, bytes)
      assert.is_nil(fx.diff(fx.read_file(target), fx.body(5000, 3)))
      assert.same({}, fx.leftovers(dir))
    end)

    it("of a save in progress in another process are left alone", function()
      local target = dir .. "/victim.bin"
      local pid = slow_save(target)
      local tmp = dir .. "/" .. tmp_name("victim.bin")
      assert.is_true(wait_for_file(tmp, 1000), "the slow save wrote nothing")
      local ino = inode(tmp)
      local path = cf.save(url .. "/bytes?n=5000&seed=3", target)
      assert.equal(target, path)
      assert.is_nil(fx.diff(fx.read_file(target), fx.body(5000, 3)))
      -- The other save's file is the same file, and it keeps growing.
      assert.equal(ino, inode(tmp))
      local before = size_of(tmp)
      assert.is_true(wait_for_file(tmp, before), "the other save stopped writing")
      assert.is_true(alive(pid))
      assert.equal(ino, inode(tmp))
      assert.same({ tmp_name("victim.bin"), "slow_save.log", "slow_save.lua", "victim.bin" }, fx.list(dir))
    end)

    it("of saves running at once in one process take different names", function()
      local results = cf.map({ 1, 2, 3 }, function(i)
        return cf.save(url .. "/bytes?n=20000&delay=0.2&seed=" .. i, dir .. "/same.bin", { overwrite = true })
      end)
      for _, res in ipairs(results) do assert.equal(dir .. "/same.bin", res[1]) end
      assert.same({ "same.bin" }, fx.list(dir))
    end)

    it("are recognised exactly: other names, links and special files are not touched", function()
      local outside = fx.tmpdir()
      finally(function() fx.rmdir(outside) end)
      fx.write_file(outside .. "/precious", "keep me")
      local keep = {
        tmp_name("other.bin"),        -- another target's
        tmp_name("victim.bin.x"),     -- a longer name's
        tmp_name("victim.bin", "x"),  -- not a slot
        tmp_name("victim.bin") .. ".bak",
        ".cloudfetch-victim.bin.tmp",
        "victim.bin.0.tmp",
      }
      for _, name in ipairs(keep) do fx.write_file(dir .. "/" .. name, "not yours") end
      -- Slot 0 is a link to a file elsewhere, slot 1 a FIFO (opening it
      -- would block), slot 2 a directory: none is the save's to remove.
      assert(os.execute("ln -s " .. q(outside .. "/precious") .. " " .. q(dir .. "/" .. tmp_name("victim.bin", 0))))
      assert(os.execute("mkfifo " .. q(dir .. "/" .. tmp_name("victim.bin", 1))))
      assert(os.execute("mkdir " .. q(dir .. "/" .. tmp_name("victim.bin", 2))))
      -- Slot 5 is stale (a regular file nobody holds): it goes.
      fx.write_file(dir .. "/" .. tmp_name("victim.bin", 5), "stale")
      local path = cf.save(url .. "/bytes?n=3000", dir .. "/victim.bin")
      assert.equal(dir .. "/victim.bin", path)
      assert.equal("keep me", fx.read_file(outside .. "/precious"))
      local want = { "victim.bin", tmp_name("victim.bin", 0), tmp_name("victim.bin", 1), tmp_name("victim.bin", 2) }
      for _, name in ipairs(keep) do
        want[#want + 1] = name
        assert.equal("not yours", fx.read_file(dir .. "/" .. name))
      end
      table.sort(want)
      assert.same(want, fx.list(dir))
      assert.is_true(fx.run("find " .. q(dir) .. " -maxdepth 1 -type l"):find("0.tmp", 1, true) ~= nil)
    end)

    it("of long target names stay within 255 bytes and apart", function()
      local a = string.rep("é", 120) .. "-a.bin" -- 246 bytes
      local b = string.rep("é", 120) .. "-b.bin"
      local ta = assert(core.tempfile(dir .. "/" .. a))
      local tb = assert(core.tempfile(dir .. "/" .. b))
      local names = fx.list(dir)
      assert.equal(2, #names)
      for _, name in ipairs(names) do
        assert.is_true(#name <= 255, #name .. " bytes")
        assert.truthy(utf8.len(name), "valid UTF-8")
        assert.truthy(name:match("^%.cloudfetch%-.*~%x%x%x%x%x%x%x%x%.0%.tmp$"), name)
      end
      assert.are_not.equal(names[1], names[2])
      ta:discard()
      tb:discard()
      assert.same({}, fx.list(dir))
    end)
  end)

  describe("descriptors and memory", function()
    it("stay flat over 10,000 downloads opened and closed", function()
      local n = TOOL and 1000 or 10000
      local warm = n // 5
      local body = fx.body(64, 2)
      local function once(i)
        -- A full cycle now and then: RSS then shows what is kept, not how
        -- far the collector let garbage pile up (that depends on the heap
        -- earlier specs left behind).
        if i % 500 == 0 then collectgarbage() end
        local d = assert(cf.open(url .. "/bytes?n=64&seed=2"))
        if i % 10 == 0 then
          return -- dropped unclosed: the collector closes it
        elseif i % 2 == 0 then
          d:close()
        else
          assert.equal(body, d:read_all())
          d:close()
        end
      end
      local fd0, t0 = fds(), cf.now()
      for i = 1, warm do once(i) end
      local fd1, rss1 = fds(), rss_kib()
      for i = warm + 1, n do once(i) end
      local fd2, rss2 = fds(), rss_kib()
      local elapsed = cf.now() - t0
      print(("\nresources: %d open/close: descriptors %d at start, %d after %d, %d after %d; " ..
        "RSS %.1f MiB after %d, %.1f MiB after %d (%+.2f MiB); %.1f s (%.0f µs each)")
        :format(n, fd0, fd1, warm, fd2, n, rss1 / 1024, warm, rss2 / 1024, n, (rss2 - rss1) / 1024,
          elapsed, elapsed / n * 1e6))
      assert.is_true(fd2 <= fd0 + SLACK, "descriptors: " .. fd0 .. " -> " .. fd2)
      assert.is_true(fd2 <= fd1 + SLACK, "descriptors: " .. fd1 .. " -> " .. fd2)
      if not TOOL then
        assert.is_true(rss2 - rss1 < 8 * 1024, ("RSS grew %d KiB"):format(rss2 - rss1))
      end
    end)

    it("stay flat over rounds of 200 downloads open at once; idle connections are capped", function()
      local rounds = TOOL and 2 or 5
      local fd0 = fds()
      local figures, rss = {}, {}
      for round = 1, rounds do
        local held = {}
        for i = 1, 200 do
          -- Each body waits until it is read, so every download holds a connection.
          held[i] = assert(cf.open(url .. "/bytes?n=2000&seed=" .. (i % 7 + 1)))
        end
        local busy = fds()
        assert.is_true(busy >= fd0 + 200, "200 connections open at once: " .. fd0 .. " -> " .. busy)
        -- Read half (their connections go back to the pool), close the rest unread.
        for i = 1, 200 do
          if i % 2 == 0 then
            assert.equal(2000, #held[i]:read_all())
          end
          held[i]:close()
        end
        held = nil -- luacheck: ignore 311
        local idle = fds()
        rss[round] = rss_kib()
        figures[#figures + 1] = ("round %d: %d -> %d with 200 open -> %d closed, RSS %.1f MiB")
          :format(round, fd0, busy, idle, rss[round] / 1024)
        assert.is_true(idle <= fd0 + IDLE_CAP + SLACK, ("idle connections: %d -> %d"):format(fd0, idle))
      end
      print("\nresources: 200 at once: " .. table.concat(figures, "; "))
      if not TOOL then
        local growth = rss[rounds] - rss[2]
        assert.is_true(growth < 8 * 1024, ("RSS grew %d KiB from round 2 to %d"):format(growth, rounds))
      end
    end)

    it("running out reports the cause, not a retryable connection failure", function()
      local script = dir .. "/nofile.lua"
      fx.write_file(script, ([[
        local cf = require "cloudfetch"
        local held = {}
        for i = 1, 100 do
          local t0 = cf.now()
          local d, err = cf.open(%q .. "&seed=" .. i, { retry = { attempts = 3, base_delay = 0.5 } })
          if not d then
            print(("failed at %%d after %%.2f s: %%s retryable=%%s"):format(i, cf.now() - t0, tostring(err),
              tostring(err.retryable)))
            os.exit(0)
          end
          held[#held + 1] = d
        end
        print("opened 100")
      ]]):format(url .. "/bytes?n=100000"))
      local out = fx.run(("%s sh -c %s 2>&1"):format(lua_env(), q("ulimit -n 48; exec lua5.4 " .. q(script))))
      print("\nresources: with 48 descriptors: " .. out)
      local secs, message, retryable = out:match("failed at %d+ after ([%d.]+) s: (.-) retryable=(%a+)")
      assert.truthy(message, out)
      assert.truthy(message:lower():find("too many open files", 1, true), message)
      assert.equal("false", retryable)
      assert.is_true(tonumber(secs) < 0.5, "not retried: " .. secs .. " s")
    end)

    -- The sanitizers need far more address space than any limit here leaves.
    local it_as = os.getenv("ASAN_OPTIONS") and pending or it
    it_as("running out of memory is kind \"memory\", not \"io\" (the disk's)", function()
      -- A body left unread while another request runs the engine fills its
      -- buffer (buffer_size 1 GiB); with 60 MB of address space the buffer
      -- cannot grow past 16 MiB.
      local script = dir .. "/nomem.lua"
      fx.write_file(script, ([[
        local cf = require "cloudfetch"
        local d = assert(cf.open(%q, { buffer_size = 1 << 30 }))
        assert(d:read_chunk(5))
        assert(cf.open(%q))
        local ok, err = pcall(function() for _ in d:chunks() do end end)
        print(("ok=%%s kind=%%s retryable=%%s message=%%s"):format(tostring(ok), type(err) == "table" and err.kind,
          type(err) == "table" and tostring(err.retryable), tostring(err)))
      ]]):format(url .. "/bytes?n=64000000", url .. "/bytes?n=10&delay=2"))
      local out = fx.run(("%s sh -c %s 2>&1"):format(lua_env(), q("ulimit -v 60000; exec lua5.4 " .. q(script))))
      print("\nresources: with 60 MB of address space: " .. out)
      assert.truthy(out:find("ok=false kind=memory retryable=false message=memory: ", 1, true), out)
      assert.truthy(out:find("out of memory", 1, true), out)
    end)
  end)
end)
