-- What the benchmarks share: alternated runs with medians and same-round
-- ratios, and tables printed as text and written as markdown.
--
--   local H = require "bench.harness"     (LUA_PATH with ./?.lua)
--   local ref = { name = "curl", cmd = function(dir) return "curl ..." end }
--   local cases = { ref, { name = "cloudfetch", cmd = ..., ref = ref } }
--   H.measure(cases, 3, { prepare = function(case) return "/tmp/x" end })
--   -- each case: time (median s), ratio (median of time / ref's time in the same round),
--   -- cpu (median CPU s), rss (largest peak RSS, KiB), failed, times (every run)
--   H.emit{ title = "...", cols = { "client", "s" }, align = "lr", rows = { { "a", "1.0" } } }
--
-- H.emit prints the table and returns it as markdown; with BENCH_REPORT set
-- (a file name) it also appends the markdown there, which is how `make bench`
-- collects the tables of bench/concurrency.lua and bench/mirror.lua.
-- Figures only: nothing here fails on a timing.
local nginx = require "bench.nginx"

local H = { sh = nginx.sh, q = nginx.q, median = nginx.median, timed = nginx.timed }

-- Runs every case `rounds` times, one process per run, the order rotated
-- each round.  opts.prepare(case) may return a directory for the run (it is
-- removed afterwards, outside the timing); opts.settle() runs after each run,
-- untimed; opts.limit (seconds, default BENCH_TIMEOUT or 600) kills a run
-- that takes longer (it counts as failed).
function H.measure(cases, rounds, opts)
  opts = opts or {}
  for _, c in ipairs(cases) do c.times, c.cpus, c.rss, c.failed = {}, {}, 0, false end
  for r = 1, rounds do
    for k = 0, #cases - 1 do
      local c = cases[(r + k - 1) % #cases + 1]
      local dir = opts.prepare and opts.prepare(c) or nil
      local dt, kib, ok, cpu = nginx.timed(c.cmd(dir), opts.limit or tonumber(os.getenv("BENCH_TIMEOUT")) or 600)
      if not ok then
        c.failed = true
        io.stderr:write(("run failed: %s\n"):format(c.name))
      end
      c.times[r], c.cpus[r], c.rss = dt, cpu, math.max(c.rss, kib)
      if dir then os.execute("rm -rf " .. nginx.q(dir)) end
      if opts.settle then opts.settle() end
    end
  end
  for _, c in ipairs(cases) do
    c.time, c.cpu = nginx.median(c.times), nginx.median(c.cpus)
    if c.ref then
      local ratios = {}
      for r = 1, rounds do ratios[r] = c.times[r] / c.ref.times[r] end
      c.ratio = nginx.median(ratios)
    end
  end
  return cases
end

-- The median over rounds of a's time / b's time (two cases of one H.measure).
function H.ratio(a, b)
  local r = {}
  for i = 1, math.min(#a.times, #b.times) do r[i] = a.times[i] / b.times[i] end
  return nginx.median(r)
end

-- Formats: seconds, MB/s (10^6 bytes), ratio, MiB.
function H.s(t) return ("%.3f"):format(t) end
function H.mbs(bytes, t) return ("%.0f"):format(bytes / t / 1e6) end
function H.x(r) return r and ("%.2f×"):format(r) or "" end
function H.mib(kib) return ("%.1f"):format(kib / 1024) end

local function width(s)
  return utf8.len(s) or #s
end

local function pad(s, w, right)
  local fill = (" "):rep(w - width(s))
  return right and fill .. s or s .. fill
end

-- t.title, t.cols (names), t.align ("l"/"r" per column; default: first left,
-- others right), t.rows (lists of strings), t.note (text under the table),
-- t.heading = false: no title heading in the markdown.
function H.emit(t)
  local align = t.align or ("l" .. ("r"):rep(#t.cols - 1))
  local w = {}
  for i, c in ipairs(t.cols) do w[i] = width(c) end
  for _, row in ipairs(t.rows) do
    for i, v in ipairs(row) do w[i] = math.max(w[i], width(v)) end
  end
  local function line(row)
    local cells = {}
    for i, v in ipairs(row) do cells[i] = pad(v, w[i], align:sub(i, i) == "r") end
    return table.concat(cells, "  ")
  end
  print()
  print(t.title)
  print(line(t.cols))
  for _, row in ipairs(t.rows) do print(line(row)) end
  if t.note then print(t.note) end

  local md = { "| " .. table.concat(t.cols, " | ") .. " |" }
  if t.heading ~= false then table.insert(md, 1, "#### " .. t.title .. "\n") end
  local rule = {}
  for i = 1, #t.cols do rule[i] = align:sub(i, i) == "r" and "---:" or "---" end
  md[#md + 1] = "| " .. table.concat(rule, " | ") .. " |"
  for _, row in ipairs(t.rows) do
    local cells = {}
    for i, v in ipairs(row) do cells[i] = (v:gsub("|", "\\|")) end
    md[#md + 1] = "| " .. table.concat(cells, " | ") .. " |"
  end
  if t.note then md[#md + 1] = "" md[#md + 1] = t.note end
  md = table.concat(md, "\n") .. "\n"
  local report = os.getenv("BENCH_REPORT")
  if report then
    local f = assert(io.open(report, "a"))
    f:write(md, "\n")
    f:close()
  end
  return md
end

return H
