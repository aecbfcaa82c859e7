/* The JSON writer of json.h. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void json_init(json_writer *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = buf ? cap : 0;
    w->len = 0;
    w->comma = false;
    w->after_key = false;
    w->short_escapes = false;
    if (w->cap) buf[0] = '\0';
}

/* Appends s[0..n): what fits before the NUL is kept, the rest is only counted. */
static void put(json_writer *w, const char *s, size_t n)
{
    if (w->len < w->cap) {
        size_t room = w->cap - 1 - w->len, k = n < room ? n : room;
        memcpy(w->buf + w->len, s, k);
        w->buf[w->len + k] = '\0';
    }
    w->len += n;
}

static void puts_(json_writer *w, const char *s) { put(w, s, strlen(s)); }

/* The separator before a value: none after a key, a ',' after an earlier value at this level. */
static void before_value(json_writer *w)
{
    if (w->after_key) w->after_key = false;
    else if (w->comma) put(w, ",", 1);
    w->comma = true;
}

/* The two-character escape of c ("\\n" ...) when the writer uses them, else NULL. */
static const char *short_escape(const json_writer *w, unsigned char c)
{
    if (!w->short_escapes) return NULL;
    switch (c) {
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    case '\b': return "\\b";
    case '\f': return "\\f";
    default: return NULL;
    }
}

static void quoted(json_writer *w, const char *s)
{
    put(w, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *e = short_escape(w, c);
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(w, esc, 2);
        } else if (e) {
            puts_(w, e);
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
    if (w->comma) put(w, ",", 1);
    quoted(w, key);
    put(w, ":", 1);
    w->after_key = true;
}

/* A value written as the text s (a number or a literal). */
static void bare(json_writer *w, const char *s)
{
    before_value(w);
    puts_(w, s);
}

void json_str(json_writer *w, const char *s)
{
    if (!s) {
        json_null(w);
        return;
    }
    before_value(w);
    quoted(w, s);
}

void json_null(json_writer *w) { bare(w, "null"); }
void json_bool(json_writer *w, bool v) { bare(w, v ? "true" : "false"); }

void json_u64(json_writer *w, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    bare(w, num);
}

void json_i64(json_writer *w, int64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long)v);
    bare(w, num);
}

void json_f64(json_writer *w, double v, int decimals)
{
    char num[64];
    if (!isfinite(v)) v = 0.0;
    if (decimals < 0) snprintf(num, sizeof num, "%g", v);
    else snprintf(num, sizeof num, "%.*f", decimals, v);
    bare(w, num);
}

bool json_overflow(const json_writer *w) { return w->len >= w->cap; }

const char *json_line(json_writer *w)
{
    put(w, "\n", 1);
    return w->buf;
}
