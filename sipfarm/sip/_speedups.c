/* The per-packet reads in C: sipfarm.sip.peek without the regex engine, and the header
 * split of sipfarm.sip.message.parse.
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
 * is not bytes, and what the reference hands to the full parser (a first Via, Call-ID,
 * CSeq or Route line not in its plain shape, a Request-Line version SIP/x.y other than
 * 2.0).  It never reads outside the buffer.
 *
 * Every pattern of the reference is anchored at a line start and stops at CR or LF, so a
 * line is read up to its first CR (Call-ID and CSeq: up to the CR of its CRLF, so that a
 * stray CR breaks their shape).  Header names are matched ASCII-case-insensitively, as
 * the reference does on data.lower().
 *
 * split_headers(head, compact, single, field) -> tuple | None
 *
 * The header block of sipfarm.sip.message.parse (start line included, final CRLFCRLF
 * excluded) split as sipfarm.sip.message._parse_headers splits it (the reference), for
 * the common shape only: (start_line, fields, index).  None for anything else, which the
 * reference then reads and, where it is broken, answers with the precise error.
 *
 * parse_uri(text), parse_nameaddr(text), parse_via(text) -> SipUri | NameAddr | Via | None
 *
 * The typed parsers of sipfarm.sip.uri, .nameaddr and .via (the reference) for the common
 * shapes their fast patterns (_FAST_SIP, _FAST) take, built as the reference builds them:
 * the same NamedTuple and Params types, handed over once by configure().  None for every
 * other shape (escapes, passwords, URI headers, IPv6, other schemes, quoted-pairs, a port
 * above 65535, white space where the patterns allow none, non-ASCII outside a quoted
 * display name, more than PARAMS_MAX parameters, a str subclass, not a str), which the
 * reference then reads and, where it is broken, answers with the precise error.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define IS_WS(c) ((c) == ' ' || (c) == '\t')
#define LOWER(c) ((unsigned char)((c) >= 'A' && (c) <= 'Z' ? (c) | 0x20 : (c)))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_ALNUM(c) \
    (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_VISIBLE(c) ((unsigned char)(c) >= 0x21 && (unsigned char)(c) <= 0x7e)

#define IS_ALPHA(c) (LOWER(c) >= 'a' && LOWER(c) <= 'z')

/* Character classes of RFC 3261 §25.1 that hold every alphanumeric and some marks: the
 * marks here, the alphanumerics by IS_ALNUM.
 *   C_TOKEN   token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
 *   C_HOSTISH a gen-value that is not quoted: token or host, so also "[" "]" ":" (the
 *             _HOSTISH of sipfarm/sip/params.py)
 *   C_USER    user without escapes: unreserved / user-unreserved (the user of _FAST_SIP)
 *   C_PARAM   paramchar without escapes: unreserved / param-unreserved (_FAST_SIP)
 *   C_HOST    hostname characters: alphanum / "-" / "." */
enum { C_TOKEN = 1, C_HOSTISH = 2, C_USER = 4, C_PARAM = 8, C_HOST = 16 };
#define C_MARK (C_TOKEN | C_HOSTISH | C_USER | C_PARAM) /* "-" "_" "." "!" "~" "*" "'" "+" */
static const unsigned char MARKS[256] = {
    ['-'] = C_MARK | C_HOST, ['.'] = C_MARK | C_HOST, ['_'] = C_MARK, ['!'] = C_MARK,
    ['~'] = C_MARK, ['*'] = C_MARK, ['\''] = C_MARK, ['+'] = C_MARK,
    ['%'] = C_TOKEN | C_HOSTISH, ['`'] = C_TOKEN | C_HOSTISH,
    ['['] = C_HOSTISH | C_PARAM, [']'] = C_HOSTISH | C_PARAM, [':'] = C_HOSTISH | C_PARAM,
    ['('] = C_USER | C_PARAM, [')'] = C_USER | C_PARAM, ['&'] = C_USER | C_PARAM,
    ['$'] = C_USER | C_PARAM, ['/'] = C_USER | C_PARAM,
    ['='] = C_USER, [','] = C_USER, [';'] = C_USER, ['?'] = C_USER,
};
#define IS_CLASS(c, cls) (IS_ALNUM(c) || (MARKS[(unsigned char)(c)] & (cls)))
#define IS_TOKEN(c) IS_CLASS(c, C_TOKEN)

/* RFC 3261 §8.1.1.5: a CSeq number is below 2**31. */
#define CSEQ_LIMIT 2147483648ULL

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
static const unsigned char TOKEN_END[256] = {  /* [^;, \t\r\n]: branch */
    [';'] = 1, [','] = 1, [' '] = 1, ['\t'] = 1, ['\r'] = 1, ['\n'] = 1,
};
static const unsigned char SENT_BY_END[256] = {  /* [^;, \t\r\n"]: sent-by */
    [';'] = 1, [','] = 1, [' '] = 1, ['\t'] = 1, ['\r'] = 1, ['\n'] = 1, ['"'] = 1,
};
static const unsigned char TAG_END[256] = {  /* [^;, \t\r\n>]: To-tag */
    [';'] = 1, [','] = 1, [' '] = 1, ['\t'] = 1, ['\r'] = 1, ['\n'] = 1, ['>'] = 1,
};
static const unsigned char PARAMS_END[256] = {  /* [^,"\r\n]: the rest of a via-parm */
    [','] = 1, ['"'] = 1, ['\r'] = 1, ['\n'] = 1,
};
static const unsigned char URI_END[256] = {  /* [^<>" \t\r\n]: a Route URI */
    ['<'] = 1, ['>'] = 1, ['"'] = 1, [' '] = 1, ['\t'] = 1, ['\r'] = 1, ['\n'] = 1,
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

/* The Via value from i (just after the colon) in its plain shape: `sip / 2.0 / transport
 * SP sent-by`, then the via-params from ';' up to a comma or the line end, with no '"'
 * anywhere before that comma (RFC 3261 §20.42).  0 for any other shape. */
static int
via_value(const char *p, Py_ssize_t i, Py_ssize_t e, Span *sent_by, Span *params)
{
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
    i = run_not(p, i, e, SENT_BY_END);
    if (i == h) {
        return 0;
    }
    sent_by->start = h;
    sent_by->end = i;
    i = skip_ws(p, i, e);
    params->start = i;
    if (i < e && p[i] == ';') {
        i = run_not(p, i, e, PARAMS_END);
    }
    params->end = i;
    return i == e || p[i] == ',';
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

/* The Call-ID value from i (just after the colon) up to e, the CR of the line's CRLF, in
 * its plain shape (RFC 3261 §20.8): one run of visible ASCII with only white space
 * around it; ABSENT for any other shape. */
static Span
call_id_value(const char *p, Py_ssize_t i, Py_ssize_t e)
{
    i = skip_ws(p, i, e);
    Py_ssize_t v = i;
    while (v < e && IS_VISIBLE(p[v])) {
        v++;
    }
    return (v > i && skip_ws(p, v, e) == e) ? (Span){i, v} : ABSENT;
}

/* The CSeq value from i (just after the colon) up to e, the CR of the line's CRLF, in its
 * plain shape (RFC 3261 §20.16, §8.1.1.5): 1 to 10 digits below 2**31, white space, a
 * token method, white space.  0 for any other shape. */
static int
cseq_value(const char *p, Py_ssize_t i, Py_ssize_t e, unsigned long long *seq, Span *method)
{
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
    if (i == d || i >= e || !IS_WS(p[i]) || n >= CSEQ_LIMIT) {
        return 0;
    }
    i = skip_ws(p, i, e);
    Py_ssize_t m = i;
    while (i < e && IS_TOKEN(p[i])) {
        i++;
    }
    if (i == m || skip_ws(p, i, e) != e) {
        return 0;
    }
    *seq = n;
    method->start = m;
    method->end = i;
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

/* The URI of the first Route entry from i (just after the colon) in its plain shape
 * (RFC 3261 §20.34): a display name of tokens and white space, if any, then `<URI>` with
 * no white space, '"' or angle bracket inside; ABSENT for any other shape. */
static Span
route_value(const char *p, Py_ssize_t i, Py_ssize_t e)
{
    while (i < e && (IS_TOKEN(p[i]) || IS_WS(p[i]))) {
        i++;
    }
    if (i >= e || p[i] != '<') {
        return ABSENT;
    }
    Py_ssize_t u = i + 1;
    i = run_not(p, u, e, URI_END);
    return (i > u && i < e && p[i] == '>') ? (Span){u, i} : ABSENT;
}

/* `sip/` 1*DIGIT `.` 1*DIGIT, case-insensitively, exactly [i, e): a SIP version the full
 * parser answers with 505 when it is not 2.0 (RFC 3261 §21.5.6). */
static int
sip_version(const char *p, Py_ssize_t i, Py_ssize_t e)
{
    if (!starts_ci(p, i, e, "sip/", 4)) {
        return 0;
    }
    Py_ssize_t k = i + 4, d = k;
    while (k < e && IS_DIGIT(p[k])) {
        k++;
    }
    if (k == d || k >= e || p[k] != '.') {
        return 0;
    }
    d = ++k;
    while (k < e && IS_DIGIT(p[k])) {
        k++;
    }
    return k > d && k == e;
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
    int have_via = 0, have_call_id = 0, have_cseq = 0, have_to = 0, have_route = 0;
    int plain = 1; /* 0: the reference hands this message to the full parser */

    /* Each header is read from its first line only; once a first line is not in its
     * plain shape the lines are only scanned for the end of the block (and folds). */
    Py_ssize_t s = eol + 2;
    for (;;) {
        if (s >= n) {
            return Py_NewRef(Py_None); /* no CRLFCRLF */
        }
        if (p[s] == '\r' && s + 1 < n && p[s + 1] == '\n') {
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
        Py_ssize_t e = j - 1; /* the CR of this line's CRLF */
        Py_ssize_t i;
        switch (plain ? LOWER(p[s]) : 0) {
        case 'v':
            if (!have_via && (i = header_colon(p, s, e, "via", 3, "v")) >= 0) {
                have_via = 1;
                plain = via_value(p, i, line_end(p, i, e), &sent_by, &params);
            }
            break;
        case 'c':
            if (!have_call_id && (i = header_colon(p, s, e, "call-id", 7, NULL)) >= 0) {
                have_call_id = 1;
                call_id = call_id_value(p, i, e);
                plain = call_id.start >= 0;
            }
            else if (!have_cseq && (i = header_colon(p, s, e, "cseq", 4, NULL)) >= 0) {
                have_cseq = 1;
                plain = cseq_value(p, i, e, &cseq_seq, &cseq_method);
            }
            break;
        case 'i':
            if (!have_call_id && (i = header_colon(p, s, e, "call-id", 7, "i")) >= 0) {
                have_call_id = 1;
                call_id = call_id_value(p, i, e);
                plain = call_id.start >= 0;
            }
            break;
        case 't':
            if (!have_to && (i = header_colon(p, s, e, "to", 2, "t")) >= 0) {
                have_to = 1;
                tag = to_tag(p, i, line_end(p, i, e));
            }
            break;
        case 'r':
            if (!have_route && (i = header_colon(p, s, e, "route", 5, NULL)) >= 0) {
                have_route = 1;
                route = route_value(p, i, line_end(p, i, e));
                plain = route.start >= 0;
            }
            break;
        }
        s = j + 1;
    }

    /* The start line, read only now: a folded message goes to the reference first, and a
     * malformed start line is answered before any header goes to the full parser. */
    Span method = ABSENT, request_uri = ABSENT;
    int response = starts_ci(p, 0, eol, "sip/", 4);
    long code = 0;
    if (response) {
        /* RFC 3261 §7.2: `SIP/2.0 SP 3DIGIT SP`, the code 100 to 699. */
        if (eol < 12 || !starts_ci(p, 0, eol, "sip/2.0 ", 8) || p[8] < '1' || p[8] > '6'
            || !IS_DIGIT(p[9]) || !IS_DIGIT(p[10]) || p[11] != ' ') {
            PyErr_SetString(PyExc_ValueError, "Malformed Status-Line");
            return NULL;
        }
        code = (p[8] - '0') * 100 + (p[9] - '0') * 10 + (p[10] - '0');
    }
    else {
        /* RFC 3261 §7.1: `token SP Request-URI SP SIP/2.0`, no other SP, no HTAB in the
         * Request-URI; another SIP/x.y goes to the full parser (505). */
        const char *sp1 = memchr(p, ' ', (size_t)eol);
        const char *sp2 = sp1 == NULL ? NULL : memchr(sp1 + 1, ' ', (size_t)(p + eol - sp1 - 1));
        int ok = sp2 != NULL && sp1 > p && sp2 > sp1 + 1
                 && memchr(sp2 + 1, ' ', (size_t)(p + eol - sp2 - 1)) == NULL
                 && memchr(sp1 + 1, '\t', (size_t)(sp2 - sp1 - 1)) == NULL;
        for (const char *c = p; ok && c < sp1; c++) {
            ok = IS_TOKEN(*c);
        }
        if (ok) {
            Py_ssize_t v = sp2 - p + 1;
            if (!(eol - v == 7 && starts_ci(p, v, eol, "sip/2.0", 7))) {
                ok = sip_version(p, v, eol);
                plain = 0;
            }
        }
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "Malformed Request-Line");
            return NULL;
        }
        method = (Span){0, sp1 - p};
        request_uri = (Span){sp1 - p + 1, sp2 - p};
    }
    if (!plain) {
        return Py_NewRef(Py_None);
    }

    Span branch = ABSENT, rport = ABSENT;
    if (have_via) {
        branch = find_param(p, params.start, params.end, "branch", 6, TOKEN_END);
        rport = find_rport(p, params.start, params.end);
    }

    PyObject *tuple = PyTuple_New(11);
    PyObject *items[11] = {
        span_bytes(p, method),
        response ? PyLong_FromLong(code) : Py_NewRef(Py_None),
        span_bytes(p, request_uri),
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

/* ------------------------------------------------------------------- split_headers */

static int
is_ascii(const char *s, Py_ssize_t n)
{
    unsigned char bits = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        bits |= (unsigned char)s[k];
    }
    return bits < 0x80;
}

/* The n bytes at s as str, decoded as parse() decodes the header block: UTF-8 with
 * surrogateescape, so that every byte survives.  ascii: the caller knows every byte is
 * below 0x80, and they are copied as they are. */
static PyObject *
decode(const char *s, Py_ssize_t n, int ascii)
{
    if (!ascii) {
        return PyUnicode_DecodeUTF8(s, n, "surrogateescape");
    }
    if (n == 1) {
        return PyUnicode_FromOrdinal((unsigned char)s[0]); /* the cached one-letter str */
    }
    PyObject *u = PyUnicode_New(n, 127);
    if (u != NULL && n > 0) {
        memcpy(PyUnicode_1BYTE_DATA(u), s, (size_t)n);
    }
    return u;
}

/* The index key of the header name (the str name, of the token bytes [s, s + n)), as
 * sipfarm.sip.headers.key() makes it: lower case, a one-letter compact form looked up in
 * compact (RFC 3261 §7.3.3).  upper: the name has an upper-case letter. */
static PyObject *
header_key(PyObject *name, const char *s, Py_ssize_t n, int upper, PyObject *compact)
{
    PyObject *k;
    if (upper) {
        k = PyUnicode_New(n, 127);
        if (k == NULL) {
            return NULL;
        }
        Py_UCS1 *d = PyUnicode_1BYTE_DATA(k);
        for (Py_ssize_t i = 0; i < n; i++) {
            d[i] = LOWER(s[i]);
        }
    }
    else {
        k = Py_NewRef(name);
    }
    if (n == 1) {
        PyObject *full = PyDict_GetItemWithError(compact, k);
        if (full != NULL) {
            Py_SETREF(k, Py_NewRef(full));
        }
        else if (PyErr_Occurred()) {
            Py_DECREF(k);
            return NULL;
        }
    }
    return k;
}

/* An instance of type (a tuple subclass, or tuple itself) holding the n items, made as
 * tuple.__new__(type, items) makes it; steals the item references.  A NULL item (an error
 * is set) releases the others and gives NULL. */
static PyObject *
new_tuple(PyTypeObject *type, PyObject **items, Py_ssize_t n)
{
    for (Py_ssize_t k = 0; k < n; k++) {
        if (items[k] == NULL) {
            for (k = 0; k < n; k++) {
                Py_XDECREF(items[k]);
            }
            return NULL;
        }
    }
    PyObject *t = PyTuple_New(n);
    if (t == NULL) {
        for (Py_ssize_t k = 0; k < n; k++) {
            Py_DECREF(items[k]);
        }
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyTuple_SET_ITEM(t, k, items[k]);
    }
    if (type == &PyTuple_Type) {
        return t;
    }
    PyObject *args = PyTuple_Pack(1, t);
    Py_DECREF(t);
    if (args == NULL) {
        return NULL;
    }
    PyObject *obj = PyTuple_Type.tp_new(type, args, NULL);
    Py_DECREF(args);
    return obj;
}

/* One HeaderField-like instance of type field (a tuple subclass), made as
 * tuple.__new__(field, (name, value, raw)) makes it; steals the three references. */
static PyObject *
make_field(PyTypeObject *field, PyObject *name, PyObject *value, PyObject *raw)
{
    PyObject *items[3] = {name, value, raw};
    return new_tuple(field, items, 3);
}

/* Record header position k under key in index (key -> list of positions, in order).
 * 1 done; 0 a second line of a header in single (the reference raises); -1 error. */
static int
index_add(PyObject *index, PyObject *key, Py_ssize_t k, PyObject *single)
{
    PyObject *positions = PyDict_GetItemWithError(index, key);
    if (positions == NULL) {
        if (PyErr_Occurred()) {
            return -1;
        }
        positions = PyList_New(1);
        if (positions == NULL) {
            return -1;
        }
        PyObject *pos = PyLong_FromSsize_t(k);
        if (pos == NULL) {
            Py_DECREF(positions);
            return -1;
        }
        PyList_SET_ITEM(positions, 0, pos);
        int rc = PyDict_SetItem(index, key, positions);
        Py_DECREF(positions);
        return rc < 0 ? -1 : 1;
    }
    int dup = PySet_Contains(single, key);
    if (dup != 0) {
        return dup < 0 ? -1 : 0;
    }
    PyObject *pos = PyLong_FromSsize_t(k);
    if (pos == NULL) {
        return -1;
    }
    int rc = PyList_Append(positions, pos);
    Py_DECREF(pos);
    return rc < 0 ? -1 : 1;
}

static PyObject *
split_headers(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "split_headers() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *head = args[0], *compact = args[1], *single = args[2];
    if (!PyDict_Check(compact) || !PyAnySet_Check(single) || !PyType_Check(args[3])
        || !PyType_IsSubtype((PyTypeObject *)args[3], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError,
                        "split_headers(head, compact: dict, single: set or frozenset, "
                        "field: a tuple subclass)");
        return NULL;
    }
    PyTypeObject *field = (PyTypeObject *)args[3];
    if (!PyBytes_Check(head)) {
        Py_RETURN_NONE;
    }
    const char *p = PyBytes_AS_STRING(head);
    Py_ssize_t n = PyBytes_GET_SIZE(head);

    /* Every LF ends a line and follows a CR (RFC 3261 §7): a bare LF goes to the reference,
     * which splits on LF.  A lone CR stays in its line, as the reference keeps it. */
    Py_ssize_t count = 0; /* header lines: one per LF */
    Py_ssize_t eol = n;   /* end of the start line */
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + n - q))) != NULL; q++) {
        if (q == p || q[-1] != '\r') {
            Py_RETURN_NONE;
        }
        if (count++ == 0) {
            eol = q - p - 1;
        }
    }
    int ascii = is_ascii(p, n);

    PyObject *start = decode(p, eol, ascii);
    PyObject *fields = PyTuple_New(count);
    PyObject *index = PyDict_New();
    PyObject *result = NULL;
    if (start == NULL || fields == NULL || index == NULL) {
        goto done;
    }

    Py_ssize_t s = eol + 2;
    for (Py_ssize_t k = 0; k < count; k++) {
        const char *nl = memchr(p + s, '\n', (size_t)(n - s));
        Py_ssize_t le = nl == NULL ? n : nl - p - 1; /* the line is [s, le) */

        /* `token [ \t]* : [ \t]* value [ \t]*`; a line starting with white space (folded),
         * an empty line or any other name is left to the reference. */
        Py_ssize_t c = s;
        int upper = 0;
        while (c < le && IS_TOKEN(p[c])) {
            upper |= p[c] >= 'A' && p[c] <= 'Z';
            c++;
        }
        Py_ssize_t name_end = c;
        c = skip_ws(p, c, le);
        if (name_end == s || c >= le || p[c] != ':') {
            result = Py_NewRef(Py_None);
            goto done;
        }
        Py_ssize_t v = skip_ws(p, c + 1, le), ve = le;
        while (ve > v && IS_WS(p[ve - 1])) {
            ve--;
        }
        int line_ascii = ascii || is_ascii(p + s, le - s);

        PyObject *name = decode(p + s, name_end - s, 1);
        PyObject *value = decode(p + v, ve - v, line_ascii);
        PyObject *raw = decode(p + s, le - s, line_ascii);
        if (name == NULL || value == NULL || raw == NULL) {
            Py_XDECREF(name);
            Py_XDECREF(value);
            Py_XDECREF(raw);
            goto done;
        }
        PyObject *key = header_key(name, p + s, name_end - s, upper, compact);
        int added = key == NULL ? -1 : index_add(index, key, k, single);
        Py_XDECREF(key);
        if (added <= 0) {
            Py_DECREF(name);
            Py_DECREF(value);
            Py_DECREF(raw);
            if (added == 0) {
                result = Py_NewRef(Py_None);
            }
            goto done;
        }
        PyObject *f = make_field(field, name, value, raw);
        if (f == NULL) {
            goto done;
        }
        PyTuple_SET_ITEM(fields, k, f);
        s = le + 2;
    }
    result = PyTuple_Pack(3, start, fields, index);

done:
    Py_XDECREF(start);
    Py_XDECREF(fields);
    Py_XDECREF(index);
    return result;
}

/* ------------------------------------------------------------------ typed parsers */

/* What configure() hands over, per module instance: the types the reference builds. */
typedef struct {
    PyTypeObject *sip_uri;   /* sipfarm.sip.uri.SipUri */
    PyTypeObject *name_addr; /* sipfarm.sip.nameaddr.NameAddr */
    PyTypeObject *via;       /* sipfarm.sip.via.Via */
    PyTypeObject *params;    /* sipfarm.sip.params.Params */
    PyObject *empty_params;  /* sipfarm.sip.params.EMPTY */
    PyObject *sip, *sips;    /* the schemes as written */
    PyObject *protocol;      /* "SIP/2.0", Via.protocol */
} State;

/* The NamedTuple fields the C code fills, in order (configure() checks the counts). */
#define SIP_URI_FIELDS 8  /* host user password port params headers scheme raw */
#define NAME_ADDR_FIELDS 3 /* uri display_name params */
#define VIA_FIELDS 5      /* transport host port params protocol */

/* More parameters than this in one URI or header value: left to the reference. */
#define PARAMS_MAX 32

typedef struct {
    Span name;
    Span value; /* ABSENT: a flag, value None */
} Param;

/* The state when configure() has handed over every type a parser builds; else NULL with
 * RuntimeError (our own misuse: sipfarm.sip.params, .uri, .nameaddr and .via configure
 * the module when they import it). */
static State *
configured(PyObject *module, int name_addr, int via)
{
    State *st = PyModule_GetState(module);
    const char *missing = st->params == NULL || st->empty_params == NULL ? "params"
                          : st->sip_uri == NULL                          ? "sip_uri"
                          : name_addr && st->name_addr == NULL           ? "name_addr"
                          : via && st->via == NULL                       ? "via"
                                                                         : NULL;
    if (missing != NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "sipfarm.sip._speedups.configure() has not been given %s", missing);
        return NULL;
    }
    return st;
}

/* [v.start, v.end) of src as str; None when absent. */
static PyObject *
span_str(PyObject *src, Span v)
{
    if (v.start < 0) {
        return Py_NewRef(Py_None);
    }
    return PyUnicode_Substring(src, v.start, v.end);
}

/* The end of the run of class cls from i. */
static inline Py_ssize_t
run_class(const char *p, Py_ssize_t i, Py_ssize_t e, int cls)
{
    while (i < e && IS_CLASS(p[i], cls)) {
        i++;
    }
    return i;
}

/* IPv4address exactly [s, e): four dotted decimal octets up to 255, no leading zero (the
 * IPv4 branch of HOST_PATTERN in sipfarm/sip/uri.py). */
static int
is_ipv4(const char *p, Py_ssize_t s, Py_ssize_t e)
{
    for (int octet = 0; octet < 4; octet++) {
        if (octet > 0) {
            if (s >= e || p[s] != '.') {
                return 0;
            }
            s++;
        }
        Py_ssize_t d = s;
        int v = 0;
        while (s < e && IS_DIGIT(p[s]) && s - d < 3) {
            v = v * 10 + (p[s] - '0');
            s++;
        }
        if (s == d || v > 255 || (s - d > 1 && p[d] == '0')) {
            return 0;
        }
    }
    return s == e;
}

/* host = IPv4address / hostname exactly [s, e), IPv6 references excluded (HOST_PATTERN in
 * sipfarm/sip/uri.py, RFC 3261 §25.1): else dot-separated labels of letters, digits and
 * '-' that neither start nor end with '-', the last one (toplabel) starting with a
 * letter, and an optional final dot. */
static int
is_host(const char *p, Py_ssize_t s, Py_ssize_t e)
{
    if (s >= e) {
        return 0;
    }
    if (is_ipv4(p, s, e)) {
        return 1;
    }
    if (p[e - 1] == '.') {
        e--;
    }
    Py_ssize_t label = s;
    for (Py_ssize_t i = s;; i++) {
        if (i == e || p[i] == '.') {
            if (i == label || p[label] == '-' || p[i - 1] == '-') {
                return 0;
            }
            if (i == e) {
                return IS_ALPHA(p[label]);
            }
            label = i + 1;
        }
        else if (!IS_ALNUM(p[i]) && p[i] != '-') {
            return 0;
        }
    }
}

/* The digits of a port from i (just after ':'): 1 to 5 of them, up to 65535 (beyond, the
 * reference answers "Bad port").  The index after them, or -1. */
static Py_ssize_t
port_value(const char *p, Py_ssize_t i, Py_ssize_t e, long *port)
{
    Py_ssize_t d = i;
    long v = 0;
    while (i < e && IS_DIGIT(p[i])) {
        if (i - d == 5) {
            return -1;
        }
        v = v * 10 + (p[i] - '0');
        i++;
    }
    if (i == d || v > 65535) {
        return -1;
    }
    *port = v;
    return i;
}

/* `*( ";" name [ "=" value ] )` from i to exactly e, name and value runs of C_PARAM (the
 * uri-parameters of _FAST_SIP: no escapes).  The number stored in ps, or -1. */
static Py_ssize_t
uri_params(const char *p, Py_ssize_t i, Py_ssize_t e, Param *ps)
{
    Py_ssize_t count = 0;
    while (i < e) {
        if (p[i] != ';' || count == PARAMS_MAX) {
            return -1;
        }
        Param *q = &ps[count++];
        q->name = (Span){i + 1, run_class(p, i + 1, e, C_PARAM)};
        i = q->name.end;
        if (i == q->name.start) {
            return -1;
        }
        q->value = ABSENT;
        if (i < e && p[i] == '=') {
            q->value = (Span){i + 1, run_class(p, i + 1, e, C_PARAM)};
            i = q->value.end;
            if (i == q->value.start) {
                return -1;
            }
        }
    }
    return count;
}

/* generic-params from i (just after the first ';') to exactly e, ASCII only, read as
 * sipfarm.sip.params.parse_header_params reads them (RFC 3261 §25.1): SEMI and EQUAL with
 * white space around them, a token name, a value that is a token or host (C_HOSTISH) or a
 * quoted-string without quoted-pairs, kept with its quotes.  The number stored in ps, or
 * -1. */
static Py_ssize_t
header_params(const char *p, Py_ssize_t i, Py_ssize_t e, Param *ps)
{
    Py_ssize_t count = 0;
    for (;;) {
        if (count == PARAMS_MAX) {
            return -1;
        }
        Param *q = &ps[count++];
        i = skip_ws(p, i, e);
        q->name = (Span){i, run_class(p, i, e, C_TOKEN)};
        i = q->name.end;
        if (i == q->name.start) {
            return -1;
        }
        q->value = ABSENT;
        i = skip_ws(p, i, e);
        if (i < e && p[i] == '=') {
            i = skip_ws(p, i + 1, e);
            Py_ssize_t v = i;
            if (i < e && p[i] == '"') {
                do {
                    i++;
                } while (i < e && p[i] != '"' && p[i] != '\\');
                if (i >= e || p[i] != '"') {
                    return -1;
                }
                i++;
            }
            else {
                i = run_class(p, i, e, C_HOSTISH);
                if (i == v) {
                    return -1;
                }
            }
            q->value = (Span){v, i};
            i = skip_ws(p, i, e);
        }
        if (i == e) {
            return count;
        }
        if (p[i] != ';') {
            return -1;
        }
        i++;
    }
}

/* The Params of the count parameters in ps, cut from src; the shared empty one for none. */
static PyObject *
make_params(State *st, PyObject *src, const Param *ps, Py_ssize_t count)
{
    if (count == 0) {
        return Py_NewRef(st->empty_params);
    }
    PyObject *items[PARAMS_MAX];
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *pair[2] = {span_str(src, ps[k].name), span_str(src, ps[k].value)};
        items[k] = new_tuple(&PyTuple_Type, pair, 2);
        if (items[k] == NULL) {
            for (Py_ssize_t j = 0; j < k; j++) {
                Py_DECREF(items[j]);
            }
            return NULL;
        }
    }
    return new_tuple(st->params, items, count);
}

/* The SipUri of text (an exact ASCII str) in the shape of _FAST_SIP in sipfarm/sip/uri.py
 * (RFC 3261 §19.1.1, §25.1): `sip:` or `sips:` as written, an optional user of C_USER
 * before '@', a host (is_host), an optional port, uri-parameters (uri_params).  Fields as
 * the reference sets them: raw is text, no password, no headers.  None for another shape. */
static PyObject *
sip_uri(State *st, PyObject *text)
{
    const char *p = (const char *)PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *scheme;
    Py_ssize_t i;
    if (n >= 4 && memcmp(p, "sip:", 4) == 0) {
        scheme = st->sip;
        i = 4;
    }
    else if (n >= 5 && memcmp(p, "sips:", 5) == 0) {
        scheme = st->sips;
        i = 5;
    }
    else {
        return Py_NewRef(Py_None);
    }
    /* The user is the run of user characters when an '@' ends it; the host and what
     * follows it hold no '@', so there is no other way to read the text. */
    Span user = ABSENT;
    Py_ssize_t k = run_class(p, i, n, C_USER);
    if (k < n && p[k] == '@') {
        if (k == i) {
            return Py_NewRef(Py_None);
        }
        user = (Span){i, k};
        i = k + 1;
    }
    /* The host is the whole run of hostname characters: a port, a parameter or the end
     * follows it. */
    Span host = {i, run_class(p, i, n, C_HOST)};
    if (!is_host(p, host.start, host.end)) {
        return Py_NewRef(Py_None);
    }
    i = host.end;
    long port = -1;
    if (i < n && p[i] == ':' && (i = port_value(p, i + 1, n, &port)) < 0) {
        return Py_NewRef(Py_None);
    }
    Param ps[PARAMS_MAX];
    Py_ssize_t count = uri_params(p, i, n, ps);
    if (count < 0) {
        return Py_NewRef(Py_None);
    }
    PyObject *items[SIP_URI_FIELDS] = {
        span_str(text, host),
        span_str(text, user),
        Py_NewRef(Py_None),
        port < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(port),
        make_params(st, text, ps, count),
        PyTuple_New(0),
        Py_NewRef(scheme),
        Py_NewRef(text),
    };
    return new_tuple(st->sip_uri, items, SIP_URI_FIELDS);
}

static PyObject *
parse_uri(PyObject *module, PyObject *text)
{
    if (!PyUnicode_CheckExact(text)) {
        Py_RETURN_NONE;
    }
    State *st = configured(module, 0, 0);
    if (st == NULL) {
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        Py_RETURN_NONE;
    }
    return sip_uri(st, text);
}

/* The rest of a name-addr in src (an ASCII str) from i, the '<' after the display name
 * (display, a reference stolen: str or None), in the shape of _FAST in
 * sipfarm/sip/nameaddr.py: `<` URI `>`, then nothing or [ \t]* `;` and header parameters
 * (header_params).  The URI is read by sip_uri.  None for another shape. */
static PyObject *
name_addr_rest(State *st, PyObject *src, Py_ssize_t i, PyObject *display)
{
    const char *p = (const char *)PyUnicode_1BYTE_DATA(src);
    Py_ssize_t n = PyUnicode_GET_LENGTH(src);
    const char *gt;
    if (i >= n || p[i] != '<' || (gt = memchr(p + i, '>', (size_t)(n - i))) == NULL) {
        Py_DECREF(display);
        Py_RETURN_NONE;
    }
    Py_ssize_t u = i + 1;
    i = gt - p + 1;
    Param ps[PARAMS_MAX];
    Py_ssize_t count = 0;
    if (i < n) {
        i = skip_ws(p, i, n);
        if (i >= n || p[i] != ';' || (count = header_params(p, i + 1, n, ps)) < 0) {
            Py_DECREF(display);
            Py_RETURN_NONE;
        }
    }
    PyObject *uri_text = PyUnicode_Substring(src, u, gt - p);
    PyObject *uri = uri_text == NULL ? NULL : sip_uri(st, uri_text);
    Py_XDECREF(uri_text);
    if (uri == NULL || uri == Py_None) {
        Py_DECREF(display);
        return uri;
    }
    PyObject *items[NAME_ADDR_FIELDS] = {uri, display, make_params(st, src, ps, count)};
    return new_tuple(st->name_addr, items, NAME_ADDR_FIELDS);
}

/* A name-addr in the shapes of _FAST in sipfarm/sip/nameaddr.py (RFC 3261 §20.10, §25.1):
 * a quoted display name without quoted-pairs (any character but '"' and '\', non-ASCII
 * included), or tokens separated by SP / HTAB, or none; then the rest (name_addr_rest).
 * Everything but the quoted display name is ASCII. */
static PyObject *
parse_nameaddr(PyObject *module, PyObject *text)
{
    if (!PyUnicode_CheckExact(text)) {
        Py_RETURN_NONE;
    }
    State *st = configured(module, 1, 0);
    if (st == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (!PyUnicode_IS_ASCII(text)) {
        /* Only the quoted display name may hold non-ASCII: read the rest as its own str. */
        if (n == 0 || PyUnicode_READ_CHAR(text, 0) != '"') {
            Py_RETURN_NONE;
        }
        Py_ssize_t q = PyUnicode_FindChar(text, '"', 1, n, 1);
        Py_ssize_t b = q < 0 ? q : PyUnicode_FindChar(text, '\\', 1, q, 1);
        if (q == -2 || b == -2) {
            return NULL;
        }
        if (q < 0 || b >= 0) {
            Py_RETURN_NONE;
        }
        PyObject *rest = PyUnicode_Substring(text, q + 1, n);
        if (rest == NULL) {
            return NULL;
        }
        PyObject *result;
        if (!PyUnicode_IS_ASCII(rest)) {
            result = Py_NewRef(Py_None);
        }
        else {
            PyObject *display = PyUnicode_Substring(text, 1, q);
            const char *r = (const char *)PyUnicode_1BYTE_DATA(rest);
            result = display == NULL ? NULL
                                     : name_addr_rest(st, rest, skip_ws(r, 0, n - q - 1), display);
        }
        Py_DECREF(rest);
        return result;
    }
    const char *p = (const char *)PyUnicode_1BYTE_DATA(text);
    Py_ssize_t i = 0;
    PyObject *display;
    if (n > 0 && p[0] == '"') {
        i = 1;
        while (i < n && p[i] != '"' && p[i] != '\\') {
            i++;
        }
        if (i >= n || p[i] != '"') {
            Py_RETURN_NONE;
        }
        display = PyUnicode_Substring(text, 1, i);
        i = skip_ws(p, i + 1, n);
    }
    else if (n > 0 && IS_TOKEN(p[0])) {
        Py_ssize_t end = 0; /* the display name: tokens, white space between them */
        while (i < n && (IS_TOKEN(p[i]) || IS_WS(p[i]))) {
            if (!IS_WS(p[i])) {
                end = i + 1;
            }
            i++;
        }
        display = PyUnicode_Substring(text, 0, end);
    }
    else {
        display = Py_NewRef(Py_None);
    }
    if (display == NULL) {
        return NULL;
    }
    return name_addr_rest(st, text, i, display);
}

/* One via-parm in the shape of _FAST in sipfarm/sip/via.py (RFC 3261 §20.42, §25.1):
 * `SIP/2.0/` as written, a transport of letters (upper-cased, as the reference does), one
 * SP, a host (is_host), an optional port, then nothing or [ \t]* `;` and header parameters
 * (header_params).  None for another shape. */
static PyObject *
parse_via(PyObject *module, PyObject *text)
{
    if (!PyUnicode_CheckExact(text)) {
        Py_RETURN_NONE;
    }
    State *st = configured(module, 0, 1);
    if (st == NULL) {
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        Py_RETURN_NONE;
    }
    const char *p = (const char *)PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n < 8 || memcmp(p, "SIP/2.0/", 8) != 0) {
        Py_RETURN_NONE;
    }
    Py_ssize_t i = 8;
    while (i < n && IS_ALPHA(p[i])) {
        i++;
    }
    Span transport = {8, i};
    if (i == 8 || i >= n || p[i] != ' ') {
        Py_RETURN_NONE;
    }
    Span host = {i + 1, run_class(p, i + 1, n, C_HOST)};
    if (!is_host(p, host.start, host.end)) {
        Py_RETURN_NONE;
    }
    i = host.end;
    long port = -1;
    if (i < n && p[i] == ':' && (i = port_value(p, i + 1, n, &port)) < 0) {
        Py_RETURN_NONE;
    }
    Param ps[PARAMS_MAX];
    Py_ssize_t count = 0;
    if (i < n) {
        i = skip_ws(p, i, n);
        if (i >= n || p[i] != ';' || (count = header_params(p, i + 1, n, ps)) < 0) {
            Py_RETURN_NONE;
        }
    }
    PyObject *upper = PyUnicode_New(transport.end - transport.start, 127);
    if (upper != NULL) {
        Py_UCS1 *d = PyUnicode_1BYTE_DATA(upper);
        for (Py_ssize_t k = transport.start; k < transport.end; k++) {
            d[k - transport.start] = (Py_UCS1)(p[k] & ~0x20); /* letters only */
        }
    }
    PyObject *items[VIA_FIELDS] = {
        upper,
        span_str(text, host),
        port < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(port),
        make_params(st, text, ps, count),
        Py_NewRef(st->protocol),
    };
    return new_tuple(st->via, items, VIA_FIELDS);
}

/* Check that value is a tuple subclass whose _fields has `fields` names (0: any tuple
 * subclass); else TypeError. */
static int
check_type(const char *what, PyObject *value, Py_ssize_t fields)
{
    if (!PyType_Check(value) || !PyType_IsSubtype((PyTypeObject *)value, &PyTuple_Type)) {
        PyErr_Format(PyExc_TypeError, "configure(): %s must be a tuple subclass", what);
        return -1;
    }
    if (fields == 0) {
        return 0;
    }
    PyObject *names = PyObject_GetAttrString(value, "_fields");
    if (names == NULL) {
        PyErr_Clear();
    }
    int ok = names != NULL && PyTuple_Check(names) && PyTuple_GET_SIZE(names) == fields;
    Py_XDECREF(names);
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "configure(): %s must be a NamedTuple of %zd fields", what,
                     fields);
        return -1;
    }
    return 0;
}

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sip_uri", "name_addr", "via", "params", "empty_params", NULL};
    PyObject *sip_uri = NULL, *name_addr = NULL, *via = NULL, *params = NULL, *empty = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOOOO:configure", kwlist, &sip_uri,
                                     &name_addr, &via, &params, &empty)) {
        return NULL;
    }
    if ((sip_uri != NULL && check_type("sip_uri", sip_uri, SIP_URI_FIELDS) < 0)
        || (name_addr != NULL && check_type("name_addr", name_addr, NAME_ADDR_FIELDS) < 0)
        || (via != NULL && check_type("via", via, VIA_FIELDS) < 0)
        || (params != NULL && check_type("params", params, 0) < 0)) {
        return NULL;
    }
    if (empty != NULL && (!PyTuple_Check(empty) || PyTuple_GET_SIZE(empty) != 0)) {
        PyErr_SetString(PyExc_TypeError, "configure(): empty_params must be an empty tuple");
        return NULL;
    }
    State *st = PyModule_GetState(module);
    PyObject *given[] = {sip_uri, name_addr, via, params, empty};
    PyObject **slots[] = {(PyObject **)&st->sip_uri, (PyObject **)&st->name_addr,
                          (PyObject **)&st->via, (PyObject **)&st->params, &st->empty_params};
    for (size_t k = 0; k < sizeof(given) / sizeof(given[0]); k++) {
        if (given[k] != NULL) {
            Py_XSETREF(*slots[k], Py_NewRef(given[k]));
        }
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ answer_options */

/* answer_options(data, host, port, token, extra) -> (bytes, str, int) | None
 *
 * The whole of sipfarm.stateless.StatelessCore.receive (the reference) for an OPTIONS
 * request in the common shape, received from (host, port): the 200 response's bytes and
 * the address it goes to, as SendResponse(data, address) holds them.  extra is the wire
 * form of the header lines the core adds (Allow, Accept, Supported...), token the member
 * token of the To-tag.  None for everything else, which the reference then reads: other
 * methods, a non-ASCII or control byte, leading CRLFs, a body or bytes past the header
 * block, a compact header name other than v f t i l m, a second line of any header but
 * Via / Contact / Route / Record-Route, a comma in those, Require, Date, a Call-ID, CSeq,
 * Max-Forwards or Content-Length not in its plain shape, a Request-URI, Via, From, To,
 * Contact, Route or Record-Route the C typed parsers leave to Python, a bare-cookie
 * branch, received / maddr / rport=value / a second rport in the top Via, an IPv6 or
 * empty source host, a port outside 0..65535. */

static uint32_t crc_table[256];

static void
crc_init(void)
{
    for (uint32_t k = 0; k < 256; k++) {
        uint32_t c = k;
        for (int b = 0; b < 8; b++) {
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_table[k] = c;
    }
}

/* zlib.crc32 of the bytes fed, as a running state: start ~0, finish with ~. */
static uint32_t
crc_feed(uint32_t c, const char *s, Py_ssize_t n)
{
    for (Py_ssize_t k = 0; k < n; k++) {
        c = crc_table[(c ^ (unsigned char)s[k]) & 0xff] ^ (c >> 8);
    }
    return c;
}

enum { K_OTHER, K_VIA, K_FROM, K_TO, K_CALLID, K_CSEQ, K_MF, K_CL, K_CONTACT, K_ROUTE,
       K_RR, K_REFUSE, K_COUNT };

#define OPT_LINES_MAX 64

typedef struct {
    Py_ssize_t s, name_end, v, ve, le; /* line [s, le), name [s, name_end), value [v, ve) */
    int kind;
} OptLine;

static int
name_is(const char *p, Py_ssize_t s, Py_ssize_t e, const char *lit)
{
    Py_ssize_t n = (Py_ssize_t)strlen(lit);
    if (e - s != n) {
        return 0;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        if (LOWER(p[s + k]) != (unsigned char)lit[k]) {
            return 0;
        }
    }
    return 1;
}

static int
header_kind(const char *p, Py_ssize_t s, Py_ssize_t e)
{
    if (e - s == 1) {
        switch (LOWER(p[s])) {
        case 'v': return K_VIA;
        case 'f': return K_FROM;
        case 't': return K_TO;
        case 'i': return K_CALLID;
        case 'l': return K_CL;
        case 'm': return K_CONTACT;
        default: return K_REFUSE;
        }
    }
    static const struct { const char *name; int kind; } known[] = {
        {"via", K_VIA}, {"from", K_FROM}, {"to", K_TO}, {"call-id", K_CALLID},
        {"cseq", K_CSEQ}, {"max-forwards", K_MF}, {"content-length", K_CL},
        {"contact", K_CONTACT}, {"route", K_ROUTE}, {"record-route", K_RR},
        {"require", K_REFUSE}, {"date", K_REFUSE},
    };
    for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
        if (name_is(p, s, e, known[k].name)) {
            return known[k].kind;
        }
    }
    return K_OTHER;
}

/* 1*10 DIGIT as a number; -1 for another shape. */
static long long
digits_value(const char *p, Py_ssize_t s, Py_ssize_t e)
{
    if (e - s < 1 || e - s > 10) {
        return -1;
    }
    long long v = 0;
    for (Py_ssize_t k = s; k < e; k++) {
        if (!IS_DIGIT(p[k])) {
            return -1;
        }
        v = v * 10 + (p[k] - '0');
    }
    return v;
}

/* fn(module, the str of [s, e) of p): a new reference, Py_None included; NULL on error. */
static PyObject *
typed(PyObject *(*fn)(PyObject *, PyObject *), PyObject *module, const char *p, Py_ssize_t s,
      Py_ssize_t e)
{
    PyObject *text = decode(p + s, e - s, 1);
    if (text == NULL) {
        return NULL;
    }
    PyObject *r = fn(module, text);
    Py_DECREF(text);
    return r;
}

/* Is the str an ASCII name equal, case-insensitively, to lit? */
static int
str_is(PyObject *s, const char *lit)
{
    if (!PyUnicode_Check(s) || !PyUnicode_IS_ASCII(s)) {
        return 0;
    }
    const char *d = (const char *)PyUnicode_1BYTE_DATA(s);
    return name_is(d, 0, PyUnicode_GET_LENGTH(s), lit);
}

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
} Out;

static int
out_put(Out *o, const char *s, Py_ssize_t n)
{
    if (o->len + n > o->cap) {
        return -1; /* sized up front: cannot happen */
    }
    memcpy(o->buf + o->len, s, (size_t)n);
    o->len += n;
    return 0;
}

static int
out_str(Out *o, PyObject *s)
{
    if (!PyUnicode_Check(s) || !PyUnicode_IS_ASCII(s)) {
        return -1;
    }
    return out_put(o, (const char *)PyUnicode_1BYTE_DATA(s), PyUnicode_GET_LENGTH(s));
}

static PyObject *
answer_options(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "answer_options() takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *data = args[0], *host = args[1], *port_obj = args[2], *token = args[3],
             *extra = args[4];
    if (!PyBytes_CheckExact(data) || !PyUnicode_CheckExact(host) || !PyLong_CheckExact(port_obj)
        || !PyUnicode_CheckExact(token) || !PyBytes_CheckExact(extra)) {
        Py_RETURN_NONE;
    }
    State *st = PyModule_GetState(module);
    if (st->sip_uri == NULL || st->name_addr == NULL || st->via == NULL || st->params == NULL
        || st->empty_params == NULL) {
        Py_RETURN_NONE;
    }
    if (!PyUnicode_IS_ASCII(host) || !PyUnicode_IS_ASCII(token)
        || PyUnicode_GET_LENGTH(host) == 0) {
        Py_RETURN_NONE;
    }
    const char *hp = (const char *)PyUnicode_1BYTE_DATA(host);
    Py_ssize_t hn = PyUnicode_GET_LENGTH(host);
    if (memchr(hp, ':', (size_t)hn) != NULL) {
        Py_RETURN_NONE; /* IPv6 */
    }
    int overflow = 0;
    long port = PyLong_AsLongAndOverflow(port_obj, &overflow);
    if (port == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (overflow || port < 0 || port > 65535) {
        Py_RETURN_NONE;
    }

    const char *p = PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    /* The header block is all of data but the final CRLFCRLF: printable ASCII, HTAB and
     * CRLF line ends only. */
    if (n < 4 || memcmp(p + n - 4, "\r\n\r\n", 4) != 0) {
        Py_RETURN_NONE;
    }
    Py_ssize_t head = n - 4;
    for (Py_ssize_t k = 0; k < head; k++) {
        unsigned char c = (unsigned char)p[k];
        if (c == '\r') {
            if (k + 1 >= head || p[k + 1] != '\n') {
                Py_RETURN_NONE;
            }
            if (k + 2 < head && p[k + 2] == '\r') {
                Py_RETURN_NONE; /* an empty line: the block ends earlier */
            }
            k++;
        }
        else if (!(IS_VISIBLE(c) || c == ' ' || c == '\t')) {
            Py_RETURN_NONE;
        }
    }
    /* The Request-Line: `OPTIONS SP Request-URI SP SIP/2.0`. */
    const char *crlf = memchr(p, '\r', (size_t)head);
    Py_ssize_t eol = crlf == NULL ? head : crlf - p;
    if (eol < 8 + 1 + 8 || memcmp(p, "OPTIONS ", 8) != 0
        || memcmp(p + eol - 8, " SIP/2.0", 8) != 0) {
        Py_RETURN_NONE;
    }
    for (Py_ssize_t k = 8; k < eol - 8; k++) {
        if (p[k] == ' ' || p[k] == '\t') {
            Py_RETURN_NONE;
        }
    }

    OptLine lines[OPT_LINES_MAX];
    Py_ssize_t count = 0;
    int seen[K_COUNT] = {0};
    for (Py_ssize_t s = eol + 2; s < head;) {
        if (count == OPT_LINES_MAX) {
            Py_RETURN_NONE;
        }
        const char *cr = memchr(p + s, '\r', (size_t)(head - s));
        Py_ssize_t le = cr == NULL ? head : cr - p;
        OptLine *L = &lines[count++];
        Py_ssize_t c = s;
        while (c < le && IS_TOKEN(p[c])) {
            c++;
        }
        L->s = s;
        L->name_end = c;
        c = skip_ws(p, c, le);
        if (L->name_end == s || c >= le || p[c] != ':') {
            Py_RETURN_NONE;
        }
        L->v = skip_ws(p, c + 1, le);
        L->ve = le;
        while (L->ve > L->v && IS_WS(p[L->ve - 1])) {
            L->ve--;
        }
        L->le = le;
        L->kind = header_kind(p, s, L->name_end);
        if (L->kind == K_REFUSE) {
            Py_RETURN_NONE;
        }
        seen[L->kind]++;
        if (L->kind == K_OTHER) { /* any second line of another header: left to Python */
            for (Py_ssize_t j = 0; j < count - 1; j++) {
                if (lines[j].kind == K_OTHER && lines[j].name_end - lines[j].s == L->name_end - s) {
                    Py_ssize_t m = 0, len = L->name_end - s;
                    while (m < len && LOWER(p[lines[j].s + m]) == LOWER(p[s + m])) {
                        m++;
                    }
                    if (m == len) {
                        Py_RETURN_NONE;
                    }
                }
            }
        }
        else if (L->kind != K_VIA && L->kind != K_CONTACT && L->kind != K_ROUTE
                 && L->kind != K_RR && seen[L->kind] > 1) {
            Py_RETURN_NONE;
        }
        if ((L->kind == K_VIA || L->kind == K_CONTACT || L->kind == K_ROUTE || L->kind == K_RR)
            && memchr(p + L->v, ',', (size_t)(L->ve - L->v)) != NULL) {
            Py_RETURN_NONE;
        }
        s = le + 2;
    }
    if (!seen[K_VIA] || seen[K_FROM] != 1 || seen[K_TO] != 1 || seen[K_CALLID] != 1
        || seen[K_CSEQ] != 1) {
        Py_RETURN_NONE;
    }

    /* The scalars (sipfarm.sip.message._read_scalars, parse_cseq). */
    OptLine *via_top = NULL, *from = NULL, *to = NULL, *call_id = NULL, *cseq = NULL;
    for (Py_ssize_t k = 0; k < count; k++) {
        OptLine *L = &lines[k];
        switch (L->kind) {
        case K_VIA:
            if (via_top == NULL) {
                via_top = L;
            }
            break;
        case K_FROM: from = L; break;
        case K_TO: to = L; break;
        case K_CALLID: call_id = L; break;
        case K_CSEQ: cseq = L; break;
        case K_MF: {
            long long hops = digits_value(p, L->v, L->ve);
            if (hops < 0 || hops > 255) {
                Py_RETURN_NONE;
            }
            break;
        }
        case K_CL:
            if (digits_value(p, L->v, L->ve) != 0) {
                Py_RETURN_NONE;
            }
            break;
        default:
            break;
        }
    }
    if (call_id->ve == call_id->v) {
        Py_RETURN_NONE;
    }
    for (Py_ssize_t k = call_id->v; k < call_id->ve; k++) {
        if (!IS_VISIBLE(p[k])) {
            Py_RETURN_NONE;
        }
    }
    Py_ssize_t q = cseq->v;
    while (q < cseq->ve && IS_DIGIT(p[q])) {
        q++;
    }
    long long seq = digits_value(p, cseq->v, q);
    Py_ssize_t m = skip_ws(p, q, cseq->ve);
    if (seq < 0 || seq >= 2147483648LL || m == q || cseq->ve - m != 7
        || memcmp(p + m, "OPTIONS", 7) != 0) {
        Py_RETURN_NONE;
    }

    /* The typed headers, read by the C parsers parse() itself uses. */
    PyObject *top = NULL, *to_na = NULL, *result = NULL;
    char *buf = NULL;
    PyObject *r = typed(parse_uri, module, p, 8, eol - 8);
    if (r == NULL || r == Py_None) {
        return r;
    }
    Py_DECREF(r);
    Py_ssize_t contacts = seen[K_CONTACT];
    for (Py_ssize_t k = 0; k < count; k++) {
        OptLine *L = &lines[k];
        PyObject *(*fn)(PyObject *, PyObject *);
        if (L->kind == K_VIA) {
            fn = parse_via;
        }
        else if (L->kind == K_FROM || L->kind == K_TO || L->kind == K_ROUTE || L->kind == K_RR
                 || L->kind == K_CONTACT) {
            fn = parse_nameaddr;
            if (L->kind == K_CONTACT && L->ve - L->v == 1 && p[L->v] == '*') {
                if (contacts != 1) {
                    result = Py_NewRef(Py_None);
                    goto done;
                }
                continue;
            }
        }
        else {
            continue;
        }
        r = typed(fn, module, p, L->v, L->ve);
        if (r == NULL || r == Py_None) {
            result = r;
            goto done;
        }
        if (L == via_top) {
            top = r;
        }
        else if (L == to) {
            to_na = r;
        }
        else {
            Py_DECREF(r);
        }
    }

    /* The top Via: branch, rport, and what stamp_received makes of it. */
    PyObject *transport = PyTuple_GET_ITEM(top, 0), *via_host = PyTuple_GET_ITEM(top, 1),
             *via_port = PyTuple_GET_ITEM(top, 2), *params = PyTuple_GET_ITEM(top, 3);
    if (!PyTuple_Check(params) || !PyUnicode_Check(transport) || !PyUnicode_Check(via_host)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *branch = NULL;
    Py_ssize_t rport_at = -1;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(params); k++) {
        PyObject *pair = PyTuple_GET_ITEM(params, k);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if (str_is(name, "branch")) {
            if (branch == NULL) {
                branch = value;
            }
        }
        else if (str_is(name, "rport")) {
            if (rport_at >= 0 || value != Py_None) {
                result = Py_NewRef(Py_None);
                goto done;
            }
            rport_at = k;
        }
        else if (str_is(name, "received") || str_is(name, "maddr")) {
            result = Py_NewRef(Py_None);
            goto done;
        }
    }
    if (branch != NULL && branch != Py_None && PyUnicode_CompareWithASCIIString(branch, "z9hG4bK") == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    int host_differs = PyUnicode_Compare(via_host, host);
    if (host_differs == -1 && PyErr_Occurred()) {
        goto done;
    }
    int stamp = rport_at >= 0 || host_differs != 0;

    /* The To: tagged already, or tagged here (StatelessCore.to_tag). */
    PyObject *to_params = PyTuple_GET_ITEM(to_na, 2);
    int has_tag = 0;
    if (!PyTuple_Check(to_params)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(to_params); k++) {
        PyObject *pair = PyTuple_GET_ITEM(to_params, k);
        if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2 && str_is(PyTuple_GET_ITEM(pair, 0), "tag")) {
            has_tag = 1;
        }
    }

    Py_ssize_t cap = n + PyBytes_GET_SIZE(extra) + PyUnicode_GET_LENGTH(token) + 2 * hn + 128;
    buf = PyMem_Malloc((size_t)cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Out o = {buf, 0, cap};
    int bad = out_put(&o, "SIP/2.0 200 OK\r\n", 16);
    for (Py_ssize_t k = 0; k < count && !bad; k++) {
        OptLine *L = &lines[k];
        if (L->kind != K_VIA) {
            continue;
        }
        if (L != via_top || !stamp) {
            bad |= out_put(&o, p + L->s, L->le - L->s) | out_put(&o, "\r\n", 2);
            continue;
        }
        Py_ssize_t vlen = L->ve - L->v;
        int rport_last = rport_at >= 0 && vlen >= 6 && memcmp(p + L->ve - 6, ";rport", 6) == 0;
        if ((rport_at < 0 || rport_last) && memchr(p + L->v, ',', (size_t)vlen) == NULL) {
            /* Request.with_received's common shapes: the Via as written, then `=port` for
             * a last `;rport` and `;received=host` (not rebuilt: `SIP/2.0/udp`, `h ;branch`
             * and `:05060` stay as the phone wrote them, as in the reference's answer). */
            bad |= out_put(&o, p + L->s, L->name_end - L->s) | out_put(&o, ": ", 2)
                   | out_put(&o, p + L->v, vlen);
            if (rport_last) {
                char num[24];
                int len = snprintf(num, sizeof(num), "=%ld", port);
                bad |= out_put(&o, num, len);
            }
            bad |= out_put(&o, ";received=", 10) | out_put(&o, hp, hn) | out_put(&o, "\r\n", 2);
            continue;
        }
        /* `name: ` + str(stamped Via) (Via.__str__, Params.__str__) */
        bad |= out_put(&o, p + L->s, L->name_end - L->s) | out_put(&o, ": SIP/2.0/", 10);
        bad |= out_str(&o, transport) | out_put(&o, " ", 1) | out_str(&o, via_host);
        if (via_port != Py_None) {
            char num[24];
            long v = PyLong_AsLong(via_port);
            if (v == -1 && PyErr_Occurred()) {
                goto done;
            }
            int len = snprintf(num, sizeof(num), ":%ld", v);
            bad |= out_put(&o, num, len);
        }
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(params); j++) {
            PyObject *pair = PyTuple_GET_ITEM(params, j);
            bad |= out_put(&o, ";", 1) | out_str(&o, PyTuple_GET_ITEM(pair, 0));
            if (j == rport_at) {
                char num[24];
                int len = snprintf(num, sizeof(num), "=%ld", port);
                bad |= out_put(&o, num, len);
            }
            else if (PyTuple_GET_ITEM(pair, 1) != Py_None) {
                bad |= out_put(&o, "=", 1) | out_str(&o, PyTuple_GET_ITEM(pair, 1));
            }
        }
        bad |= out_put(&o, ";received=", 10) | out_put(&o, hp, hn) | out_put(&o, "\r\n", 2);
    }
    bad |= out_put(&o, p + from->s, from->le - from->s) | out_put(&o, "\r\n", 2);
    if (has_tag) {
        bad |= out_put(&o, p + to->s, to->le - to->s);
    }
    else {
        uint32_t c = 0xFFFFFFFFu;
        char num[24];
        c = crc_feed(c, p + call_id->v, call_id->ve - call_id->v);
        c = crc_feed(c, "|", 1);
        c = crc_feed(c, p + from->v, from->ve - from->v);
        c = crc_feed(c, "|", 1);
        if (branch != NULL && branch != Py_None) {
            if (!PyUnicode_IS_ASCII(branch)) {
                bad = 1;
            }
            else {
                c = crc_feed(c, (const char *)PyUnicode_1BYTE_DATA(branch),
                             PyUnicode_GET_LENGTH(branch));
            }
        }
        c = crc_feed(c, "|", 1);
        int len = snprintf(num, sizeof(num), "%lld", seq);
        c = crc_feed(c, num, len);
        c ^= 0xFFFFFFFFu;
        bad |= out_put(&o, p + to->s, to->name_end - to->s) | out_put(&o, ": ", 2);
        bad |= out_put(&o, p + to->v, to->ve - to->v) | out_put(&o, ";tag=", 5);
        bad |= out_str(&o, token);
        len = snprintf(num, sizeof(num), "-s%08x", (unsigned int)c);
        bad |= out_put(&o, num, len);
    }
    bad |= out_put(&o, "\r\n", 2);
    bad |= out_put(&o, p + call_id->s, call_id->le - call_id->s) | out_put(&o, "\r\n", 2);
    bad |= out_put(&o, p + cseq->s, cseq->le - cseq->s) | out_put(&o, "\r\n", 2);
    bad |= out_put(&o, PyBytes_AS_STRING(extra), PyBytes_GET_SIZE(extra));
    bad |= out_put(&o, "Content-Length: 0\r\n\r\n", 21);
    if (bad) {
        result = Py_NewRef(Py_None);
        goto done;
    }

    /* response_address(stamped top Via, (host, port)) */
    long dest = port;
    if (rport_at < 0) {
        long v = 0;
        if (via_port != Py_None) {
            v = PyLong_AsLong(via_port);
            if (v == -1 && PyErr_Occurred()) {
                goto done;
            }
        }
        if (v == 0) {
            v = PyUnicode_CompareWithASCIIString(transport, "TLS") == 0   ? 5061
                : PyUnicode_CompareWithASCIIString(transport, "WS") == 0  ? 80
                : PyUnicode_CompareWithASCIIString(transport, "WSS") == 0 ? 443
                                                                          : 5060;
        }
        dest = v;
    }
    PyObject *bytes = PyBytes_FromStringAndSize(o.buf, o.len);
    if (bytes != NULL) {
        result = Py_BuildValue("(NOl)", bytes, host, dest);
    }

done:
    PyMem_Free(buf);
    Py_XDECREF(top);
    Py_XDECREF(to_na);
    return result;
}

PyDoc_STRVAR(peek_doc,
"peek(data, /)\n--\n\n"
"The routing fields of a SIP message as an 11-tuple in Peek order; ValueError when the\n"
"start line is malformed; None when the pure-Python peek must decide.");

PyDoc_STRVAR(split_headers_doc,
"split_headers(head, compact, single, field, /)\n--\n\n"
"The header block head (bytes, start line included, final CRLFCRLF excluded) as\n"
"(start_line, fields, index): fields a tuple of field(name, value, raw) str triples,\n"
"index a dict of lower-case key (one-letter names mapped through the dict compact) to\n"
"the list of positions.  None unless every line ends in CRLF and is `token: value`,\n"
"with no second line of a key in single: then the Python split must decide.");

PyDoc_STRVAR(parse_uri_doc,
"parse_uri(text, /)\n--\n\n"
"The SipUri of text in the common shape of sipfarm.sip.uri.parse_uri (sip: or sips:, a\n"
"user, a hostname or IPv4 host, a port, parameters; no escapes); None for anything else.");

PyDoc_STRVAR(parse_nameaddr_doc,
"parse_nameaddr(text, /)\n--\n\n"
"The NameAddr of text in the common shape of sipfarm.sip.nameaddr.parse_nameaddr (a\n"
"display name, <URI> read as parse_uri reads it, header parameters); None for anything\n"
"else.");

PyDoc_STRVAR(parse_via_doc,
"parse_via(text, /)\n--\n\n"
"The Via of one via-parm in the common shape of sipfarm.sip.via.parse_via (SIP/2.0/\n"
"transport, one SP, host and port, header parameters); None for anything else.");

PyDoc_STRVAR(configure_doc,
"configure(*, sip_uri=None, name_addr=None, via=None, params=None, empty_params=None)\n"
"--\n\n"
"Hand over the types the typed parsers build (SipUri, NameAddr, Via, Params) and the\n"
"shared empty Params; each module of sipfarm.sip gives its own when it is imported.");

PyDoc_STRVAR(answer_options_doc,
"answer_options(data, host, port, token, extra, /)\n--\n\n"
"(response bytes, host, port) of sipfarm.stateless.StatelessCore.receive for an OPTIONS\n"
"request in the common shape received from (host, port); None for anything else, which\n"
"the Python core then answers.");

static PyMethodDef speedups_methods[] = {
    {"peek", peek, METH_O, peek_doc},
    {"split_headers", (PyCFunction)(void (*)(void))split_headers, METH_FASTCALL,
     split_headers_doc},
    {"parse_uri", parse_uri, METH_O, parse_uri_doc},
    {"parse_nameaddr", parse_nameaddr, METH_O, parse_nameaddr_doc},
    {"parse_via", parse_via, METH_O, parse_via_doc},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     configure_doc},
    {"answer_options", (PyCFunction)(void (*)(void))answer_options, METH_FASTCALL,
     answer_options_doc},
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    State *st = PyModule_GetState(module);
    crc_init();
    st->sip = PyUnicode_InternFromString("sip");
    st->sips = PyUnicode_InternFromString("sips");
    st->protocol = PyUnicode_InternFromString("SIP/2.0");
    if (st->sip == NULL || st->sips == NULL || st->protocol == NULL) {
        return -1;
    }
    return PyModule_AddIntConstant(module, "PARAMS_MAX", PARAMS_MAX);
}

static int
speedups_traverse(PyObject *module, visitproc visit, void *arg)
{
    State *st = PyModule_GetState(module);
    if (st != NULL) {
        Py_VISIT(st->sip_uri);
        Py_VISIT(st->name_addr);
        Py_VISIT(st->via);
        Py_VISIT(st->params);
        Py_VISIT(st->empty_params);
    }
    return 0;
}

static int
speedups_clear(PyObject *module)
{
    State *st = PyModule_GetState(module);
    if (st != NULL) {
        Py_CLEAR(st->sip_uri);
        Py_CLEAR(st->name_addr);
        Py_CLEAR(st->via);
        Py_CLEAR(st->params);
        Py_CLEAR(st->empty_params);
        Py_CLEAR(st->sip);
        Py_CLEAR(st->sips);
        Py_CLEAR(st->protocol);
    }
    return 0;
}

static void
speedups_free(void *module)
{
    speedups_clear((PyObject *)module);
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
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
    .m_doc = "C accelerator for sipfarm.sip.peek, the header split of "
             "sipfarm.sip.message.parse and the typed parsers of sipfarm.sip.uri, .nameaddr "
             "and .via; the pure-Python code is the reference.",
    .m_size = sizeof(State),
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
    .m_traverse = speedups_traverse,
    .m_clear = speedups_clear,
    .m_free = speedups_free,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
