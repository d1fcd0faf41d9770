/*
 * Content-Disposition file names (RFC 6266, RFC 8187) and making any file
 * name safe to create inside a directory.
 *
 * The parser is lenient the way real servers need: no space after ';'
 * ("attachment;filename=a.txt"), unquoted names with spaces up to the next
 * ';', unterminated quotes, no disposition type at all.  Whatever it finds
 * goes through cf_sanitize_filename, which is what makes the result safe.
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

static int trailing_junk(char c)
{
    return c == ' ' || c == '.';
}

/* Rules, in order:
 *  1. keep what follows the last '/' or '\\';
 *  2. drop NUL and every other control byte (< 0x20, 0x7f) -- dropped, not
 *     cut at: "a%00.txt" gives "a.txt", never a silently shorter name;
 *  3. replace each byte that is not part of valid UTF-8 with '_';
 *  4. trim leading blanks, trailing blanks and trailing dots;
 *  5. shorten to 255 bytes, keeping an extension of up to 16 bytes and
 *     never splitting a UTF-8 sequence;
 *  6. nothing left, "." or ".." gives NULL. */
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

/* One parameter value as found: [p, p + n), quoted (escapes to undo) or not. */
typedef struct {
    const char *p;
    size_t n;
    int quoted;
    int found;
} param;

/* Copies a parameter value out, undoing quoted-string escapes. */
static void param_bytes(const param *v, buf *out)
{
    size_t i;
    for (i = 0; i < v->n; i++) {
        if (v->quoted && v->p[i] == '\\' && i + 1 < v->n)
            i++;
        buf_put(out, v->p[i]);
    }
}

/* RFC 8187 ext-value: charset "'" [ language ] "'" value-chars.  UTF-8 is
 * kept as is (US-ASCII is a subset), ISO-8859-1 is converted to UTF-8, other
 * charsets are not understood (returns -1 and filename is used instead). */
static int decode_ext_value(const param *v, buf *out)
{
    buf raw = {NULL, 0, 0, 0};
    const char *q1, *q2, *p;
    size_t n, i;
    int latin1, rc = 0;

    param_bytes(v, &raw); /* some servers quote the ext-value; tolerate it */
    if (raw.failed) {
        free(raw.p);
        return -1;
    }
    p = raw.p;
    n = raw.n;
    q1 = p ? memchr(p, '\'', n) : NULL;
    q2 = q1 ? memchr(q1 + 1, '\'', n - (size_t)(q1 + 1 - p)) : NULL;
    if (!q2) {
        free(raw.p);
        return -1;
    }
    if (ieqn(p, (size_t)(q1 - p), "utf-8") || ieqn(p, (size_t)(q1 - p), "utf8") ||
        ieqn(p, (size_t)(q1 - p), "us-ascii")) {
        latin1 = 0;
    } else if (ieqn(p, (size_t)(q1 - p), "iso-8859-1") || ieqn(p, (size_t)(q1 - p), "latin1")) {
        latin1 = 1;
    } else {
        free(raw.p);
        return -1;
    }
    for (i = (size_t)(q2 + 1 - p); i < n; i++) {
        unsigned c = (unsigned char)p[i];
        if (c == '%' && i + 2 < n && hexval((unsigned char)p[i + 1]) >= 0 &&
            hexval((unsigned char)p[i + 2]) >= 0) {
            c = (unsigned)(hexval((unsigned char)p[i + 1]) * 16 + hexval((unsigned char)p[i + 2]));
            i += 2;
        } /* a '%' not followed by two hex digits stays literal */
        if (latin1 && c >= 0x80) {
            buf_put(out, (char)(0xc0 | (c >> 6)));
            buf_put(out, (char)(0x80 | (c & 0x3f)));
        } else {
            buf_put(out, (char)c);
        }
    }
    free(raw.p);
    if (out->failed)
        rc = -1;
    return rc;
}

/* Reads one parameter value at s[*pos] and leaves *pos on the ';' after it
 * (or the end). */
static void read_value(const char *s, size_t n, size_t *pos, param *v)
{
    size_t i = *pos;
    v->found = 1;
    if (i < n && s[i] == '"') {
        size_t j = i + 1;
        while (j < n && s[j] != '"') {
            if (s[j] == '\\' && j + 1 < n)
                j++;
            j++;
        }
        if (j < n) {
            /* quoted-string; anything between its end and ';' is ignored */
            v->p = s + i + 1;
            v->n = j - i - 1;
            v->quoted = 1;
            i = j + 1;
            while (i < n && s[i] != ';')
                i++;
            *pos = i;
            return;
        }
        i++; /* unterminated quote: treat the rest as an unquoted value */
    }
    v->p = s + i;
    v->quoted = 0;
    while (i < n && s[i] != ';')
        i++;
    v->n = (size_t)(s + i - v->p);
    while (v->n > 0 && is_blank((unsigned char)v->p[v->n - 1]))
        v->n--;
    /* a stray closing quote on an unquoted value: filename=a.txt" */
    if (v->n > 0 && v->p[v->n - 1] == '"')
        v->n--;
    *pos = i;
}

static char *from_param(const param *v, int ext)
{
    buf b = {NULL, 0, 0, 0};
    char *r = NULL;
    if (ext ? decode_ext_value(v, &b) == 0 : (param_bytes(v, &b), !b.failed))
        r = cf_sanitize_filename(b.p ? b.p : "", b.n);
    free(b.p);
    return r;
}

char *cf_disposition_filename(const char *value)
{
    param plain = {NULL, 0, 0, 0}, ext = {NULL, 0, 0, 0};
    size_t n, pos = 0;
    char *r = NULL;

    if (!value)
        return NULL;
    n = strlen(value);

    /* Skip the disposition type, unless the value starts with a parameter
     * ("filename=a.txt" alone is seen in the wild). */
    while (pos < n && value[pos] != ';' && value[pos] != '=')
        pos++;
    if (pos >= n || value[pos] == '=')
        pos = 0;

    while (pos < n) {
        size_t name_start, name_len;
        while (pos < n && (value[pos] == ';' || is_blank((unsigned char)value[pos])))
            pos++;
        name_start = pos;
        while (pos < n && value[pos] != '=' && value[pos] != ';')
            pos++;
        name_len = pos - name_start;
        while (name_len > 0 && is_blank((unsigned char)value[name_start + name_len - 1]))
            name_len--;
        if (pos >= n || value[pos] == ';')
            continue; /* a parameter without a value */
        pos++;        /* '=' */
        while (pos < n && is_blank((unsigned char)value[pos]))
            pos++;
        {
            param v = {NULL, 0, 0, 0};
            read_value(value, n, &pos, &v);
            if (ieqn(value + name_start, name_len, "filename*")) {
                if (!ext.found)
                    ext = v;
            } else if (ieqn(value + name_start, name_len, "filename")) {
                if (!plain.found)
                    plain = v;
            }
        }
    }

    if (ext.found)
        r = from_param(&ext, 1);
    if (!r && plain.found)
        r = from_param(&plain, 0);
    return r;
}
