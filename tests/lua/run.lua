-- Runs every tests/lua/test_*.lua in its own interpreter (the one running this file), with the module found
-- where this interpreter finds it: `luarocks test` puts the rock's tree on package.cpath. Exits non-zero when
-- any test file fails. lua5.4 tests/lua/run.lua [pattern]
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
local i = -1
while arg[i - 1] do i = i - 1 end
local lua = arg[i] or "lua5.4"

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Not found as is: the trees luarocks knows (a rock installed with --local lands in ~/.luarocks, which the default
-- path leaves out). Another tree: eval "$(luarocks --lua-version 5.4 --tree T path)" first.
if not pcall(require, "ohm") then
  local p = io.popen("luarocks --lua-version 5.4 path --lr-cpath 2>/dev/null")
  local extra = p and p:read("l")
  if p then p:close() end
  if extra and extra ~= "" then package.cpath = extra .. ";" .. package.cpath end
end

local env = string.format("LUA_CPATH=%s LUA_PATH=%s OHM_LUA_TEST_DIR=%s", quote(package.cpath),
  quote(dir .. "/?.lua;" .. package.path), quote(dir))
local failed, ran = {}, 0
local list = io.popen("ls " .. quote(dir) .. "/test_*.lua")
for file in list:lines() do
  if not arg[1] or file:find(arg[1], 1, true) then
    ran = ran + 1
    io.write("== ", file, "\n")
    io.flush()
    local ok = os.execute(env .. " " .. quote(lua) .. " " .. quote(file))
    if not ok then failed[#failed + 1] = file end
  end
end
list:close()
print(string.format("%d test files, %d failed%s", ran, #failed, #failed > 0 and ": " .. table.concat(failed, " ") or ""))
os.exit(#failed == 0 and ran > 0)
