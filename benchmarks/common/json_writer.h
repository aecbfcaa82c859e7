/* A streaming JSON writer into a caller's buffer, for ohm-bench's result lines and ohm-stress's summary.
 *
 * It never allocates (ohm-bench's children write their result line while the allocator under test is live).
 * Output that does not fit sets overflow and is dropped; the buffer always holds a NUL-terminated prefix.
 * Commas are placed by the writer: call key then a value inside an object, values alone inside an array.
 * Not thread-safe: one writer per thread.
 */
#ifndef OHM_JSON_WRITER_H
#define OHM_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct json_writer {
    char *buf;
    size_t cap, len;
    bool overflow;
    bool comma;     /* a value was written at this level: the next key or array value needs a ',' */
    bool after_key; /* a key was written: the next value follows its ':' directly */
} json_writer;

void json_init(json_writer *w, char *buf, size_t cap);
void json_object_begin(json_writer *w);
void json_object_end(json_writer *w);
void json_array_begin(json_writer *w);
void json_array_end(json_writer *w);
void json_key(json_writer *w, const char *key);
/* A string, escaped: '"', '\\' and control characters. */
void json_str(json_writer *w, const char *s);
void json_u64(json_writer *w, uint64_t v);
void json_i64(json_writer *w, int64_t v);
/* v with the given number of decimals ("%.*f"), or in "%g" form for decimals < 0. JSON has no NaN or infinity:
 * a value that is not finite is written as 0. */
void json_f64(json_writer *w, double v, int decimals);
void json_bool(json_writer *w, bool v);
/* Ends the text with a newline and returns it (the buffer). */
const char *json_line(json_writer *w);

#endif /* OHM_JSON_WRITER_H */
