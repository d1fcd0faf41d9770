/*
 * Response header store and header-value parsers.
 *
 * Lines arrive raw from libcurl's header callback.  Everything here is
 * bounded: at most CF_MAX_HEADERS fields per response and CF_MAX_FIELD_BYTES
 * per field (folded lines included), so a hostile server cannot grow the
 * store without limit.  libcurl already refuses header lines over 100 KiB, so
 * the per-field limit never fires for what it delivers; going over either
 * limit makes cf_headers_feed fail (-1) like a malformed response.
 */
#include "cloudfetch.h"
#include "text.h"

#include <stdlib.h>
#include <string.h>

#define CF_MAX_HEADERS 1000
#define CF_MAX_FIELD_BYTES (128 * 1024)

/* RFC 9111 §1.2.2: a delta-seconds too large to represent becomes 2^31. */
#define CF_DELTA_MAX 2147483648.0

/* ---- small ASCII helpers (locale independent) --------------------------- */

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int ieq(const char *a, const char *b)
{
    while (*a && *b) {
        if (lower((unsigned char)*a) != lower((unsigned char)*b))
            return 0;
        a++;
        b++;
    }
    return *a == *b;
}

/* Trims blanks on both sides of [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_blank((unsigned char)(*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_blank((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

/* Parses a run of decimal digits in [s, s + n) into a non-negative int64.
 * Returns the number of digits used (0 when none), or -1 on overflow. */
static int parse_u63(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    size_t i = 0;
    while (i < n && is_digit((unsigned char)s[i])) {
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        i++;
    }
    if (i > 0)
        *out = v;
    return (int)(i > 0x7fffffff ? 0x7fffffff : i);
}

static char *dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ---- header store ------------------------------------------------------- */

void cf_headers_init(cf_headers *h)
{
    memset(h, 0, sizeof *h);
}

static void clear_items(cf_headers *h)
{
    size_t i;
    for (i = 0; i < h->n; i++) {
        free(h->items[i].name);
        free(h->items[i].value);
    }
    h->n = 0;
}

void cf_headers_free(cf_headers *h)
{
    if (!h)
        return;
    clear_items(h);
    free(h->items);
    memset(h, 0, sizeof *h);
}

/* Appends " " + [s, s + n) to the last value (a folded line). */
static int append_folded(cf_headers *h, const char *s, size_t n)
{
    cf_header *last;
    size_t old;
    char *v;
    if (h->n == 0 || n == 0)
        return 0; /* nothing to continue, or nothing to add */
    last = &h->items[h->n - 1];
    old = strlen(last->value);
    if (strlen(last->name) + old + 1 + n > CF_MAX_FIELD_BYTES)
        return -1;
    v = realloc(last->value, old + 1 + n + 1);
    if (!v)
        return -1;
    if (old > 0)
        v[old++] = ' ';
    memcpy(v + old, s, n);
    v[old + n] = '\0';
    last->value = v;
    return 0;
}

static int add_field(cf_headers *h, const char *name, size_t nn, const char *val, size_t vn)
{
    cf_header *item;
    if (h->n >= CF_MAX_HEADERS || nn + vn > CF_MAX_FIELD_BYTES)
        return -1;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        cf_header *items = realloc(h->items, cap * sizeof *items);
        if (!items)
            return -1;
        h->items = items;
        h->cap = cap;
    }
    item = &h->items[h->n];
    item->name = dup_range(name, nn);
    item->value = dup_range(val, vn);
    if (!item->name || !item->value) {
        free(item->name);
        free(item->value);
        return -1;
    }
    h->n++;
    return 0;
}

static int is_token_char(int c)
{
    /* RFC 9110 tchar */
    if (c >= '0' && c <= '9')
        return 1;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A field line (or a folded continuation of one) from cf_headers_feed. */
static int feed_field(cf_headers *h, const char *line, size_t len)
{
    const char *colon, *val;
    size_t nn, vn, i;

    if (is_blank((unsigned char)line[0])) {
        val = line;
        vn = len;
        trim(&val, &vn);
        return append_folded(h, val, vn);
    }

    colon = memchr(line, ':', len);
    if (!colon)
        return 0; /* not a field line: ignored */
    nn = (size_t)(colon - line);
    /* RFC 9112 §5.1: no whitespace between name and colon; a name is a token. */
    if (nn == 0)
        return 0;
    for (i = 0; i < nn; i++)
        if (!is_token_char((unsigned char)line[i]))
            return 0;
    val = colon + 1;
    vn = len - nn - 1;
    trim(&val, &vn);
    return add_field(h, line, nn, val, vn);
}

static int is_invalid_in_line(int c)
{
    return c == '\0' || c == '\r' || c == '\n';
}

int cf_headers_feed(cf_headers *h, const char *line, size_t len)
{
    size_t i;

    if (!h || (!line && len > 0))
        return -1;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;

    if (len == 0) {
        if (h->status != 0)
            h->complete = 1;
        return 0;
    }
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        int major, status;
        if (cf_parse_status_line(line, len, &major, &status) != 0)
            return -1;
        clear_items(h);
        h->status = status;
        h->http_major = major;
        h->complete = 0;
        return 0;
    }
    /* A NUL, CR or LF inside a line is invalid: each becomes SP before the
     * line is read (RFC 9110 §5.5, RFC 9112 §2.2).  Dropping the line
     * instead would hide what libcurl still acts on: it reads
     * "Content-Length: 5<CR>7" as 5, while here the value is "5 7", which
     * no parser accepts, so the answer is refused as malformed. */
    for (i = 0; i < len && !is_invalid_in_line((unsigned char)line[i]); i++)
        ;
    if (i == len)
        return feed_field(h, line, len);
    char *copy = dup_range(line, len);
    if (!copy)
        return -1;
    for (; i < len; i++)
        if (is_invalid_in_line((unsigned char)copy[i]))
            copy[i] = ' ';
    int rc = feed_field(h, copy, len);
    free(copy);
    return rc;
}

const char *cf_headers_get(const cf_headers *h, const char *name)
{
    size_t i;
    if (!h || !name)
        return NULL;
    for (i = 0; i < h->n; i++)
        if (ieq(h->items[i].name, name))
            return h->items[i].value;
    return NULL;
}

/* ---- status line --------------------------------------------------------- */

int cf_parse_status_line(const char *line, size_t len, int *major, int *status)
{
    static const struct {
        const char *text;
        int major;
    } versions[] = {
        {"HTTP/1.0", 1}, {"HTTP/1.1", 1}, {"HTTP/2.0", 2},
        {"HTTP/2", 2},   {"HTTP/3.0", 3}, {"HTTP/3", 3},
    };
    size_t i, vlen = 0, pos;
    int found = -1, code;

    if (!line)
        return -1;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    for (i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        vlen = strlen(versions[i].text);
        if (len > vlen && memcmp(line, versions[i].text, vlen) == 0 && line[vlen] == ' ') {
            found = (int)i;
            break;
        }
    }
    if (found < 0)
        return -1;
    pos = vlen;
    while (pos < len && line[pos] == ' ')
        pos++;
    if (pos + 3 > len || !is_digit((unsigned char)line[pos]) ||
        !is_digit((unsigned char)line[pos + 1]) || !is_digit((unsigned char)line[pos + 2]))
        return -1;
    code = (line[pos] - '0') * 100 + (line[pos + 1] - '0') * 10 + (line[pos + 2] - '0');
    pos += 3;
    if (pos < len && !is_blank((unsigned char)line[pos]))
        return -1; /* "2000", "200OK" */
    if (code < 100)
        return -1;
    *major = versions[found].major;
    *status = code;
    return 0;
}

/* ---- Content-Length ----------------------------------------------------- */

int cf_parse_content_length(const char *v, int64_t *out)
{
    const char *s = v;
    size_t n;
    int64_t val;
    int used;
    if (!v)
        return -1;
    n = strlen(v);
    trim(&s, &n);
    used = parse_u63(s, n, &val);
    if (used <= 0 || (size_t)used != n)
        return -1;
    *out = val;
    return 0;
}

/* ---- Content-Range ------------------------------------------------------ */

int cf_parse_content_range(const char *v, int64_t *first, int64_t *last, int64_t *total)
{
    const char *s = v;
    size_t n, pos = 0;
    int64_t f = -1, l = -1, t = -1;
    int used;

    if (!v)
        return -1;
    n = strlen(v);
    trim(&s, &n);
    if (n < 6 || !ieqn(s, 5, "bytes") || s[5] != ' ')
        return -1;
    pos = 5;
    while (pos < n && s[pos] == ' ')
        pos++;

    if (pos < n && s[pos] == '*') {
        pos++; /* unsatisfied-range: "*" "/" complete-length */
    } else {
        used = parse_u63(s + pos, n - pos, &f);
        if (used <= 0)
            return -1;
        pos += (size_t)used;
        if (pos >= n || s[pos] != '-')
            return -1;
        pos++;
        used = parse_u63(s + pos, n - pos, &l);
        if (used <= 0)
            return -1;
        pos += (size_t)used;
        if (l < f)
            return -1;
    }
    if (pos >= n || s[pos] != '/')
        return -1;
    pos++;
    if (pos < n && s[pos] == '*') {
        if (f < 0)
            return -1; /* a star on both sides says nothing */
        pos++;
    } else {
        used = parse_u63(s + pos, n - pos, &t);
        if (used <= 0)
            return -1;
        pos += (size_t)used;
        if (f >= 0 && l >= t)
            return -1;
    }
    if (pos != n)
        return -1;
    *first = f;
    *last = l;
    *total = t;
    return 0;
}

/* ---- Retry-After -------------------------------------------------------- */

static const char *const month_names[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                            "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
static const char *const long_day_names[7] = {"monday", "tuesday",  "wednesday", "thursday",
                                              "friday", "saturday", "sunday"};

/* A cursor over the date text; every reader returns 0 or -1 and advances. */
typedef struct {
    const char *s;
    size_t n, pos;
} cursor;

static int take_char(cursor *c, char ch)
{
    if (c->pos < c->n && c->s[c->pos] == ch) {
        c->pos++;
        return 0;
    }
    return -1;
}

static size_t letters_len(const cursor *c)
{
    size_t i = c->pos;
    while (i < c->n && ((c->s[i] >= 'a' && c->s[i] <= 'z') || (c->s[i] >= 'A' && c->s[i] <= 'Z')))
        i++;
    return i - c->pos;
}

static int take_name(cursor *c, const char *const *names, int count)
{
    size_t n = letters_len(c);
    int i;
    for (i = 0; i < count; i++)
        if (ieqn(c->s + c->pos, n, names[i])) {
            c->pos += n;
            return i;
        }
    return -1;
}

/* Exactly `digits` digits (or 1..2 when digits is 0, for asctime's day). */
static int take_num(cursor *c, int digits, int *out)
{
    int v = 0, k = 0, max = digits ? digits : 2;
    while (k < max && c->pos < c->n && is_digit((unsigned char)c->s[c->pos])) {
        v = v * 10 + (c->s[c->pos] - '0');
        c->pos++;
        k++;
    }
    if (k == 0 || (digits && k != digits))
        return -1;
    if (c->pos < c->n && is_digit((unsigned char)c->s[c->pos]))
        return -1; /* too many digits */
    *out = v;
    return 0;
}

static int take_time(cursor *c, int *hh, int *mm, int *ss)
{
    if (take_num(c, 2, hh) || take_char(c, ':') || take_num(c, 2, mm) || take_char(c, ':') ||
        take_num(c, 2, ss))
        return -1;
    return (*hh > 23 || *mm > 59 || *ss > 60) ? -1 : 0;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so no dependency on timegm or the TZ variable. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int year_of(time_t now)
{
    /* civil_from_days, year only */
    int64_t z = (int64_t)(now / 86400) - (now % 86400 < 0) + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    return (int)(yoe + era * 400 + (m <= 2));
}

static int parse_http_date(const char *s, size_t n, time_t now, int64_t *out)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    cursor c = {s, n, 0};
    int day, mon, year, hh, mm, ss;
    size_t name_len = letters_len(&c);

    if (name_len == 3 && c.pos + 3 < n && s[3] == ',') {
        /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        if (take_name(&c, day_names, 7) < 0 || take_char(&c, ',') || take_char(&c, ' ') ||
            take_num(&c, 2, &day) || take_char(&c, ' ') || (mon = take_name(&c, month_names, 12)) < 0 ||
            take_char(&c, ' ') || take_num(&c, 4, &year) || take_char(&c, ' ') ||
            take_time(&c, &hh, &mm, &ss) || take_char(&c, ' '))
            return -1;
    } else if (name_len > 3) {
        /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
        int yy, cur;
        if (take_name(&c, long_day_names, 7) < 0 || take_char(&c, ',') || take_char(&c, ' ') ||
            take_num(&c, 2, &day) || take_char(&c, '-') || (mon = take_name(&c, month_names, 12)) < 0 ||
            take_char(&c, '-') || take_num(&c, 2, &yy) || take_char(&c, ' ') ||
            take_time(&c, &hh, &mm, &ss) || take_char(&c, ' '))
            return -1;
        /* RFC 9110 §5.6.7: a year more than 50 years ahead is in the past century. */
        cur = year_of(now);
        year = cur - cur % 100 + yy;
        if (year > cur + 50)
            year -= 100;
    } else if (name_len == 3) {
        /* asctime: Sun Nov  6 08:49:37 1994 */
        if (take_name(&c, day_names, 7) < 0 || take_char(&c, ' ') ||
            (mon = take_name(&c, month_names, 12)) < 0 || take_char(&c, ' '))
            return -1;
        if (c.pos < n && s[c.pos] == ' ') {
            c.pos++;
            if (take_num(&c, 1, &day))
                return -1;
        } else if (take_num(&c, 2, &day)) {
            return -1;
        }
        if (take_char(&c, ' ') || take_time(&c, &hh, &mm, &ss) || take_char(&c, ' ') ||
            take_num(&c, 4, &year) || c.pos != n)
            return -1;
        goto validate;
    } else {
        return -1;
    }
    /* IMF-fixdate and RFC 850 end in GMT ("UTC" tolerated). */
    if (!(n - c.pos == 3 && (ieqn(s + c.pos, 3, "GMT") || ieqn(s + c.pos, 3, "UTC"))))
        return -1;

validate:
    if (day < 1 || day > mdays[mon] + (mon == 1 && is_leap(year)))
        return -1;
    *out = days_from_civil(year, mon + 1, day) * 86400 + hh * 3600 + mm * 60 + ss;
    return 0;
}

int cf_parse_retry_after(const char *v, time_t now, double *seconds)
{
    const char *s = v;
    size_t n;
    if (!v)
        return -1;
    n = strlen(v);
    trim(&s, &n);
    if (n == 0)
        return -1;
    if (is_digit((unsigned char)s[0])) {
        double d = 0;
        size_t i;
        for (i = 0; i < n; i++) {
            if (!is_digit((unsigned char)s[i]))
                return -1;
            if (d < CF_DELTA_MAX)
                d = d * 10 + (s[i] - '0');
        }
        *seconds = d < CF_DELTA_MAX ? d : CF_DELTA_MAX;
        return 0;
    } else {
        int64_t when;
        if (parse_http_date(s, n, now, &when) != 0)
            return -1;
        *seconds = when > (int64_t)now ? (double)(when - (int64_t)now) : 0.0;
        return 0;
    }
}
