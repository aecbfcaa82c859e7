-- Mapped files and shared memory as buffers: the same API as any buffer, writes reach the file, a second
-- mapping sees the first one's writes, failures are nil, message, code.
local T = require "check"
local ohm = require "ohm"

local dir = os.getenv("TMPDIR") or "/tmp"
local path = string.format("%s/ohm-lua-map-%d-%d.bin", dir, os.time(), math.random(1 << 30))

local function slurp(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

T.test("mapfile{create} makes the file, writes reach it after sync and release", function()
  local b = ohm.mapfile(path, { length = 4096, create = true })
  T.eq(#b, 4096)
  T.eq(b:origin(), "file")
  b:writestring(0, "hello, file")
  b:writeu32be(100, 0x01020304)
  T.ok(b:sync())
  T.ok(b:sync(0, 16))
  local s = slurp(path)
  T.eq(#s, 4096)
  T.eq(s:sub(1, 11), "hello, file")
  T.eq(s:sub(101, 104), "\1\2\3\4")
  T.eq(b:release(), true)
end)

T.test("mapfile read-only maps the file's bytes; offset and length pick a region", function()
  local b <close> = ohm.mapfile(path)
  T.eq(#b, 4096)
  T.eq(b:readstring(0, 5), "hello")
  T.raises("writeu8", b.writeu8, b, 0, 1) -- a read-only mapping refuses writes
  local r <close> = ohm.mapfile(path, { offset = 4096 - 8, length = 8 })
  T.eq(#r, 8)
  local w <close> = ohm.mapfile(path, { write = true, length = 16 })
  w:writestring(7, "X")
  T.eq(b:readstring(7, 1), "X", "two mappings of one file share its pages")
end)

T.test("a mapped buffer can be sealed read-only and unsealed", function()
  local w <close> = ohm.mapfile(path, { write = true })
  T.eq(w:seal(), w)
  T.raises("writeu8", w.writeu8, w, 0, 1)
  w:seal(false)
  w:writeu8(0, 0x68)
  T.eq(w:readu8(0), 0x68)
  local plain <close> = ohm.alloc(8)
  T.raises("seal", plain.seal, plain) -- only buffers that own their pages
end)

T.test("mapfile failures: nil, message, ESYS / ERANGE", function()
  T.fails("ESYS", "No such file", ohm.mapfile, dir .. "/ohm-no-such-dir/none.bin")
  T.fails("ESYS", "not a regular file", ohm.mapfile, dir) -- a directory: a file error, as ENOENT is
  T.fails("ESYS", "Is a directory", ohm.mapfile, dir, { write = true, create = true })
  T.raises("mapfile", ohm.mapfile, path, { offset = 8192, length = 8 }) -- past the end without create: ERANGE
  T.raises("bad argument", ohm.mapfile, {})
  T.raises("offset", ohm.mapfile, path, { offset = -1 })
  local plain <close> = ohm.alloc(8)
  T.raises("sync", plain.sync, plain) -- not a mapped buffer: EINVAL
end)

T.test("shared memory: anonymous, and named with a second mapping that sees the writes", function()
  local anon <close> = ohm.shm.create(nil, 8192)
  T.eq(#anon, 8192)
  T.eq(anon:origin(), "shm")
  T.eq(anon:readu64(8184), 0) -- zeroed
  local name = string.format("/ohm-lua-%d-%d", os.time(), math.random(1 << 30))
  local a <close> = ohm.shm.create(name, 4096)
  a:writestring(0, "shared!")
  local b <close> = ohm.shm.open(name, true)
  T.eq(#b, 4096)
  T.eq(b:readstring(0, 7), "shared!")
  b:writeu16(10, 0xbeef)
  T.eq(a:readu16(10), 0xbeef)
  local ro <close> = ohm.shm.open(name)
  T.raises("write", ro.writeu8, ro, 0, 1)
  T.fails("ESYS", nil, ohm.shm.create, name, 4096) -- the name exists
  T.ok(ohm.shm.unlink(name))
  T.eq(a:readstring(0, 7), "shared!", "mappings outlive the name")
  T.fails("ESYS", nil, ohm.shm.open, name)
  T.fails("ESYS", nil, ohm.shm.unlink, name)
end)

local xp_name = "a second process that opens the shared memory sees the first one's writes, and the other way"
T.child_test(xp_name, function(interp)
  local name = string.format("/ohm-lua-xp-%d-%d", os.time(), math.random(1 << 30))
  local a <close> = ohm.shm.create(name, 64)
  a:writestring(0, "from parent")
  local child = [[local ohm = require "ohm"
local b <close> = assert(ohm.shm.open("]] .. name .. [[", true))
io.write(b:readstring(0, 11))
b:writestring(16, "from child")]]
  local p = assert(io.popen(string.format("%q -e %q", interp, child)))
  local out = p:read("a")
  local ok = p:close()
  T.ok(ok, "the child exited with success")
  T.eq(out, "from parent")
  T.eq(a:readstring(16, 10), "from child")
  ohm.shm.unlink(name)
end)

os.remove(path)
T.done()
