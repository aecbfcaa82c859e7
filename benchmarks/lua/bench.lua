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

-- ---- timed loops ----

-- Every impl's timed loop is one template compiled with that impl's own code in the loop body, so the inner loop
-- is exactly what a hand-written loop would be (the same locals and upvalues, hence the same bytecode): a shared
-- loop calling each impl's code through a function would add a call per object or per access to what is
-- measured. A compiled template is a factory: given the workload's parameters (upvalues), it returns the loop.
local function compile(name, template, ...)
  return assert(load(string.format(template, ...), "=bench.lua[" .. name .. "]"))
end

-- ---- create-write-close ----

local CWC_LOOP = [[
local size, words, fmt, vals, payload = ...
return function(n, alloc)
  local pack, unpack, rep = string.pack, table.unpack, string.rep
  local sink
  bench.mark()
  local t0 = bench.now()
  for _ = 1, n do
    %s
  end
  return bench.now() - t0, sink
end
]]

-- What each impl does per object. Lua-native objects are dropped (kept in sink only until the next one).
local CWC_BODIES = {
  ["ohm"] = "local b = alloc(size) for off = 0, size - 4, 4 do b:writeu32(off, off) end b:close()",
  ["ohm-bulk"] = "local b = alloc(size) b:writestring(0, payload) b:close()",
  ["string.pack"] = "sink = pack(fmt, unpack(vals))",
  ["string.rep"] = [[sink = rep("\0\1\2\3", words)]],
  ["table"] = "local t = {} for i = 1, size do t[i] = i & 255 end sink = t",
}
local CWC_LOOPS = {}
for name, body in pairs(CWC_BODIES) do CWC_LOOPS[name] = compile(name, CWC_LOOP, body) end

local function cwc(size)
  local words = size // 4
  local vals = {}
  for i = 1, words do vals[i] = (i - 1) * 4 end
  local fmt = "<" .. string.rep("I4", words)
  local payload = string.pack(fmt, table.unpack(vals))
  local impls = {}
  for name, factory in pairs(CWC_LOOPS) do
    local loop = factory(size, words, fmt, vals, payload)
    impls[name] = function(n)
      local ns, sink = loop(n, ohm.alloc)
      assert(sink == nil or #sink == size)
      return ns
    end
  end
  return impls
end

-- ---- typed access ----

local ACCESS_SIZE = 1024

local ACCESS_LOOP = [[
local size, width, n_slots, reader, writer, fmt = ...
return function(s, passes, write, rd, wr)
  local pack, unpack = string.pack, string.unpack
  local sum, sink = 0, nil
  bench.mark()
  local t0 = bench.now()
  if write then
    for p = 1, passes do
      for off = %s do %s end
    end
  else
    for _ = 1, passes do
      for off = %s do sum = sum + %s end
    end
  end
  return bench.now() - t0, sum, sink
end
]]

-- Each impl's pass over the data s: the offsets and statement of a write pass, the offsets and expression of a read.
local ACCESS_PASSES = {
  -- s[reader](s, off) looks the method up each time, as b:readu32(off) does; the same code for both names.
  ["ohm-method"] = { "0, size - width, width", "s[writer](s, off, p)", "0, size - width, width", "s[reader](s, off)" },
  ["ohm-function"] = { "0, size - width, width", "wr(s, off, p)", "0, size - width, width", "rd(s, off)" },
  ["string"] = { "0, size - width, width", "sink = pack(fmt, p)", "1, size - width + 1, width", "unpack(fmt, s, off)" },
  ["table"] = { "1, n_slots", "s[off] = p", "1, n_slots", "s[off]" },
}
local ACCESS_LOOPS = {}
for name, pass in pairs(ACCESS_PASSES) do ACCESS_LOOPS[name] = compile(name, ACCESS_LOOP, table.unpack(pass)) end

local function access(kind, width)
  local n_slots = ACCESS_SIZE // width
  local reader, writer = "read" .. kind, "write" .. kind
  local fmt = kind == "u32" and "<I4" or "<d"
  local function value(i) return kind == "u32" and i * 2654435761 % 4294967296 or i * 0.5 end

  local function fresh()
    local b = ohm.alloc(ACCESS_SIZE)
    for i = 0, n_slots - 1 do b[writer](b, i * width, value(i)) end
    return b
  end

  -- The data each impl works on: a buffer, the same bytes as a string, a table of the numbers.
  local data = {
    ["ohm-method"] = fresh,
    ["ohm-function"] = fresh,
    ["string"] = function()
      local b = fresh()
      local s = b:tostring()
      b:close()
      return s
    end,
    ["table"] = function()
      local t = {}
      for i = 1, n_slots do t[i] = value(i - 1) end
      return t
    end,
  }

  -- Each op is one access; the loops run whole passes over the buffer (n rounded up to passes).
  local impls = {}
  for name, factory in pairs(ACCESS_LOOPS) do
    local loop = factory(ACCESS_SIZE, width, n_slots, reader, writer, fmt)
    impls[name] = function(n, write)
      local s = data[name]()
      local passes = (n + n_slots - 1) // n_slots
      local ns, sum, sink = loop(s, passes, write, ohm[reader], ohm[writer])
      if type(s) == "userdata" then s:close() end
      assert(not (write and name == "string") or #sink == width)
      return ns, passes * n_slots, sum
    end
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
