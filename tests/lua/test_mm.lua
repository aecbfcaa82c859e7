-- The memory manager from Lua: tasks, consumers with Lua spill functions, pages, the block cache with Lua
-- eviction functions; failing callbacks come back as nil, message, "ECALLBACK" with the accounting unchanged.
local T = require "check"
local ohm = require "ohm"

local MiB = 1 << 20
local function manager(opts)
  opts = opts or {}
  opts.off_heap = opts.off_heap or 8 * MiB
  opts.page_size = opts.page_size or 64 << 10
  return ohm.mm(opts)
end

T.test("a task acquires and releases execution memory (Spark's accounting)", function()
  local mm <close> = manager()
  local t <close> = mm:task()
  T.eq(t:id(), 1)
  T.eq(t:acquire(3 * MiB), 3 * MiB)
  T.eq(t:acquire(10 * MiB), 5 * MiB) -- what is left
  T.eq(mm:stats().off_heap.execution_used, 8 * MiB)
  T.eq(t:stats().off_heap, 8 * MiB)
  T.eq(t:release(2 * MiB), 2 * MiB)
  T.eq(t:release(100 * MiB), 6 * MiB) -- more than held releases what is held
  T.eq(mm:stats().off_heap.execution_used, 0)
  T.eq(t:acquire(MiB, "on_heap"), 0) -- no on-heap memory configured
  local t7 <close> = mm:task(7)
  T.eq(t7:id(), 7)
  T.raises("task", mm.task, mm, 7) -- a live task has that id
end)

T.test("on_heap sized from a heap the way Spark sizes a JVM", function()
  local mm <close> = ohm.mm { heap = 1024 * MiB }
  T.eq(mm:stats().on_heap.max, math.floor((1024 - 300) * MiB * 0.6))
  local t <close> = mm:task()
  T.eq(t:acquire(MiB, "on_heap"), MiB)
end)

T.test("consumers: the smallest consumer that covers the shortfall spills, the requester gets its memory", function()
  local mm <close> = manager()
  local t <close> = mm:task()
  local asked = {}
  local function spiller(name)
    return function(self, size, trigger)
      asked[#asked + 1] = { name = name, size = size, trigger = trigger }
      return self:release(size)
    end
  end
  local a = t:consumer { name = "a", spill = spiller("a") }
  local b = t:consumer { name = "b", spill = spiller("b") }
  local c = t:consumer { name = "c", spill = spiller("c") }
  T.eq(a:name(), "a")
  T.eq(a:acquire(3 * MiB), 3 * MiB)
  T.eq(b:acquire(1 * MiB), 1 * MiB)
  T.eq(c:acquire(6 * MiB), 6 * MiB)
  T.eq(#asked, 1)
  T.eq(asked[1].name, "a") -- b (1 MiB) cannot cover the missing 2 MiB
  T.eq(asked[1].size, 2 * MiB)
  T.eq(asked[1].trigger, c) -- the spill function sees which consumer asked
  T.eq(a:used(), 1 * MiB)
  T.eq(b:used(), 1 * MiB)
  T.eq(c:used(), 6 * MiB)
  T.eq(a:stats().spills, 1)
  T.eq(t:stats().spill_bytes, 2 * MiB)
  T.eq(c:release(6 * MiB), 6 * MiB)
end)

T.test("a spill function that raises: nil, message, ECALLBACK; accounting unchanged; state usable", function()
  local mm <close> = manager()
  local t <close> = mm:task()
  local bad = t:consumer { name = "bad", spill = function() error("spill boom") end }
  local req = t:consumer { name = "req" }
  T.eq(bad:acquire(6 * MiB), 6 * MiB)
  T.eq(req:acquire(1 * MiB), 1 * MiB)
  local before = mm:stats().off_heap.execution_used
  local msg = T.fails("ECALLBACK", "spill boom", req.acquire, req, 4 * MiB)
  T.ok(msg:find("bad", 1, true), "the message names the consumer: " .. msg)
  T.eq(req:used(), 1 * MiB)
  T.eq(bad:used(), 6 * MiB)
  T.eq(mm:stats().off_heap.execution_used, before)
  -- and again: the state and the consumers still work
  T.fails("ECALLBACK", "spill boom", req.acquire, req, 4 * MiB)
  T.eq(bad:release(6 * MiB), 6 * MiB)
  T.eq(req:acquire(4 * MiB), 4 * MiB)
end)

T.test("a spill function must return a byte count", function()
  local mm <close> = manager()
  local t <close> = mm:task()
  local odd = t:consumer { name = "odd", spill = function() return "lots" end }
  local req = t:consumer { name = "req" }
  odd:acquire(8 * MiB)
  T.fails("ECALLBACK", "must return the bytes it released", req.acquire, req, MiB)
  local none = t:consumer { name = "none", spill = function() end } -- nil means 0: nothing spilled
  T.eq(odd:release(8 * MiB), 8 * MiB)
  none:acquire(8 * MiB)
  T.eq(req:acquire(MiB), 0)
end)

-- Rows of misbehaving spill functions: `liar` holds 6 MiB and spills as `how` says, `req` holds 2 MiB and asks
-- for 1 MiB more, which only a spill can give. A spill asked more than 1000 times raises, so a runtime that
-- kept asking fails the row instead of spinning forever.
-- A manager, a task the test closes itself, a consumer of that name and a page of size bytes charged to it.
local function task_with_page(name, size)
  local mm = manager()
  local t = mm:task()
  local c = t:consumer { name = name }
  return mm, t, c, c:page(size)
end

local function misspill_row(how)
  local mm = manager()
  local t = mm:task()
  local row = { mm = mm, t = t, calls = 0 }
  row.liar = t:consumer { name = "liar", spill = function(self, size)
    row.calls = row.calls + 1
    if row.calls > 1000 then error("asked 1000 times") end
    return how(self, size, row)
  end }
  row.req = t:consumer { name = "req" }
  T.eq(row.liar:acquire(6 * MiB), 6 * MiB)
  T.eq(row.req:acquire(2 * MiB), 2 * MiB)
  function row.expect(liar_used, req_used)
    T.eq(row.liar:used(), liar_used, "liar")
    T.eq(row.req:used(), req_used, "req")
    T.eq(mm:stats().off_heap.execution_used, liar_used + req_used, "the manager")
  end
  -- the state and both consumers still work: free everything, acquire without a spill, close
  function row.still_usable()
    row.liar:release(row.liar:used())
    row.req:release(row.req:used())
    T.eq(row.req:acquire(MiB), MiB)
    T.eq(t:close(), MiB)
    mm:close()
  end
  return row
end

T.test("a spill function that reports bytes it did not release: ECALLBACK naming the consumer, asked once", function()
  local row = misspill_row(function() return 5 * MiB end)
  T.fails("ECALLBACK", "spill of consumer liar reported 5242880 bytes but released 0", row.req.acquire, row.req, MiB)
  T.eq(row.calls, 1)
  row.expect(6 * MiB, 2 * MiB)
  T.eq(row.liar:stats().spill_bytes, 0)
  row.still_usable()
end)

T.test("a spill function that releases less than it reports: ECALLBACK; what it released stays released", function()
  local row = misspill_row(function(self) self:release(MiB // 2); return 3 * MiB end)
  T.fails("ECALLBACK", "spill of consumer liar reported 3145728 bytes but released 524288", row.req.acquire, row.req,
    MiB)
  T.eq(row.calls, 1)
  row.expect(6 * MiB - MiB // 2, 2 * MiB)
  row.still_usable()
end)

T.test("a spill function that reports less than it released is credited what it released", function()
  local row = misspill_row(function(self) self:release(MiB) end) -- returns nothing: 0
  T.eq(row.req:acquire(MiB), MiB)
  row.expect(5 * MiB, 3 * MiB)
  T.eq(row.liar:stats().spill_bytes, MiB)
  row.still_usable()
end)

T.test("a spill function that takes back what it released is not asked again", function()
  local row = misspill_row(function(self)
    self:release(MiB)
    self:acquire(MiB)
    return MiB
  end)
  T.eq(row.req:acquire(MiB), 0)
  T.eq(row.calls, 1)
  row.expect(6 * MiB, 2 * MiB)
  row.still_usable()
end)

T.test("a spill function that returns something other than a byte count: ECALLBACK, state usable", function()
  for _, bad in ipairs { "100", "lots", {}, true, 1.5, -1, math.huge, 0 / 0 } do
    local row = misspill_row(function() return bad end)
    T.fails("ECALLBACK", "must return the bytes it released", row.req.acquire, row.req, MiB)
    row.expect(6 * MiB, 2 * MiB)
    row.still_usable()
  end
end)

T.test("a spill function that raises (a string or another value): ECALLBACK, state usable", function()
  for _, err in ipairs { "spill boom", { code = 7 } } do
    local row = misspill_row(function() error(err) end)
    T.fails("ECALLBACK", type(err) == "string" and "spill boom" or "error object is a table value", row.req.acquire,
      row.req, MiB)
    row.expect(6 * MiB, 2 * MiB)
    row.still_usable()
  end
end)

T.test("mm:cancel from a spill function ends the acquire after that spill (ECANCELED)", function()
  local row
  row = misspill_row(function(self)
    if row.calls == 1 then T.ok(row.mm:cancel(row.t:id())) end
    return self:release(MiB // 4) -- honest, a quarter at a time: without the cancel it is asked 3 more times
  end)
  T.fails("ECANCELED", "cancelled", row.req.acquire, row.req, MiB)
  T.eq(row.calls, 1)
  row.expect(6 * MiB - MiB // 4, 2 * MiB)
  T.eq(row.req:acquire(MiB), MiB) -- the cancel was used up: the quarter freed, then 3 more spills
  T.eq(row.calls, 4)
  row.still_usable()
end)

local quiet_name = "misbehaving spill functions print nothing to stderr"
T.child_test(quiet_name, function(interp)
  local child = [[local ohm = require "ohm"
local mm <close> = ohm.mm { off_heap = 8 << 20 }
local t <close> = mm:task()
local how
local a = t:consumer { name = "a", spill = function(self) return how(self) end }
local r = t:consumer { name = "r" }
a:acquire(6 << 20); r:acquire(2 << 20)
local codes = {}
for _, f in ipairs { function() return 5 << 20 end, function() error("boom") end, function() return "x" end,
                     function() mm:cancel(t:id()); return 0 end } do
  how = f
  codes[#codes + 1] = select(3, r:acquire(1 << 20))
end
a:release(6 << 20); r:release(2 << 20)
io.write(table.concat(codes, " "))]]
  local script, errfile = os.tmpname(), os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(child)
  f:close()
  local p = assert(io.popen(string.format("%q %q 2>%q", interp, script, errfile)))
  local out = p:read("a")
  local ok = p:close()
  f = assert(io.open(errfile))
  local err = f:read("a")
  f:close()
  os.remove(script)
  os.remove(errfile)
  T.ok(ok, "the child exited with success: " .. err)
  T.eq(out, "ECALLBACK ECALLBACK ECALLBACK ECANCELED")
  T.eq(err, "")
end)

T.test("spills run on the calling coroutine; a spill that yields fails cleanly", function()
  local mm <close> = manager()
  local t <close> = mm:task()
  local co_seen
  local a = t:consumer { name = "a", spill = function(self, size)
    co_seen = coroutine.running()
    return self:release(size)
  end }
  local b = t:consumer { name = "b" }
  a:acquire(8 * MiB)
  local co = coroutine.create(function() return b:acquire(MiB) end)
  local ok, got = coroutine.resume(co)
  T.ok(ok)
  T.eq(got, MiB)
  T.eq(co_seen, co)
  local y = t:consumer { name = "yielder", spill = function() coroutine.yield() end }
  T.eq(a:release(8 * MiB), 7 * MiB)
  y:acquire(7 * MiB)
  local co2 = coroutine.wrap(function() return select(3, b:acquire(2 * MiB)) end)
  T.eq(co2(), "ECALLBACK")
end)

T.test("pages: buffers charged to the consumer, at least page_size, returned at release", function()
  local mm <close> = manager()
  local t <close> = mm:task()
  local c = t:consumer { name = "pager" }
  local p = c:page(1000)
  T.eq(#p, 64 << 10)
  T.eq(c:used(), 64 << 10)
  T.eq(c:stats().pages, 1)
  T.eq(mm:stats().pages, 1)
  p:writeu64(0, 99)
  T.eq(p:readu64(0), 99)
  T.eq(p:origin(), "pool")
  T.raises("still has 1 pages", c.close, c)
  T.eq(p:release(), true)
  T.eq(c:used(), 0)
  T.eq(mm:stats().pages, 0)
  local big = c:page(MiB + 1)
  T.ok(#big >= MiB + 1)
  big:close()
  T.fails("ELIMIT", nil, c.page, c, 9 * MiB)
  c:close()
  T.raises("consumer was closed", c.page, c, 10)
  local onheap = t:consumer { mode = "on_heap" }
  T.raises("page", onheap.page, onheap, 10) -- pages are off-heap only
end)

T.test("closing a task frees its pages and consumers and returns what it still held", function()
  local mm <close>, t, c, p = task_with_page("c", 10)
  c:acquire(MiB)
  t:acquire(100)
  local reports = {}
  ohm.leak.level("paranoid")
  ohm.leak.handler(function(r) reports[#reports + 1] = r end)
  T.eq(t:close(), (64 << 10) + MiB + 100)
  ohm.leak.handler(nil)
  ohm.leak.level("off")
  T.eq(#reports, 0, "the page was created before paranoid, untracked")
  T.raises("released", p.readu8, p, 0)
  T.raises("consumer was closed", c.acquire, c, 1)
  T.raises("task was closed", t.acquire, t, 1)
  T.eq(t:close(), 0) -- twice is fine
  T.eq(mm:stats().tasks, 0)
  T.eq(mm:stats().off_heap.execution_used, 0)
end)

T.test("a task whose page a retained slice still holds refuses to close until the slice is released", function()
  local mm <close>, t, c, p = task_with_page("holder", 100)
  p:writeu8(0, 42)
  local rs = p:retainedslice(0, 10)
  T.raises("a page of consumer 'holder' is still held by a retained slice", t.close, t)
  T.eq(rs:readu8(0), 42, "the slice still works")
  T.eq(t:acquire(1), 1, "so does the task")
  rs:release()
  T.eq(t:close(), 1)
  T.raises("released", p.readu8, p, 0)
end)

T.test("a task closed with a tracked live page reports it with the Lua traceback", function()
  local mm <close> = manager()
  local t = mm:task()
  local c = t:consumer {}
  ohm.leak.level("paranoid")
  local reports = {}
  ohm.leak.handler(function(r) reports[#reports + 1] = r end)
  local p = c:page(10)
  t:close()
  ohm.leak.handler(nil)
  ohm.leak.level("off")
  T.eq(#reports, 1)
  T.ok(reports[1].site:find("test_mm.lua", 1, true), reports[1].site)
  T.raises("released", p.readu8, p, 0)
end)

T.test("the block cache: execution evicts storage beyond its region through the Lua eviction function", function()
  local mm <close> = manager() -- 8 MiB, storage region 4 MiB
  local evicted, kept = {}, nil
  local function on_evict(id, buf)
    evicted[#evicted + 1] = id
    T.eq(#buf, 2 * MiB)
    T.raises("lent to a callback", buf.release, buf)
    kept = buf:retainedslice() -- keep the data beyond the callback
    return true
  end
  for i = 1, 3 do
    local b <close> = ohm.alloc(2 * MiB)
    b:writeu32(0, i)
    T.eq(mm:put("b" .. i, b, { evict = on_evict }), true)
  end
  T.eq(mm:stats().blocks, 3)
  T.eq(mm:stats().off_heap.storage_used, 6 * MiB)
  local got = mm:get("b2") -- b2 is now the most recently used
  T.eq(got:readu32(0), 2)
  got:release()
  local t <close> = mm:task()
  T.eq(t:acquire(4 * MiB), 4 * MiB)
  T.eq(#evicted, 1)
  T.eq(evicted[1], "b1") -- least recently used
  T.eq(kept:readu32(0), 1)
  kept:release()
  T.eq(mm:has("b1"), false)
  T.eq(mm:has("b2"), true)
  T.eq(mm:stats().evictions, 1)
end)

T.test("a cached buffer outlives its userdata: closed after the put, or dropped, then collected", function()
  local mm <close> = manager()
  do
    local b <close> = ohm.alloc(MiB)
    b:writeu32(0, 7)
    T.eq(mm:put("closed", b), true)
  end
  T.eq(mm:put("dropped", ohm.fromstring("kept by the cache")), true) -- its own reference is a leak, not the cache's
  collectgarbage()
  collectgarbage()
  local got <close> = mm:get("closed")
  T.eq(got:readu32(0), 7)
  local dropped <close> = mm:get("dropped")
  T.eq(dropped:tostring(), "kept by the cache")
end)

T.test("an eviction function that raises or returns false keeps the block and fails the acquire", function()
  local mm <close> = manager()
  local lent
  T.ok(mm:put("x", ohm.alloc(6 * MiB), { evict = function(_, buf) lent = buf; error("evict boom") end }))
  local t <close> = mm:task()
  local before = mm:stats()
  T.fails("ECALLBACK", "evict boom", t.acquire, t, 4 * MiB)
  T.eq(mm:has("x"), true)
  T.eq(mm:stats().off_heap.storage_used, before.off_heap.storage_used)
  T.eq(t:stats().off_heap, 0)
  T.raises("released", lent.readu8, lent, 0) -- the lent buffer died with the callback
  T.ok(mm:remove("x"))
  T.ok(mm:put("y", ohm.alloc(6 * MiB), { evict = function() return false end }))
  T.fails("ECALLBACK", "kept block 'y'", t.acquire, t, 4 * MiB)
  T.eq(mm:has("y"), true)
  local c = t:consumer { name = "c" }
  T.fails("ECALLBACK", nil, c.page, c, 4 * MiB)
  T.ok(mm:remove("y"))
  T.eq(t:acquire(4 * MiB), 4 * MiB) -- nothing in the way any more
end)

T.test("blocks without an eviction function just go; accounting-only blocks; get/has/remove", function()
  local mm <close> = manager()
  T.ok(mm:put("plain", ohm.alloc(5 * MiB)))
  T.ok(mm:put("acct", nil, { size = MiB, mode = "off_heap", group = "g" }))
  T.eq(mm:get("acct"), false)
  T.eq(mm:get("missing"), nil)
  T.eq(mm:has("acct"), true)
  T.fails("EINVAL", nil, function() return nil, "x", "EINVAL" end) -- (helper sanity)
  T.raises("put", mm.put, mm, "plain", ohm.alloc(1)) -- already cached: a programmer error
  local t <close> = mm:task()
  T.eq(t:acquire(6 * MiB), 6 * MiB) -- evicts "plain" (no function) down to the region
  T.eq(mm:has("plain"), false)
  T.eq(mm:remove("acct"), true)
  T.eq(mm:remove("acct"), false)
  T.fails("ELIMIT", nil, mm.put, mm, "huge", nil, { size = 9 * MiB })
end)

T.test("unroll memory follows the storage rules", function()
  local mm <close> = manager()
  local t <close> = mm:task()
  T.eq(t:acquireunroll(MiB), true)
  T.eq(mm:stats().off_heap.storage_used, MiB)
  T.eq(t:releaseunroll(MiB), MiB)
  T.fails("ELIMIT", nil, t.acquireunroll, t, 9 * MiB, "off_heap", "grp")
end)

T.test("a task below its fair share times out at once in one state (ETIMEDOUT), or is cancelled", function()
  local mm <close> = manager()
  local t1 <close> = mm:task()
  local t2 <close> = mm:task()
  T.eq(t1:acquire(8 * MiB), 8 * MiB)
  T.fails("ETIMEDOUT", nil, t2.acquire, t2, MiB)
  T.ok(mm:cancel(t2:id()))
  t2:settimeout(nil) -- would wait forever, but the cancel comes first
  T.fails("ECANCELED", nil, t2.acquire, t2, MiB)
  t2:settimeout(0)
  t1:release(8 * MiB)
  T.eq(t2:acquire(MiB), MiB)
end)

T.test("stats and json describe the manager", function()
  local mm <close> = manager()
  local t <close> = mm:task(42)
  t:consumer { name = "json-consumer" }:acquire(MiB)
  local s = mm:stats()
  T.eq(s.tasks, 1)
  T.eq(s.off_heap.max, 8 * MiB)
  T.eq(s.off_heap.storage_region, 4 * MiB)
  T.eq(s.off_heap.execution_used, MiB)
  local j = mm:json()
  T.ok(j:find('"id":42', 1, true), j)
  T.ok(j:find("json-consumer", 1, true), j)
  T.ok(tostring(mm):find("ohm.mm", 1, true))
  T.eq(tostring(t), "ohm.task(42)")
end)

T.test("close rules: a manager with live tasks cannot close; closed objects raise", function()
  local mm = manager()
  local t = mm:task()
  T.raises("mm:close", mm.close, mm)
  t:close()
  mm:close()
  mm:close() -- twice is fine
  T.raises("memory manager was closed", mm.task, mm)
  T.raises("memory manager was closed", mm.stats, mm)
end)

T.test("everything collected by the GC: no crash, memory back", function()
  ohm.leak.level("paranoid")
  local reports = {}
  ohm.leak.handler(function(r) reports[#reports + 1] = r end)
  do
    local mm = manager()
    local t = mm:task()
    local c = t:consumer { spill = function() return 0 end }
    c:page(10)
    c:acquire(MiB)
    mm:put("z", ohm.alloc(MiB), { evict = function() end })
  end
  T.gc()
  ohm.leak.handler(nil)
  ohm.leak.level("off")
  T.ok(#reports >= 1, "the unreleased page and buffer are reported")
  T.gc()
  ohm.pool():trim()
  T.eq(ohm.pool():stats().active_blocks, 0)
end)

T.done()
