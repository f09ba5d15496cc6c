/* The farm router's per-packet read in C: sipfarm.sip.peek without the regex engine.
 *
 * peek(data) -> tuple | None
 *
 * Reads exactly what the pure-Python sipfarm.sip.peek._peek_py reads (the reference;
 * RFC 3261 §7, §20, §18.2.1; RFC 3581) and returns its eleven fields in Peek order:
 * method, status, request_uri, branch, sent_by, rport, call_id, cseq_seq, cseq_method,
 * to_tag, route.  Values are copies of the bytes as written; status and cseq_seq are ints.
 *
 * It raises ValueError("Malformed Status-Line" / "Malformed Request-Line") where the
 * reference raises BadRequest with that reason, and returns None for everything it leaves
 * to the reference: no CRLFCRLF, folded header lines, bare LF line ends, an argument that
 * is not bytes.  It never reads outside the buffer.
 *
 * Every pattern of the reference is anchored at a line start and stops at CR or LF, so a
 * line is read up to its first CR.  Header names are matched ASCII-case-insensitively,
 * as the reference does on data.lower().
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define IS_WS(c) ((c) == ' ' || (c) == '\t')
#define LOWER(c) ((unsigned char)((c) >= 'A' && (c) <= 'Z' ? (c) | 0x20 : (c)))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

typedef struct {
    Py_ssize_t start; /* -1: absent */
    Py_ssize_t end;
} Span;

static const Span ABSENT = {-1, -1};

static inline Py_ssize_t
skip_ws(const char *p, Py_ssize_t i, Py_ssize_t e)
{
    while (i < e && IS_WS(p[i])) {
        i++;
    }
    return i;
}

/* Does [i, e) start with the lower-case ASCII literal lit (compared case-insensitively)? */
static inline int
starts_ci(const char *p, Py_ssize_t i, Py_ssize_t e, const char *lit, Py_ssize_t len)
{
    if (e - i < len) {
        return 0;
    }
    for (Py_ssize_t k = 0; k < len; k++) {
        if (LOWER(p[i + k]) != (unsigned char)lit[k]) {
            return 0;
        }
    }
    return 1;
}

/* `(?:name|compact)[ \t]*:` at s; the index after the colon, or -1.  The compact form
 * (NULL for none) either starts with another letter than the full name or is its first
 * letter, so when the full name matches the compact form cannot. */
static Py_ssize_t
header_colon(const char *p, Py_ssize_t s, Py_ssize_t e, const char *name, Py_ssize_t len,
             const char *compact)
{
    Py_ssize_t i;
    if (starts_ci(p, s, e, name, len)) {
        i = s + len;
    }
    else if (compact != NULL && starts_ci(p, s, e, compact, 1)) {
        i = s + 1;
    }
    else {
        return -1;
    }
    i = skip_ws(p, i, e);
    return (i < e && p[i] == ':') ? i + 1 : -1;
}

/* Byte classes: the bytes that end a value.  CR and LF end every value (a line is read
 * only up to its first CR anyway). */
static const unsigned char TOKEN_END[256] = {  /* [^;, \t\r\n]: sent-by, branch */
    [';'] = 1, [','] = 1, [' '] = 1, ['\t'] = 1, ['\r'] = 1, ['\n'] = 1,
};
static const unsigned char TAG_END[256] = {  /* [^;, \t\r\n>]: To-tag */
    [';'] = 1, [','] = 1, [' '] = 1, ['\t'] = 1, ['\r'] = 1, ['\n'] = 1, ['>'] = 1,
};
static const unsigned char WORD_END[256] = {  /* [^ \t\r\n]: Call-ID, CSeq method */
    [' '] = 1, ['\t'] = 1, ['\r'] = 1, ['\n'] = 1,
};
static const unsigned char PARAMS_END[256] = {  /* [^,\r\n]: the rest of a via-parm */
    [','] = 1, ['\r'] = 1, ['\n'] = 1,
};

/* The end of the run of bytes from i that are not in the class stop. */
static inline Py_ssize_t
run_not(const char *p, Py_ssize_t i, Py_ssize_t e, const unsigned char *stop)
{
    while (i < e && !stop[(unsigned char)p[i]]) {
        i++;
    }
    return i;
}

/* The index of the first CR in [s, e), or e: where every pattern of a line stops. */
static inline Py_ssize_t
line_end(const char *p, Py_ssize_t s, Py_ssize_t e)
{
    const char *cr = memchr(p + s, '\r', (size_t)(e - s));
    return cr == NULL ? e : cr - p;
}

/* Via: `sip / 2.0 / transport SP sent-by` then the rest up to a comma (RFC 3261 §20.42). */
static int
match_via(const char *p, Py_ssize_t s, Py_ssize_t e, Span *sent_by, Span *params)
{
    Py_ssize_t i = header_colon(p, s, e, "via", 3, "v");
    if (i < 0) {
        return 0;
    }
    i = skip_ws(p, i, e);
    if (!starts_ci(p, i, e, "sip", 3)) {
        return 0;
    }
    i = skip_ws(p, i + 3, e);
    if (i >= e || p[i] != '/') {
        return 0;
    }
    i = skip_ws(p, i + 1, e);
    if (e - i < 3 || memcmp(p + i, "2.0", 3) != 0) {
        return 0;
    }
    i = skip_ws(p, i + 3, e);
    if (i >= e || p[i] != '/') {
        return 0;
    }
    i = skip_ws(p, i + 1, e);
    Py_ssize_t t = i;
    while (i < e && LOWER(p[i]) >= 'a' && LOWER(p[i]) <= 'z') {
        i++;
    }
    if (i == t || i >= e || !IS_WS(p[i])) {
        return 0;
    }
    i = skip_ws(p, i, e);
    Py_ssize_t h = i;
    i = run_not(p, i, e, TOKEN_END);
    if (i == h) {
        return 0;
    }
    sent_by->start = h;
    sent_by->end = i;
    params->start = i;
    params->end = run_not(p, i, e, PARAMS_END);
    return 1;
}

/* `;[ \t]*NAME[ \t]*=[ \t]*(value)` searched in [i, e): the first value, or ABSENT. */
static Span
find_param(const char *p, Py_ssize_t i, Py_ssize_t e, const char *name, Py_ssize_t len,
           const unsigned char *stop)
{
    const char *semi;
    while (i < e && (semi = memchr(p + i, ';', (size_t)(e - i))) != NULL) {
        i = semi - p + 1;
        Py_ssize_t k = skip_ws(p, i, e);
        if (!starts_ci(p, k, e, name, len)) {
            continue;
        }
        k = skip_ws(p, k + len, e);
        if (k >= e || p[k] != '=') {
            continue;
        }
        k = skip_ws(p, k + 1, e);
        Py_ssize_t v = run_not(p, k, e, stop);
        if (v > k) {
            return (Span){k, v};
        }
    }
    return ABSENT;
}

/* `;[ \t]*rport(?:[ \t]*=[ \t]*([0-9]*))?[ \t]*(?:;|\Z)` in [i, e) (RFC 3581 §3): the
 * digits (an empty span when there are none), or ABSENT. */
static Span
find_rport(const char *p, Py_ssize_t i, Py_ssize_t e)
{
    const char *semi;
    while (i < e && (semi = memchr(p + i, ';', (size_t)(e - i))) != NULL) {
        i = semi - p + 1;
        Py_ssize_t k = skip_ws(p, i, e);
        if (!starts_ci(p, k, e, "rport", 5)) {
            continue;
        }
        k = skip_ws(p, k + 5, e);
        Span value = {k, k};
        if (k < e && p[k] == '=') {
            k = skip_ws(p, k + 1, e);
            value.start = k;
            while (k < e && IS_DIGIT(p[k])) {
                k++;
            }
            value.end = k;
            k = skip_ws(p, k, e);
        }
        if (k == e || p[k] == ';') {
            return value;
        }
    }
    return ABSENT;
}

/* Call-ID (compact i): a value of at least one byte up to white space. */
static Span
match_call_id(const char *p, Py_ssize_t s, Py_ssize_t e)
{
    Py_ssize_t i = header_colon(p, s, e, "call-id", 7, "i");
    if (i < 0) {
        return ABSENT;
    }
    i = skip_ws(p, i, e);
    Py_ssize_t v = run_not(p, i, e, WORD_END);
    return v > i ? (Span){i, v} : ABSENT;
}

/* CSeq: 1 to 10 digits, white space, a method (RFC 3261 §20.16). */
static int
match_cseq(const char *p, Py_ssize_t s, Py_ssize_t e, unsigned long long *seq, Span *method)
{
    Py_ssize_t i = header_colon(p, s, e, "cseq", 4, NULL);
    if (i < 0) {
        return 0;
    }
    i = skip_ws(p, i, e);
    Py_ssize_t d = i;
    unsigned long long n = 0;
    while (i < e && IS_DIGIT(p[i])) {
        if (i - d == 10) {
            return 0;
        }
        n = n * 10 + (unsigned long long)(p[i] - '0');
        i++;
    }
    if (i == d || i >= e || !IS_WS(p[i])) {
        return 0;
    }
    i = skip_ws(p, i, e);
    Py_ssize_t m = run_not(p, i, e, WORD_END);
    if (m == i) {
        return 0;
    }
    *seq = n;
    method->start = i;
    method->end = m;
    return 1;
}

/* The To-tag, searched after the last '>' of the value when there is one. */
static Span
to_tag(const char *p, Py_ssize_t i, Py_ssize_t e)
{
    for (Py_ssize_t k = e; k > i; k--) {
        if (p[k - 1] == '>') {
            i = k;
            break;
        }
    }
    return find_param(p, i, e, "tag", 3, TAG_END);
}

/* Route: the URI inside the first <...> of the line. */
static Span
match_route(const char *p, Py_ssize_t s, Py_ssize_t e)
{
    Py_ssize_t i = header_colon(p, s, e, "route", 5, NULL);
    if (i < 0) {
        return ABSENT;
    }
    const char *lt = memchr(p + i, '<', (size_t)(e - i));
    if (lt == NULL) {
        return ABSENT;
    }
    i = lt - p + 1;
    const char *gt = memchr(p + i, '>', (size_t)(e - i));
    return gt == NULL ? ABSENT : (Span){i, gt - p};
}

static PyObject *
span_bytes(const char *p, Span v)
{
    if (v.start < 0) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize(p + v.start, v.end - v.start);
}

static PyObject *
peek(PyObject *module, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        Py_RETURN_NONE;
    }
    const char *p = PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);

    /* RFC 3261 §7.5: CRLFs before the start line (any run of CR and LF, as lstrip). */
    if (n >= 2 && p[0] == '\r' && p[1] == '\n') {
        Py_ssize_t k = 2;
        while (k < n && (p[k] == '\r' || p[k] == '\n')) {
            k++;
        }
        p += k;
        n -= k;
    }

    /* The start line; every line ends in CRLF or we leave the message to the reference. */
    const char *nl = memchr(p, '\n', (size_t)n);
    if (nl == NULL || nl == p || nl[-1] != '\r') {
        return Py_NewRef(Py_None);
    }
    Py_ssize_t eol = nl - p - 1;

    Span sent_by = ABSENT, params = ABSENT, call_id = ABSENT, cseq_method = ABSENT;
    Span tag = ABSENT, route = ABSENT;
    unsigned long long cseq_seq = 0;
    int have_via = 0, have_cseq = 0, have_to = 0;

    Py_ssize_t s = eol + 2;
    Py_ssize_t end; /* where CRLFCRLF starts: the header block is [0, end + 2) */
    for (;;) {
        if (s >= n) {
            return Py_NewRef(Py_None); /* no CRLFCRLF */
        }
        if (p[s] == '\r' && s + 1 < n && p[s + 1] == '\n') {
            end = s - 2;
            break;
        }
        if (IS_WS(p[s])) {
            return Py_NewRef(Py_None); /* folded line */
        }
        nl = memchr(p + s, '\n', (size_t)(n - s));
        if (nl == NULL) {
            return Py_NewRef(Py_None);
        }
        Py_ssize_t j = nl - p;
        if (j == s || p[j - 1] != '\r') {
            return Py_NewRef(Py_None); /* bare LF */
        }
        switch (LOWER(p[s])) {
        case 'v':
            if (!have_via) {
                have_via = match_via(p, s, line_end(p, s, j - 1), &sent_by, &params);
            }
            break;
        case 'c':
            if (call_id.start < 0) {
                call_id = match_call_id(p, s, line_end(p, s, j - 1));
            }
            if (!have_cseq) {
                have_cseq = match_cseq(p, s, line_end(p, s, j - 1), &cseq_seq, &cseq_method);
            }
            break;
        case 'i':
            if (call_id.start < 0) {
                call_id = match_call_id(p, s, line_end(p, s, j - 1));
            }
            break;
        case 't':
            if (!have_to) {
                Py_ssize_t e = line_end(p, s, j - 1);
                Py_ssize_t i = header_colon(p, s, e, "to", 2, "t");
                if (i >= 0) {
                    have_to = 1;
                    tag = to_tag(p, i, e);
                }
            }
            break;
        case 'r':
            if (route.start < 0) {
                route = match_route(p, s, line_end(p, s, j - 1));
            }
            break;
        }
        s = j + 1;
    }

    /* The start line, read only now: a folded message goes to the reference first. */
    PyObject *method, *status, *request_uri;
    if (end + 2 >= 4 && starts_ci(p, 0, n, "sip/", 4)) {
        Py_ssize_t code_end = n < 11 ? n : 11;
        int ok = n > 8 && p[7] == ' ';
        for (Py_ssize_t k = 8; ok && k < code_end; k++) {
            ok = IS_DIGIT(p[k]);
        }
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "Malformed Status-Line");
            return NULL;
        }
        long code = 0;
        for (Py_ssize_t k = 8; k < code_end; k++) {
            code = code * 10 + (p[k] - '0');
        }
        status = PyLong_FromLong(code);
        method = Py_NewRef(Py_None);
        request_uri = Py_NewRef(Py_None);
    }
    else {
        const char *sp1 = memchr(p, ' ', (size_t)eol);
        const char *sp2 = sp1 == NULL ? NULL : memchr(sp1 + 1, ' ', (size_t)(p + eol - sp1 - 1));
        if (sp2 == NULL || memchr(sp2 + 1, ' ', (size_t)(p + eol - sp2 - 1)) != NULL) {
            PyErr_SetString(PyExc_ValueError, "Malformed Request-Line");
            return NULL;
        }
        status = Py_NewRef(Py_None);
        method = PyBytes_FromStringAndSize(p, sp1 - p);
        request_uri = PyBytes_FromStringAndSize(sp1 + 1, sp2 - sp1 - 1);
    }

    Span branch = ABSENT, rport = ABSENT;
    if (have_via) {
        branch = find_param(p, params.start, params.end, "branch", 6, TOKEN_END);
        rport = find_rport(p, params.start, params.end);
    }

    PyObject *tuple = PyTuple_New(11);
    PyObject *items[11] = {
        method,
        status,
        request_uri,
        span_bytes(p, branch),
        span_bytes(p, sent_by),
        span_bytes(p, rport),
        span_bytes(p, call_id),
        have_cseq ? PyLong_FromUnsignedLongLong(cseq_seq) : Py_NewRef(Py_None),
        span_bytes(p, cseq_method),
        span_bytes(p, tag),
        span_bytes(p, route),
    };
    int failed = tuple == NULL;
    for (int k = 0; k < 11; k++) {
        if (items[k] == NULL) {
            failed = 1;
        }
    }
    if (failed) {
        for (int k = 0; k < 11; k++) {
            Py_XDECREF(items[k]);
        }
        Py_XDECREF(tuple);
        return NULL;
    }
    for (int k = 0; k < 11; k++) {
        PyTuple_SET_ITEM(tuple, k, items[k]);
    }
    return tuple;
}

PyDoc_STRVAR(peek_doc,
"peek(data, /)\n--\n\n"
"The routing fields of a SIP message as an 11-tuple in Peek order; ValueError when the\n"
"start line is malformed; None when the pure-Python peek must decide.");

static PyMethodDef speedups_methods[] = {
    {"peek", peek, METH_O, peek_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot speedups_slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_GIL_DISABLED
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sipfarm.sip._speedups",
    .m_doc = "C accelerator for sipfarm.sip.peek; the pure-Python peek is the reference.",
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
