/* A snapshot segment's columns in one C call: the snapshot codec's hot loop
   (connector/backends/codec.py). Pure.

   columns(items, values, offset, timestamp, key) reads, for every item (a source's own
   message: a Kafka message or a Record), offset(item), timestamp(item) and key(item) —
   callables run here through the vectorcall protocol, with no Python frame per item —
   and returns six bytes objects, integers little-endian:
   - the offsets (int64);
   - the timestamps in ms (int64, -1 for none): timestamp(item) gives an int, None, or
     a (type, ms) pair with no timestamp when type is 0 (confluent-kafka's);
   - the key lengths and the value lengths (int32, -1 for None);
   - the keys, then the values, back to back (copied with the GIL released).
   Each key and value must be bytes or None.

   message_columns(type, items, values) returns the same for confluent-kafka messages
   (instances of `type`, its Message), read from the fields of its C struct instead of
   through its methods: their calls (a tuple per timestamp) took 24-25 ms of every
   100 000 records, held under the GIL the loop's thread needs; the struct's 10-11 ms,
   the copy of keys and values (the GIL released) included. message_fields(type,
   message) reads one message's offset, timestamp and key's address (no pointer in it is
   followed); the Python side compares them with the message's methods on messages it
   builds before it uses message_columns at all (connector/kafka/messages.py), so a
   confluent-kafka whose struct differs is read through its methods. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static void put_le(char *p, uint64_t value, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (char)(value >> (8 * i));
}

/* A key's or value's length (-1 for None); -2 with an error set when it is neither. */
static Py_ssize_t length_of(PyObject *field, const char *what) {
    if (field == Py_None)
        return -1;
    if (!PyBytes_Check(field)) {
        PyErr_Format(PyExc_TypeError, "a %s must be bytes or None, not %.100s", what, Py_TYPE(field)->tp_name);
        return -2;
    }
    if (PyBytes_GET_SIZE(field) > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "a %s of %zd bytes does not fit a snapshot", what, PyBytes_GET_SIZE(field));
        return -2;
    }
    return PyBytes_GET_SIZE(field);
}

/* timestamp(item)'s answer in ms, -1 for none: 1, or 0 with an error set. */
static int timestamp_of(PyObject *answer, int64_t *ms) {
    if (PyTuple_Check(answer) && PyTuple_GET_SIZE(answer) == 2) {
        int has = PyObject_IsTrue(PyTuple_GET_ITEM(answer, 0));
        if (has < 0)
            return 0;
        answer = has ? PyTuple_GET_ITEM(answer, 1) : Py_None;
    }
    if (answer == Py_None) {
        *ms = -1;
        return 1;
    }
    long long value = PyLong_AsLongLong(answer);
    if (value == -1 && PyErr_Occurred())
        return 0;
    *ms = value;
    return 1;
}

/* `field` called on `item`, as a 64-bit integer: 1, or 0 with an error set. */
static int integer_of(PyObject *field, PyObject *item, int64_t *value) {
    PyObject *answer = PyObject_Vectorcall(field, &item, 1, NULL);
    if (answer == NULL)
        return 0;
    long long v = PyLong_AsLongLong(answer);
    Py_DECREF(answer);
    if (v == -1 && PyErr_Occurred())
        return 0;
    *value = v;
    return 1;
}

/* confluent-kafka's Message up to the fields read here (its confluent_kafka.h). */
typedef struct {
    PyObject_HEAD
    PyObject *topic, *value, *key, *headers;
    void *c_headers;
    PyObject *error;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    int64_t timestamp;
    int tstype; /* 0: no timestamp */
} KafkaMessage;

/* One item's offset, timestamp (ms, -1 for none) and key (a new reference): 1, or 0
   with an error set. `how` is the offset, timestamp and key callables, or the Message type. */
typedef int (*Reader)(PyObject *const *how, PyObject *item, int64_t *offset, int64_t *ms, PyObject **key);

static int read_by_calls(PyObject *const *how, PyObject *item, int64_t *offset, int64_t *ms, PyObject **key) {
    if (!integer_of(how[0], item, offset))
        return 0;
    PyObject *answer = PyObject_Vectorcall(how[1], &item, 1, NULL);
    if (answer == NULL)
        return 0;
    int ok = timestamp_of(answer, ms);
    Py_DECREF(answer);
    if (!ok)
        return 0;
    *key = PyObject_Vectorcall(how[2], &item, 1, NULL);
    return *key != NULL;
}

/* `item` as a KafkaMessage if it is an instance of `type`; NULL with an error set if not. */
static KafkaMessage *as_message(PyObject *type, PyObject *item) {
    if (!PyObject_TypeCheck(item, (PyTypeObject *)type)) {
        PyErr_Format(PyExc_TypeError, "a %.100s is not a %.100s", Py_TYPE(item)->tp_name, ((PyTypeObject *)type)->tp_name);
        return NULL;
    }
    return (KafkaMessage *)item;
}

static int read_struct(PyObject *const *how, PyObject *item, int64_t *offset, int64_t *ms, PyObject **key) {
    KafkaMessage *message = as_message(how[0], item);
    if (message == NULL)
        return 0;
    *offset = message->offset;
    *ms = message->tstype == 0 ? -1 : message->timestamp;
    *key = message->key == NULL ? Py_None : message->key;
    Py_INCREF(*key);
    return 1;
}

/* `type` is a class whose instances are at least a KafkaMessage: 1, or 0 with an error set. */
static int message_type(PyObject *type) {
    if (!PyType_Check(type) || ((PyTypeObject *)type)->tp_basicsize < (Py_ssize_t)sizeof(KafkaMessage)) {
        PyErr_SetString(PyExc_TypeError, "not a type laid out as confluent-kafka's Message");
        return 0;
    }
    return 1;
}

typedef struct {
    Py_ssize_t count;
    PyObject **keys, **values; /* owned references */
    PyObject *out[6];          /* offsets, timestamps, key lengths, value lengths, keys, values */
} Segment;

static void segment_clear(Segment *s) {
    for (Py_ssize_t i = 0; i < s->count; i++) {
        Py_XDECREF(s->keys[i]);
        Py_XDECREF(s->values[i]);
    }
    PyMem_Free(s->keys);
    PyMem_Free(s->values);
    for (int i = 0; i < 6; i++)
        Py_CLEAR(s->out[i]);
}

/* The fields joined back to back into `out` (sized for them): no Python object is touched. */
static void join(PyObject **fields, Py_ssize_t count, char *out) {
    for (Py_ssize_t i = 0; i < count; i++)
        if (fields[i] != Py_None) {
            memcpy(out, PyBytes_AS_STRING(fields[i]), (size_t)PyBytes_GET_SIZE(fields[i]));
            out += PyBytes_GET_SIZE(fields[i]);
        }
}

static PyObject *segment_columns(PyObject *items_arg, PyObject *values_arg, Reader read, PyObject *const *how) {
    PyObject *items = PySequence_Fast(items_arg, "items must be a sequence"), *values = NULL;
    if (items == NULL)
        return NULL;
    values = PySequence_Fast(values_arg, "values must be a sequence");
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    if (values == NULL || PySequence_Fast_GET_SIZE(values) != n) {
        if (values != NULL)
            PyErr_SetString(PyExc_ValueError, "one value per item");
        Py_DECREF(items);
        Py_XDECREF(values);
        return NULL;
    }
    Segment s = {0, PyMem_Calloc((size_t)n + 1, sizeof(PyObject *)), PyMem_Calloc((size_t)n + 1, sizeof(PyObject *)),
                 {NULL}};
    s.out[0] = PyBytes_FromStringAndSize(NULL, 8 * n);
    s.out[1] = PyBytes_FromStringAndSize(NULL, 8 * n);
    s.out[2] = PyBytes_FromStringAndSize(NULL, 4 * n);
    s.out[3] = PyBytes_FromStringAndSize(NULL, 4 * n);
    PyObject *result = NULL;
    if (s.keys == NULL || s.values == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (s.out[0] == NULL || s.out[1] == NULL || s.out[2] == NULL || s.out[3] == NULL)
        goto done;
    Py_ssize_t key_bytes = 0, value_bytes = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t offset, ms;
        int ok = read(how, PySequence_Fast_GET_ITEM(items, i), &offset, &ms, &s.keys[i]);
        s.values[i] = PySequence_Fast_GET_ITEM(values, i);
        Py_INCREF(s.values[i]);
        s.count = i + 1;
        if (!ok)
            goto done;
        Py_ssize_t key_length = length_of(s.keys[i], "key"), value_length = length_of(s.values[i], "value");
        if (key_length == -2 || value_length == -2)
            goto done;
        put_le(PyBytes_AS_STRING(s.out[0]) + 8 * i, (uint64_t)offset, 8);
        put_le(PyBytes_AS_STRING(s.out[1]) + 8 * i, (uint64_t)ms, 8);
        put_le(PyBytes_AS_STRING(s.out[2]) + 4 * i, (uint64_t)(int64_t)key_length, 4);
        put_le(PyBytes_AS_STRING(s.out[3]) + 4 * i, (uint64_t)(int64_t)value_length, 4);
        key_bytes += key_length > 0 ? key_length : 0;
        value_bytes += value_length > 0 ? value_length : 0;
    }
    s.out[4] = PyBytes_FromStringAndSize(NULL, key_bytes);
    s.out[5] = PyBytes_FromStringAndSize(NULL, value_bytes);
    if (s.out[4] == NULL || s.out[5] == NULL)
        goto done;
    /* The fields are held by s (immutable bytes) and the outputs are not shared yet. */
    Py_BEGIN_ALLOW_THREADS
    join(s.keys, n, PyBytes_AS_STRING(s.out[4]));
    join(s.values, n, PyBytes_AS_STRING(s.out[5]));
    Py_END_ALLOW_THREADS
    result = PyTuple_Pack(6, s.out[0], s.out[1], s.out[2], s.out[3], s.out[4], s.out[5]);
done:
    segment_clear(&s);
    Py_DECREF(items);
    Py_DECREF(values);
    return result;
}

static PyObject *columns(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "columns(items, values, offset, timestamp, key)");
        return NULL;
    }
    return segment_columns(args[0], args[1], read_by_calls, args + 2);
}

static PyObject *message_columns(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "message_columns(type, items, values)");
        return NULL;
    }
    return message_type(args[0]) ? segment_columns(args[1], args[2], read_struct, args) : NULL;
}

static PyObject *message_fields(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "message_fields(type, message)");
        return NULL;
    }
    KafkaMessage *message = message_type(args[0]) ? as_message(args[0], args[1]) : NULL;
    if (message == NULL)
        return NULL;
    /* The key's address, not the key: nothing read here is followed until it checks out. */
    return Py_BuildValue("LLK", (long long)message->offset, (long long)(message->tstype == 0 ? -1 : message->timestamp),
                         (unsigned long long)(uintptr_t)message->key);
}

static PyMethodDef methods[] = {
    {"columns", (PyCFunction)(void (*)(void))columns, METH_FASTCALL,
     "columns(items, values, offset, timestamp, key) -> (offsets, timestamps, key lengths, value lengths, keys, "
     "values): a snapshot segment's columns, little-endian."},
    {"message_columns", (PyCFunction)(void (*)(void))message_columns, METH_FASTCALL,
     "message_columns(type, items, values) -> the same columns, read from confluent-kafka messages' struct."},
    {"message_fields", (PyCFunction)(void (*)(void))message_fields, METH_FASTCALL,
     "message_fields(type, message) -> (offset, timestamp ms or -1, the key's address or 0), read from the message's "
     "struct."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_columns", "A snapshot segment's columns in one C call.",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__columns(void) { return PyModule_Create(&module); }
