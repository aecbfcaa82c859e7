/* host_log: a C program that embeds Lua with the ohm module linked in and has a log handler of its own. The
 * module's handler (the core's log to Lua's warn()) is process-wide and the first require decides, so each way is
 * its own process:
 *   host_log keep      the registry field "ohm.log" = false before the first require: the embedder's handler
 *                      keeps receiving the core's messages, in that state and in every state made after it
 *                      (with or without the field), and no state's warn() sees them
 *   host_log forward   no field: the module takes the log, and a core message reaches the state's warn()
 * Output follows tests/check.h ("ok NAME", "N passed, N failed").
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "ohm.h"

int luaopen_ohm(lua_State *L);

static int embedder_messages; /* what the embedder's own handler received */
static char embedder_last[256];
static int warnings; /* what the states' warn functions received (whole messages) */
static char warning_text[512];

static void embedder_log(void *arg, ohm_log_level level, const char *message)
{
    (void)arg;
    (void)level;
    embedder_messages++;
    snprintf(embedder_last, sizeof embedder_last, "%s", message);
}

static void count_warning(void *ud, const char *msg, int tocont)
{
    (void)ud;
    size_t n = strlen(warning_text);
    snprintf(warning_text + n, sizeof warning_text - n, "%s", msg);
    if (!tocont) warnings++;
}

/* A state with the module required; opt_out sets "ohm.log" = false first. */
static lua_State *new_state(int opt_out)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_setwarnf(L, count_warning, NULL);
    if (opt_out) {
        lua_pushboolean(L, 0);
        lua_setfield(L, LUA_REGISTRYINDEX, "ohm.log");
    }
    luaL_requiref(L, "ohm", luaopen_ohm, 1);
    lua_pop(L, 1);
    return L;
}

/* Makes the core log a warning from inside an ohm call of L: a task that ends with memory still held. */
static bool log_from_lua(lua_State *L)
{
    const char *chunk = "local mm <close> = ohm.mm{off_heap = 1 << 20}\n"
                        "local t = mm:task()\n"
                        "assert(t:acquire(1000) == 1000)\n"
                        "assert(t:close() == 1000)\n";
    if (luaL_dostring(L, chunk) == LUA_OK) return true;
    fprintf(stderr, "Lua error: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return false;
}

static void test_an_embedder_that_opts_out_keeps_its_log_handler(void)
{
    ohm_set_log_handler(embedder_log, NULL);
    lua_State *L = new_state(1);
    CHECK(log_from_lua(L));
    CHECK_EQ_INT(embedder_messages, 1);
    CHECK_STR_CONTAINS(embedder_last, "memory leak detected in task");
    CHECK_EQ_INT(warnings, 0);
    lua_close(L);
}

static void test_states_made_after_the_opt_out_leave_the_handler_too(void)
{
    int before = embedder_messages;
    lua_State *L = new_state(0); /* a state of some library, made without the field */
    CHECK(log_from_lua(L));
    CHECK_EQ_INT(embedder_messages, before + 1);
    CHECK_EQ_INT(warnings, 0);
    lua_close(L);
}

static void test_without_the_field_the_log_goes_to_warn(void)
{
    ohm_set_log_handler(embedder_log, NULL);
    lua_State *L = new_state(0);
    CHECK(log_from_lua(L));
    CHECK_EQ_INT(embedder_messages, 0);
    CHECK_EQ_INT(warnings, 1);
    CHECK_STR_CONTAINS(warning_text, "ohm warn: memory leak detected in task");
    lua_close(L);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "keep") == 0) {
        RUN(test_an_embedder_that_opts_out_keeps_its_log_handler);
        RUN(test_states_made_after_the_opt_out_leave_the_handler_too);
    } else if (strcmp(mode, "forward") == 0) {
        RUN(test_without_the_field_the_log_goes_to_warn);
    } else {
        fprintf(stderr, "usage: host_log keep|forward\n");
        return 2;
    }
    return check_summary();
}
