-- Groups and tasks: many downloads at once in one thread (cf.group, cf.map),
-- against the real loopback test server.
local cf = require "cloudfetch"
local fx = require "support.fixtures"

describe("groups", function()
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

  local function fetch(u)
    local d, err = cf.open(u)
    if not d then return nil, err end
    local body, rerr = d:read_all()
    if not body then return nil, rerr end
    return #body, d.status
  end

  it("run several requests at once, never more than max_active", function()
    local key = fx.key()
    local g = cf.group{ max_active = 3 }
    for _ = 1, 9 do g:spawn(fetch, url .. "/bytes?n=1000&delay=0.4&key=" .. key) end
    local t0 = cf.now()
    local results, failed = g:wait()
    local elapsed = cf.now() - t0
    assert.equal(0, failed)
    assert.equal(9, #results)
    local info = fx.count_info(server, key)
    assert.equal(9, info.count)
    assert.equal(3, info.max_inflight)
    -- Three waves of 0.4 s, not nine.
    assert.is_true(elapsed < 2.5, "took " .. elapsed .. " s")
  end)

  it("defaults to 8 tasks at once", function()
    local key = fx.key()
    local results = cf.map({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, function()
      return fetch(url .. "/bytes?n=10&delay=0.3&key=" .. key)
    end)
    assert.equal(12, #results)
    assert.equal(8, fx.count_info(server, key).max_inflight)
  end)

  it("return results in spawn order, whatever order tasks end in", function()
    local g = cf.group{ max_active = 5 }
    for i = 1, 5 do
      g:spawn(function(n)
        assert.equal(n, fetch(url .. "/bytes?n=" .. n .. "&delay=" .. (6 - n) / 10))
        return n, "task " .. n
      end, i)
    end
    local results = g:wait()
    for i = 1, 5 do
      assert.same({ i, "task " .. i, n = 2 }, results[i])
    end
  end)

  it("give each task its own result: good, 404, integrity failure, raised error", function()
    local meta = fx.meta(server, 5000, 3)
    local results, failed = cf.map({ "good", "404", "integrity", "raise" }, function(what)
      if what == "good" then
        return cf.save(url .. "/bytes?n=5000&seed=3", dir .. "/good", { expect = { sha1 = meta.sha1 } })
      elseif what == "404" then
        return cf.save(url .. "/status/404", dir .. "/missing", { retry = false })
      elseif what == "integrity" then
        return cf.save(url .. "/bytes?n=5000", dir .. "/bad", { expect = { sha1 = meta.sha1 } })
      end
      error("task went wrong")
    end)
    assert.equal(3, failed)
    assert.same({ dir .. "/good", 5000, n = 2 }, results[1])
    assert.is_nil(results[2][1])
    assert.equal("http", results[2][2].kind)
    assert.equal(404, results[2][2].status)
    assert.is_nil(results[3][1])
    assert.equal("integrity", results[3][2].kind)
    assert.is_nil(results[4][1])
    assert.truthy(tostring(results[4][2]):find("task went wrong", 1, true))
    assert.same({ "good" }, fx.list(dir))
  end)

  it("step(0) returns at once while every server is slow, and repeated steps finish the work", function()
    local g = cf.group{}
    for i = 1, 4 do g:spawn(fetch, url .. "/bytes?n=" .. (1000 * i) .. "&delay=1") end
    local t0, longest, steps, left = cf.now(), 0, 0, 4
    while left > 0 and cf.now() - t0 < 20 do
      local s0 = cf.now()
      left = g:step(0)
      longest = math.max(longest, cf.now() - s0)
      steps = steps + 1
      cf.sleep(0.005) -- a host loop's frame
    end
    assert.equal(0, left)
    assert.is_true(longest < 0.1, "a step took " .. longest .. " s")
    assert.is_true(steps > 20)
    local results, failed = g:wait()
    assert.equal(0, failed)
    for i = 1, 4 do assert.equal(1000 * i, results[i][1]) end
  end)

  it("close() cancels running and queued tasks and leaves no temporary files", function()
    local g = cf.group{ max_active = 2 }
    for i = 1, 5 do
      g:spawn(function()
        return cf.save(url .. "/slow?n=400000&rate=100000&seed=" .. i, dir .. "/f" .. i)
      end)
    end
    local t0 = cf.now()
    while g.bytes < 20000 and cf.now() - t0 < 10 do g:step(0.05) end
    assert.is_true(g.bytes >= 20000)
    assert.is_true(#fx.leftovers(dir) > 0, "no temporary file while saving")
    g:close()
    local t1 = cf.now()
    local results, failed = g:wait()
    assert.is_true(cf.now() - t1 < 0.5)
    assert.equal(5, failed)
    for i = 1, 5 do
      assert.is_nil(results[i][1])
      assert.equal("canceled", results[i][2].kind)
    end
    assert.same({}, fx.list(dir))
    assert.has_error(function() g:spawn(print) end)
  end)

  it("let other tasks run while one waits out a Retry-After", function()
    local key = fx.key()
    local finished = {}
    local g = cf.group{}
    local t0 = cf.now()
    g:spawn(function()
      local d = assert(cf.open(url .. "/flaky?fail=1&status=503&retry_after=2&key=" .. key))
      finished.flaky = cf.now() - t0
      return d.status
    end)
    for i = 1, 3 do
      g:spawn(function()
        local n = fetch(url .. "/bytes?n=1000&delay=0.2")
        finished[i] = cf.now() - t0
        return n
      end)
    end
    local results, failed = g:wait()
    assert.equal(0, failed)
    assert.equal(200, results[1][1])
    assert.is_true(finished.flaky >= 2, "Retry-After not honoured: " .. finished.flaky)
    for i = 1, 3 do assert.is_true(finished[i] < 1, "task " .. i .. " waited " .. finished[i] .. " s") end
  end)

  it("let other tasks run while one sleeps (cf.sleep)", function()
    local order = {}
    local results = cf.map({ 0.5, 0.1 }, function(s, i)
      cf.sleep(s)
      order[#order + 1] = i
      return i
    end)
    assert.same({ 2, 1 }, order)
    assert.equal(1, results[1][1])
  end)

  it("report progress rate-limited, never going down, and once at the end", function()
    local calls = {}
    local list = {}
    for i = 1, 6 do list[i] = url .. "/slow?n=60000&rate=100000&seed=" .. i end
    local results, failed = cf.map(list, function(u) return fetch(u) end, {
      max_active = 3,
      progress = function(s) calls[#calls + 1] = { t = cf.now(), s = s } end,
    })
    assert.equal(0, failed)
    assert.equal(6, #results)
    assert.is_true(#calls >= 3)
    local finals = 0
    for i, c in ipairs(calls) do
      assert.equal(6, c.s.total)
      if c.s.done == 6 then finals = finals + 1 end
      if i > 1 then
        local p = calls[i - 1].s
        assert.is_true(c.s.done >= p.done and c.s.failed >= p.failed and c.s.bytes >= p.bytes)
        if i < #calls then assert.is_true(c.t - calls[i - 1].t >= 0.09) end
      end
    end
    assert.equal(1, finals)
    local last = calls[#calls].s
    assert.same({ total = 6, done = 6, failed = 0, active = 0, bytes = 360000 }, last)
  end)

  it("let a task spawn more tasks into its own group", function()
    local g = cf.group{}
    g:spawn(function()
      for i = 1, 3 do g:spawn(fetch, url .. "/bytes?n=" .. i) end
      return "parent"
    end)
    local results, failed = g:wait()
    assert.equal(0, failed)
    assert.equal(4, #results)
    assert.equal("parent", results[1][1])
    assert.equal(3, results[4][1])
  end)

  it("nest: cf.map inside a task runs within the outer group", function()
    local results = cf.map({ { 1, 2 }, { 3 } }, function(sizes)
      local inner = cf.map(sizes, function(n) return fetch(url .. "/bytes?n=" .. n .. "&delay=0.2") end)
      local sum = 0
      for _, r in ipairs(inner) do sum = sum + r[1] end
      return sum
    end)
    assert.equal(3, results[1][1])
    assert.equal(3, results[2][1])
  end)

  it("hand out task handles with status and result", function()
    local g = cf.group{ max_active = 1 }
    local a = g:spawn(function() return fetch(url .. "/bytes?n=7") end)
    local b = g:spawn(function() return "b" end)
    assert.equal("queued", a:status())
    b:cancel()
    g:wait()
    assert.equal("done", a:status())
    assert.equal(7, a:result()[1])
    assert.equal("canceled", b:status())
    assert.equal("canceled", b:result()[2].kind)
  end)

  it("wait() returns every result of a group with nothing to do", function()
    local results, failed = cf.group{}:wait()
    assert.same({}, results)
    assert.equal(0, failed)
  end)

  it("save files concurrently with durable commits off the loop", function()
    local list = {}
    for i = 1, 20 do list[i] = i end
    local results, failed = cf.map(list, function(i)
      return cf.save(url .. "/bytes?n=2000&seed=" .. i, dir .. "/f" .. i)
    end, { max_active = 6 })
    assert.equal(0, failed)
    for i = 1, 20 do
      assert.equal(dir .. "/f" .. i, results[i][1])
      assert.is_nil(fx.diff(fx.read_file(dir .. "/f" .. i), fx.body(2000, i)))
    end
    assert.same({}, fx.leftovers(dir))
  end)

  it("refuse to overwrite inside a task just as outside", function()
    fx.write_file(dir .. "/x", "old")
    local results = cf.map({ 1 }, function() return cf.save(url .. "/bytes?n=10", dir .. "/x") end)
    assert.is_nil(results[1][1])
    assert.equal("exists", results[1][2].code)
    assert.equal("old", fx.read_file(dir .. "/x"))
    assert.same({ "x" }, fx.list(dir))
  end)

  describe("misuse", function()
    it("raises at the caller's line for bad options", function()
      local ok, err = pcall(function() cf.group{ max_active = 0 } end)
      assert.is_false(ok)
      assert.truthy(err:find("group_spec.lua:%d+: cloudfetch.group: option 'max_active'"), err)
      ok, err = pcall(function() cf.map({}, "not a function") end)
      assert.is_false(ok)
      assert.truthy(err:find("cloudfetch.map: fn must be a function", 1, true))
    end)

    it("raises when a task waits for its own group", function()
      local g = cf.group{}
      g:spawn(function() return g:wait() end)
      local results, failed = g:wait()
      assert.equal(1, failed)
      assert.truthy(tostring(results[1][2]):find("cannot wait for its own group", 1, true))
    end)
  end)
end)
