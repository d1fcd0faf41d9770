/*
 * libFuzzer harness for the cloudfetch header parsers and file-name
 * sanitiser.  Not part of `make test`; build and run by hand:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *       $(pkg-config --cflags openssl) -o build/fuzz_parsers spec/c/fuzz_parsers.c \
 *       src/headers.c src/disposition.c src/digest.c $(pkg-config --libs openssl)
 *   ./build/fuzz_parsers -max_total_time=60 -max_len=4096
 *
 * Any broken promise of cf_sanitize_filename aborts with a message.
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
