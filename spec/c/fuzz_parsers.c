/*
 * libFuzzer target: the header store and header-value parsers
 * (src/headers.c) and Content-Disposition / file-name sanitiser
 * (src/disposition.c): status lines, Content-Length, Content-Range,
 * Retry-After, header lines fed as libcurl delivers them.
 *
 * Checked (abort() with a message when broken): the parsers' outputs are in
 * range (a length >= 0, a range first <= last < total, a delay >= 0), the
 * store stays bounded and holds no CR or LF, and every name the sanitiser returns keeps its
 * promises (cloudfetch.h): not empty, at most 255 bytes, never "." or "..",
 * no '/' or '\\', valid UTF-8, no C0/DEL/C1 controls, no bidi controls,
 * zero-width characters or line/paragraph separators, no leading/trailing
 * blank and no trailing dot.
 *
 *   make fuzz                                  (see mk/fuzz.mk)
 *   build/fuzz/fuzz_parsers CRASH_FILE         (replays one input)
 */
#include "../../src/cloudfetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *name)
{
    fprintf(stderr, "sanitiser promise broken: %s (\"%s\")\n", what, name);
    abort();
}

/* Characters a name must not hold although they are valid UTF-8: C1
 * controls, bidi controls, zero-width and line/paragraph separators. */
static void check_invisible(const unsigned char *p, size_t len, const char *name)
{
    unsigned cp = len == 2 ? (p[0] & 0x1fu) << 6 | (p[1] & 0x3fu)
                : len == 3 ? (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu)
                           : (p[0] & 0x07u) << 18 | (p[1] & 0x3fu) << 12 | (p[2] & 0x3fu) << 6 | (p[3] & 0x3fu);
    if (cp >= 0x80 && cp <= 0x9f)
        fail("C1 control character", name);
    if (cp == 0x61c || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
        (cp >= 0x2066 && cp <= 0x2069))
        fail("bidi control character", name);
    if ((cp >= 0x200b && cp <= 0x200d) || cp == 0x2060 || cp == 0xfeff)
        fail("zero-width character", name);
    if (cp == 0x2028 || cp == 0x2029)
        fail("line or paragraph separator", name);
}

static void check_utf8(const unsigned char *s, size_t n, const char *name)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len, k;
        unsigned lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        } else {
            fail("invalid UTF-8 lead byte", name);
            return;
        }
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi)
            fail("invalid UTF-8 sequence", name);
        for (k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                fail("invalid UTF-8 continuation", name);
        check_invisible(s + i, len, name);
        i += len;
    }
}

/* Checks a sanitiser result and frees it. */
static void check_name(char *name)
{
    size_t n, i;
    if (!name)
        return;
    n = strlen(name);
    if (n == 0)
        fail("empty", name);
    if (n > 255)
        fail("longer than 255 bytes", name);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        fail("dot name", name);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c == '\\')
            fail("path separator", name);
        if (c < 0x20 || c == 0x7f)
            fail("control byte", name);
    }
    if (name[0] == ' ' || name[n - 1] == ' ' || name[n - 1] == '.')
        fail("leading/trailing blank or trailing dot", name);
    check_utf8((const unsigned char *)name, n, name);
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    cf_headers h;
    size_t start, i;
    int64_t a, b, c;
    double secs;
    int major, status;
    const char *v;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* value parsers take C strings: stops at an inner NUL */

    /* the header store, fed line by line as libcurl would */
    cf_headers_init(&h);
    for (start = 0, i = 0; i <= size; i++) {
        if (i == size || data[i] == '\n') {
            size_t end = i < size ? i + 1 : i;
            if (cf_headers_feed(&h, (const char *)data + start, end - start) != 0)
                break;
            start = end;
        }
    }
    if (h.n > h.cap || h.n > 1000)
        abort();
    /* a CR or LF inside a line was read as SP (a NUL too, but a C string
     * could not show one) */
    for (i = 0; i < h.n; i++)
        if (strpbrk(h.items[i].name, "\r\n") || strpbrk(h.items[i].value, "\r\n"))
            abort();
    /* whatever got stored goes through the value parsers too */
    if ((v = cf_headers_get(&h, "content-length")) != NULL)
        (void)cf_parse_content_length(v, &a);
    if ((v = cf_headers_get(&h, "content-range")) != NULL)
        (void)cf_parse_content_range(v, &a, &b, &c);
    if ((v = cf_headers_get(&h, "content-disposition")) != NULL)
        check_name(cf_disposition_filename(v));
    cf_headers_free(&h);

    (void)cf_parse_status_line((const char *)data, size, &major, &status);
    if (cf_parse_content_length(text, &a) == 0 && a < 0)
        abort();
    if (cf_parse_content_range(text, &a, &b, &c) == 0) {
        if (a == -1 ? (b != -1 || c < 0) : (a < 0 || b < a || (c != -1 && b >= c)))
            abort();
    }
    if (cf_parse_retry_after(text, 1735689600, &secs) == 0 && !(secs >= 0))
        abort();
    check_name(cf_disposition_filename(text));
    check_name(cf_sanitize_filename((const char *)data, size)); /* raw bytes, NULs included */
    free(text);
    return 0;
}
