/* A flat JSON object to its row in COPY's binary format, in one C call. Pure.

   RowBinary(columns, fallback) is the fast path's first step (connector/sink/fastpath.py):
   called with a record's value, it returns the row as a COPY binary tuple (a field count,
   then each field's length and bytes in its type's binary form) when the value is a JSON
   object holding each column exactly once, in any order, under its plain name, and
   nothing else, each value of a kind this file sends exactly as PostgreSQL reads the
   Python fast path's COPY text of it. For anything else it returns fallback(value), a
   row in COPY text: this file decides nothing on its own, and tests/unit/test_rowbinary.py
   checks that wherever it answers, its values are those of the Python fast path's row.

   PostgreSQL reads a binary field without parsing text: a text field is its UTF-8 bytes,
   with JSON's escapes decoded (a `\uXXXX` to its character in UTF-8); the whole document
   is checked as UTF-8 first, so text PostgreSQL would refuse never gets here.

   It answers (the fallback decides otherwise):
   - smallint, integer, bigint: a JSON integer in range, or a string holding one;
   - numeric: a JSON number without an exponent, or a string holding one, in base-10000
     digits with the scale as written (not 0.0000001, which Python's Decimal prints as 1E-7);
   - float (double precision): any finite JSON number, the double Python reads;
   - real: any JSON number whose double, as Python's repr prints it, is a finite normal
     float (strtof of that text, as PostgreSQL reads it);
   - boolean: true or false;
   - text (varchar(n): at most n characters): any JSON string without a NUL;
   - timestamptz: YYYY-MM-DD[T ]HH:MM[:SS[.f{1,6}]] then Z or +-HH:MM (at most 15 hours,
     as PostgreSQL takes) — or no offset, when made with naive_is_utc (the session's
     TimeZone, SINK_TIMEZONE, is UTC) — a valid date and time: microseconds since
     2000-01-01 UTC; or epoch milliseconds, a JSON integer in the years 1 to 9999;
   - timestamp (without time zone): the same text without an offset, its wall time as
     written; with an offset, or epoch milliseconds, only made with naive_is_utc: the
     instant's UTC wall time, in the years 1 to 9999;
   - date: YYYY-MM-DD, a valid date; uuid: the canonical lowercase form;
   - jsonb: any JSON value (nested at most 64 deep), sent as written: PostgreSQL parses
     it as it parses the Python path's text of the value (orjson's), and the two texts
     differ only in what jsonb does not keep (spacing, escapes, key order, a key given
     twice: the last wins in both) — so long as each number in it is an integer of at
     most 18 digits (not -0), or a fraction without an exponent written as Python's repr
     writes its double (jsonb keeps a number's digits as written: `1.50`, `1e2` and
     `0.1000000000000000055` are the fallback's, whose double orjson writes `1.5`, `100.0`
     and `0.1`);
   - text[] (of PostgreSQL's text, not varchar or char: the element type is in the
     binary form): a JSON array of strings (as text takes them) and nulls, one dimension;
   - null, where the column is nullable.

   Made with `keys` (the indices of the key columns: integer, text or uuid columns) and
   `op` (the op's type, kind and column names), it returns op(kind, names, row, key,
   None) instead of the row alone: the key is the key columns' COPY text, as the Python
   fast path forms it (upsert and insert-ignore tables).

   A column made optional (one with a default, or nullable; never a key column) may be
   absent from the object: the row then holds the columns present, in table order, and
   the answer is op(kind, the names of those columns, row, key or (), None), the names
   one tuple per set of columns, as the general path forms such an op (a table's
   columns with defaults — an identity, `DEFAULT now()` — are often absent from every
   record). It needs `op`; only the first 64 columns can be optional.

   Made with `skip`, it passes over fields no column takes (up to 64, each a valid
   JSON value, nested at most 64 deep; none given twice) when, the object read, skip(the
   names of those that are not null) says so: it counts them and answers True when the
   general path would do nothing else with them (no column to make; each told already),
   False to leave the record to the fallback. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_SMALLINT, K_INTEGER, K_BIGINT, K_NUMERIC, K_FLOAT, K_REAL, K_BOOLEAN, K_TEXT, K_TIMESTAMPTZ, K_DATE,
            K_UUID, K_TIMESTAMP, K_JSONB, K_TEXT_ARRAY };
static const char *const KIND_NAMES[] = {"smallint", "integer", "bigint", "numeric", "float", "real", "boolean",
                                         "text", "timestamptz", "date", "uuid", "timestamp", "jsonb", "text[]", NULL};

#define NUMERIC_POS 0x0000
#define NUMERIC_NEG 0x4000
#define MAX_NUMERIC_DIGITS 1000 /* on either side of the point; longer numbers are the fallback's */
#define POSTGRES_EPOCH_DAYS 10957 /* 2000-01-01 less 1970-01-01 */
#define TEXT_OID 25 /* text[]'s element type, in its binary form */

typedef struct {
    char *name;
    Py_ssize_t name_len;
    enum kind kind;
    Py_ssize_t max_chars; /* varchar(n): n; otherwise -1 */
    int nullable;
    int optional; /* may be absent: the row then leaves it out (its default, or NULL, applies) */
} Column;

#define MAX_SHAPES 16 /* column sets with an absent optional column, each with its names' tuple */
#define MAX_OTHERS 64 /* fields no column takes, in one object; more are the fallback's */
#define MAX_DEPTH 64 /* of a value no column takes; deeper ones are the fallback's */

typedef struct {
    PyObject_HEAD
    Column *columns;
    Py_ssize_t count;
    int naive_is_utc; /* a timestamp without an offset is UTC (else the fallback's) */
    PyObject *fallback;
    char *buf; /* the field count, then the fields in document order */
    char *row; /* the same in column order, when the document's order differs */
    Py_ssize_t capacity;
    Py_ssize_t *start, *length;
    Py_ssize_t *keys, key_count; /* the key columns' indices (keyed tables), else none */
    char *key; /* a text key's COPY text */
    Py_ssize_t key_capacity;
    PyObject *op_type, *op_kind, *op_names; /* what an op is made of (keyed tables, absent columns) */
    uint64_t absent; /* the last row's absent columns, a bit each */
    PyObject *skip; /* asked of the fields no column takes (skip(names) -> bool), or NULL: the fallback's */
    const unsigned char *others[MAX_OTHERS]; /* the last row's fields no column takes: [0, valued) hold a value */
    Py_ssize_t other_lengths[MAX_OTHERS];
    int valued;
    uint64_t shape_masks[MAX_SHAPES];
    PyObject *shape_names[MAX_SHAPES];
    int shapes;
} RowBinary;

/* The parser's position; every reader returns 0 when the fallback must decide. */
typedef struct {
    const unsigned char *p, *end;
    unsigned char *out;
    int naive_is_utc;
} Cursor;

static inline void skip_space(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static inline int is_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }

static void put_be(Cursor *c, uint64_t value, int bytes) {
    for (int i = bytes - 1; i >= 0; i--)
        *c->out++ = (unsigned char)(value >> (8 * i));
}

/* A field's length, then `bytes` bytes of `value`, big-endian. */
static int put_field(Cursor *c, uint64_t value, int bytes) {
    put_be(c, (uint64_t)bytes, 4);
    put_be(c, value, bytes);
    return 1;
}

/* A JSON number's parts: [start, int_end) the sign and integer digits, then the fraction
   and the exponent, each empty when absent. */
typedef struct {
    const unsigned char *start, *int_end, *frac_end, *end;
} Number;

static int literal(Cursor *c, const char *word, Py_ssize_t n) {
    if (c->end - c->p < n || memcmp(c->p, word, (size_t)n) != 0)
        return 0;
    c->p += n;
    return 1;
}

static int number(Cursor *c, Number *n) {
    const unsigned char *p = c->p, *end = c->end;
    n->start = p;
    if (p < end && *p == '-')
        p++;
    if (p >= end || !is_digit(*p))
        return 0;
    if (*p == '0')
        p++;
    else
        while (p < end && is_digit(*p))
            p++;
    n->int_end = p;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return 0;
        while (p < end && is_digit(*p))
            p++;
    }
    n->frac_end = p;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return 0;
        while (p < end && is_digit(*p))
            p++;
    }
    n->end = c->p = p;
    return 1;
}

/* A JSON number, or a JSON string holding exactly one (no escape, no space): its parts. */
static int number_or_string(Cursor *c, Number *n) {
    if (c->p >= c->end || *c->p != '"')
        return number(c, n);
    c->p++;
    if (!number(c, n) || c->p >= c->end || *c->p != '"')
        return 0;
    c->p++;
    return 1;
}

/* A JSON integer's magnitude (no fraction, no exponent, at most `max_digits` digits), or 0. */
static int magnitude_of(const Number *n, int max_digits, uint64_t *magnitude) {
    const unsigned char *d = n->start + (*n->start == '-');
    if (n->int_end != n->end || n->int_end - d > max_digits)
        return 0;
    for (*magnitude = 0; d < n->int_end; d++)
        *magnitude = *magnitude * 10 + (uint64_t)(*d - '0');
    return 1;
}

static int integer(Cursor *c, int bits) {
    Number n;
    uint64_t magnitude;
    if (!number_or_string(c, &n) || !magnitude_of(&n, 19, &magnitude))
        return 0;
    int negative = *n.start == '-';
    if (magnitude > (UINT64_C(1) << (bits - 1)) - (negative ? 0 : 1))
        return 0;
    return put_field(c, negative ? UINT64_C(0) - magnitude : magnitude, bits / 8);
}

/* `count` decimal digits at p as a base-10000 digit. */
static unsigned group(const unsigned char *p, int count) {
    unsigned value = 0;
    for (int i = 0; i < count; i++)
        value = value * 10 + (unsigned)(p[i] - '0');
    return value;
}

/* A JSON number (or a string holding one) as PostgreSQL's binary numeric: base-10000
   digits around the point, the weight of the first, the sign and the scale (the
   fraction's digits as written). */
static int numeric(Cursor *c) {
    Number n;
    if (!number_or_string(c, &n) || n.frac_end != n.end)
        return 0;
    const unsigned char *integral = n.start + (*n.start == '-');
    Py_ssize_t int_len = n.int_end - integral, frac_len = n.frac_end > n.int_end ? n.frac_end - n.int_end - 1 : 0;
    if (int_len > MAX_NUMERIC_DIGITS || frac_len > MAX_NUMERIC_DIGITS)
        return 0;
    const unsigned char *fraction = n.int_end + 1;
    if (int_len == 1 && *integral == '0' && frac_len > 0) {
        /* 0.f: Decimal prints it plainly while its adjusted exponent is -6 or more */
        Py_ssize_t zeros = 0;
        while (zeros < frac_len && fraction[zeros] == '0')
            zeros++;
        if ((zeros == frac_len ? zeros : zeros + 1) > 6)
            return 0;
    }
    unsigned digits[MAX_NUMERIC_DIGITS / 2 + 4];
    int count = 0, head = (int)(int_len % 4 ? int_len % 4 : 4);
    int weight = (int)((int_len + 3) / 4) - 1;
    for (Py_ssize_t i = 0; i < int_len; i += head, head = 4)
        digits[count++] = group(integral + i, head);
    for (Py_ssize_t i = 0; i < frac_len; i += 4) {
        int take = frac_len - i < 4 ? (int)(frac_len - i) : 4;
        unsigned value = group(fraction + i, take);
        for (int pad = take; pad < 4; pad++)
            value *= 10;
        digits[count++] = value;
    }
    int first = 0;
    while (first < count && digits[first] == 0)
        first++, weight--;
    while (count > first && digits[count - 1] == 0)
        count--;
    int ndigits = count - first;
    unsigned sign = *n.start == '-' && ndigits ? NUMERIC_NEG : NUMERIC_POS;
    put_be(c, (uint64_t)(8 + 2 * ndigits), 4);
    put_be(c, (uint64_t)ndigits, 2);
    put_be(c, (uint64_t)(uint16_t)(ndigits ? weight : 0), 2);
    put_be(c, sign, 2);
    put_be(c, (uint64_t)frac_len, 2);
    for (int i = first; i < count; i++)
        put_be(c, digits[i], 2);
    return 1;
}

/* The double Python reads from a JSON number, or 0 when it is not finite. */
static int read_double(Cursor *c, double *value) {
    Number n;
    if (!number(c, &n))
        return 0;
    char text[64];
    if (n.end - n.start >= (Py_ssize_t)sizeof text)
        return 0;
    memcpy(text, n.start, (size_t)(n.end - n.start));
    text[n.end - n.start] = '\0';
    *value = PyOS_string_to_double(text, NULL, NULL);
    if (*value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (n.int_end == n.end && *value == 0.0)
        *value = 0.0; /* an integer is read as one first, and int -0 is 0: 0.0, not -0.0 */
    return isfinite(*value);
}

static int float8(Cursor *c) {
    double value;
    uint64_t bits;
    if (!read_double(c, &value))
        return 0;
    memcpy(&bits, &value, sizeof bits);
    return put_field(c, bits, 8);
}

/* A real column reads the double's repr as text (strtof): the same float here. A value
   strtof finds out of range (PostgreSQL refuses some, keeps others) is the fallback's. */
static int float4(Cursor *c) {
    double value;
    if (!read_double(c, &value))
        return 0;
    char *repr = PyOS_double_to_string(value, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (repr == NULL) {
        PyErr_Clear();
        return 0;
    }
    errno = 0;
    float single = strtof(repr, NULL);
    int in_range = errno == 0 && isfinite(single);
    PyMem_Free(repr);
    uint32_t bits;
    memcpy(&bits, &single, sizeof bits);
    return in_range && put_field(c, bits, 4);
}

static int hex4(const unsigned char *p, unsigned *value) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            v |= ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            v |= ch - 'A' + 10;
        else
            return 0;
    }
    *value = v;
    return 1;
}

/* A character decoded from a \u escape, in UTF-8. */
static void put_char(Cursor *c, unsigned code) {
    unsigned char *o = c->out;
    if (code < 0x80) *o++ = (unsigned char)code;
    else if (code < 0x800) { *o++ = (unsigned char)(0xC0 | code >> 6); *o++ = (unsigned char)(0x80 | (code & 0x3F)); }
    else if (code < 0x10000) {
        *o++ = (unsigned char)(0xE0 | code >> 12); *o++ = (unsigned char)(0x80 | (code >> 6 & 0x3F));
        *o++ = (unsigned char)(0x80 | (code & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | code >> 18); *o++ = (unsigned char)(0x80 | (code >> 12 & 0x3F));
        *o++ = (unsigned char)(0x80 | (code >> 6 & 0x3F)); *o++ = (unsigned char)(0x80 | (code & 0x3F));
    }
    c->out = o;
}

/* A JSON string's text, unescaped, as a field; *chars counts its characters. */
static int string(Cursor *c, Py_ssize_t *chars) {
    const unsigned char *p = c->p, *end = c->end;
    if (p >= end || *p != '"')
        return 0;
    p++;
    unsigned char *length = c->out;
    c->out += 4;
    Py_ssize_t count = 0;
    for (;;) {
        const unsigned char *run = p; /* a run of plain bytes, copied at once */
        while (p < end && *p != '"' && *p != '\\' && *p >= 0x20) {
            count += (*p & 0xC0) != 0x80; /* UTF-8 lead bytes: the document was checked as UTF-8 */
            p++;
        }
        memcpy(c->out, run, (size_t)(p - run));
        c->out += p - run;
        if (p >= end || *p < 0x20)
            return 0;
        if (*p == '"')
            break;
        if (++p >= end)
            return 0;
        count++;
        switch (*p++) {
        case '"': *c->out++ = '"'; break;
        case '/': *c->out++ = '/'; break;
        case '\\': *c->out++ = '\\'; break;
        case 't': *c->out++ = '\t'; break;
        case 'n': *c->out++ = '\n'; break;
        case 'r': *c->out++ = '\r'; break;
        case 'b': *c->out++ = '\b'; break;
        case 'f': *c->out++ = '\f'; break;
        case 'u': {
            unsigned code, low;
            if (end - p < 4 || !hex4(p, &code) || code == 0)
                return 0; /* PostgreSQL stores no NUL */
            p += 4;
            if (code >= 0xDC00 && code <= 0xDFFF)
                return 0; /* a lone low surrogate */
            if (code >= 0xD800 && code <= 0xDBFF) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, &low) || low < 0xDC00 || low > 0xDFFF)
                    return 0; /* a lone high surrogate */
                p += 6;
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            }
            put_char(c, code);
            break;
        }
        default:
            return 0;
        }
    }
    c->p = p + 1;
    Py_ssize_t size = c->out - length - 4;
    for (int i = 3; i >= 0; i--, size >>= 8)
        length[i] = (unsigned char)size;
    *chars = count;
    return 1;
}

/* Whether [p, end) is UTF-8 as PostgreSQL takes it: no overlong form, no surrogate,
   nothing past U+10FFFF (a NUL is refused where it matters: in a string). */
static int utf8(const unsigned char *p, const unsigned char *end) {
    while (p < end) {
        while (end - p >= 8) { /* ASCII, eight bytes at a time */
            uint64_t chunk;
            memcpy(&chunk, p, sizeof chunk);
            if (chunk & UINT64_C(0x8080808080808080))
                break;
            p += 8;
        }
        if (p >= end)
            break;
        unsigned char b = *p;
        if (b < 0x80) {
            p++;
            continue;
        }
        int more;
        unsigned char low = 0x80, high = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) more = 1;
        else if (b >= 0xE0 && b <= 0xEF) {
            more = 2;
            if (b == 0xE0) low = 0xA0;
            else if (b == 0xED) high = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            more = 3;
            if (b == 0xF0) low = 0x90;
            else if (b == 0xF4) high = 0x8F;
        } else
            return 0;
        if (end - p <= more || p[1] < low || p[1] > high)
            return 0;
        for (int i = 2; i <= more; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        p += more + 1;
    }
    return 1;
}

/* Two digits in [low, high] at p. */
static int digits2(const unsigned char *p, int low, int high, int *value) {
    if (!is_digit(p[0]) || !is_digit(p[1]))
        return 0;
    *value = (p[0] - '0') * 10 + (p[1] - '0');
    return *value >= low && *value <= high;
}

/* Days from 2000-01-01 to YYYY-MM-DD at p, a valid date. */
static int date_days(const unsigned char *p, int64_t *days) {
    static const int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int century, year, month, day;
    if (!digits2(p, 0, 99, &century) || !digits2(p + 2, 0, 99, &year) || p[4] != '-' || p[7] != '-'
        || !digits2(p + 5, 1, 12, &month) || !digits2(p + 8, 1, 31, &day))
        return 0;
    year += century * 100;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1 || day > DAYS[month - 1] + (month == 2 && leap))
        return 0;
    /* days from civil (the proleptic Gregorian calendar), counted from 1970-01-01 */
    int64_t y = year - (month <= 2), era = y / 400, yoe = y - era * 400;
    int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    *days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468 - POSTGRES_EPOCH_DAYS;
    return 1;
}

/* A JSON string without escapes holding [p, end) of `len` bytes, or 0. */
static int plain_string(Cursor *c, const unsigned char **text, Py_ssize_t *len) {
    const unsigned char *p = c->p;
    if (p >= c->end || *p != '"')
        return 0;
    const unsigned char *close = memchr(p + 1, '"', (size_t)(c->end - p - 1));
    if (close == NULL || memchr(p + 1, '\\', (size_t)(close - p - 1)) != NULL)
        return 0;
    *text = p + 1;
    *len = close - p - 1;
    c->p = close + 1;
    return 1;
}

#define MIN_EPOCH_MS INT64_C(-62135596800000) /* 0001-01-01T00:00:00Z */
#define MAX_EPOCH_MS INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */

/* Epoch milliseconds (a JSON integer in the years 1 to 9999) as microseconds since
   2000-01-01 UTC. */
static int epoch_ms(Cursor *c) {
    Number n;
    uint64_t magnitude;
    if (!number(c, &n) || !magnitude_of(&n, 15, &magnitude))
        return 0;
    int64_t ms = *n.start == '-' ? -(int64_t)magnitude : (int64_t)magnitude;
    if (ms < MIN_EPOCH_MS || ms > MAX_EPOCH_MS)
        return 0;
    return put_field(c, (uint64_t)(ms * 1000 - INT64_C(86400000000) * POSTGRES_EPOCH_DAYS), 8);
}

#define MIN_WALL_SECONDS INT64_C(-63082281600) /* 0001-01-01T00:00:00, from 2000-01-01 */
#define MAX_WALL_SECONDS INT64_C(252455615999) /* 9999-12-31T23:59:59 */

/* Microseconds since 2000-01-01 UTC of YYYY-MM-DD[T ]HH:MM[:SS[.f{1,6}]](Z|+-HH:MM), or
   of epoch milliseconds. `wall`: for a timestamp without time zone, the wall time in
   the session's zone — as written when the text has no offset, else (only when that
   zone is UTC) the instant's UTC time, within the years 1 to 9999 as Python's datetime. */
static int timestamp_micros(Cursor *c, int wall) {
    const unsigned char *t;
    Py_ssize_t len;
    int64_t days;
    int hour, minute, second = 0, v;
    if (c->p < c->end && (is_digit(*c->p) || *c->p == '-'))
        return (!wall || c->naive_is_utc) && epoch_ms(c);
    if (!plain_string(c, &t, &len) || len < 16 || !date_days(t, &days) || (t[10] != 'T' && t[10] != ' ')
        || !digits2(t + 11, 0, 23, &hour) || t[13] != ':' || !digits2(t + 14, 0, 59, &minute))
        return 0;
    Py_ssize_t i = 16;
    int64_t micros = 0;
    if (i < len && t[i] == ':') {
        if (len < i + 3 || !digits2(t + i + 1, 0, 59, &second))
            return 0;
        i += 3;
        if (i < len && t[i] == '.') {
            Py_ssize_t f = ++i;
            while (i < len && is_digit(t[i]))
                micros = micros * 10 + (t[i++] - '0');
            if (i == f || i - f > 6)
                return 0;
            for (Py_ssize_t pad = i - f; pad < 6; pad++)
                micros *= 10;
        }
    }
    int64_t offset = 0; /* seconds east of UTC */
    int zoned = i < len && (t[i] == 'Z' || t[i] == '+' || t[i] == '-'); /* an instant, not a wall time */
    if (i < len && t[i] == 'Z')
        i++;
    else if (i < len && (t[i] == '+' || t[i] == '-')) {
        int offset_hours;
        if (len < i + 6 || !digits2(t + i + 1, 0, 15, &offset_hours) || t[i + 3] != ':' || !digits2(t + i + 4, 0, 59, &v))
            return 0;
        offset = (t[i] == '-' ? -1 : 1) * (offset_hours * 3600 + v * 60);
        i += 6;
    } else if (!wall && !c->naive_is_utc)
        return 0; /* no offset: the session's TimeZone reads it, the fallback's text */
    if (i != len || (wall && zoned && !c->naive_is_utc))
        return 0; /* an instant into a wall time of another zone than UTC: the fallback's */
    int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset;
    if (wall && (seconds < MIN_WALL_SECONDS || seconds > MAX_WALL_SECONDS))
        return 0;
    return put_field(c, (uint64_t)(seconds * 1000000 + micros), 8);
}

static int date(Cursor *c) {
    const unsigned char *t;
    Py_ssize_t len;
    int64_t days;
    if (!plain_string(c, &t, &len) || len != 10 || !date_days(t, &days))
        return 0;
    return put_field(c, (uint64_t)days, 4);
}

static int uuid(Cursor *c) {
    const unsigned char *t;
    Py_ssize_t len;
    if (!plain_string(c, &t, &len) || len != 36)
        return 0;
    put_be(c, 16, 4);
    for (Py_ssize_t i = 0; i < 36; i += 2) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (t[i] != '-')
                return 0;
            i--;
            continue;
        }
        unsigned pair = 0;
        for (int k = 0; k < 2; k++) {
            unsigned char ch = t[i + k];
            if (is_digit(ch))
                pair = pair << 4 | (unsigned)(ch - '0');
            else if (ch >= 'a' && ch <= 'f')
                pair = pair << 4 | (unsigned)(ch - 'a' + 10);
            else
                return 0; /* not the canonical lowercase form */
        }
        *c->out++ = (unsigned char)pair;
    }
    return 1;
}

typedef int (*NumberCheck)(const Number *n);

static int any_number(const Number *n) {
    (void)n;
    return 1;
}

/* Whether a number in a jsonb value is written as the Python path writes the int or
   double Python reads of it (orjson writes a double as repr does, where repr has no
   exponent), so that PostgreSQL keeps the same digits from either text. */
static int as_python_writes(const Number *n) {
    const unsigned char *digits = n->start + (*n->start == '-');
    if (n->end != n->frac_end)
        return 0; /* an exponent */
    if (n->frac_end == n->int_end) /* an integer: Python's int, written back alike */
        return n->int_end - digits <= 18 && !(*n->start == '-' && *digits == '0');
    char text[32];
    Py_ssize_t size = n->end - n->start;
    if (size >= (Py_ssize_t)sizeof text)
        return 0; /* longer than any repr without an exponent */
    memcpy(text, n->start, (size_t)size);
    text[size] = '\0';
    double d = PyOS_string_to_double(text, NULL, NULL);
    if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    char *repr = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (repr == NULL) {
        PyErr_Clear();
        return 0;
    }
    int same = strlen(repr) == (size_t)size && memcmp(repr, text, (size_t)size) == 0;
    PyMem_Free(repr);
    return same;
}

/* Past any JSON value that is valid, as `string` and `number` read them (so no NUL, no
   lone surrogate), each number passing `check`, nested at most MAX_DEPTH deep; 0
   otherwise. A string is decoded into the output and dropped. */
static int json_value(Cursor *c, int depth, NumberCheck check) {
    if (c->p >= c->end)
        return 0;
    switch (*c->p) {
    case '"': {
        unsigned char *out = c->out;
        Py_ssize_t chars;
        int ok = string(c, &chars);
        c->out = out;
        return ok;
    }
    case 'n': return literal(c, "null", 4);
    case 't': return literal(c, "true", 4);
    case 'f': return literal(c, "false", 5);
    case '[':
    case '{': {
        unsigned char close = *c->p == '[' ? ']' : '}';
        if (depth >= MAX_DEPTH)
            return 0;
        c->p++;
        skip_space(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 1;
        }
        for (;;) {
            if (close == '}') { /* a member: a string, a colon, a value */
                if (c->p >= c->end || *c->p != '"' || !json_value(c, depth + 1, check))
                    return 0;
                skip_space(c);
                if (c->p >= c->end || *c->p++ != ':')
                    return 0;
                skip_space(c);
            }
            if (!json_value(c, depth + 1, check))
                return 0;
            skip_space(c);
            if (c->p >= c->end)
                return 0;
            if (*c->p == ',') {
                c->p++;
                skip_space(c);
                continue;
            }
            return *c->p++ == close;
        }
    }
    default: {
        Number n;
        return number(c, &n) && check(&n);
    }
    }
}

/* Past any valid JSON value (json_value, any number). */
static int skip_value(Cursor *c, int depth) { return json_value(c, depth, any_number); }

/* A text[] field: a JSON array of strings and nulls in the array's binary form: the
   dimensions (one; none when empty), whether any element is null, the element type,
   the length and lower bound (1), then each element as a field. */
static int text_array(Cursor *c) {
    if (c->p >= c->end || *c->p != '[')
        return 0;
    c->p++;
    unsigned char *field = c->out;
    c->out += 24; /* the field's length and the header, written last */
    uint64_t count = 0, nulls = 0;
    skip_space(c);
    if (c->p < c->end && *c->p == ']')
        c->p++;
    else
        for (;;) {
            Py_ssize_t chars;
            if (c->p < c->end && *c->p == 'n') {
                if (!literal(c, "null", 4))
                    return 0;
                put_be(c, UINT32_MAX, 4);
                nulls = 1;
            } else if (!string(c, &chars))
                return 0;
            count++;
            skip_space(c);
            if (c->p >= c->end || count > INT32_MAX)
                return 0;
            if (*c->p == ',') {
                c->p++;
                skip_space(c);
                continue;
            }
            if (*c->p++ != ']')
                return 0;
            break;
        }
    Cursor header = {NULL, NULL, field, 0};
    uint64_t dimensions = count > 0; /* the empty array has none, nor their length and bound */
    if (!dimensions)
        c->out = field + 16;
    put_be(&header, (uint64_t)(c->out - field - 4), 4);
    put_be(&header, dimensions, 4);
    put_be(&header, nulls, 4);
    put_be(&header, TEXT_OID, 4);
    if (dimensions) {
        put_be(&header, count, 4);
        put_be(&header, 1, 4);
    }
    return 1;
}

/* A jsonb field: its version (1), then the value's JSON text as written. */
static int jsonb(Cursor *c) {
    const unsigned char *start = c->p;
    if (!json_value(c, 0, as_python_writes))
        return 0;
    Py_ssize_t size = c->p - start;
    put_be(c, (uint64_t)size + 1, 4);
    *c->out++ = 1;
    memcpy(c->out, start, (size_t)size);
    c->out += size;
    return 1;
}

static int value(Cursor *c, const Column *column) {
    if (c->p < c->end && *c->p == 'n') {
        if (!column->nullable || !literal(c, "null", 4))
            return 0;
        put_be(c, UINT32_MAX, 4); /* length -1: NULL */
        return 1;
    }
    switch (column->kind) {
    case K_SMALLINT: return integer(c, 16);
    case K_INTEGER: return integer(c, 32);
    case K_BIGINT: return integer(c, 64);
    case K_NUMERIC: return numeric(c);
    case K_FLOAT: return float8(c);
    case K_REAL: return float4(c);
    case K_BOOLEAN:
        if (literal(c, "true", 4)) return put_field(c, 1, 1);
        if (literal(c, "false", 5)) return put_field(c, 0, 1);
        return 0;
    case K_TEXT: {
        Py_ssize_t chars;
        return string(c, &chars) && (column->max_chars < 0 || chars <= column->max_chars);
    }
    case K_TIMESTAMPTZ: return timestamp_micros(c, 0);
    case K_TIMESTAMP: return timestamp_micros(c, 1);
    case K_DATE: return date(c);
    case K_UUID: return uuid(c);
    case K_JSONB: return jsonb(c);
    case K_TEXT_ARRAY: return text_array(c);
    }
    return 0;
}

/* Whether `skip` passes over the last row's fields no column takes that hold a value: 1,
   0 (the fallback's), or -1 with an error set. */
static int skipped(RowBinary *self) {
    PyObject *fields = PyTuple_New(self->valued), *answer;
    if (fields == NULL)
        return -1;
    for (int i = 0; i < self->valued; i++) {
        PyObject *name = PyUnicode_DecodeUTF8((const char *)self->others[i], self->other_lengths[i], "strict");
        if (name == NULL) {
            Py_DECREF(fields);
            return -1;
        }
        PyTuple_SET_ITEM(fields, i, name);
    }
    answer = PyObject_CallOneArg(self->skip, fields);
    Py_DECREF(fields);
    if (answer == NULL)
        return -1;
    int ok = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return ok;
}

static int reserve(RowBinary *self, Py_ssize_t size) {
    if (size <= self->capacity)
        return 1;
    char *buf = PyMem_Realloc(self->buf, (size_t)size), *row;
    if (buf == NULL)
        return 0;
    self->buf = buf;
    row = PyMem_Realloc(self->row, (size_t)size);
    if (row == NULL)
        return 0;
    self->row = row;
    self->capacity = size;
    return 1;
}

static int reserve_key(RowBinary *self, Py_ssize_t size) {
    if (size <= self->key_capacity)
        return 1;
    char *key = PyMem_Realloc(self->key, (size_t)size + 1);
    if (key == NULL)
        return 0;
    self->key = key;
    self->key_capacity = size;
    return 1;
}

/* The row's COPY binary tuple, NULL (no error set) when the fallback decides, NULL with
   an error set when memory runs out. */
static PyObject *row_binary(RowBinary *self, const char *data, Py_ssize_t size) {
    /* A field is at most its JSON text and its length; a number or a null's at most 24 bytes
       more, an array's 24 and one for each element (each at least 3 bytes of JSON text). */
    if (!reserve(self, size + size / 3 + 32 * self->count + 16))
        return PyErr_NoMemory();
    Cursor c = {(const unsigned char *)data, (const unsigned char *)data + size, (unsigned char *)self->buf,
                self->naive_is_utc};
    if (!utf8(c.p, c.end))
        return NULL;
    Py_ssize_t seen = 0, in_order = 1, *other_lengths = self->other_lengths;
    const unsigned char **others = self->others;
    int other_count = 0, valued = 0; /* fields no column takes; [0, valued) hold a value, the nulls after */
    for (Py_ssize_t i = 0; i < self->count; i++)
        self->start[i] = -1;
    put_be(&c, (uint64_t)self->count, 2);
    skip_space(&c);
    if (c.p >= c.end || *c.p++ != '{')
        return NULL;
    for (;;) {
        skip_space(&c);
        if (c.p >= c.end || *c.p++ != '"')
            return NULL;
        const unsigned char *name = c.p;
        while (c.p < c.end && *c.p != '"' && *c.p != '\\')
            c.p++;
        if (c.p >= c.end || *c.p != '"')
            return NULL; /* an escaped name: the fallback matches it */
        Py_ssize_t name_len = c.p++ - name, i;
        for (i = 0; i < self->count; i++)
            if (self->columns[i].name_len == name_len && memcmp(self->columns[i].name, name, (size_t)name_len) == 0)
                break;
        if (i < self->count && self->start[i] >= 0)
            return NULL; /* a field given twice */
        skip_space(&c);
        if (c.p >= c.end || *c.p++ != ':')
            return NULL;
        skip_space(&c);
        if (i == self->count) { /* a field no column has: skip() decides, once the object is read */
            if (self->skip == NULL || other_count == MAX_OTHERS)
                return NULL;
            for (int o = 0; o < other_count; o++)
                if (other_lengths[o] == name_len && memcmp(others[o], name, (size_t)name_len) == 0)
                    return NULL; /* given twice */
            int is_null = c.p < c.end && *c.p == 'n';
            if (!skip_value(&c, 0))
                return NULL;
            int at = other_count++;
            if (!is_null) { /* the valued first: the first null, if any, moves to the end */
                if (valued < at)
                    others[at] = others[valued], other_lengths[at] = other_lengths[valued];
                at = valued++;
            }
            others[at] = name, other_lengths[at] = name_len;
        } else {
            unsigned char *field = c.out;
            if (!value(&c, &self->columns[i]))
                return NULL;
            self->start[i] = (char *)field - self->buf;
            self->length[i] = c.out - field;
            in_order &= i == seen;
            seen++;
        }
        skip_space(&c);
        if (c.p >= c.end)
            return NULL;
        if (*c.p == ',') {
            c.p++;
            continue;
        }
        if (*c.p++ != '}')
            return NULL;
        break;
    }
    skip_space(&c);
    if (c.p != c.end)
        return NULL;
    self->valued = valued;
    self->absent = 0;
    if (seen == 0)
        return NULL; /* no column named: the fallback's */
    if (seen != self->count) {
        for (Py_ssize_t i = 0; i < self->count; i++)
            if (self->start[i] < 0) {
                if (!self->columns[i].optional)
                    return NULL; /* a required column's field missing: the fallback's */
                self->absent |= UINT64_C(1) << i;
            }
    } else if (in_order)
        return PyBytes_FromStringAndSize(self->buf, (char *)c.out - self->buf);
    char *row = self->row;
    Cursor count = {NULL, NULL, (unsigned char *)row, 0};
    put_be(&count, (uint64_t)seen, 2);
    row += 2;
    for (Py_ssize_t i = 0; i < self->count; i++)
        if (self->start[i] >= 0) {
            memcpy(row, self->buf + self->start[i], (size_t)self->length[i]);
            row += self->length[i];
        }
    return PyBytes_FromStringAndSize(self->row, row - self->row);
}

/* The names of the columns present when `absent` are: one tuple per column set (the
   writer groups ops by it); NULL (no error set) past MAX_SHAPES sets, for the fallback. */
static PyObject *shape_names(RowBinary *self, uint64_t absent) {
    if (absent == 0)
        return self->op_names;
    for (int s = 0; s < self->shapes; s++)
        if (self->shape_masks[s] == absent)
            return self->shape_names[s];
    if (self->shapes == MAX_SHAPES)
        return NULL;
    PyObject *names = PyTuple_New(self->count - __builtin_popcountll(absent));
    if (names == NULL)
        return NULL;
    for (Py_ssize_t i = 0, n = 0; i < self->count; i++)
        if (!(absent >> i & 1)) {
            PyObject *name = PyTuple_GET_ITEM(self->op_names, i);
            Py_INCREF(name);
            PyTuple_SET_ITEM(names, n++, name);
        }
    self->shape_masks[self->shapes] = absent;
    self->shape_names[self->shapes++] = names;
    return names;
}

/* A key column's value as the Python fast path gives its key text, read back from its
   field in the document's order (its length, then its binary form): an integer in
   decimal, a uuid in canonical form, a text escaped for COPY; NULL (no error set) for a
   null, NULL with an error set when memory runs out. */
static PyObject *key_text(RowBinary *self, Py_ssize_t column) {
    const unsigned char *field = (const unsigned char *)self->buf + self->start[column] + 4;
    Py_ssize_t size = self->length[column] - 4;
    if (size < 0)
        return NULL;
    if (self->columns[column].kind == K_TEXT) {
        if (!reserve_key(self, 2 * size))
            return PyErr_NoMemory();
        char *o = self->key;
        for (Py_ssize_t i = 0; i < size; i++) {
            unsigned char ch = field[i];
            const char *escaped = ch == '\\' ? "\\\\" : ch == '\t' ? "\\t" : ch == '\n' ? "\\n" : ch == '\r' ? "\\r" : NULL;
            if (escaped != NULL) {
                *o++ = escaped[0], *o++ = escaped[1];
            } else
                *o++ = (char)ch;
        }
        return PyUnicode_DecodeUTF8(self->key, o - self->key, "strict");
    }
    char text[40];
    int n;
    if (self->columns[column].kind == K_UUID) {
        static const char hex[] = "0123456789abcdef";
        n = 0;
        for (int i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                text[n++] = '-';
            text[n++] = hex[field[i] >> 4], text[n++] = hex[field[i] & 15];
        }
        return PyUnicode_FromStringAndSize(text, n);
    }
    uint64_t bits = 0;
    for (Py_ssize_t i = 0; i < size; i++)
        bits = bits << 8 | field[i];
    int64_t value = size == 8   ? (int64_t)bits
                    : size == 4 ? (int64_t)(int32_t)(uint32_t)bits
                                : (int64_t)(int16_t)(uint16_t)bits;
    n = snprintf(text, sizeof text, "%lld", (long long)value);
    return PyUnicode_FromStringAndSize(text, n);
}

/* The answer as an op: op(kind, names, row, key, None), taking `row`; NULL (no error
   set) when a key is null or the column set is one too many. */
static PyObject *as_op(RowBinary *self, PyObject *row) {
    PyObject *names = shape_names(self, self->absent), *key = names == NULL ? NULL : PyTuple_New(self->key_count), *op;
    if (key == NULL) {
        Py_DECREF(row);
        return NULL;
    }
    for (Py_ssize_t k = 0; k < self->key_count; k++) {
        PyObject *text = key_text(self, self->keys[k]);
        if (text == NULL) { /* a null key (no error set): the fallback's */
            Py_DECREF(key);
            Py_DECREF(row);
            return NULL;
        }
        PyTuple_SET_ITEM(key, k, text);
    }
    op = ((PyTypeObject *)self->op_type)->tp_alloc((PyTypeObject *)self->op_type, 5); /* a tuple subclass */
    if (op == NULL) {
        Py_DECREF(key);
        Py_DECREF(row);
        return NULL;
    }
    Py_INCREF(self->op_kind);
    Py_INCREF(names);
    Py_INCREF(Py_None);
    PyTuple_SET_ITEM(op, 0, self->op_kind);
    PyTuple_SET_ITEM(op, 1, names);
    PyTuple_SET_ITEM(op, 2, row);
    PyTuple_SET_ITEM(op, 3, key);
    PyTuple_SET_ITEM(op, 4, Py_None);
    return op;
}

static PyObject *RowBinary_call(RowBinary *self, PyObject *args, PyObject *kwargs) {
    PyObject *value;
    if (!PyArg_UnpackTuple(args, "RowBinary", 1, 1, &value))
        return NULL;
    if (PyBytes_Check(value)) {
        PyObject *row = row_binary(self, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
        if (row != NULL && (self->key_count || self->absent))
            row = as_op(self, row);
        if (row != NULL && self->valued) { /* asked last: what it counts is then never counted again */
            int ok = skipped(self);
            if (ok <= 0)
                Py_CLEAR(row); /* with an error set when -1 */
        }
        if (row != NULL || PyErr_Occurred())
            return row;
    }
    return PyObject_CallOneArg(self->fallback, value);
}

/* What an op is made of (`op`: its type, kind and every column's name), and the key
   columns' indices, each an integer, text or uuid column: 0, or -1 with an error set. */
static int set_op(RowBinary *self, PyObject *keys, PyObject *op) {
    Py_ssize_t given = keys == NULL ? 0 : PyObject_Length(keys);
    if (given < 0)
        return -1; /* not a sequence, the error set */
    int optional = 0;
    for (Py_ssize_t i = 0; i < self->count; i++)
        optional |= self->columns[i].optional;
    if (op == NULL || op == Py_None) {
        if (given == 0 && !optional)
            return 0;
        PyErr_SetString(PyExc_ValueError, "a keyed RowBinary, or one with optional columns, needs op");
        return -1;
    }
    PyObject *op_type, *op_kind, *op_names;
    if (!PyArg_ParseTuple(op, "O!UO!;op is (a tuple subclass, kind, column names)", &PyType_Type, &op_type, &op_kind,
                          &PyTuple_Type, &op_names))
        return -1;
    if (!PyType_IsSubtype((PyTypeObject *)op_type, &PyTuple_Type) || PyTuple_GET_SIZE(op_names) != self->count) {
        PyErr_SetString(PyExc_TypeError, "op's type must be a tuple subclass, and its names one per column");
        return -1;
    }
    Py_INCREF(op_type);
    Py_INCREF(op_kind);
    Py_INCREF(op_names);
    self->op_type = op_type, self->op_kind = op_kind, self->op_names = op_names;
    if (given == 0)
        return 0;
    PyObject *seq = PySequence_Fast(keys, "keys must be a sequence");
    if (seq == NULL)
        return -1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    self->keys = PyMem_Calloc((size_t)count, sizeof(Py_ssize_t));
    if (self->keys == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t i = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(seq, k));
        if (i == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        if (i < 0 || i >= self->count || self->columns[i].optional ||
            (self->columns[i].kind > K_BIGINT && self->columns[i].kind != K_TEXT && self->columns[i].kind != K_UUID)) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "key %zd is not a required integer, text or uuid column", i);
            return -1;
        }
        self->keys[k] = i;
    }
    self->key_count = count;
    Py_DECREF(seq);
    return 0;
}

static int RowBinary_init(RowBinary *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"columns", "fallback", "naive_is_utc", "keys", "op", "skip", NULL};
    PyObject *columns, *fallback, *keys = NULL, *op = NULL, *skip = NULL;
    int naive_is_utc = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|pOOO", keywords, &columns, &fallback, &naive_is_utc, &keys, &op,
                                     &skip))
        return -1;
    PyObject *seq = PySequence_Fast(columns, "columns must be a sequence");
    if (seq == NULL)
        return -1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    if (self->columns != NULL || count == 0) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, count ? "RowBinary is initialized once" : "a row has a column at least");
        return -1;
    }
    self->columns = PyMem_Calloc((size_t)count, sizeof(Column));
    self->start = PyMem_Calloc((size_t)count, sizeof(Py_ssize_t));
    self->length = PyMem_Calloc((size_t)count, sizeof(Py_ssize_t));
    if (self->columns == NULL || self->start == NULL || self->length == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        const char *name, *kind;
        Py_ssize_t name_len, max_chars;
        int nullable, optional = 0;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i),
                              "s#snp|p;a column is (name, kind, max_chars, nullable[, optional])", &name, &name_len,
                              &kind, &max_chars, &nullable, &optional)) {
            Py_DECREF(seq);
            return -1;
        }
        Column *column = &self->columns[i];
        self->count = i + 1; /* dealloc frees what is set */
        column->name = PyMem_Malloc((size_t)name_len + 1);
        if (column->name == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(column->name, name, (size_t)name_len + 1);
        column->name_len = name_len;
        column->max_chars = max_chars;
        column->nullable = nullable;
        column->optional = optional && i < 64; /* a bit each in `absent` */
        int k = 0;
        while (KIND_NAMES[k] != NULL && strcmp(KIND_NAMES[k], kind) != 0)
            k++;
        if (KIND_NAMES[k] == NULL) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "RowBinary writes no %s column", kind);
            return -1;
        }
        column->kind = (enum kind)k;
    }
    Py_DECREF(seq);
    Py_INCREF(fallback);
    self->fallback = fallback;
    if (skip != NULL && skip != Py_None) {
        Py_INCREF(skip);
        self->skip = skip;
    }
    self->naive_is_utc = naive_is_utc;
    return set_op(self, keys, op);
}

static void RowBinary_dealloc(RowBinary *self) {
    for (Py_ssize_t i = 0; i < self->count; i++)
        PyMem_Free(self->columns[i].name);
    PyMem_Free(self->columns);
    PyMem_Free(self->start);
    PyMem_Free(self->length);
    PyMem_Free(self->buf);
    PyMem_Free(self->row);
    PyMem_Free(self->keys);
    PyMem_Free(self->key);
    Py_XDECREF(self->fallback);
    Py_XDECREF(self->skip);
    Py_XDECREF(self->op_type);
    Py_XDECREF(self->op_kind);
    Py_XDECREF(self->op_names);
    for (int s = 0; s < self->shapes; s++)
        Py_DECREF(self->shape_names[s]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef RowBinary_members[] = {
    {"fallback", T_OBJECT_EX, offsetof(RowBinary, fallback), READONLY, "what decides the values this does not answer"},
    {NULL},
};

static PyTypeObject RowBinaryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "connector.sink._rowbinary.RowBinary",
    .tp_basicsize = sizeof(RowBinary),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "RowBinary(columns, fallback, naive_is_utc=False, keys=(), op=None, skip=None): a flat JSON object's "
              "COPY binary row (keyed, or with an optional column absent: op(kind, names, row, key, None)), else fallback(value).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RowBinary_init,
    .tp_dealloc = (destructor)RowBinary_dealloc,
    .tp_call = (ternaryfunc)RowBinary_call,
    .tp_members = RowBinary_members,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rowbinary", "A flat JSON object to its COPY binary row.",
                                    -1, NULL};

PyMODINIT_FUNC PyInit__rowbinary(void) {
    if (PyType_Ready(&RowBinaryType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *kinds = PyFrozenSet_New(NULL);
    for (int k = 0; kinds != NULL && KIND_NAMES[k] != NULL; k++) {
        PyObject *name = PyUnicode_FromString(KIND_NAMES[k]);
        if (name == NULL || PySet_Add(kinds, name) < 0) {
            Py_XDECREF(name);
            Py_CLEAR(kinds);
            break;
        }
        Py_DECREF(name);
    }
    if (kinds == NULL || PyModule_AddObject(m, "KINDS", kinds) < 0) {
        Py_XDECREF(kinds);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&RowBinaryType);
    if (PyModule_AddObject(m, "RowBinary", (PyObject *)&RowBinaryType) < 0) {
        Py_DECREF(&RowBinaryType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
