-- The leak detector from Lua: per-state level and sampling, a leak handler written in Lua, reports carrying
-- the Lua traceback of the creation, the Cleaner net (__gc), checkpoints, a handler that raises.
local T = require "check"
local ohm = require "ohm"

local reports = {}
local function collect(r) reports[#reports + 1] = r end
local function reset() reports = {} end
-- Sets the process-wide level and collects the reports from now on, starting from none.
local function watch(level)
  ohm.leak.level(level)
  ohm.leak.handler(collect)
  reset()
end

T.test("level and sample are the state's own and can be read back", function()
  T.eq(ohm.leak.level("paranoid"), "paranoid")
  T.eq(ohm.leak.level(), "paranoid")
  T.eq(ohm.pool():leak(), "paranoid")
  T.eq(ohm.leak.sample(7), 7)
  T.eq(ohm.leak.sample(), 7)
  T.eq(ohm.leak.level("simple"), "simple")
  T.eq(ohm.leak.sample(), 7) -- setting the level keeps the interval
  T.eq(ohm.leak.level("off"), "off")
  T.eq(type(ohm.leak.level("process")), "string") -- back to the process-wide setting (OHM_LEAK_LEVEL)
end)

T.test("a pool's own settings: pool:leak", function()
  local p <close> = ohm.pool { name = "leaky" }
  T.eq(select(1, p:leak("advanced", 3)), "advanced")
  local level, interval = p:leak()
  T.eq(level, "advanced")
  T.eq(interval, 3)
  ohm.leak.level("off")
  T.eq(p:leak(), "advanced", "the state's setting does not change another pool's")
end)

T.test("an unreleased buffer collected by the GC is reclaimed and reported with its Lua traceback", function()
  watch("paranoid")
  local function make_a_leak()
    local b = ohm.alloc(123)
    b:writeu8(0, 1)
    T.ok(b:tracked())
  end
  make_a_leak()
  T.gc()
  T.eq(#reports, 1)
  local r = reports[1]
  T.eq(r.reason, "gc")
  T.eq(r.size, 123)
  T.ok(r.id > 0)
  T.ok(r.site:find("ohm.buffer(123)", 1, true), r.site)
  T.ok(r.site:find("stack traceback:", 1, true), r.site)
  T.ok(r.site:find("make_a_leak", 1, true), "the traceback names the function that allocated: " .. r.site)
  T.ok(r.site:find("test_leak.lua", 1, true), r.site)
  T.ok(r.text:find("make_a_leak", 1, true), "the report's text carries the site")
  T.ok(r.json:find('"size":123', 1, true), r.json)
  ohm.pool():trim()
  T.eq(ohm.pool():stats().active_blocks, 0, "the reclaimed memory went back to the pool")
end)

T.test("a released buffer is never reported; neither is one still referenced", function()
  watch("paranoid")
  do
    local b = ohm.alloc(10)
    b:release()
    local c <close> = ohm.alloc(10)
  end
  local kept = ohm.alloc(10)
  T.gc()
  T.eq(#reports, 0)
  kept:release()
end)

T.test("plain slices are not reported on their own; their owner is", function()
  watch("paranoid")
  do
    local b = ohm.alloc(64)
    local s = b:slice(0, 8)
    s:writeu8(0, 1)
  end
  T.gc()
  T.eq(#reports, 1)
  T.eq(reports[1].size, 64)
end)

T.test("level off: nothing is tracked, so nothing reaches the handler", function()
  watch("off")
  do
    local b = ohm.alloc(10)
    T.eq(b:tracked(), false)
  end
  T.gc()
  T.eq(#reports, 0)
end)

T.test("sampling: 1 in interval buffers is tracked at simple", function()
  ohm.leak.level("simple")
  ohm.leak.sample(4)
  local tracked = 0
  for _ = 1, 400 do
    local b <close> = ohm.alloc(8)
    if b:tracked() then tracked = tracked + 1 end
  end
  T.eq(tracked, 100)
  ohm.leak.sample(1)
  local b <close> = ohm.alloc(8)
  T.ok(b:tracked())
end)

T.test("a checkpoint reports the live tracked buffers created since the mark", function()
  ohm.leak.level("paranoid")
  ohm.leak.handler(collect)
  local old = ohm.alloc(1) -- before the mark: not listed
  local mark = ohm.leak.mark()
  reset()
  local a, b = ohm.alloc(11), ohm.alloc(22)
  local c = ohm.alloc(33)
  c:release()
  T.eq(ohm.leak.check(mark), 2)
  T.eq(#reports, 2)
  T.eq(reports[1].reason, "checkpoint")
  T.eq(reports[1].size + reports[2].size, 33)
  a:release()
  b:release()
  old:release()
  reset()
  T.eq(ohm.leak.check(mark), 0)
end)

T.test("a pool closed with live buffers reports them with reason 'pool'", function()
  local p = ohm.pool { name = "doomed" }
  p:leak("paranoid", 1)
  ohm.leak.handler(collect)
  reset()
  local b = ohm.alloc(50, { pool = p })
  p:close()
  T.eq(#reports, 1)
  T.eq(reports[1].reason, "pool")
  T.eq(reports[1].size, 50)
  T.raises("released", b.readu8, b, 0)
end)

T.test("a leak handler that raises is counted, and the next report still arrives", function()
  ohm.leak.level("paranoid")
  local calls = 0
  ohm.leak.handler(function() calls = calls + 1; error("handler boom") end)
  local before = ohm.leak.stats()
  do local _ = ohm.alloc(5) end
  T.gc()
  local after = ohm.leak.stats()
  T.eq(calls, 1)
  T.eq(after.handler_errors, before.handler_errors + 1)
  T.eq(after.reports, before.reports + 1)
  T.ok(after.last_error:find("handler boom", 1, true), after.last_error)
  ohm.leak.handler(collect)
  reset()
  do local _ = ohm.alloc(6) end
  T.gc()
  T.eq(#reports, 1)
  T.eq(reports[1].size, 6)
end)

T.test("handler: returns the previous one; nil removes it", function()
  local function h() end
  ohm.leak.handler(h)
  T.eq(ohm.leak.handler(), h)
  T.eq(ohm.leak.handler(nil), h)
  T.eq(ohm.leak.handler(), nil)
  ohm.leak.handler(false)
  T.eq(ohm.leak.handler(), nil)
end)

-- Access records follow the process-wide level (OHM_LEAK_LEVEL), not the pool's: the core's touch reads the
-- process setting. ctest runs this file a second time with OHM_LEAK_LEVEL=advanced for this test.
local process_level = os.getenv("OHM_LEAK_LEVEL")
T.test("touch leaves access records in the report (advanced)", function()
  ohm.leak.level("advanced")
  ohm.leak.sample(1)
  ohm.leak.handler(collect)
  reset()
  do
    local b = ohm.alloc(9)
    b:touch("first look")
    b:touch("second look")
  end
  T.gc()
  T.eq(#reports, 1)
  if process_level == "advanced" or process_level == "paranoid" then
    T.ok(reports[1].text:find("second look", 1, true), reports[1].text)
  else
    T.ok(reports[1].text:find("Created at", 1, true), reports[1].text)
  end
end)

T.test("mapped and shared buffers are reclaimed by the GC too", function()
  ohm.leak.handler(collect)
  reset()
  do local _ = ohm.shm.create(nil, 4096) end
  T.gc()
  -- Mapped memory follows the process-wide level (it is not from a pool): the reclaim happened either way.
  T.ok(#reports <= 1)
end)

ohm.leak.handler(nil)
ohm.leak.level("off")
T.done()
