-- A seeded random sequence of API calls by four interleaved actors (coroutines) in one state, checked against a
-- model after every step: the Lua counterpart of tests/fuzz/fuzz_api.c.
--
-- Each actor owns the buffers it made or took from the hand-over queue, so the model is exact: every handle's
-- count (plain slices share their parent's; retained slices have their own and hold one reference on their
-- parent), every buffer's bytes, which handles are released, which memory is sealed or read-only, the pools'
-- active blocks, and which leak reports arrive. Actors yield between steps and now and then inside one (between
-- a write and its read-back), so the others run in between. A dropped group is collected right after the step
-- that dropped it (collectgarbage() in the scheduler), so its report and its effect on counts are checked at once.
--
-- Leaks: the state's pool and the actors' private pools run at paranoid. Each allocation runs in a chunk of its
-- own name, because the core reports identical leaks (same Lua traceback) only once. A dropped root is reported
-- ("gc") when references other than its retained slices' remain; a retained slice's own leak is never reported
-- today (the core counts it as an untracked leak even at paranoid), so a root only retained slices hold is freed
-- without a report.
--
-- OHM_TEST_SEED=N reproduces a run (the seed is in every failure); OHM_TEST_STEPS=N sets the steps per actor.
local T = require "check"
local ohm = require "ohm"

local SEED = math.tointeger(tonumber(os.getenv("OHM_TEST_SEED") or "")) or 0x5eed0012
local STEPS = math.tointeger(tonumber(os.getenv("OHM_TEST_STEPS") or "")) or 1500
local ACTORS, MAX_GROUPS, MAX_HANDLES, PAGE = 4, 16, 8, 4096

math.randomseed(SEED)
local function rnd(n) return math.random(0, n - 1) end -- 0 .. n-1
local function chance(n) return math.random(n) == 1 end  -- 1 in n

-- ---- leak reports, by buffer id

local reports = {}
ohm.leak.level("paranoid")
ohm.leak.handler(function(r)
  local l = reports[r.id] or {}
  l[#l + 1] = r.reason
  reports[r.id] = l
end)
local expects = {} -- root id -> { what =, gc = (must be reported), closed = (live at a pool close), history = }

local files = {}
local function tmpfile()
  local f = os.tmpname()
  files[#files + 1] = f
  return f
end

-- Runs `ohm.<fn>(a, b)` from a chunk named after a serial number: the Lua traceback of the creation, and so the
-- leak report, is unique to this buffer.
local serial = 0
local function unique(fn, a, b)
  serial = serial + 1
  local f = assert(load("local ohm, a, b = ... return ohm." .. fn .. "(a, b)", "=randseq#" .. serial))
  return f(ohm, a, b)
end

-- ---- the model

local function live(h) return h.count.n > 0 and h.g.counts[1].n > 0 end -- an orphan's memory is gone
local function refcnt(h) return live(h) and h.count.n or 0 end
local function describe(h)
  return string.format("%s[%d+%d of %s#%x(%d%s), count %d]", h.name, h.off, h.len, h.g.kind, h.g.id, h.g.size,
    h.g.sealed and ", sealed" or "", refcnt(h))
end
local function writable(g) return not g.readonly and not g.sealed end

-- The references on c that its live retained slices hold.
local function held(c)
  local n = 0
  for _, k in ipairs(c.g.counts) do if k.parent == c and k.n > 0 then n = n + 1 end end
  return n
end

-- Releases n references of c; true if c reached 0. A retained slice that reaches 0 gives back the reference it
-- holds on its parent, unless that parent was released to 0 meanwhile.
local function model_release(c, n)
  c.n = c.n - n
  if c.n > 0 then return false end
  local p = c
  while p.n == 0 and p.parent and p.parent.n > 0 do
    p.parent.n = p.parent.n - 1
    p = p.parent
  end
  return true
end

local function new_count(g, parent)
  local c = { n = 1, parent = parent, g = g }
  g.counts[#g.counts + 1] = c
  return c
end

-- ---- errors

-- kind: one of the keys below, or several separated by "|" when more than one is true and the API does not say
-- which it checks first.
local function raises(kind, fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error (" .. kind .. "), but the call succeeded", 2) end
  err = tostring(err)
  for k in kind:gmatch("[^|]+") do
  local want = ({
    released = { "buffer was released" },
    range = { "buffer access out of bounds", "is negative" },
    readonly = { "read-only" },
    count = { "exceeds the reference count", "overflows the reference count" },
    seal = { "owns its pages" },
    closed = { "pool was closed" },
    arg = { "must be in 1..4294967295", "is negative" },
  })[k]
  for _, w in ipairs(want) do if err:find(w, 1, true) then return err end end
  end
  error(string.format("expected an error (%s), got %q", kind, err), 2)
end

-- What an access of [off, off + len) through h raises, or nil. Liveness first; a write out of bounds to
-- read-only memory may say either.
local function failure(h, off, len, write)
  if not live(h) then return "released" end
  local range = off < 0 or len < 0 or off + len > h.len
  local ro = write and not writable(h.g)
  if range and ro then return "range|readonly" end
  return range and "range" or ro and "readonly" or nil
end

-- ---- one actor

local queue = {} -- groups handed over, oldest first
local pools = {} -- every private pool ever made, for the final stats check
local state_pool = ohm.pool()
local actors = {}

local Actor = {}
Actor.__index = Actor

local ops = {} -- how often each operation ran: printed, so a change that starves one shows

function Actor:log(what)
  if #self.trace == 40 then table.remove(self.trace, 1) end
  self.trace[#self.trace + 1] = self.step .. ": " .. what
  local op = what:match("^[%a_.]+")
  ops[op] = (ops[op] or 0) + 1
end

function Actor:anygroup()
  if #self.groups == 0 then return nil end
  return self.groups[rnd(#self.groups) + 1]
end

function Actor:anyhandle()
  local g = self:anygroup()
  if not g then return nil end
  self.touched[g] = true
  return g.handles[rnd(#g.handles) + 1]
end

-- anyhandle for an action, logged as "<action> <handle>"; nil when the actor holds none.
function Actor:pick(action)
  local h = self:anyhandle()
  if h then self:log(action .. " " .. describe(h)) end
  return h
end

-- An offset for an access of width bytes in [0, len], now and then just outside it.
local function offset(len, width)
  if chance(16) then return math.random(2) == 1 and -1 - rnd(3) or len - width + 1 + rnd(3) end
  return len >= width and rnd(len - width + 1) or 0
end

local function size()
  local r = rnd(10)
  if r == 0 then return 0 end
  if r <= 3 then return 1 + rnd(64) end
  if r <= 6 then return 65 + rnd(4096 - 64) end
  return 4097 + rnd(70 * 1024 - 4096)
end

local function randbytes(n)
  local t = {}
  for i = 1, n do t[i] = rnd(256) end
  local parts = {}
  for i = 1, n, 4096 do parts[#parts + 1] = string.char(table.unpack(t, i, math.min(n, i + 4095))) end
  return table.concat(parts)
end

-- Replaces bytes [off, off + #s) of the group's model.
local function model_write(g, off, s)
  g.bytes = g.bytes:sub(1, off) .. s .. g.bytes:sub(off + #s + 1)
end

function Actor:root(b, kind, pool, extra)
  local g = { id = b:id(), kind = kind, size = #b, pool = pool, handles = {}, counts = {}, sealed = false,
    bytes = string.rep("\0", #b) }
  for k, v in pairs(extra or {}) do g[k] = v end
  local c = new_count(g, nil)
  g.handles[1] = { buf = b, g = g, off = 0, len = g.size, count = c, owner = true, name = "root" }
  T.eq(b:refcount(), 1, "a new buffer has a count of 1")
  T.eq(b:id() ~= 0, true)
  if pool then T.eq(b:tracked(), true, "paranoid: every pool buffer is tracked") end
  expects[g.id] = { id = g.id, what = kind .. string.format("#%x(%d)", g.id, g.size), tracked = b:tracked(), history = "" }
  self.groups[#self.groups + 1] = g
  self.touched[g] = true
  return g
end

function Actor:alloc()
  local r = rnd(100)
  if r < 45 then
    local n, zero = size(), chance(2)
    local b = unique("alloc", n, { zero = zero })
    local g = self:root(b, "state", state_pool)
    if not zero then -- contents unspecified: make them known
      local s = randbytes(n)
      b:writestring(0, s)
      g.bytes = s
    end
    self:log("alloc " .. n .. (zero and "" or " unzeroed"))
  elseif r < 55 then
    local s = randbytes(size())
    local g = self:root(unique("fromstring", s), "state", state_pool)
    g.bytes = s
    self:log("fromstring " .. #s)
  elseif r < 80 then
    if not self.pool then
      self.npools = self.npools + 1
      self.pool = ohm.pool { name = "randseq-" .. self.index .. "-" .. self.npools }
      T.eq(self.pool:leak("paranoid"), "paranoid")
      pools[#pools + 1] = self.pool
    end
    local n = size()
    local b = unique("alloc", n, { pool = self.pool })
    self:root(b, "private", self.pool)
    self:log("alloc " .. n .. " from " .. tostring(self.pool))
  elseif r < 90 then
    local pages = chance(2)
    local n = pages and PAGE * (1 + rnd(4)) or 1 + rnd(3 * PAGE)
    local path = tmpfile()
    local b = unique("mapfile", path, { write = true, create = true, length = n })
    T.eq(b:origin(), "file")
    self:root(b, "file", nil, { file = path, pages = n % PAGE == 0 }) -- a new file: zeros
    self:log("mapfile " .. n)
  elseif r < 96 then
    local n = chance(2) and PAGE * (1 + rnd(3)) or 1 + rnd(2 * PAGE)
    local b = unique("shm.create", nil, n)
    T.eq(b:origin(), "shm")
    self:root(b, "shm", nil, { pages = n % PAGE == 0 }) -- zeroed
    self:log("shm.create " .. n)
  elseif #self.finished > 0 then
    -- a read-only mapping of a file whose read-write mapping this actor released: it shows the last writes
    local done = self.finished[rnd(#self.finished) + 1]
    local b = unique("mapfile", done.file)
    T.eq(#b, done.size)
    local g = self:root(b, "file-ro", nil, { file = done.file, readonly = true })
    g.bytes = done.bytes
    self:log("mapfile read-only " .. done.file)
  end
end

-- ---- counts

function Actor:after_release(g)
  if g.counts[1].n == 0 then
    expects[g.id].history = expects[g.id].history .. " freed"
    if g.kind == "file" and #self.finished < 16 then self.finished[#self.finished + 1] = g end
  end
end

function Actor:retain()
  local h = self:anyhandle()
  if not h then return end
  local n = 1 + rnd(3)
  self:log("retain(" .. n .. ") " .. describe(h))
  if not live(h) then
    raises("released", h.buf.retain, h.buf, n)
  else
    T.ok(rawequal(h.buf:retain(n), h.buf), "retain returns the buffer")
    h.count.n = h.count.n + n
  end
end

-- Release and close may also give back references that retained slices hold (the count allows it, as Netty's
-- does): the root's memory then goes, and the retained slices still live below it fail as released buffers do.
function Actor:release()
  local h = self:anyhandle()
  if not h then return end
  local have = h.count.n
  local n = ({ have + 1, math.max(1, have), 1, 1, 1, 1 })[rnd(6) + 1]
  self:log("release(" .. n .. ") " .. describe(h))
  if not live(h) then
    raises("released", h.buf.release, h.buf, n)
  elseif n > have then
    raises("count", h.buf.release, h.buf, n)
    T.eq(h.buf:refcount(), have, "a refused release changes nothing")
  else
    T.eq(h.buf:release(n), model_release(h.count, n), "release returns true on the call that frees")
    self:after_release(h.g)
  end
end

function Actor:close()
  local h = self:pick("close")
  if not h then return end
  local was = live(h)
  if chance(2) then h.buf:close() else ohm.close(h.buf) end -- releases one if live, nothing otherwise
  if was then
    model_release(h.count, 1)
    self:after_release(h.g)
  end
end

function Actor:derive()
  local g = self:anygroup()
  if not g or #g.handles >= MAX_HANDLES then return end
  self.touched[g] = true
  local h = g.handles[rnd(#g.handles) + 1]
  local retained = chance(2)
  local off, len
  if chance(4) then
    off, len = nil, nil -- the defaults: all of it
  else
    off = offset(h.len, 0)
    len = h.len - off <= 0 and 0 or rnd(h.len - off + 1)
    if chance(16) then len = h.len + 1 end
  end
  local fn = retained and "retainedslice" or "slice"
  self:log(fn .. "(" .. tostring(off) .. ", " .. tostring(len) .. ") of " .. describe(h))
  if not live(h) then return raises("released", h.buf[fn], h.buf, off, len) end
  if off and (off < 0 or len < 0 or off + len > h.len) then return raises("range", h.buf[fn], h.buf, off, len) end
  local d = h.buf[fn](h.buf, off, len)
  off, len = off or 0, len or h.len
  T.eq(#d, len)
  local c = h.count
  if retained then
    h.count.n = h.count.n + 1
    c = new_count(g, h.count)
  end
  g.handles[#g.handles + 1] = { buf = d, g = g, off = h.off + off, len = len, count = c, owner = retained, parent = h,
    name = fn }
end

-- ---- contents

local TYPES = {
  { "i8", 1, "i1" }, { "u8", 1, "I1" }, { "i16", 2, "i2" }, { "u16", 2, "I2" }, { "i32", 4, "i4" },
  { "u32", 4, "I4" }, { "i64", 8, "i8" }, { "u64", 8, "i8" }, { "f32", 4, "f" }, { "f64", 8, "d" },
}

function Actor:typed()
  local h = self:anyhandle()
  if not h then return end
  local t = TYPES[rnd(#TYPES) + 1]
  local name, width, fmt = t[1], t[2], t[3]
  local be = width > 1 and chance(2)
  local suffix = name .. (be and "be" or "")
  local at = offset(h.len, width)
  local write = not chance(3)
  local v
  if fmt == "f" or fmt == "d" then v = (math.random() - 0.5) * 2 ^ rnd(60) else v = math.random(0) end
  self:log((write and "write" or "read") .. suffix .. " at " .. at .. " of " .. describe(h))
  local err = failure(h, at, width, write)
  if err then
    if write then return raises(err, h.buf["write" .. suffix], h.buf, at, v) end
    return raises(err, h.buf["read" .. suffix], h.buf, at)
  end
  local order = be and ">" or "<"
  if write then
    h.buf["write" .. suffix](h.buf, at, v)
    -- integers are truncated to the width (two's complement); floats rounded to the type
    local bytes = (fmt == "f" or fmt == "d") and string.pack(order .. fmt, v)
        or (be and string.pack(">i8", v):sub(9 - width) or string.pack("<i8", v):sub(1, width))
    model_write(h.g, h.off + at, bytes)
    if chance(4) then coroutine.yield("mid") end -- another actor runs between the write and its read-back
  end
  local want = string.unpack(order .. fmt, h.g.bytes, h.off + at + 1)
  T.eq(ohm["read" .. suffix](h.buf, at), want, "read" .. suffix .. " at " .. at .. " of " .. describe(h))
end

function Actor:strings()
  local h = self:anyhandle()
  if not h then return end
  local len = h.len == 0 and 0 or rnd(math.min(h.len, 9000) + 1)
  local at = offset(h.len, len)
  local write = chance(2)
  self:log((write and "writestring " or "readstring ") .. len .. " at " .. at .. " of " .. describe(h))
  local err = failure(h, at, len, write)
  if write then
    local s = randbytes(len + rnd(3)) -- writestring(b, off, s, count) writes the first count bytes of s
    if err then return raises(err, h.buf.writestring, h.buf, at, s, len) end
    h.buf:writestring(at, s, len)
    model_write(h.g, h.off + at, s:sub(1, len))
  else
    if err then return raises(err, h.buf.readstring, h.buf, at, len) end
    T.eq(h.buf:readstring(at, len), h.g.bytes:sub(h.off + at + 1, h.off + at + len))
  end
end

function Actor:fill()
  local h = self:anyhandle()
  if not h then return end
  local len = h.len == 0 and 0 or rnd(h.len + 1)
  local at = offset(h.len, len)
  local byte = math.random(-300, 300) -- truncated to 8 bits
  self:log("fill " .. len .. " at " .. at .. " with " .. byte .. " of " .. describe(h))
  local err = failure(h, at, len, true)
  if err then return raises(err, h.buf.fill, h.buf, at, byte, len) end
  h.buf:fill(at, byte, len)
  model_write(h.g, h.off + at, string.rep(string.char(byte & 0xff), len))
end

-- copy within a group (overlapping ranges: as if through a temporary) or between two of this actor's groups.
function Actor:copy()
  local s = self:anyhandle()
  if not s then return end
  local d = chance(2) and self:anyhandle() or s.g.handles[rnd(#s.g.handles) + 1]
  local len = math.min(s.len, d.len) == 0 and 0 or rnd(math.min(s.len, d.len) + 1)
  local so, dof = offset(s.len, len), offset(d.len, len)
  self:log("copy " .. len .. " from " .. so .. " of " .. describe(s) .. " to " .. dof .. " of " .. describe(d))
  local err
  if not live(s) or not live(d) then
    err = "released" -- both are checked for liveness first
  else
    local e1, e2 = failure(s, so, len, false), failure(d, dof, len, true)
    err = e1 and e2 and e1 .. "|" .. e2 or e1 or e2
  end
  if err then return raises(err, ohm.copy, d.buf, dof, s.buf, so, len) end
  ohm.copy(d.buf, dof, s.buf, so, len)
  model_write(d.g, d.off + dof, s.g.bytes:sub(s.off + so + 1, s.off + so + len))
end

function Actor:find()
  local h = self:anyhandle()
  if not h or not live(h) or h.len == 0 then return end
  local from = rnd(h.len)
  local count = rnd(h.len - from + 1)
  local plen = 1 + rnd(3)
  local pat
  if chance(2) and h.len >= plen then
    local p = rnd(h.len - plen + 1)
    pat = h.g.bytes:sub(h.off + p + 1, h.off + p + plen)
  else
    pat = randbytes(plen)
  end
  local window = h.g.bytes:sub(h.off + from + 1, h.off + from + count)
  local i = window:find(pat, 1, true)
  self:log("find " .. #pat .. " bytes in [" .. from .. ", +" .. count .. ") of " .. describe(h))
  T.eq(h.buf:find(pat, from, count), i and from + i - 1 or nil)
end

-- The order compare() promises: unsigned bytes, then the shorter first.
local function order(a, b)
  if a == b then return 0 end
  local i = 1
  while a:sub(i, i + 63) == b:sub(i, i + 63) do i = i + 64 end
  while a:byte(i) == b:byte(i) do i = i + 1 end
  local x, y = a:byte(i), b:byte(i)
  if not x then return -1 end
  if not y then return 1 end
  return x < y and -1 or 1
end

-- compare/equals/== against the model: content order, content equality, and "the same live memory".
function Actor:compare()
  local a, b = self:anyhandle(), self:anyhandle()
  if not a or not b then return end
  self:log("compare " .. describe(a) .. " with " .. describe(b))
  if a.len > 0 and b.len > 0 then -- empty views: where they point is not the model's business
    T.eq(a.buf == b.buf, rawequal(a.buf, b.buf) or live(a) and live(b) and a.g == b.g and a.off == b.off
      and a.len == b.len, "== is the same live memory")
  end
  if not live(a) or not live(b) then return raises("released", ohm.equals, a.buf, b.buf) end
  local sa = a.g.bytes:sub(a.off + 1, a.off + a.len)
  local sb = b.g.bytes:sub(b.off + 1, b.off + b.len)
  T.eq(a.buf:equals(b.buf), sa == sb)
  T.eq(ohm.compare(a.buf, b.buf), order(sa, sb))
end

-- seal: only a read-write mapping of whole pages, through a handle that views all of it.
function Actor:seal()
  local h = self:anyhandle()
  if not h then return end
  local on = not chance(3)
  self:log("seal(" .. tostring(on) .. ") " .. describe(h))
  if not live(h) then return raises("released", h.buf.seal, h.buf, on) end
  if not h.g.pages or h.off ~= 0 or h.len ~= h.g.size then return raises("seal", h.buf.seal, h.buf, on) end
  T.ok(rawequal(h.buf:seal(on), h.buf))
  h.g.sealed = on
end

-- ---- hand-over, pools, dropping

function Actor:handover()
  local g = self:anygroup()
  if not g or g.kind == "private" then return end -- a private pool's buffers stay with the actor that closes it
  self:log("handover " .. describe(g.handles[1]))
  for i, x in ipairs(self.groups) do if x == g then table.remove(self.groups, i) break end end
  self.touched[g] = nil
  queue[#queue + 1] = g
end

function Actor:takeover()
  local g = table.remove(queue, 1)
  if not g then return end
  self:log("takeover " .. describe(g.handles[1]))
  self.groups[#self.groups + 1] = g
  self.touched[g] = true
end

-- Closes the actor's private pool: its live roots are reported ("pool") and every buffer of it fails after.
function Actor:closepool()
  local p = self.pool
  if not p then return end
  self.pool = nil
  local live_roots = {}
  for _, g in ipairs(self.groups) do
    if g.pool == p and g.counts[1].n > 0 then live_roots[#live_roots + 1] = g end
  end
  -- A root that only its retained slices still hold is closed cleanly: the slices are what leaked, and each is
  -- reported as itself (their ids are not in `expects`).
  local function direct(g) return g.counts[1].n - held(g.counts[1]) end
  self:log("closepool " .. tostring(p) .. " with " .. #live_roots .. " live roots")
  T.eq(p:stats().active_blocks, #live_roots, "active blocks of the pool before it closes")
  p:close()
  p:close() -- twice: nothing
  for _, g in ipairs(live_roots) do
    local e = expects[g.id]
    e.closed = direct(g) > 0
    e.silent = not e.closed
    e.history = e.history .. (e.closed and " closed live" or " closed, held by retained slices only")
    T.eq(table.concat(reports[g.id] or {}, ","), e.closed and "pool" or "",
      "a live buffer of a closed pool is reported, unless only its retained slices hold it: " .. e.what)
  end
  for _, g in ipairs(self.groups) do
    if g.pool == p then
      for _, c in ipairs(g.counts) do c.n = 0 end
      self.touched[g] = true
    end
  end
  raises("closed", ohm.alloc, 1, { pool = p })
  raises("closed", p.stats, p)
end

-- Forgets a whole group without releasing it; the scheduler collects it right after this step.
function Actor:dropgroup()
  local g = self:anygroup()
  if not g then return end
  for i, x in ipairs(self.groups) do if x == g then table.remove(self.groups, i) break end end
  self.touched[g] = nil
  local e = expects[g.id]
  local root = g.counts[1]
  local direct = root.n > 0 and root.n - held(root) or 0
  e.gc = direct > 0 and e.tracked -- untracked (a mapping at the process's level): reclaimed, not reported
  e.silent = root.n > 0 and direct == 0 -- only retained slices hold it: freed with them, unreported
  e.history = e.history .. string.format(" dropped (count %d, direct %d)", root.n, direct)
  self:log("dropgroup " .. describe(g.handles[1]) .. " direct " .. direct)
  self.dropped[#self.dropped + 1] = e
end

-- Forgets one handle nothing else in the model derives from. A plain slice only loses its handle; a retained
-- slice that still counts is reclaimed: its references go, and the reference it holds on its parent with them.
function Actor:dropleaf()
  local g = self:anygroup()
  if not g or #g.handles < 2 then return end
  local h = g.handles[1 + rnd(#g.handles - 1) + 1] -- never the root: that is dropgroup
  for _, x in ipairs(g.handles) do if x.parent == h then return end end
  for i, x in ipairs(g.handles) do if x == h then table.remove(g.handles, i) break end end
  self.touched[g] = true
  self:log("dropleaf " .. describe(h))
  if h.owner and live(h) then self.reclaims[#self.reclaims + 1] = h.count end
end

-- Forgets a group whose memory is gone (released, or its pool closed): it is never reported.
function Actor:forget()
  for i, g in ipairs(self.groups) do
    if g.counts[1].n == 0 then
      self:log("forget " .. describe(g.handles[1]))
      expects[g.id].history = expects[g.id].history .. " forgotten"
      table.remove(self.groups, i)
      self.touched[g] = nil
      return
    end
  end
end

function Actor:badargs()
  local h = self:pick("badargs on")
  if not h then return end
  local kind = live(h) and "arg" or "released" -- liveness is checked before the count argument
  raises(kind, h.buf.retain, h.buf, 0)
  raises(kind, ohm.release, h.buf, -1)
  raises("arg", ohm.alloc, -1)
  if live(h) then -- a count that would pass the maximum is refused, unchanged
    raises("count", h.buf.retain, h.buf, 0xffffffff)
    T.eq(h.buf:refcount(), refcnt(h))
  end
end

function Actor:onestep()
  local full = #self.groups >= MAX_GROUPS
  local r = rnd(100)
  if r < (full and 2 or 14) then self:alloc()
  elseif r < 20 then self:retain()
  elseif r < 30 then self:release()
  elseif r < 33 then self:close()
  elseif r < 43 then self:derive()
  elseif r < 55 then self:typed()
  elseif r < 61 then self:strings()
  elseif r < 64 then self:fill()
  elseif r < 68 then self:copy()
  elseif r < 70 then self:find()
  elseif r < 73 then self:compare()
  elseif r < 76 then self:seal()
  elseif r < 80 then self:handover()
  elseif r < 84 then self:takeover()
  elseif r < 85 then self:closepool()
  elseif r < (full and 93 or 88) then self:dropgroup()
  elseif r < 90 then self:dropleaf()
  elseif r < 93 then self:forget()
  elseif r < 94 then self:badargs()
  else
    local g = self:anygroup()
    if g then self.touched[g] = true end -- read back in full
  end
end

-- ---- the model, after every step

-- Every live handle shows its window of the model's bytes; every released one refuses access.
local function check_content(g)
  for _, h in ipairs(g.handles) do
    local b = h.buf
    T.eq(ohm.isbuffer(b), true)
    if live(h) then
      T.eq(#b, h.len, "size of " .. describe(h))
      local got, want = b:tostring(), g.bytes:sub(h.off + 1, h.off + h.len)
      if got ~= want then
        local i = 1
        while got:byte(i) == want:byte(i) do i = i + 1 end
        error(string.format("content of %s differs from the model at offset %d: model %s, buffer %s", describe(h),
          i - 1, tostring(want:byte(i)), tostring(got:byte(i))))
      end
    else
      if not h.refused then -- once per handle: a Lua error costs ~0.4 ms under TSan (its longjmp interceptor)
        h.refused = true
        raises("released", b.readu8, b, 0)
        raises("released", b.writeu8, b, 0, 1)
        raises("released", b.slice, b, 0, 0)
        raises("released", b.release, b)
        raises("released", b.retain, b)
      end
      b:close() -- closing a released buffer does nothing
      T.eq(tostring(b), "ohm.buffer(released)")
    end
  end
end

function Actor:check()
  for _, g in ipairs(self.groups) do
    for _, h in ipairs(g.handles) do
      local got = h.buf:refcount()
      if got ~= refcnt(h) then T.eq(got, refcnt(h), "refcount of " .. describe(h)) end
    end
  end
  for g in pairs(self.touched) do check_content(g) end
  if self.step % 100 == 0 then for _, g in ipairs(self.groups) do check_content(g) end end
end

-- Releases everything the actor holds, retained slices before their parents.
function Actor:release_all()
  for _, g in ipairs(self.groups) do
    for i = #g.counts, 1, -1 do
      local c = g.counts[i]
      local h
      for _, x in ipairs(g.handles) do if x.count == c then h = x break end end
      local own = c.n - held(c)
      if h and live(h) and own > 0 then
        self:log("release_all: release(" .. own .. ") " .. describe(h))
        T.eq(h.buf:release(own), model_release(c, own), describe(h))
      end
    end
    T.eq(g.counts[1].n, 0, "everything released")
    for _, h in ipairs(g.handles) do T.eq(h.buf:refcount(), 0) end
  end
  self.groups = {}
end

-- Live roots of the state's pool (and of each private pool) in the model: what the pools' stats must show.
local function live_blocks()
  local n = {}
  local function count(g)
    if g.pool and g.counts[1].n > 0 then n[g.pool] = (n[g.pool] or 0) + 1 end
  end
  for _, a in ipairs(actors) do for _, g in ipairs(a.groups) do count(g) end end
  for _, g in ipairs(queue) do count(g) end
  return n
end

-- Pool stats are costly under TSan (~0.3 ms): compared when the model's numbers change, and every 25 steps.
local last_blocks, pool_checks = {}, 0
local function check_pools(force)
  local n = live_blocks()
  local same = true
  for k, v in pairs(n) do if last_blocks[k] ~= v then same = false end end
  for k, v in pairs(last_blocks) do if n[k] ~= v then same = false end end
  last_blocks = n
  pool_checks = pool_checks + 1
  if same and not force and pool_checks % 25 ~= 0 then return end
  T.eq(state_pool:stats().active_blocks, n[state_pool] or 0, "active blocks of the state's pool")
  for _, a in ipairs(actors) do
    if a.pool then T.eq(a.pool:stats().active_blocks, n[a.pool] or 0, "active blocks of " .. tostring(a.pool)) end
  end
end

-- After a step that dropped something: collect it, then what it must have reported and released.
function Actor:collect()
  collectgarbage()
  collectgarbage()
  for _, e in ipairs(self.dropped) do
    local got = table.concat(reports[e.id] or {}, ",")
    T.eq(got, e.closed and "pool" or e.gc and "gc" or "", "leak reports of dropped " .. e.what .. " (" .. e.history .. ")")
    e.resolved = true
  end
  for _, c in ipairs(self.reclaims) do
    if c.n > 0 and c.g.counts[1].n > 0 then model_release(c, c.n - held(c)) end
  end
  for _, c in ipairs(self.reclaims) do self.touched[c.g] = true end
  self.dropped, self.reclaims = {}, {}
end

-- ---- the run

T.test("four actors of random calls match the model after every step (seed " .. SEED .. ")", function()
  for i = 1, ACTORS do
    local a = setmetatable({ index = i, groups = {}, finished = {}, trace = {}, touched = {}, dropped = {},
      reclaims = {}, npools = 0, step = 0 }, Actor)
    a.co = coroutine.create(function()
      for step = 1, STEPS do
        a.step = step
        a:onestep()
        coroutine.yield("step")
      end
    end)
    actors[i] = a
  end
  local running = ACTORS
  while running > 0 do
    local a = actors[rnd(ACTORS) + 1]
    if coroutine.status(a.co) == "suspended" then
      local ok, what = coroutine.resume(a.co)
      local function context(err)
        return string.format("%s\nseed %d (OHM_TEST_SEED=%d), actor %d, step %d; last operations:\n  %s", err, SEED,
          SEED, a.index, a.step, table.concat(a.trace, "\n  "))
      end
      if not ok then error(context(debug.traceback(a.co, tostring(what))), 0) end
      if what == "step" then
        local ok2, err = xpcall(function()
          if #a.dropped > 0 or #a.reclaims > 0 then a:collect() end
          a:check()
          check_pools()
        end, debug.traceback)
        if not ok2 then error(context(err), 0) end
        a.touched = {}
      end
      if coroutine.status(a.co) == "dead" then running = running - 1 end
    end
  end

  -- What the actors left: release it all, collect, then every report must be the one the model expects.
  for _, g in ipairs(queue) do actors[1].groups[#actors[1].groups + 1] = g end
  queue = {}
  for _, a in ipairs(actors) do
    for _, g in ipairs(a.groups) do check_content(g) end
    a:release_all()
  end
  collectgarbage()
  collectgarbage()
  check_pools(true)
  for _, p in ipairs(pools) do
    if tostring(p) ~= "ohm.pool(closed)" then
      T.eq(p:stats().active_blocks, 0)
      p:close() -- nothing live: nothing reported
    end
  end
  local n = { gc = 0, closed = 0, silent = 0 }
  for id, e in pairs(expects) do
    local got = table.concat(reports[id] or {}, ",")
    local want = e.closed and "pool" or e.gc and "gc" or ""
    if e.closed then n.closed = n.closed + 1 elseif e.gc then n.gc = n.gc + 1 elseif e.silent then n.silent = n.silent + 1 end
    T.eq(got, want, "leak reports of " .. e.what .. " (" .. e.history .. ")")
  end
  local names = {}
  for k, v in pairs(ops) do names[#names + 1] = k .. "=" .. v end
  table.sort(names)
  print(string.format("seed %d, %d actors x %d steps: %s; leaks: %d dropped with references, %d held only by " ..
    "retained slices, %d live at a pool close", SEED, ACTORS, STEPS, table.concat(names, " "), n.gc, n.silent, n.closed))
end)

for _, f in ipairs(files) do os.remove(f) end
T.done()
