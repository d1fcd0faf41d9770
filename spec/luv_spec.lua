-- Groups in host event loops: the cqueues polling protocol (pollfd,
-- events, timeout) driven by a plain luv loop, and cloudfetch.luv keeping a
-- luv application responsive while downloads trickle and stall.
-- (All luv use is in this one file: busted reloads modules per file, and a
-- second luv module in one Lua state breaks the first one's loop.)
local cf = require "cloudfetch"
local b2 = require "cloudfetch.b2"
local emu = require "support.emulator"
local fx = require "support.fixtures"
local uv = require "luv"
local cfluv = require "cloudfetch.luv"

local FAST = { attempts = 3, base_delay = 0.01, max_delay = 0.05 }

describe("a group in a host loop", function()
  local server, url

  setup(function()
    server = fx.start_server()
    url = server.url
  end)

  teardown(function()
    if server then server:stop() end
  end)

  it("is driven by its descriptor and timeout alone (the cqueues polling protocol)", function()
    local g = cf.group{}
    for i = 1, 4 do
      g:spawn(function()
        cf.sleep(0.2)
        local d = assert(cf.open(url .. "/bytes?n=50000&delay=0.3&seed=" .. i))
        return #assert(d:read_all())
      end)
    end
    assert.equal("r", g:events())
    assert.equal("number", math.type(g:pollfd()) and "number")
    local steps = 0
    local poll = uv.new_poll(g:pollfd())
    local timer = uv.new_timer()
    local function step()
      steps = steps + 1
      if g:step(0) == 0 then
        poll:stop()
        timer:stop()
        return
      end
      local t = g:timeout()
      timer:stop()
      if t then timer:start(math.ceil(t * 1000), 0, step) end
    end
    poll:start("r", step)
    timer:start(0, 0, step)
    local t0 = cf.now()
    uv.run()
    poll:close()
    timer:close()
    uv.run()
    local results, failed = g:wait()
    assert.equal(0, failed)
    for i = 1, 4 do assert.equal(50000, results[i][1]) end
    assert.is_true(cf.now() - t0 < 3)
    -- no busy polling: a handful of wakeups for 4 downloads and 4 sleeps
    assert.is_true(steps < 200, steps .. " steps")
    assert.is_nil(g:timeout())
  end)
end)


describe("a luv application", function()
  local e, dir

  setup(function()
    e = emu.start{ tls = false }
    e:control("POST", "/_emu/b2/buckets", { name = "luv-bucket", type = "allPrivate", bucket_info = {} })
    dir = fx.tmpdir()
  end)

  teardown(function()
    if e then e:stop() end
    fx.rmdir(dir)
  end)

  it("keeps its 10 ms timer within 100 ms while 8 downloads trickle and stall", function()
    local client = assert(b2.authorize{ key_id = e.info.b2.key_id, key = e.info.b2.key, realm = e.url,
      retry = FAST })
    local files = {}
    for i = 1, 8 do
      files[i] = e:control("POST", "/_emu/b2/files",
        { bucket = "luv-bucket", name = "luv" .. i .. ".bin", size = 200000, random = "luv" .. i })
    end
    e:fault{ path = "b2_download_file_by_id", trickle = 400000, stall = 1, count = 8 }
    local g = cf.group{ max_active = 8 }
    for i, f in ipairs(files) do
      g:spawn(function() return client:save_by_id(f.fileId, dir .. "/" .. i .. ".bin") end)
    end
    local last, worst, ticks = uv.hrtime(), 0, 0
    local ticker = uv.new_timer()
    ticker:start(10, 10, function()
      local now = uv.hrtime()
      worst = math.max(worst, (now - last) / 1e6)
      last, ticks = now, ticks + 1
    end)
    local finished
    local guard = uv.new_timer()
    guard:start(30000, 0, function() guard:close(); ticker:close() end) -- never hang the suite
    cfluv.attach(g, uv, { on_done = function(_, failed)
      finished = failed
      ticker:close()
      guard:close()
    end })
    uv.run()
    assert.equal(0, finished)
    -- Under valgrind everything runs tens of times slower: only a freeze counts there.
    local limit = os.getenv("VALGRIND") == "1" and 1000 or 100
    assert.is_true(worst < limit, "the loop froze for " .. worst .. " ms")
    assert.is_true(ticks > 50)
    for i, f in ipairs(files) do
      assert.equal(f.sha1, fx.run("sha1sum " .. fx.shell_quote(dir .. "/" .. i .. ".bin")):match("^(%x+)"))
    end
  end)
end)
