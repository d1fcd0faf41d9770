/*
 * Content-Disposition file names, read strictly as RFC 6266 and RFC 8187
 * define them, and making any file name safe to create inside a directory.
 *
 * A value outside RFC 6266's grammar is ignored as a whole (section 4.1):
 * no disposition type, a parameter without its ';', an empty parameter or
 * a trailing ';', a token with a character tokens cannot hold (space, ',',
 * '/', '[', non-ASCII, ...), an unterminated quoted-string, anything but
 * ';' after a value, or a parameter name given twice.  A filename* that is
 * not an RFC 8187 ext-value (charset UTF-8 or ISO-8859-1, an optional
 * language, attr-chars and well-formed %XX only, decoding to valid UTF-8,
 * or to ISO-8859-1 without its unassigned 0x80-0x9f) is ignored alone and
 * filename is used instead, as RFC 6266 section 4.3 asks.
 *
 * One reading goes past the grammar: raw octets above 0x7f in a quoted
 * filename (obs-text) are taken as UTF-8 when the whole value is valid
 * UTF-8, else as ISO-8859-1.  Whatever name results goes through
 * cf_sanitize_filename.  spec/disposition_spec.lua holds the tc2231 cases.
 */
#include "cloudfetch.h"
#include "text.h"

#include <stdlib.h>
#include <string.h>

#define CF_NAME_MAX 255 /* bytes, the usual file-system limit */
#define CF_EXT_MAX 16   /* an extension longer than this is not kept */

/* A growable byte buffer; on allocation failure `failed` is set and later
 * appends are ignored, so callers check once at the end. */
typedef struct {
    char *p;
    size_t n, cap;
    int failed;
} buf;

static void buf_put(buf *b, char c)
{
    if (b->failed)
        return;
    if (b->n + 1 >= b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    b->p[b->n++] = c;
}

/* One code point below U+0800 as UTF-8. */
static void buf_put_latin1(buf *b, unsigned c)
{
    if (c < 0x80) {
        buf_put(b, (char)c);
    } else {
        buf_put(b, (char)(0xc0 | (c >> 6)));
        buf_put(b, (char)(0x80 | (c & 0x3f)));
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* ---- sanitising ---------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when the
 * bytes there are not one (overlong forms, surrogates, > U+10FFFF, cut). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len, i;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq(s + i, n - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

/* The code point of a valid sequence of k bytes. */
static unsigned long utf8_cp(const unsigned char *s, size_t k)
{
    unsigned long cp;
    size_t i;
    if (k == 1)
        return s[0];
    cp = s[0] & (0xff >> (k + 1));
    for (i = 1; i < k; i++)
        cp = (cp << 6) | (s[i] & 0x3f);
    return cp;
}

/* Characters that are removed from names: they are invisible, or change how
 * the rest displays, so a name holding one can look like something it is
 * not ("invoice<U+202E>fdp.exe" shows as "invoiceexe.pdf"). */
static int invisible(unsigned long cp)
{
    return (cp >= 0x80 && cp <= 0x9f)       /* C1 controls */
           || cp == 0x061c                  /* ARABIC LETTER MARK */
           || (cp >= 0x200b && cp <= 0x200f) /* ZWSP, ZWNJ, ZWJ, LRM, RLM */
           || (cp >= 0x2028 && cp <= 0x202e) /* line/paragraph separators, LRE..RLO */
           || (cp >= 0x2060 && cp <= 0x206f) /* WJ, invisible operators, LRI..PDI, deprecated */
           || cp == 0xfeff;                  /* ZERO WIDTH NO-BREAK SPACE (BOM) */
}

static int trailing_junk(char c)
{
    return c == ' ' || c == '.';
}

/* Rules, in order:
 *  1. keep what follows the last '/' or '\\';
 *  2. drop NUL and every other control byte (< 0x20, 0x7f) -- dropped, not
 *     cut at: "a%00.txt" gives "a.txt", never a silently shorter name;
 *  3. replace each byte that is not part of valid UTF-8 with '_';
 *  4. drop C1 controls (U+0080-U+009F), bidi controls (U+061C, U+200E,
 *     U+200F, U+202A-U+202E, U+2066-U+2069), zero-width and other invisible
 *     format characters (U+200B-U+200D, U+2060-U+2065, U+206A-U+206F,
 *     U+FEFF) and the line/paragraph separators U+2028, U+2029;
 *  5. trim leading blanks, trailing blanks and trailing dots;
 *  6. shorten to 255 bytes, keeping an extension of up to 16 bytes and
 *     never splitting a UTF-8 sequence;
 *  7. nothing left, "." or ".." gives NULL. */
char *cf_sanitize_filename(const char *name, size_t len)
{
    const unsigned char *s = (const unsigned char *)name;
    size_t start = 0, i, n, b, e;
    buf out = {NULL, 0, 0, 0};
    char *r;

    if (!name)
        return NULL;
    for (i = 0; i < len; i++)
        if (s[i] == '/' || s[i] == '\\')
            start = i + 1;

    for (i = start; i < len;) {
        size_t k;
        if (s[i] < 0x20 || s[i] == 0x7f) {
            i++;
            continue;
        }
        k = utf8_seq(s + i, len - i);
        if (k == 0) {
            buf_put(&out, '_');
            i++;
            continue;
        }
        if (k > 1 && invisible(utf8_cp(s + i, k))) {
            i += k;
            continue;
        }
        while (k--)
            buf_put(&out, (char)s[i++]);
    }
    if (out.failed) {
        free(out.p);
        return NULL;
    }
    n = out.n;
    b = 0;
    while (b < n && is_blank((unsigned char)out.p[b]))
        b++;
    e = n;
    while (e > b && trailing_junk(out.p[e - 1]))
        e--;

    if (e - b > CF_NAME_MAX) {
        /* Extension: after the last '.', not a leading dot, short enough. */
        size_t dot = e, ext = 0, keep;
        for (i = e; i > b + 1; i--)
            if (out.p[i - 1] == '.') {
                dot = i - 1;
                break;
            }
        if (dot < e && e - dot <= CF_EXT_MAX + 1)
            ext = e - dot;
        keep = CF_NAME_MAX - ext;
        /* Back up to the start of a UTF-8 sequence. */
        while (keep > 0 && ((unsigned char)out.p[b + keep] & 0xc0) == 0x80)
            keep--;
        memmove(out.p + b + keep, out.p + e - ext, ext);
        e = b + keep + ext;
        if (ext == 0)
            while (e > b && trailing_junk(out.p[e - 1]))
                e--;
    }

    n = e - b;
    /* cppcheck 2.10 carries "e <= b" out of the shortening branch's loop. */
    /* cppcheck-suppress knownConditionTrueFalse ; false positive, see above */
    if (n == 0 || (n == 1 && out.p[b] == '.') || (n == 2 && out.p[b] == '.' && out.p[b + 1] == '.')) {
        free(out.p);
        return NULL;
    }
    r = malloc(n + 1);
    if (r) {
        memcpy(r, out.p + b, n);
        r[n] = '\0';
    }
    free(out.p);
    return r;
}

/* ---- Content-Disposition ------------------------------------------------- */

/* RFC 9110 tchar. */
static int is_tchar(int c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 8187 attr-char (tchar without '%', '\'' and '*'). */
static int is_attr_char(int c)
{
    return c != '%' && c != '\'' && c != '*' && is_tchar(c);
}

/* RFC 8187 mime-charsetc. */
static int is_charset_char(int c)
{
    return c == '{' || c == '}' || (c != '\'' && c != '*' && c != '.' && c != '|' && is_tchar(c));
}

/* One parameter as found: name and value, the value's quotes not included
 * (escapes still in it). */
typedef struct {
    const char *name, *val;
    size_t name_len, val_len;
    int quoted;
} param;

typedef struct {
    param *v;
    size_t n, cap;
} params;

static int params_add(params *ps, const param *p)
{
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 8;
        param *v = realloc(ps->v, cap * sizeof *v);
        if (!v)
            return -1;
        ps->v = v;
        ps->cap = cap;
    }
    ps->v[ps->n++] = *p;
    return 0;
}

static size_t skip_ows(const char *s, size_t n, size_t i)
{
    while (i < n && is_blank((unsigned char)s[i]))
        i++;
    return i;
}

static size_t token_end(const char *s, size_t n, size_t i)
{
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    return i;
}

/* s[i] is '"': the index just past the closing quote, or 0 when this is no
 * RFC 9110 quoted-string (unterminated, or a control character in it). */
static size_t quoted_end(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        unsigned c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (++i >= n)
                return 0;
            c = (unsigned char)s[i];
        }
        if (c != '\t' && (c < 0x20 || c == 0x7f))
            return 0;
    }
    return 0;
}

/* disposition-type *( OWS ";" OWS parm-name OWS "=" OWS value ) OWS, where
 * value is a token or quoted-string, and for a name ending in '*' an
 * ext-value (checked later; a quoted one is kept, and refused later).
 * 0, or -1 when the value does not have this form. */
static int parse(const char *s, size_t n, params *ps)
{
    size_t i = skip_ows(s, n, 0), k;

    k = token_end(s, n, i);
    if (k == i)
        return -1; /* no disposition type */
    i = skip_ows(s, n, k);
    while (i < n) {
        param p;
        if (s[i] != ';')
            return -1;
        i = skip_ows(s, n, i + 1);
        k = token_end(s, n, i);
        if (k == i)
            return -1; /* empty parameter, or a trailing ';' */
        p.name = s + i;
        p.name_len = k - i;
        i = skip_ows(s, n, k);
        if (i >= n || s[i] != '=')
            return -1;
        i = skip_ows(s, n, i + 1);
        if (i < n && s[i] == '"') {
            k = quoted_end(s, n, i);
            if (k == 0)
                return -1;
            p.val = s + i + 1;
            p.val_len = k - i - 2;
            p.quoted = 1;
        } else {
            int ext = p.name[p.name_len - 1] == '*';
            k = i;
            while (k < n && (is_tchar((unsigned char)s[k]) || (ext && (s[k] == '{' || s[k] == '}'))))
                k++;
            if (k == i)
                return -1;
            p.val = s + i;
            p.val_len = k - i;
            p.quoted = 0;
        }
        if (params_add(ps, &p) != 0)
            return -1;
        i = skip_ows(s, n, k);
    }
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    const param *x = a, *y = b;
    size_t i, m = x->name_len < y->name_len ? x->name_len : y->name_len;
    for (i = 0; i < m; i++) {
        int d = lower((unsigned char)x->name[i]) - lower((unsigned char)y->name[i]);
        if (d)
            return d;
    }
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

/* RFC 6266 section 4.1: a parameter name given twice makes the value invalid. */
static int has_duplicates(params *ps)
{
    size_t i;
    if (ps->n < 2)
        return 0;
    qsort(ps->v, ps->n, sizeof *ps->v, name_cmp);
    for (i = 1; i < ps->n; i++)
        if (name_cmp(&ps->v[i - 1], &ps->v[i]) == 0)
            return 1;
    return 0;
}

/* RFC 8187 ext-value: charset "'" [ language ] "'" value-chars, charset
 * UTF-8 or ISO-8859-1.  The sanitised name, or NULL when the value is not
 * one, does not decode, or leaves no name. */
static char *from_ext_value(const param *p)
{
    const unsigned char *s = (const unsigned char *)p->val;
    size_t n = p->val_len, i = 0, cs;
    buf raw = {NULL, 0, 0, 0}, out = {NULL, 0, 0, 0};
    int latin1;
    char *r = NULL;

    if (p->quoted)
        return NULL; /* an ext-value is never a quoted-string (tc2231 attwithfn2231quot) */
    while (i < n && is_charset_char(s[i]))
        i++;
    cs = i;
    if (cs == 0 || i >= n || s[i] != '\'')
        return NULL;
    if (ieqn(p->val, cs, "utf-8"))
        latin1 = 0;
    else if (ieqn(p->val, cs, "iso-8859-1"))
        latin1 = 1;
    else
        return NULL; /* a charset we do not decode */
    for (i++; i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                        (s[i] >= '0' && s[i] <= '9') || s[i] == '-');
         i++)
        ; /* language: letters, digits and '-' */
    if (i >= n || s[i] != '\'')
        return NULL;
    for (i++; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (n - i < 3 || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                goto done; /* "%" not followed by two hex digits */
            buf_put(&raw, (char)(hi * 16 + lo));
            i += 2;
        } else if (is_attr_char(s[i])) {
            buf_put(&raw, (char)s[i]);
        } else {
            goto done;
        }
    }
    if (raw.failed)
        goto done;
    if (latin1) {
        for (i = 0; i < raw.n; i++) {
            unsigned c = (unsigned char)raw.p[i];
            if (c >= 0x80 && c <= 0x9f)
                goto done; /* not ISO-8859-1 (tc2231 attwithfn2231utf8-bad) */
            buf_put_latin1(&out, c);
        }
        if (!out.failed)
            r = cf_sanitize_filename(out.p ? out.p : "", out.n);
    } else if (valid_utf8((const unsigned char *)raw.p, raw.n)) {
        r = cf_sanitize_filename(raw.p ? raw.p : "", raw.n);
    }
done:
    free(raw.p);
    free(out.p);
    return r;
}

/* A token or quoted-string filename: escapes undone, octets above 0x7f read
 * as UTF-8 when they are valid UTF-8, else as ISO-8859-1. */
static char *from_plain(const param *p)
{
    buf raw = {NULL, 0, 0, 0}, out = {NULL, 0, 0, 0};
    size_t i;
    char *r = NULL;

    for (i = 0; i < p->val_len; i++) {
        if (p->quoted && p->val[i] == '\\')
            i++; /* quoted_end made sure a character follows */
        buf_put(&raw, p->val[i]);
    }
    if (raw.failed)
        goto done;
    if (valid_utf8((const unsigned char *)raw.p, raw.n)) {
        r = cf_sanitize_filename(raw.p ? raw.p : "", raw.n);
    } else {
        for (i = 0; i < raw.n; i++)
            buf_put_latin1(&out, (unsigned char)raw.p[i]);
        if (!out.failed)
            r = cf_sanitize_filename(out.p, out.n);
    }
done:
    free(raw.p);
    free(out.p);
    return r;
}

char *cf_disposition_filename(const char *value)
{
    params ps = {NULL, 0, 0};
    const param *plain = NULL, *ext = NULL;
    char *r = NULL;
    size_t i;

    if (!value)
        return NULL;
    if (parse(value, strlen(value), &ps) != 0 || has_duplicates(&ps))
        goto done;
    for (i = 0; i < ps.n; i++) {
        if (ieqn(ps.v[i].name, ps.v[i].name_len, "filename*"))
            ext = &ps.v[i];
        else if (ieqn(ps.v[i].name, ps.v[i].name_len, "filename"))
            plain = &ps.v[i];
    }
    /* filename* when it decodes (RFC 6266 section 4.3), else filename. */
    if (ext)
        r = from_ext_value(ext);
    if (!r && plain)
        r = from_plain(plain);
done:
    free(ps.v);
    return r;
}
