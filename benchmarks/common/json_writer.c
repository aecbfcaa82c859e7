/* The JSON writer of json_writer.h. */
#include "json_writer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void json_init(json_writer *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = false;
    w->comma = false;
    w->after_key = false;
    if (cap)
        buf[0] = '\0';
}

/* Appends s[0..n) whole or, if it does not fit with the NUL, nothing (and sets overflow). */
static void put(json_writer *w, const char *s, size_t n)
{
    if (w->overflow || w->len + n + 1 > w->cap) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void puts_(json_writer *w, const char *s)
{
    put(w, s, strlen(s));
}

/* The separator before a value: none after a key, a ',' after an earlier value at this level. */
static void before_value(json_writer *w)
{
    if (w->after_key)
        w->after_key = false;
    else if (w->comma)
        put(w, ",", 1);
    w->comma = true;
}

static void quoted(json_writer *w, const char *s)
{
    put(w, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(w, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            puts_(w, esc);
        } else {
            put(w, s, 1);
        }
    }
    put(w, "\"", 1);
}

/* Opens an object or array: a value at the outer level, with no values yet at its own. */
static void open_level(json_writer *w, const char *bracket)
{
    before_value(w);
    put(w, bracket, 1);
    w->comma = false;
}

static void close_level(json_writer *w, const char *bracket)
{
    put(w, bracket, 1);
    w->comma = true;
}

void json_object_begin(json_writer *w) { open_level(w, "{"); }
void json_object_end(json_writer *w) { close_level(w, "}"); }
void json_array_begin(json_writer *w) { open_level(w, "["); }
void json_array_end(json_writer *w) { close_level(w, "]"); }

void json_key(json_writer *w, const char *key)
{
    if (w->comma)
        put(w, ",", 1);
    quoted(w, key);
    put(w, ":", 1);
    w->after_key = true;
}

void json_str(json_writer *w, const char *s)
{
    before_value(w);
    quoted(w, s);
}

void json_u64(json_writer *w, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    before_value(w);
    puts_(w, num);
}

void json_i64(json_writer *w, int64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long)v);
    before_value(w);
    puts_(w, num);
}

void json_f64(json_writer *w, double v, int decimals)
{
    char num[64];
    if (!isfinite(v))
        v = 0.0;
    if (decimals < 0)
        snprintf(num, sizeof num, "%g", v);
    else
        snprintf(num, sizeof num, "%.*f", decimals, v);
    before_value(w);
    puts_(w, num);
}

void json_bool(json_writer *w, bool v)
{
    before_value(w);
    puts_(w, v ? "true" : "false");
}

const char *json_line(json_writer *w)
{
    put(w, "\n", 1);
    return w->buf;
}
