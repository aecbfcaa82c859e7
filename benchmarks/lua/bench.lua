-- ohm-bench lua: the workloads, run inside ohm-bench (benchmarks/lua/bench_lua.c embeds Lua 5.4 with the ohm
-- module linked in). The harness loads this file, reads M.workloads to know what exists, and in each child calls
-- M.run(workload, impl, scale), which returns the ops done, the nanoseconds they took, and the bytes live at
-- the peak. `bench` is the harness's table: bench.now() (monotonic ns) and bench.mark() (RSS before, peak reset),
-- called right before the timed loop.
--
-- Two families:
--   create-write-close-N: make an N-byte binary object, fill it with N/4 little-endian u32 values, drop it.
--     ohm          ohm.alloc(N), b:writeu32(off, v) for each word, b:close()
--     ohm-bulk     ohm.alloc(N), b:writestring(0, payload) (the N bytes prepared once), b:close()
--     string.pack  string.pack("<I4I4...", v1, v2, ...): one string of N bytes built from the N/4 values
--     string.rep   string.rep("\0\1\2\3", N/4): N bytes of a repeated pattern, no per-value work at all
--     table        a table of N bytes, t[i] = byte (the "byte array" of plain Lua)
--   Lua-native objects are dropped, not freed: the garbage collector's work is part of their time, as closing
--   is part of ohm's.
--   read-u32 / write-u32 / read-f64 / write-f64: typed accesses per second over a 1 KiB buffer.
--     ohm-method   b:readu32(off)            ohm-function  local readu32 = ohm.readu32; readu32(b, off)
--     string       string.unpack("<I4", s, off + 1) / string.pack("<I4", v)   (strings are immutable: a write
--                  makes a 4-byte string)
--     table        t[i] (a table of numbers, not bytes: what Lua code keeps when it does not need bytes)
local ohm = require "ohm"

local M = {}

local function scaled(n, scale)
  local v = math.floor(n * scale + 0.5)
  return v < 1 and 1 or v
end

-- ---- create-write-close ----

local function cwc(size)
  local words = size // 4
  local vals = {}
  for i = 1, words do vals[i] = (i - 1) * 4 end
  local fmt = "<" .. string.rep("I4", words)
  local payload = string.pack(fmt, table.unpack(vals))
  local impls = {}

  impls["ohm"] = function(n)
    local alloc = ohm.alloc
    bench.mark()
    local t0 = bench.now()
    for _ = 1, n do
      local b = alloc(size)
      for off = 0, size - 4, 4 do b:writeu32(off, off) end
      b:close()
    end
    return bench.now() - t0
  end

  impls["ohm-bulk"] = function(n)
    local alloc = ohm.alloc
    bench.mark()
    local t0 = bench.now()
    for _ = 1, n do
      local b = alloc(size)
      b:writestring(0, payload)
      b:close()
    end
    return bench.now() - t0
  end

  impls["string.pack"] = function(n)
    local pack, unpack = string.pack, table.unpack
    local sink
    bench.mark()
    local t0 = bench.now()
    for _ = 1, n do
      sink = pack(fmt, unpack(vals))
    end
    local ns = bench.now() - t0
    assert(#sink == size)
    return ns
  end

  impls["string.rep"] = function(n)
    local rep = string.rep
    local sink
    bench.mark()
    local t0 = bench.now()
    for _ = 1, n do
      sink = rep("\0\1\2\3", words)
    end
    local ns = bench.now() - t0
    assert(#sink == size)
    return ns
  end

  impls["table"] = function(n)
    local sink
    bench.mark()
    local t0 = bench.now()
    for _ = 1, n do
      local t = {}
      for i = 1, size do t[i] = i & 255 end
      sink = t
    end
    local ns = bench.now() - t0
    assert(#sink == size)
    return ns
  end

  return impls
end

-- ---- typed access ----

local ACCESS_SIZE = 1024

local function access(kind, width)
  local n_slots = ACCESS_SIZE // width
  local impls = {}
  local reader, writer = "read" .. kind, "write" .. kind
  local fmt = kind == "u32" and "<I4" or "<d"
  local function value(i) return kind == "u32" and i * 2654435761 % 4294967296 or i * 0.5 end

  local function fresh()
    local b = ohm.alloc(ACCESS_SIZE)
    for i = 0, n_slots - 1 do b[writer](b, i * width, value(i)) end
    return b
  end

  -- Each op is one access; the loops run whole passes over the buffer (n rounded up to passes).
  impls["ohm-method"] = function(n, write)
    local b = fresh()
    local passes = (n + n_slots - 1) // n_slots
    local sum = 0
    bench.mark()
    local t0 = bench.now()
    if write then
      for p = 1, passes do
        for off = 0, ACCESS_SIZE - width, width do b[writer](b, off, p) end
      end
    else
      for _ = 1, passes do
        for off = 0, ACCESS_SIZE - width, width do sum = sum + b[reader](b, off) end
      end
    end
    local ns = bench.now() - t0
    b:close()
    return ns, passes * n_slots, sum
  end
  -- b[reader](b, off) looks the method up each time, as b:readu32(off) does; the same code for both names.

  impls["ohm-function"] = function(n, write)
    local b = fresh()
    local rd, wr = ohm[reader], ohm[writer]
    local passes = (n + n_slots - 1) // n_slots
    local sum = 0
    bench.mark()
    local t0 = bench.now()
    if write then
      for p = 1, passes do
        for off = 0, ACCESS_SIZE - width, width do wr(b, off, p) end
      end
    else
      for _ = 1, passes do
        for off = 0, ACCESS_SIZE - width, width do sum = sum + rd(b, off) end
      end
    end
    local ns = bench.now() - t0
    b:close()
    return ns, passes * n_slots, sum
  end

  impls["string"] = function(n, write)
    local b = fresh()
    local s = b:tostring()
    b:close()
    local pack, unpack = string.pack, string.unpack
    local passes = (n + n_slots - 1) // n_slots
    local sum, sink = 0, nil
    bench.mark()
    local t0 = bench.now()
    if write then
      for p = 1, passes do
        for _ = 0, ACCESS_SIZE - width, width do sink = pack(fmt, p) end
      end
    else
      for _ = 1, passes do
        for off = 1, ACCESS_SIZE - width + 1, width do sum = sum + unpack(fmt, s, off) end
      end
    end
    local ns = bench.now() - t0
    assert(write == false or #sink == width)
    return ns, passes * n_slots, sum
  end

  impls["table"] = function(n, write)
    local t = {}
    for i = 1, n_slots do t[i] = value(i - 1) end
    local passes = (n + n_slots - 1) // n_slots
    local sum = 0
    bench.mark()
    local t0 = bench.now()
    if write then
      for p = 1, passes do
        for i = 1, n_slots do t[i] = p end
      end
    else
      for _ = 1, passes do
        for i = 1, n_slots do sum = sum + t[i] end
      end
    end
    local ns = bench.now() - t0
    return ns, passes * n_slots, sum
  end

  return impls
end

-- ---- the table the harness reads ----

local CWC_IMPLS = { "ohm", "ohm-bulk", "string.pack", "string.rep", "table" }
local ACCESS_IMPLS = { "ohm-method", "ohm-function", "string", "table" }

local function cwc_workload(name, label, size, count)
  return { name = name, count = count, unit = "objects", impls = CWC_IMPLS, baseline = "ohm",
           summary = string.format("a %s object: create, write %d u32 (or as a whole), drop/close", label, size // 4),
           make = function() return cwc(size) end }
end

local function access_workload(name, kind, width, write, summary)
  return { name = name, count = 20000000, unit = write and "writes" or "reads", impls = ACCESS_IMPLS,
           baseline = "ohm-method", write = write, summary = summary,
           make = function() return access(kind, width) end }
end

M.workloads = {
  cwc_workload("create-write-close-64", "64 B", 64, 1000000),
  cwc_workload("create-write-close-1k", "1 KiB", 1024, 100000),
  cwc_workload("create-write-close-64k", "64 KiB", 65536, 1500),
  access_workload("read-u32", "u32", 4, false, "u32 reads over a 1 KiB buffer (string.unpack, a table of numbers)"),
  access_workload("write-u32", "u32", 4, true, "u32 writes over a 1 KiB buffer (string.pack makes a string)"),
  access_workload("read-f64", "f64", 8, false, "f64 reads over a 1 KiB buffer"),
  access_workload("write-f64", "f64", 8, true, "f64 writes over a 1 KiB buffer"),
}

local by_name = {}
for _, w in ipairs(M.workloads) do by_name[w.name] = w end

-- Returns ops, ns, live peak bytes.
function M.run(name, impl, scale)
  local w = assert(by_name[name], "unknown workload " .. tostring(name))
  local fn = assert(w.make()[impl], "impl " .. tostring(impl) .. " does not apply to " .. name)
  local n = scaled(w.count, scale)
  collectgarbage()
  collectgarbage()
  if name:find("^create") then
    local ns = fn(n)
    return n, ns, tonumber(name:match("(%d+)k?$")) * (name:find("k$") and 1024 or 1)
  end
  local ns, ops = fn(n, w.write == true)
  return ops, ns, ACCESS_SIZE
end

return M
