-- Misuse: programmer errors raise a Lua error with a clear message, runtime failures return nil, message,
-- code; after either the state is usable and nothing leaked (the state's pool has no block left over).
local T = require "check"
local ohm = require "ohm"

local pool = ohm.pool()
local function live_blocks()
  T.gc()
  return pool:stats().active_blocks
end
local baseline = live_blocks()

local function still_usable()
  local b <close> = ohm.alloc(16)
  b:writeu64(8, 42)
  T.eq(b:readu64(8), 42)
end

T.test("wrong argument types raise with the argument's position", function()
  local b <close> = ohm.alloc(8)
  T.raises("number expected", ohm.alloc, "x")
  T.raises("number has no integer representation", ohm.alloc, 1.5)
  T.raises({ "bad argument #1", "ohm.buffer expected, got string" }, ohm.readu32, "x", 0)
  T.raises("ohm.buffer expected, got table", ohm.readu32, {}, 0)
  T.raises("ohm.buffer expected, got no value", ohm.len)
  T.raises("ohm.buffer expected, got FILE*", ohm.len, io.stdout)
  T.raises("bad argument #2", b.readu32, b, "zero")
  -- a method is the module's function itself, so Lua names it even when the call does not say how it was reached
  assert(b.readu32 == ohm.readu32)
  T.raises("bad argument #2 to 'ohm.readu32' (number expected, got string)", b.readu32, b, "zero")
  T.raises("number has no integer representation", b.readu32, b, 0.5)
  T.raises("bad argument #3", b.writeu32, b, 0, "x")
  T.raises("number has no integer representation", b.writei32, b, 0, 2.5)
  T.raises("bad argument #3", b.writef64, b, 0, {})
  T.raises("bad argument #3", b.writestring, b, 0, {})
  T.raises("bad argument #3", b.copy, b, 0, "not a buffer")
  T.raises("bad argument #2", ohm.alloc, 1, 5)
  T.raises("bad argument #1", ohm.fromstring, {})
  T.raises("bad argument #2", b.find, b, {})
  still_usable()
end)

T.test("negative and huge sizes raise", function()
  T.raises("bad argument #1 to 'ohm.alloc' (size -1 is negative)", ohm.alloc, -1)
  T.raises("size", ohm.alloc, math.mininteger)
  T.raises("bad argument #1 to 'ohm.alloc' (size 9223372036854775807 is too large", ohm.alloc, math.maxinteger)
  T.raises("too large", ohm.alloc, (1 << 47) + 1)
  T.raises("too large", ohm.shm.create, nil, 1 << 60)
  T.raises("fromstring", ohm.fromstring, "x", { pool = 1 })
  still_usable()
end)

T.test("an allocation the pool cannot serve returns nil, message, ENOMEM", function()
  local p <close> = ohm.pool { name = "small", max_mapped = 4 << 20 }
  local msg = T.fails("ENOMEM", "alloc", ohm.alloc, 64 << 20, { pool = p })
  T.ok(#msg > 10)
  local b <close> = ohm.alloc(100, { pool = p }) -- the pool still works
  T.eq(#b, 100)
  still_usable()
end)

T.test("every pool option is accepted by name, and the core checks its value", function()
  local p <close> = ohm.pool { name = "all", chunk_size = 1 << 20, arenas = 1, cache_max_size = 64 << 10,
    cache_slots = 8, purge_delay_ms = -1, dirty_ratio = 4, background_purge = false, max_mapped = 64 << 20,
    huge_pages = "none", lock_memory = false, mergeable = false, zero = true, poison = false }
  local b <close> = ohm.alloc(100, { pool = p })
  T.eq(#b, 100)
  T.eq(p:stats().arenas, 1)
  T.raises("arenas 1000 exceeds the maximum 256", ohm.pool, { arenas = 1000 })
  T.raises("arenas -1 must be from 0 to 256", ohm.pool, { arenas = -1 })
  T.raises("cache_slots 0 must be from 1 to 1024", ohm.pool, { cache_slots = 0 })
  T.raises("huge_pages takes none, thp or hugetlb", ohm.pool, { huge_pages = "giant" })
  T.raises("power of two", ohm.pool, { chunk_size = 3 << 20 })
  local never <close> = ohm.pool { name = "never", purge_delay_ms = "never" }
  T.raises("purge_delay_ms takes never (or a number)", ohm.pool, { purge_delay_ms = "soon" })
  still_usable()
end)

T.test("out-of-bounds offsets raise with the numbers", function()
  local b <close> = ohm.alloc(16)
  T.raises("readu32: buffer access out of bounds (offset 13 + length 4, size 16)", b.readu32, b, 13)
  T.raises("offset -1 is negative", b.readu8, b, -1)
  T.raises("buffer access out of bounds", b.readu8, b, 16)
  T.raises("buffer access out of bounds", b.readi64, b, math.maxinteger)
  T.raises("negative", b.readf64, b, math.mininteger)
  T.raises("writeu16be", b.writeu16be, b, 15, 1)
  T.raises("buffer access out of bounds", b.readstring, b, 10, 7)
  T.raises("length -1 is negative", b.readstring, b, 0, -1)
  T.raises("buffer access out of bounds", b.writestring, b, 14, "abc")
  T.raises("count 4 exceeds the string's length 3", b.writestring, b, 0, "abc", 4)
  T.raises("count -1 is negative", b.writestring, b, 0, "abc", -1)
  local c <close> = ohm.alloc(4)
  T.raises("copy", b.copy, b, 14, c)       -- 4 bytes at 14
  T.raises("copy", b.copy, b, 0, c, 2, 3)  -- 3 bytes at 2 of a 4-byte source
  T.raises("negative", b.copy, b, 0, c, -1, 1)
  T.raises("fill", b.fill, b, 10, 0, 7)
  T.raises("negative", b.fill, b, -2, 0)
  T.raises("bit offset 120 + count 16 exceeds 128 bits", b.readbits, b, 120, 16)
  T.raises("bit count 65 is outside [0, 64]", b.readbits, b, 0, 65)
  T.raises("bit count -1", b.writebits, b, 0, -1, 0)
  T.raises("negative", b.readbits, b, -8, 8)
  T.raises("slice", b.slice, b, 8, 9)
  T.raises("negative", b.slice, b, -1, 2)
  T.raises("retainedslice", b.retainedslice, b, 17)
  T.raises("exceeds", b.address, b, 17)
  -- Luau's words: out-of-bounds accesses, create's own name, a defaulted count never blamed.
  local z <close> = ohm.create(10)
  T.raises("readi8: buffer access out of bounds (offset 10 + length 1, size 10)", ohm.readi8, z, 10)
  T.raises("bad argument #1 to 'ohm.create' (size -1 is negative)", ohm.create, -1)
  T.raises("fill: buffer access out of bounds (offset 11 + length 0, size 10)", z.fill, z, 11, 1)
  T.raises("slice: buffer access out of bounds (offset 12 + length 0, size 10)", z.slice, z, 12)
  z:fill(10, 1) -- an empty fill at the end is fine, as in Luau
  T.raises("find", b.find, b, "x", 10, 7)
  -- nothing was written by the failed calls
  T.eq(b:find("\1"), nil)
  still_usable()
end)

T.test("use after release raises 'released' from every function", function()
  local b = ohm.alloc(16)
  T.eq(b:release(), true)
  local calls = {
    { "readu8", 0 }, { "writeu8", 0, 1 }, { "readi64be", 0 }, { "writef32", 0, 1 }, { "readbits", 0, 1 },
    { "writebits", 0, 1, 1 }, { "len" }, { "readstring", 0, 1 }, { "writestring", 0, "a" }, { "tostring" },
    { "fill", 0, 0 }, { "find", "a" }, { "slice", 0, 1 }, { "retainedslice" }, { "retain" }, { "release" },
    { "touch" }, { "tracked" }, { "origin" }, { "address" }, { "equals", b },
  }
  for _, c in ipairs(calls) do
    T.raises({ c[1], "buffer was released" }, b[c[1]], b, table.unpack(c, 2))
    T.raises("buffer was released", ohm[c[1]], b, table.unpack(c, 2))
  end
  T.raises("released", function() return #b end)
  local live <close> = ohm.alloc(4)
  T.raises("released", live.copy, live, 0, b)
  T.raises("released", b.copy, b, 0, live)
  T.raises("released", ohm.compare, live, b)
  -- what does not raise: refcount, id, close, tostring of the userdata, equality
  T.eq(b:refcount(), 0)
  T.eq(b:id(), 0)
  b:close()
  T.eq(tostring(b), "ohm.buffer(released)")
  still_usable()
end)

T.test("use after close (and after <close>) raises the same way", function()
  local b = ohm.alloc(8)
  b:close()
  T.raises("buffer was released", b.readu8, b, 0)
  local kept
  do
    local c <close> = ohm.alloc(8)
    kept = c
  end
  T.raises("buffer was released", kept.writeu8, kept, 0, 1)
end)

T.test("double release raises and frees nothing twice", function()
  local b = ohm.alloc(8)
  b:release()
  T.raises("released", b.release, b)
  local c = ohm.alloc(8)
  T.raises("release", c.release, c, 2) -- more than the count: nothing changes
  T.eq(c:refcount(), 1)
  T.raises("count 0 must be in 1..4294967295", c.release, c, 0)
  T.raises("count -1", c.retain, c, -1)
  T.raises("count", c.retain, c, 1 << 32)
  T.eq(c:refcount(), 1)
  T.eq(c:release(), true)
  still_usable()
end)

T.test("a slice whose parent was released is released too", function()
  local b = ohm.alloc(8)
  local s = b:slice(0, 4)
  b:release()
  T.raises("released", s.readu8, s, 0)
  T.raises("released", s.release, s)
end)

T.test("a closed pool: its buffers are released and the pool refuses work", function()
  local p = ohm.pool { name = "closing" }
  local b = ohm.alloc(8, { pool = p })
  local reports = {}
  local old = ohm.leak.handler(function(r) reports[#reports + 1] = r end)
  p:close()
  ohm.leak.handler(old)
  T.raises("released", b.readu8, b, 0)
  T.raises("pool was closed", ohm.alloc, 8, { pool = p })
  T.raises("pool was closed", p.stats, p)
  p:close() -- twice is fine
  T.raises("only a pool made by ohm.pool", ohm.pool().close, ohm.pool())
  T.raises("bad argument", ohm.pool, 42)
  T.raises("the only named pool", ohm.pool, "mine")
end)

T.test("bad options raise", function()
  T.raises("bad argument", ohm.mm, 5)
  T.raises("storage_fraction", function() return ohm.mm { storage_fraction = 2 } end)
  T.raises("must be a number", ohm.mm, { storage_fraction = "half" })
  T.raises("System memory", ohm.mm, { heap = 100 << 20 })
  T.raises("off_heap", ohm.mm, { off_heap = -1 })
  local mm <close> = ohm.mm { off_heap = 1 << 20 }
  local t <close> = mm:task()
  T.raises('bad argument #3 to \'?\' (mode must be "off_heap" or "on_heap", got sideways)', t.acquire, t, 10, "sideways")
  T.raises("consumer: mode must be", t.consumer, t, { mode = 1 })
  T.raises("mm: page_size must be an integer, got string", ohm.mm, { page_size = "big" })
  T.raises("a number with a fraction", ohm.mm, { off_heap = 1.5 })
  T.raises("negative", t.acquire, t, -5)
  T.raises("bad argument", t.consumer, t, "not a table")
  T.raises("bad argument", t.consumer, t, { spill = 42 })
  T.raises("needs a size", mm.put, mm, "x", nil)
  T.raises("bad argument", mm.put, mm, "x", ohm.alloc(1), { evict = "no" })
  T.raises("invalid option 'loud'", ohm.leak.level, "loud")
  T.raises("interval must be at least 1", ohm.leak.sample, 0)
  T.raises("bad argument", ohm.leak.handler, 42)
end)

-- Read-only memory: a read-only mapped file, shared memory opened read-only, a sealed mapping or shared memory.
-- A store into it would be a fault; every write function must refuse it with a Lua error instead.
local tmpdir = os.getenv("TMPDIR") or "/tmp"
local PAGES = 64 << 10 -- whole pages on any page size up to 64 KiB: such a mapping can be sealed

local function tmpfile(size)
  local path = string.format("%s/ohm-lua-misuse-%d-%d.bin", tmpdir, os.time(), math.random(1 << 30))
  local f = assert(io.open(path, "wb"))
  f:write(string.rep("\0", size))
  f:close()
  return path
end

-- Every function that writes into its first argument, with arguments that are valid for a 64-byte buffer.
local writers = {
  { "writei8", 0, 1 }, { "writeu8", 0, 1 }, { "writei16", 0, 1 }, { "writeu16", 0, 1 }, { "writei32", 0, 1 },
  { "writeu32", 0, 1 }, { "writei64", 0, 1 }, { "writeu64", 0, 1 }, { "writef32", 0, 1.5 },
  { "writef64", 0, 1.5 }, { "writei16be", 2, 1 }, { "writeu16be", 2, 1 }, { "writei32be", 4, 1 },
  { "writeu32be", 4, 1 }, { "writei64be", 8, 1 }, { "writeu64be", 8, 1 }, { "writef32be", 4, 1.5 },
  { "writef64be", 8, 1.5 }, { "writebits", 3, 7, 0x55 }, { "writestring", 1, "abc" }, { "fill", 0, 0xff },
  { "fill", 10, 1, 3 },
}

-- b must refuse every write, as a method and as a module function, and stay readable and unchanged.
local function refuses_writes(b, what)
  local before = b:readstring(0, 64)
  local src <close> = ohm.fromstring(string.rep("x", 64))
  for _, w in ipairs(writers) do
    local err = T.raises({ w[1] .. ": ", "read-only" }, b[w[1]], b, table.unpack(w, 2))
    T.ok(not err:find("sealed read-only", 1, true) or what == "sealed", what .. ": " .. err)
    T.raises({ w[1] .. ": ", "read-only" }, ohm[w[1]], b, table.unpack(w, 2))
  end
  T.raises({ "copy: ", "read-only" }, b.copy, b, 0, src)
  T.raises({ "copy: ", "read-only" }, ohm.copy, b, 8, src, 0, 8)
  T.raises({ "copy: ", "read-only" }, b.copy, b, 0, b, 8, 8) -- onto itself
  T.eq(b:readstring(0, 64), before, what .. ": nothing was written")
  src:copy(0, b, 0, 8) -- reading out of it is fine
  T.eq(src:readstring(0, 8), before:sub(1, 8))
end

-- ...and so must every view of it: slices, slices of slices, retained slices.
local function all_views_refuse(b, what)
  refuses_writes(b, what)
  refuses_writes(b:slice(0, 64), what)
  refuses_writes(b:slice(0, 128):slice(0, 64), what)
  local r <close> = b:retainedslice(0, 64)
  refuses_writes(r, what)
end

T.test("a read-only mapped file refuses every write, through every view", function()
  local path = tmpfile(4096)
  local b <close> = ohm.mapfile(path)
  all_views_refuse(b, "read-only mapping")
  T.raises("seal", b.seal, b, false) -- a read-only mapping cannot be made writable
  T.raises("read-only", b.writeu8, b, 0, 1)
  os.remove(path)
  still_usable()
end)

T.test("shared memory opened read-only refuses every write", function()
  local name = string.format("/ohm-lua-misuse-%d-%d", os.time(), math.random(1 << 30))
  local rw <close> = ohm.shm.create(name, 4096)
  rw:writestring(0, "seen")
  local ro <close> = ohm.shm.open(name)
  all_views_refuse(ro, "read-only shared memory")
  T.eq(ro:readstring(0, 4), "seen")
  ohm.shm.unlink(name)
  still_usable()
end)

T.test("a sealed buffer refuses every write until unsealed, through views made before and after", function()
  local path = tmpfile(PAGES)
  for _, make in ipairs {
    function() return ohm.mapfile(path, { write = true }) end,
    function() return ohm.shm.create(nil, PAGES) end,
  } do
    local b <close> = make()
    local early = b:slice(0, 64)
    local kept <close> = b:retainedslice(0, 128)
    b:seal()
    all_views_refuse(b, "sealed")
    refuses_writes(early, "sealed")
    refuses_writes(kept, "sealed")
    b:seal(false)
    early:writeu32(0, 7)
    kept:writeu8(100, 1)
    T.eq(b:readu32(0), 7)
    T.raises("seal", kept.seal, kept) -- part of the memory cannot be sealed
    local all <close> = b:retainedslice()
    all:seal() -- all of it can, through any buffer of it
    T.raises("read-only", b.writeu8, b, 0, 1)
    b:seal(false)
    all:writeu8(0, 2)
  end
  os.remove(path)
  still_usable()
end)

T.child_test("writes to read-only memory raise in a child interpreter: no fault, nothing on stderr", function(interp)
  local path = tmpfile(PAGES)
  local chunk = ([[
    local ohm = require "ohm"
    local ro <close> = ohm.mapfile(%q)
    local w <close> = ohm.mapfile(%q, { write = true })
    local r <close> = w:retainedslice(0, 16)
    local src <close> = ohm.fromstring("12345678")
    w:seal()
    local n = 0
    for _, b in ipairs { ro, w, ro:slice(8, 8), r } do
      for _, f in ipairs { "writeu64", "writef64be", "fill", "writestring" } do
        local ok = pcall(b[f], b, 0, f == "writestring" and "x" or 1)
        if not ok then n = n + 1 end
      end
      if not pcall(b.copy, b, 0, src) then n = n + 1 end
    end
    print("refused " .. n)
  ]]):format(path, path):gsub("\n%%s*", " ")
  local cmd = string.format("%q -e %q 2>&1; echo \"exit $?\"", interp, chunk)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  os.remove(path)
  T.eq(out, "refused 20\nexit 0\n")
end)

T.test("after all of the above nothing leaked and the state still works", function()
  still_usable()
  T.eq(live_blocks(), baseline)
end)

T.done()
