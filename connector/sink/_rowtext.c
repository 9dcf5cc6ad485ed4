/* A flat JSON object to its COPY text row, in one C call. Pure.

   RowText(columns, fallback) is the fast path's first step (connector/sink/fastpath.py):
   called with a record's value, it returns the row's COPY text when the value is a JSON
   object holding each column exactly once, in any order, under its plain name, and
   nothing else, each value of a kind this file formats exactly as the Python fast path
   does. For anything else it returns fallback(value): this file decides nothing on its
   own, and tests/unit/test_rowtext.py checks that it agrees with the Python fast path on
   arbitrary records wherever it answers.

   JSON's string escapes are COPY's but for \u: `\"`, `\/` and `\\` stand for the same
   characters in both, `\t`, `\n` and `\r` are kept escaped, a `\b` and a `\f` become the
   raw character (as the Python escape leaves them), and a `\uXXXX` becomes its character
   in UTF-8 (escaped when it is a tab, newline, carriage return or backslash). Raw text is
   copied as it is, and the whole row is checked as UTF-8 when it becomes a str, so text
   PostgreSQL would refuse never gets here.

   It answers (the fallback decides otherwise):
   - smallint, integer, bigint: a JSON integer in range, as written (-0 as 0);
   - numeric: a JSON number without an exponent, as written (-0 as 0), where Python's Decimal prints
     it alike (not 0.0000001, which Decimal prints as 1E-7);
   - float: any finite JSON number, as Python's repr prints the double;
   - boolean: true or false, as t or f;
   - text (varchar(n): at most n characters): any JSON string without a NUL;
   - timestamptz: YYYY-MM-DD[T ]HH:MM[:SS[.f{1,6}]][Z|±HH:MM], a valid date and time;
   - date: YYYY-MM-DD, a valid date; uuid: the canonical lowercase form;
   - null, as \N, where the column is nullable. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum kind { K_SMALLINT, K_INTEGER, K_BIGINT, K_NUMERIC, K_FLOAT, K_BOOLEAN, K_TEXT, K_TIMESTAMPTZ, K_DATE,
            K_UUID };
static const char *const KIND_NAMES[] = {"smallint", "integer", "bigint", "numeric", "float", "boolean", "text",
                                         "timestamptz", "date", "uuid", NULL};

typedef struct {
    char *name;
    Py_ssize_t name_len;
    enum kind kind;
    Py_ssize_t max_chars; /* varchar(n): n; otherwise -1 */
    int nullable;
} Column;

typedef struct {
    PyObject_HEAD
    Column *columns;
    Py_ssize_t count;
    PyObject *fallback;
    char *buf; /* the fields in document order, each followed by a tab */
    char *row; /* the fields in column order, when the document's order differs */
    Py_ssize_t capacity;
    Py_ssize_t *start, *length;
} RowText;

/* The parser's position; every reader returns 0 when the fallback must decide. */
typedef struct {
    const unsigned char *p, *end;
    char *out;
} Cursor;

static inline void skip_space(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static inline int is_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }

/* A JSON number's parts: [p, int_end) the sign and integer digits, then the fraction and
   the exponent, each empty when absent. */
typedef struct {
    const unsigned char *start, *int_end, *frac_end, *end;
} Number;

static void put(Cursor *c, const unsigned char *text, Py_ssize_t len) {
    memcpy(c->out, text, (size_t)len);
    c->out += len;
}

/* A number as written, but 0 for any zero integer (Python reads one as an int first, and
   int -0 is 0). */
static int put_number(Cursor *c, const Number *n) {
    const unsigned char *digits = n->start + (*n->start == '-');
    if (n->int_end - digits == 1 && *digits == '0' && n->int_end == n->end)
        put(c, digits, 1);
    else
        put(c, n->start, n->end - n->start);
    return 1;
}

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

static int integer(Cursor *c, int bits) {
    Number n;
    if (!number(c, &n) || n.int_end != n.end)
        return 0;
    const unsigned char *d = n.start + (*n.start == '-');
    if (n.int_end - d > 19)
        return 0;
    uint64_t magnitude = 0;
    for (; d < n.int_end; d++)
        magnitude = magnitude * 10 + (uint64_t)(*d - '0');
    uint64_t limit = (UINT64_C(1) << (bits - 1)) - (*n.start == '-' ? 0 : 1);
    return magnitude <= limit && put_number(c, &n);
}

static int numeric(Cursor *c) {
    Number n;
    if (!number(c, &n) || n.frac_end != n.end)
        return 0;
    const unsigned char *integral = n.start + (*n.start == '-');
    if (n.int_end - integral == 1 && *integral == '0' && n.frac_end > n.int_end) {
        /* 0.f: Decimal prints it plainly while its adjusted exponent is -6 or more */
        const unsigned char *f = n.int_end + 1;
        Py_ssize_t zeros = 0;
        while (f + zeros < n.frac_end && f[zeros] == '0')
            zeros++;
        Py_ssize_t adjusted = f + zeros == n.frac_end ? zeros : zeros + 1;
        if (adjusted > 6)
            return 0;
    }
    return put_number(c, &n);
}

static int floating(Cursor *c) {
    Number n;
    if (!number(c, &n))
        return 0;
    char text[64];
    if (n.end - n.start >= (Py_ssize_t)sizeof text)
        return 0;
    memcpy(text, n.start, (size_t)(n.end - n.start));
    text[n.end - n.start] = '\0';
    double value = PyOS_string_to_double(text, NULL, NULL);
    if (value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (!isfinite(value))
        return 0;
    if (n.int_end == n.end && value == 0.0)
        value = 0.0; /* an integer is read as one first, and int -0 is 0: 0.0, not -0.0 */
    char *repr = PyOS_double_to_string(value, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (repr == NULL) {
        PyErr_Clear();
        return 0;
    }
    size_t len = strlen(repr);
    memcpy(c->out, repr, len);
    c->out += len;
    PyMem_Free(repr);
    return 1;
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

/* A character decoded from a \u escape, as COPY text. */
static void put_char(Cursor *c, unsigned code) {
    char *o = c->out;
    if (code == '\\') { *o++ = '\\'; *o++ = '\\'; }
    else if (code == '\t') { *o++ = '\\'; *o++ = 't'; }
    else if (code == '\n') { *o++ = '\\'; *o++ = 'n'; }
    else if (code == '\r') { *o++ = '\\'; *o++ = 'r'; }
    else if (code < 0x80) *o++ = (char)code;
    else if (code < 0x800) { *o++ = (char)(0xC0 | code >> 6); *o++ = (char)(0x80 | (code & 0x3F)); }
    else if (code < 0x10000) {
        *o++ = (char)(0xE0 | code >> 12); *o++ = (char)(0x80 | (code >> 6 & 0x3F));
        *o++ = (char)(0x80 | (code & 0x3F));
    } else {
        *o++ = (char)(0xF0 | code >> 18); *o++ = (char)(0x80 | (code >> 12 & 0x3F));
        *o++ = (char)(0x80 | (code >> 6 & 0x3F)); *o++ = (char)(0x80 | (code & 0x3F));
    }
    c->out = o;
}

/* A JSON string's text as COPY text; *chars counts its characters. */
static int string(Cursor *c, Py_ssize_t *chars) {
    const unsigned char *p = c->p, *end = c->end;
    if (p >= end || *p != '"')
        return 0;
    p++;
    Py_ssize_t count = 0;
    for (;;) {
        const unsigned char *run = p; /* a run of plain bytes, copied at once */
        while (p < end && *p != '"' && *p != '\\' && *p >= 0x20) {
            count += (*p & 0xC0) != 0x80; /* UTF-8 lead bytes; the row's decode checks the rest */
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
        case '\\': *c->out++ = '\\'; *c->out++ = '\\'; break;
        case 't': *c->out++ = '\\'; *c->out++ = 't'; break;
        case 'n': *c->out++ = '\\'; *c->out++ = 'n'; break;
        case 'r': *c->out++ = '\\'; *c->out++ = 'r'; break;
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
    *chars = count;
    return 1;
}

/* Two digits in [low, high] at p. */
static int digits2(const unsigned char *p, int low, int high, int *value) {
    if (!is_digit(p[0]) || !is_digit(p[1]))
        return 0;
    *value = (p[0] - '0') * 10 + (p[1] - '0');
    return *value >= low && *value <= high;
}

static int valid_date(const unsigned char *p) {
    static const int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int century, year, month, day;
    if (!digits2(p, 0, 99, &century) || !digits2(p + 2, 0, 99, &year) || p[4] != '-' || p[7] != '-'
        || !digits2(p + 5, 1, 12, &month) || !digits2(p + 8, 1, 31, &day))
        return 0;
    year += century * 100;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return year >= 1 && day <= DAYS[month - 1] + (month == 2 && leap);
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

static int is_timestamptz(const unsigned char *t, Py_ssize_t len) {
    int v;
    if (len < 16 || !valid_date(t) || (t[10] != 'T' && t[10] != ' ') || !digits2(t + 11, 0, 23, &v) || t[13] != ':'
        || !digits2(t + 14, 0, 59, &v))
        return 0;
    Py_ssize_t i = 16;
    if (i < len && t[i] == ':') {
        if (len < i + 3 || !digits2(t + i + 1, 0, 59, &v))
            return 0;
        i += 3;
        if (i < len && t[i] == '.') {
            Py_ssize_t f = ++i;
            while (i < len && is_digit(t[i]))
                i++;
            if (i == f || i - f > 6)
                return 0;
        }
    }
    if (i < len && t[i] == 'Z')
        i++;
    else if (i < len && (t[i] == '+' || t[i] == '-')) {
        if (len < i + 6 || !digits2(t + i + 1, 0, 23, &v) || t[i + 3] != ':' || !digits2(t + i + 4, 0, 59, &v))
            return 0;
        i += 6;
    }
    return i == len;
}

static int is_date(const unsigned char *t, Py_ssize_t len) { return len == 10 && valid_date(t); }

static int is_uuid(const unsigned char *t, Py_ssize_t len) {
    if (len != 36)
        return 0;
    for (Py_ssize_t i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? t[i] != '-' : !(is_digit(t[i]) || (t[i] >= 'a' && t[i] <= 'f')))
            return 0;
    }
    return 1;
}

/* A string without escapes that `is_form` accepts, sent as written. */
static int as_written(Cursor *c, int (*is_form)(const unsigned char *, Py_ssize_t)) {
    const unsigned char *t;
    Py_ssize_t len;
    if (!plain_string(c, &t, &len) || !is_form(t, len))
        return 0;
    put(c, t, len);
    return 1;
}

static int value(Cursor *c, const Column *column) {
    if (c->p < c->end && *c->p == 'n') {
        if (!column->nullable || !literal(c, "null", 4))
            return 0;
        *c->out++ = '\\';
        *c->out++ = 'N';
        return 1;
    }
    switch (column->kind) {
    case K_SMALLINT: return integer(c, 16);
    case K_INTEGER: return integer(c, 32);
    case K_BIGINT: return integer(c, 64);
    case K_NUMERIC: return numeric(c);
    case K_FLOAT: return floating(c);
    case K_BOOLEAN:
        if (literal(c, "true", 4)) { *c->out++ = 't'; return 1; }
        if (literal(c, "false", 5)) { *c->out++ = 'f'; return 1; }
        return 0;
    case K_TEXT: {
        Py_ssize_t chars;
        return string(c, &chars) && (column->max_chars < 0 || chars <= column->max_chars);
    }
    case K_TIMESTAMPTZ: return as_written(c, is_timestamptz);
    case K_DATE: return as_written(c, is_date);
    case K_UUID: return as_written(c, is_uuid);
    }
    return 0;
}

static int reserve(RowText *self, Py_ssize_t size) {
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

/* The row's COPY text, NULL (no error set) when the fallback decides, NULL with an error
   set when memory runs out. */
static PyObject *row_text(RowText *self, const char *data, Py_ssize_t size) {
    /* Output is at most the input, but for floats' repr and a null's \N: bounded per column. */
    if (!reserve(self, size + 32 * self->count + 16))
        return PyErr_NoMemory();
    Cursor c = {(const unsigned char *)data, (const unsigned char *)data + size, self->buf};
    Py_ssize_t seen = 0, in_order = 1;
    for (Py_ssize_t i = 0; i < self->count; i++)
        self->start[i] = -1;
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
        if (i == self->count || self->start[i] >= 0)
            return NULL; /* a field no column has, or one given twice */
        skip_space(&c);
        if (c.p >= c.end || *c.p++ != ':')
            return NULL;
        skip_space(&c);
        char *field = c.out;
        if (!value(&c, &self->columns[i]))
            return NULL;
        self->start[i] = field - self->buf;
        self->length[i] = c.out - field;
        *c.out++ = '\t';
        in_order &= i == seen;
        seen++;
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
    if (c.p != c.end || seen != self->count)
        return NULL;
    c.out[-1] = '\n';
    if (in_order)
        return PyUnicode_DecodeUTF8(self->buf, c.out - self->buf, "strict");
    char *row = self->row;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        memcpy(row, self->buf + self->start[i], (size_t)self->length[i]);
        row += self->length[i];
        *row++ = '\t';
    }
    row[-1] = '\n';
    return PyUnicode_DecodeUTF8(self->row, row - self->row, "strict");
}

static PyObject *RowText_call(RowText *self, PyObject *args, PyObject *kwargs) {
    PyObject *value;
    if (!PyArg_UnpackTuple(args, "RowText", 1, 1, &value))
        return NULL;
    if (PyBytes_Check(value)) {
        PyObject *row = row_text(self, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
        if (row != NULL)
            return row;
        if (PyErr_ExceptionMatches(PyExc_MemoryError))
            return NULL;
        PyErr_Clear(); /* not UTF-8: the fallback names what is wrong */
    }
    return PyObject_CallOneArg(self->fallback, value);
}

static int RowText_init(RowText *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"columns", "fallback", NULL};
    PyObject *columns, *fallback;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO", keywords, &columns, &fallback))
        return -1;
    PyObject *seq = PySequence_Fast(columns, "columns must be a sequence");
    if (seq == NULL)
        return -1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    if (self->columns != NULL || count == 0) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, count ? "RowText is initialized once" : "a row has a column at least");
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
        int nullable;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "s#snp;a column is (name, kind, max_chars, nullable)",
                              &name, &name_len, &kind, &max_chars, &nullable)) {
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
        int k = 0;
        while (KIND_NAMES[k] != NULL && strcmp(KIND_NAMES[k], kind) != 0)
            k++;
        if (KIND_NAMES[k] == NULL) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "RowText formats no %s column", kind);
            return -1;
        }
        column->kind = (enum kind)k;
    }
    Py_DECREF(seq);
    Py_INCREF(fallback);
    self->fallback = fallback;
    return 0;
}

static void RowText_dealloc(RowText *self) {
    for (Py_ssize_t i = 0; i < self->count; i++)
        PyMem_Free(self->columns[i].name);
    PyMem_Free(self->columns);
    PyMem_Free(self->start);
    PyMem_Free(self->length);
    PyMem_Free(self->buf);
    PyMem_Free(self->row);
    Py_XDECREF(self->fallback);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef RowText_members[] = {
    {"fallback", T_OBJECT_EX, offsetof(RowText, fallback), READONLY, "what decides the values this does not answer"},
    {NULL},
};

static PyTypeObject RowTextType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "connector.sink._rowtext.RowText",
    .tp_basicsize = sizeof(RowText),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "RowText(columns, fallback): a flat JSON object's COPY text row, else fallback(value).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RowText_init,
    .tp_dealloc = (destructor)RowText_dealloc,
    .tp_call = (ternaryfunc)RowText_call,
    .tp_members = RowText_members,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rowtext", "A flat JSON object to its COPY text row.",
                                    -1, NULL};

PyMODINIT_FUNC PyInit__rowtext(void) {
    if (PyType_Ready(&RowTextType) < 0)
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
    Py_INCREF(&RowTextType);
    if (PyModule_AddObject(m, "RowText", (PyObject *)&RowTextType) < 0) {
        Py_DECREF(&RowTextType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
