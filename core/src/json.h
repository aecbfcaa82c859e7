/* The one JSON writer of the tree: the core's leak reports and mm snapshots, ohm-bench's result lines and
 * ohm-stress's summary. It depends on nothing but the C library, so the tools use it too (through libohm.a).
 *
 * It writes into a caller's buffer and never allocates (ohm-bench's children write their result line while the
 * allocator under test is live). Like snprintf, len counts the whole text while the buffer keeps a NUL-terminated
 * prefix of at most cap - 1 bytes, so a caller can return the length it needed.
 * Commas are placed by the writer: call key then a value inside an object, values alone inside an array.
 * Not thread-safe: one writer per thread.
 */
#ifndef OHM_JSON_H
#define OHM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

typedef struct json_writer {
    char *buf;
    size_t cap;
    size_t len;         /* the length of the whole text, also what did not fit */
    bool comma;         /* a value was written at this level: the next key or array value needs a ',' */
    bool after_key;     /* a key was written: the next value follows its ':' directly */
    bool short_escapes; /* \n \r \t \b \f written as such (the leak report's form); else every control \u00XX */
} json_writer;

/* buf may be NULL when cap is 0 (only the length is wanted). */
void json_init(json_writer *w, char *buf, size_t cap);
void json_object_begin(json_writer *w);
void json_object_end(json_writer *w);
void json_array_begin(json_writer *w);
void json_array_end(json_writer *w);
void json_key(json_writer *w, const char *key);
/* A string, escaped: '"', '\\' and control characters; NULL is written as null. */
void json_str(json_writer *w, const char *s);
void json_null(json_writer *w);
void json_u64(json_writer *w, uint64_t v);
void json_i64(json_writer *w, int64_t v);
/* v with the given number of decimals ("%.*f"), or in "%g" form for decimals < 0. JSON has no NaN or infinity:
 * a value that is not finite is written as 0. */
void json_f64(json_writer *w, double v, int decimals);
void json_bool(json_writer *w, bool v);
/* Whether some of the text did not fit. */
bool json_overflow(const json_writer *w);
/* Ends the text with a newline and returns it (the buffer). */
const char *json_line(json_writer *w);

#pragma GCC visibility pop

#endif /* OHM_JSON_H */
