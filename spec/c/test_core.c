/*
 * Unit test of the cloudfetch core parsers and digests, without Lua.
 * Prints one line per failed check and ends with "N passed, M failed".
 *
 *   gcc <flags> -o build/test_core spec/c/test_core.c src/headers.c \
 *       src/disposition.c src/digest.c $(pkg-config --libs openssl)
 */
#include "../../src/cloudfetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- helpers ------------------------------------------------------------- */

/* Is s (n bytes) valid UTF-8? */
static int valid_utf8(const unsigned char *s, size_t n)
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
        if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        else
            return 0;
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return 0;
        i += len;
    }
    return 1;
}

/* Is the valid UTF-8 sequence at s a character the sanitiser removes (C1
 * control, bidi control, zero-width or invisible format character, line or
 * paragraph separator)? */
static int removed_char(const unsigned char *s)
{
    unsigned long cp;
    if (s[0] == 0xc2)
        return s[1] <= 0x9f; /* U+0080-U+009F */
    if (s[0] == 0xd8 && s[1] == 0x9c)
        return 1; /* U+061C */
    if (s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf)
        return 1; /* U+FEFF */
    if (s[0] != 0xe2)
        return 0;
    cp = 0x2000 | ((unsigned long)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
    return (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
           (cp >= 0x2060 && cp <= 0x206f);
}

/* Every promise cf_sanitize_filename makes about a non-NULL result. */
static int safe_name(const char *s)
{
    size_t n, i;
    if (!s)
        return 1;
    n = strlen(s);
    if (n == 0 || n > 255 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f)
            return 0;
    }
    if (s[0] == ' ' || s[n - 1] == ' ' || s[n - 1] == '.')
        return 0;
    if (!valid_utf8((const unsigned char *)s, n))
        return 0;
    for (i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80 && removed_char((const unsigned char *)s + i))
            return 0;
    return 1;
}

/* Compares a malloc'd result with the expected string (NULL = none), frees it. */
static void check_name(const char *what, const char *input, char *got, const char *want, int line)
{
    int ok = (got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0);
    if (ok && safe_name(got)) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s:%d: %s(\"%s\") = %s%s%s, want %s%s%s%s\n", __FILE__, line, what, input,
               got ? "\"" : "", got ? got : "NULL", got ? "\"" : "", want ? "\"" : "",
               want ? want : "NULL", want ? "\"" : "", ok ? " (result unsafe)" : "");
    }
    free(got);
}

#define DISP(in, want) check_name("disposition", (in), cf_disposition_filename(in), (want), __LINE__)
#define SAN(in, want) check_name("sanitize", (in), cf_sanitize_filename((in), strlen(in)), (want), __LINE__)
#define SANN(in, len, want) check_name("sanitize", (in), cf_sanitize_filename((in), (len)), (want), __LINE__)

static char *repeat(const char *unit, size_t times, const char *tail)
{
    size_t u = strlen(unit), t = strlen(tail), i;
    char *s = malloc(u * times + t + 1);
    if (!s)
        abort();
    for (i = 0; i < times; i++)
        memcpy(s + i * u, unit, u);
    memcpy(s + u * times, tail, t + 1);
    return s;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A small deterministic generator for garbage inputs. */
static unsigned long long rng_state = 0x9e3779b97f4a7c15ULL;
static unsigned rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state >> 32);
}

/* ---- Content-Disposition -------------------------------------------------- */

static void test_disposition(void)
{
    /* the forms real servers send */
    DISP("attachment; filename=\"a.txt\"", "a.txt");
    DISP("attachment; filename=a.txt", "a.txt");
    DISP("attachment;filename=lorem_ipsum.txt", "lorem_ipsum.txt");
    DISP("attachment; filename=\"report 2024.pdf\"; size=100", "report 2024.pdf");
    DISP("attachment; filename=a.txt; size=3", "a.txt");
    DISP("inline; filename=\"i.pdf\"", "i.pdf");
    DISP("form-data; name=\"field\"; filename=\"up.bin\"", "up.bin");
    DISP("attachment; filename = \"spaced.txt\" ", "spaced.txt"); /* OWS around '=' and at the end */
    DISP("  attachment\t;\tfilename=t.txt", "t.txt");
    DISP("attachment; filename=\"tab\t.txt\"", "tab.txt"); /* HTAB is qdtext; dropped as a control */

    /* type and parameter names are case-insensitive */
    DISP("ATTACHMENT; FILENAME=\"UP.TXT\"", "UP.TXT");
    DISP("attachment; FileName*=utf-8''mixed.txt", "mixed.txt");

    /* RFC 8187 filename* */
    DISP("attachment; filename*=UTF-8''%e2%82%ac%20rates.txt", "\xe2\x82\xac rates.txt");
    DISP("attachment; filename*=UTF-8''%E2%82%AC%20rates.txt", "\xe2\x82\xac rates.txt");
    DISP("attachment; filename*=UTF-8'en-US'lang.txt", "lang.txt");
    DISP("attachment; filename*=utf-8'de'%C3%A4rger.txt", "\xc3\xa4rger.txt");
    DISP("attachment; filename*=iso-8859-1'en'%A3%20rates.txt", "\xc2\xa3 rates.txt");
    DISP("attachment; filename*=ISO-8859-1''caf%E9.txt", "caf\xc3\xa9.txt");
    DISP("attachment; filename*=ISO-8859-1''%FF%A0x", "\xc3\xbf\xc2\xa0x");
    DISP("attachment; filename*=UTF-8''evil%00.txt", "evil.txt");   /* NUL dropped */
    DISP("attachment; filename*=UTF-8''a%0d%0ab.txt", "ab.txt");    /* CR LF dropped */
    DISP("attachment; filename*=UTF-8''a%c2%85b.txt", "ab.txt");    /* C1 NEL dropped */
    DISP("attachment; filename*=UTF-8''x%e2%80%aefdp.exe", "xfdp.exe"); /* RLO removed */
    /* not an ext-value, or not decodable: ignored (nothing else names a file) */
    DISP("attachment; filename*=\"UTF-8''quoted-ext.txt\"", NULL);
    DISP("attachment; filename*=UTF-8''100%.txt", NULL);
    DISP("attachment; filename*=UTF-8''%zz.txt", NULL);
    DISP("attachment; filename*=UTF-8''%4", NULL);
    DISP("attachment; filename*=UTF-8''%ff%fe.txt", NULL);           /* invalid UTF-8 */
    DISP("attachment; filename*=UTF-8''%c0%af.txt", NULL);           /* overlong */
    DISP("attachment; filename*=UTF-8''a'b.txt", NULL);              /* ' is no attr-char */
    DISP("attachment; filename*=UTF-8''a*b.txt", NULL);              /* * neither */
    DISP("attachment; filename*=UTF-8''{x}", NULL);
    DISP("attachment; filename*=ISO-8859-1''%80.txt", NULL);         /* not ISO-8859-1 */
    DISP("attachment; filename*=ISO-8859-1''%9f.txt", NULL);
    DISP("attachment; filename*=utf8''alias.txt", NULL);             /* only UTF-8, ISO-8859-1 */
    DISP("attachment; filename*=us-ascii''alias.txt", NULL);
    DISP("attachment; filename*=latin1''alias.txt", NULL);
    DISP("attachment; filename*=UTF-8'e n'x.txt", NULL);             /* space: not RFC 6266 */
    DISP("attachment; filename*=UTF-8'en_US'x.txt", NULL);           /* not a language tag */
    DISP("attachment; filename*=KOI8-R''%c1.txt", NULL);
    DISP("attachment; filename*=UTF-8'", NULL);
    DISP("attachment; filename*=''", NULL);
    DISP("attachment; filename*=''x.txt", NULL);                     /* charset required */
    DISP("attachment; filename*=x.txt", NULL);

    /* both present: filename* wins, whatever the order */
    DISP("attachment; filename=\"EURO rates.txt\"; filename*=utf-8''%e2%82%ac%20rates.txt",
         "\xe2\x82\xac rates.txt");
    DISP("attachment; filename*=utf-8''%e2%82%ac%20rates.txt; filename=\"EURO rates.txt\"",
         "\xe2\x82\xac rates.txt");
    /* ... unless filename* is unusable: then filename */
    DISP("attachment; filename*=KOI8-R''%c1.txt; filename=\"fallback.txt\"", "fallback.txt");
    DISP("attachment; filename*=no-quotes.txt; filename=\"fallback.txt\"", "fallback.txt");
    DISP("attachment; filename*=UTF-8''; filename=\"fb.txt\"", "fb.txt");
    DISP("attachment; filename*=UTF-8''%2e%2e; filename=\"fb.txt\"", "fb.txt");
    DISP("attachment; filename*=UTF-8''%e4.txt; filename=\"fb.txt\"", "fb.txt");
    DISP("attachment; filename*=UTF-8''f%oo; filename=\"fb.txt\"", "fb.txt");
    DISP("attachment; filename*=\"UTF-8''q.txt\"; filename=\"fb.txt\"", "fb.txt");
    DISP("attachment; filename*=iso-8859-1''%c3%a4%e2%82%ac; filename=fb.txt", "fb.txt");

    /* a parameter given twice makes the whole value invalid (RFC 6266 4.1) */
    DISP("attachment; filename=first.txt; filename=second.txt", NULL);
    DISP("attachment; filename=a.txt; FILENAME=a.txt", NULL);
    DISP("attachment; filename*=UTF-8''a.txt; filename*=UTF-8''b.txt", NULL);
    DISP("attachment; size=1; filename=a.txt; size=2", NULL);

    /* quoted-strings */
    DISP("attachment; filename=\"say \\\"hi\\\".txt\"", "say \"hi\".txt");
    DISP("attachment; filename=\"a;b.txt\"", "a;b.txt");
    DISP("attachment; filename=\"a,b.txt\"", "a,b.txt");
    DISP("attachment; filename=\"caf\xc3\xa9.txt\"", "caf\xc3\xa9.txt");  /* valid UTF-8 */
    DISP("attachment; filename=\"caf\xe9.txt\"", "caf\xc3\xa9.txt");      /* else ISO-8859-1 */
    DISP("attachment; filename=\"\xc3\xa9\xe9\"", "\xc3\x83\xc2\xa9\xc3\xa9"); /* all of it */
    DISP("attachment; filename=\"a\x85\x9f.txt\"", "a.txt");              /* C1 via ISO-8859-1 */
    DISP("attachment; filename=\"a\x01" "b.txt\"", NULL);                   /* CTL: not qdtext */
    DISP("attachment; filename=\"a\x7f.txt\"", NULL);
    DISP("attachment; filename=\"a\\\x01.txt\"", NULL);                /* nor quoted-pair */

    /* not RFC 6266: the whole value is ignored */
    DISP("filename=bare.txt", NULL);
    DISP("filename=\"bare quoted.txt\"", NULL);
    DISP("attachment; filename=my file.txt", NULL);
    DISP("attachment; filename=my file.txt; size=3", NULL);
    DISP("attachment; filename=\"unterminated.txt", NULL);
    DISP("attachment; filename=\"unterminated.txt; size=4", NULL);
    DISP("attachment; filename=trail.txt\"", NULL);
    DISP("attachment; filename=\"q.txt\"junk; x=y", NULL);
    DISP("attachment; filename=\"ends-with-backslash\\", NULL);
    DISP("attachment; filename=\"ends-with-backslash\\\"", NULL);
    DISP("attachment; filename=a.txt;", NULL);
    DISP("attachment; ; filename=a.txt", NULL);
    DISP("attachment; ; ;filename=ok.txt;;", NULL);
    DISP("attachment; filename==x.txt", NULL);
    DISP("attachment; filename=caf\xc3\xa9.txt", NULL);   /* non-ASCII token */
    DISP("attachment; filename*=UTF-8''my file.txt", NULL);
    DISP("attachment; filename=tab\t.txt", NULL);
    DISP("attachment; filename=a.txt, attachment; filename=b.txt", NULL);
    DISP("attachment filename=a.txt", NULL);
    DISP("attachment; filename", NULL);
    DISP("attachment; filename=", NULL);
    DISP("attachment;", NULL);

    /* traversal attempts */
    DISP("attachment; filename=\"../../etc/passwd\"", "passwd");
    DISP("attachment; filename=../../etc/passwd", NULL); /* '/' is no token character */
    DISP("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd");
    DISP("attachment; filename*=UTF-8''..%5C..%5Cwin.ini", "win.ini");
    DISP("attachment; filename=\"..\\\\..\\\\x.txt\"", "x.txt");
    DISP("attachment; filename=\"C:\\\\Windows\\\\evil.dll\"", "evil.dll");
    DISP("attachment; filename=\"..\"", NULL);
    DISP("attachment; filename=.", NULL);
    DISP("attachment; filename=..", NULL);
    DISP("attachment; filename=\"dir/\"", NULL);
    DISP("attachment; filename*=UTF-8''%2e%2e", NULL);
    DISP("attachment; filename*=UTF-8''%2e%2e%00", NULL);

    /* empty and missing */
    DISP(NULL, NULL);
    DISP("", NULL);
    DISP("attachment", NULL);
    DISP("inline", NULL);
    DISP("attachment; filename=\"\"", NULL);
    DISP("attachment; filename=\"   \"", NULL);
    DISP("attachment; name=\"x\"", NULL);
    DISP("attachment; filenamex=nope.txt", NULL);

    /* garbage */
    DISP(";;;", NULL);
    DISP("=;=;=", NULL);
    DISP("\"", NULL);
    DISP("filename*", NULL);
    DISP("attachment; filename*=UTF-8''%", NULL);
    {
        int i, j, all_safe = 1;
        static const char alphabet[] = "filename*=;\"'\\%UTF-8a./ \t\x01\xff\xc3";
        char in[64];
        for (i = 0; i < 20000; i++) {
            int len = (int)(rnd() % (sizeof in - 1));
            char *r;
            for (j = 0; j < len; j++)
                in[j] = alphabet[rnd() % (sizeof alphabet - 1)];
            in[len] = '\0';
            r = cf_disposition_filename(in);
            if (!safe_name(r)) {
                all_safe = 0;
                printf("FAIL unsafe result for garbage \"%s\"\n", in);
            }
            free(r);
        }
        CHECK(all_safe, "every garbage value gave a safe name or NULL");
    }
    /* well-formed values with hostile octets: names come out, all safe */
    {
        static const unsigned char octets[] = {0x00, 0x01, 0x1f, 0x7f, 0x80, 0x85, 0x9f, 0xa0, 0xc2, 0xc3,
                                               0xd8, 0x9c, 0xe2, 0x80, 0x8b, 0xae, 0x81, 0xa6, 0xef, 0xbb,
                                               0xbf, '/', '\\', '.', ' ', 'a', '%', '\'', '"', ';'};
        int i, j, all_safe = 1, named = 0;
        char in[256];
        for (i = 0; i < 20000; i++) {
            int len = (int)(rnd() % 24), ext = i & 1, latin1 = (i & 2) != 0;
            size_t k = (size_t)sprintf(in, ext ? (latin1 ? "attachment; filename*=ISO-8859-1''"
                                                         : "attachment; filename*=UTF-8''")
                                               : "attachment; filename=\"");
            char *r;
            for (j = 0; j < len; j++) {
                unsigned c = octets[rnd() % sizeof octets];
                if (ext)
                    k += (size_t)sprintf(in + k, "%%%02x", c);
                else if (c == '"' || c == '\\')
                    k += (size_t)sprintf(in + k, "\\%c", (char)c);
                else if (c >= 0x20 && c != 0x7f)
                    in[k++] = (char)c; /* controls cannot be in a quoted-string */
            }
            if (!ext)
                in[k++] = '"';
            in[k] = '\0';
            r = cf_disposition_filename(in);
            named += r != NULL;
            if (!safe_name(r)) {
                all_safe = 0;
                printf("FAIL unsafe result for \"%s\"\n", in);
            }
            free(r);
        }
        CHECK(all_safe, "every hostile but well-formed value gave a safe name or NULL");
        CHECK(named > 5000, "hostile but well-formed values named files (%d of 20000)", named);
    }

    /* a very long filename* stays within 255 bytes and keeps its extension */
    {
        char *pct = repeat("%e2%82%ac", 300, ".txt");
        char *value = malloc(strlen(pct) + 64);
        char *r;
        sprintf(value, "attachment; filename*=UTF-8''%s", pct);
        r = cf_disposition_filename(value);
        CHECK(r && strlen(r) <= 255 && ends_with(r, ".txt") && safe_name(r),
              "long filename* shortened to <= 255 bytes ending in .txt");
        CHECK(r && strlen(r) == 3 * 83 + 4, "long filename* cut on a character boundary (%zu)",
              r ? strlen(r) : 0);
        free(r);
        free(pct);
        free(value);
    }
}

/* ---- cf_sanitize_filename ------------------------------------------------- */

static void test_sanitize(void)
{
    char *s, *r;

    SAN("plain.txt", "plain.txt");
    SAN("../../etc/passwd", "passwd");
    SAN("..\\x", "x");
    SAN("/etc/shadow", "shadow");
    SAN("C:\\Windows\\evil.dll", "evil.dll");
    SAN("a/b\\c/d.txt", "d.txt");
    SAN("..", NULL);
    SAN(".", NULL);
    SAN("...", NULL);
    SAN(". .", NULL);
    SAN("", NULL);
    SAN("dir/", NULL);
    SAN("dir/..", NULL);
    SAN("/", NULL);
    SAN("  spaced name.txt  ", "spaced name.txt");
    SAN("name.txt...", "name.txt");
    SAN("name. . .", "name");
    SAN(".hidden", ".hidden");
    SAN("..double", "..double");
    SAN("\x01\x7fok\x1f", "ok");
    SAN("tab\tname", "tabname");
    SAN("line\r\nbreak", "linebreak");
    SANN("a\0b.txt", 7, "ab.txt");        /* NUL dropped, not cut at */
    SANN("\0\0\0", 3, NULL);
    SANN("../\0../x", 8, "x");
    SAN("caf\xc3\xa9.txt", "caf\xc3\xa9.txt"); /* valid UTF-8 kept */
    SAN("\xf0\x9f\x98\x80.png", "\xf0\x9f\x98\x80.png");
    SAN("\xff", "_");
    SAN("bad\xc3", "bad_");                 /* cut sequence */
    SAN("\xc0\xaf", "__");                  /* overlong '/' */
    SAN("\xe0\x80\xaf", "___");             /* overlong '/' */
    SAN("\xed\xa0\x80", "___");             /* surrogate */
    SAN("\xf4\x90\x80\x80", "____");        /* > U+10FFFF */
    SAN("\xe2\x82", "__");
    SAN("a\xc2\x80" "b\xc2\x9f.txt", "ab.txt");   /* C1 controls dropped */
    SAN("a\xc2\xa0" "b", "a\xc2\xa0" "b");              /* U+00A0 is not C1 */
    /* bidi controls, zero-width and invisible format characters: removed */
    SAN("invoice\xe2\x80\xae" "fdp.exe", "invoicefdp.exe");       /* U+202E RLO */
    SAN("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xadx", "x"); /* U+202A-U+202D */
    SAN("a\xe2\x81\xa6" "b\xe2\x81\xa7" "c\xe2\x81\xa8" "d\xe2\x81\xa9", "abcd"); /* U+2066-U+2069 */
    SAN("\xe2\x80\x8ex\xe2\x80\x8f", "x");                   /* LRM, RLM */
    SAN("x\xd8\x9cy", "xy");                                    /* U+061C ALM */
    SAN("a\xe2\x80\x8b" "b\xe2\x80\x8c" "c\xe2\x80\x8d" "d", "abcd"); /* ZWSP, ZWNJ, ZWJ */
    SAN("a\xe2\x81\xa0" "b\xe2\x81\xa4" "c\xe2\x81\xaf" "d", "abcd"); /* U+2060, U+2064, U+206F */
    SAN("\xef\xbb\xbf" "bom.txt", "bom.txt");                      /* U+FEFF */
    SAN("line\xe2\x80\xa8para\xe2\x80\xa9.txt", "linepara.txt"); /* U+2028, U+2029 */
    SAN("report\xe2\x80\x8b.\xe2\x80\x8b", "report");          /* removed before trimming */
    SAN("\xe2\x80\x8b \xe2\x80\xae", NULL);
    SAN(".\xe2\x80\x8b.", NULL);                                 /* ".." once removed */
    /* their neighbours stay */
    SAN("a\xe2\x80\x8a" "b", "a\xe2\x80\x8a" "b");     /* U+200A HAIR SPACE */
    SAN("a\xe2\x80\xaf" "b", "a\xe2\x80\xaf" "b");     /* U+202F NARROW NO-BREAK SPACE */
    SAN("a\xe2\x80\xa7" "b", "a\xe2\x80\xa7" "b");     /* U+2027 HYPHENATION POINT */
    SAN("a\xe2\x81\x9f" "b", "a\xe2\x81\x9f" "b");     /* U+205F MEDIUM MATHEMATICAL SPACE */
    SAN("a\xef\xbb\xbe" "b", "a\xef\xbb\xbe" "b");     /* U+FEFE */
    SAN("\xd8\x9b\xd8\x9d", "\xd8\x9b\xd8\x9d"); /* U+061B, U+061D */
    /* a name of 300 RLOs and "x.txt": nothing of the 900 bytes counts */
    s = repeat("\xe2\x80\xae", 300, "x.txt");
    r = cf_sanitize_filename(s, strlen(s));
    CHECK(r && strcmp(r, "x.txt") == 0, "removed characters do not count towards 255 bytes");
    free(r);
    free(s);
    CHECK(cf_sanitize_filename(NULL, 0) == NULL, "sanitize(NULL) is NULL");

    /* 1000 bytes: <= 255, extension kept */
    s = repeat("a", 996, ".txt");
    r = cf_sanitize_filename(s, strlen(s));
    CHECK(r && strlen(r) == 255 && ends_with(r, ".txt") && safe_name(r),
          "1000-byte name -> 255 bytes ending in .txt");
    free(r);
    free(s);

    /* exactly 255 bytes is untouched; 256 is shortened */
    s = repeat("b", 251, ".txt");
    r = cf_sanitize_filename(s, strlen(s));
    CHECK(r && strcmp(r, s) == 0, "255-byte name kept as is");
    free(r);
    free(s);
    s = repeat("b", 252, ".txt");
    r = cf_sanitize_filename(s, strlen(s));
    CHECK(r && strlen(r) == 255 && ends_with(r, "b.txt"), "256-byte name shortened by one");
    free(r);
    free(s);

    /* multibyte stem: never split a sequence */
    s = repeat("\xc3\xa9", 200, ""); /* 400 bytes, no extension */
    r = cf_sanitize_filename(s, strlen(s));
    CHECK(r && strlen(r) == 254 && safe_name(r), "2-byte chars cut on a boundary (%zu)",
          r ? strlen(r) : 0);
    free(r);
    free(s);
    s = repeat("\xf0\x9f\x98\x80", 100, ".jpeg");
    r = cf_sanitize_filename(s, strlen(s));
    CHECK(r && strlen(r) == 4 * 62 + 5 && ends_with(r, ".jpeg") && safe_name(r),
          "4-byte chars cut on a boundary (%zu)", r ? strlen(r) : 0);
    free(r);
    free(s);

    /* an extension of 16 bytes is kept, 17 is not */
    s = repeat("c", 300, ".abcdefghijklmnop");
    r = cf_sanitize_filename(s, strlen(s));
    CHECK(r && strlen(r) == 255 && ends_with(r, "c.abcdefghijklmnop"), "16-byte extension kept");
    free(r);
    free(s);
    s = repeat("c", 300, ".abcdefghijklmnopq");
    r = cf_sanitize_filename(s, strlen(s));
    CHECK(r && strlen(r) == 255 && !strchr(r, '.'), "17-byte extension not kept");
    free(r);
    free(s);

    /* shortening that would end on a dot trims it */
    s = repeat("d", 254, ".");
    {
        char *t = repeat("e", 30, "");
        char *u = malloc(strlen(s) + strlen(t) + 1);
        sprintf(u, "%s%s", s, t);
        r = cf_sanitize_filename(u, strlen(u));
        CHECK(r && strlen(r) == 254 && safe_name(r), "no trailing dot after shortening");
        free(r);
        free(t);
        free(u);
    }
    free(s);

    /* a long dot-file has no extension */
    s = repeat("f", 300, "");
    s[0] = '.';
    r = cf_sanitize_filename(s, strlen(s));
    CHECK(r && strlen(r) == 255 && r[0] == '.', "long dot-file shortened");
    free(r);
    free(s);

    /* invalid bytes in a long name: replaced first, then shortened */
    s = repeat("\xff", 400, ".txt");
    r = cf_sanitize_filename(s, strlen(s));
    CHECK(r && strlen(r) == 255 && ends_with(r, "_.txt") && safe_name(r), "long invalid name");
    free(r);
    free(s);

    /* random bytes never give an unsafe name */
    {
        int i, j, all_safe = 1;
        unsigned char in[600];
        for (i = 0; i < 20000; i++) {
            size_t len = rnd() % sizeof in;
            for (j = 0; j < (int)len; j++) {
                unsigned v = rnd();
                /* bias towards the interesting bytes */
                in[j] = (v & 3) == 0 ? (unsigned char)"./\\ \0\xc2\xe2\x80"[(v >> 2) % 8] : (unsigned char)(v >> 8);
            }
            r = cf_sanitize_filename((const char *)in, len);
            if (!safe_name(r)) {
                all_safe = 0;
                printf("FAIL unsafe sanitize result (len %zu)\n", len);
            }
            free(r);
        }
        CHECK(all_safe, "every random name sanitised safely");
    }
}

/* ---- header store --------------------------------------------------------- */

static int feed(cf_headers *h, const char *line)
{
    return cf_headers_feed(h, line, strlen(line));
}

static int value_is(const cf_headers *h, const char *name, const char *want)
{
    const char *v = cf_headers_get(h, name);
    return (v == NULL && want == NULL) || (v && want && strcmp(v, want) == 0);
}

static void test_headers(void)
{
    cf_headers h;
    int i, rc;

    cf_headers_init(&h);
    CHECK(h.status == 0 && h.n == 0 && !h.complete, "fresh store is empty");
    CHECK(cf_headers_get(&h, "anything") == NULL, "get on an empty store");
    CHECK(feed(&h, "HTTP/1.1 200 OK\r\n") == 0, "status line");
    CHECK(h.status == 200 && h.http_major == 1 && !h.complete, "status 200, HTTP/1");
    CHECK(feed(&h, "Content-Type: text/plain\r\n") == 0, "field line");
    CHECK(feed(&h, "X-Multi: a\r\n") == 0 && feed(&h, "x-multi: b\r\n") == 0, "repeated field");
    CHECK(feed(&h, "Spaces:    padded value \t \r\n") == 0, "padded value");
    CHECK(feed(&h, "Empty:\r\n") == 0, "empty value");
    CHECK(feed(&h, "LF-Only: yes\n") == 0, "LF line ending");
    CHECK(feed(&h, "no colon here\r\n") == 0, "line without ':' ignored");
    CHECK(feed(&h, ": no name\r\n") == 0, "empty name ignored");
    CHECK(feed(&h, "Bad Name: x\r\n") == 0, "name with a space ignored");
    CHECK(cf_headers_feed(&h, "Nul: a\0b\r\n", 10) == 0, "line with a NUL");
    CHECK(feed(&h, "Content-Length: 5\r7\r\n") == 0, "line with a bare CR");
    CHECK(feed(&h, "\r\n") == 0 && h.complete, "blank line completes");
    CHECK(value_is(&h, "content-type", "text/plain"), "case-insensitive get");
    CHECK(value_is(&h, "CONTENT-TYPE", "text/plain"), "case-insensitive get (upper)");
    CHECK(value_is(&h, "X-MULTI", "a"), "first of a repeated field");
    CHECK(value_is(&h, "spaces", "padded value"), "value trimmed");
    CHECK(value_is(&h, "empty", ""), "empty value kept");
    CHECK(value_is(&h, "lf-only", "yes"), "LF-only line");
    CHECK(value_is(&h, "Bad Name", NULL), "bad lines not stored");
    /* RFC 9110 §5.5: NUL, CR, LF inside become SP (libcurl reads the
     * Content-Length as 5; stored as "5 7", no parser takes it). */
    CHECK(value_is(&h, "nul", "a b"), "NUL read as SP (%s)", cf_headers_get(&h, "nul"));
    CHECK(value_is(&h, "content-length", "5 7"), "bare CR read as SP (%s)", cf_headers_get(&h, "content-length"));
    {
        int64_t cl;
        CHECK(cf_parse_content_length(cf_headers_get(&h, "content-length"), &cl) != 0, "5 7 is no length");
    }
    CHECK(value_is(&h, "missing", NULL), "missing field");
    CHECK(cf_headers_get(&h, NULL) == NULL && cf_headers_get(NULL, "x") == NULL, "NULL arguments");
    CHECK(h.n == 8, "multimap keeps every field (%zu)", h.n);
    {
        int found_b = 0;
        size_t k;
        for (k = 0; k < h.n; k++)
            if (strcmp(h.items[k].name, "x-multi") == 0 && strcmp(h.items[k].value, "b") == 0)
                found_b = 1;
        CHECK(found_b, "second X-Multi value stored with its own case");
    }
    cf_headers_free(&h);
    CHECK(h.n == 0 && h.items == NULL && h.status == 0, "free resets the store");

    /* folded continuation lines */
    cf_headers_init(&h);
    feed(&h, "HTTP/1.1 200 OK\r\n");
    feed(&h, " orphan continuation\r\n"); /* nothing to continue: ignored */
    CHECK(h.n == 0, "continuation without a field ignored");
    feed(&h, "X-Fold: one\r\n");
    feed(&h, "  two\r\n");
    feed(&h, "\tthree  \r\n");
    feed(&h, " \r\n"); /* blank continuation adds nothing */
    feed(&h, "X-Empty-Fold:\r\n");
    feed(&h, " v\r\n");
    CHECK(value_is(&h, "x-fold", "one two three"), "folded value joined with one space (%s)",
          cf_headers_get(&h, "x-fold") ? cf_headers_get(&h, "x-fold") : "NULL");
    CHECK(value_is(&h, "x-empty-fold", "v"), "fold onto an empty value");
    CHECK(!h.complete, "a whitespace-only line is not the blank line");
    cf_headers_free(&h);

    /* a new status line resets: redirects and 100-continue */
    cf_headers_init(&h);
    feed(&h, "HTTP/1.1 100 Continue\r\n");
    feed(&h, "\r\n");
    CHECK(h.status == 100 && h.complete, "100 Continue block");
    feed(&h, "HTTP/1.1 301 Moved Permanently\r\n");
    CHECK(h.status == 301 && !h.complete, "next status line clears complete");
    feed(&h, "Location: /elsewhere\r\n");
    feed(&h, "\r\n");
    CHECK(value_is(&h, "location", "/elsewhere"), "redirect header");
    feed(&h, "HTTP/2 200 \r\n");
    CHECK(h.status == 200 && h.http_major == 2 && h.n == 0, "status line clears earlier fields");
    CHECK(value_is(&h, "location", NULL), "redirect's Location forgotten");
    feed(&h, "content-length: 5\r\n");
    feed(&h, "\r\n");
    CHECK(h.complete && value_is(&h, "Content-Length", "5"), "final block complete");
    CHECK(feed(&h, "HTTP/1.1 abc\r\n") == -1, "malformed status line fails");
    cf_headers_free(&h);

    /* a blank line before any status line does not complete */
    cf_headers_init(&h);
    feed(&h, "\r\n");
    CHECK(!h.complete, "no status yet, not complete");
    CHECK(cf_headers_feed(&h, NULL, 0) == 0, "NULL empty line");
    CHECK(cf_headers_feed(NULL, "x", 1) == -1, "NULL store fails");
    cf_headers_free(&h);
    cf_headers_free(NULL);

    /* bounds: too many fields, too long a field, endless folding */
    cf_headers_init(&h);
    feed(&h, "HTTP/1.1 200 OK\r\n");
    rc = 0;
    for (i = 0; i < 5000 && rc == 0; i++)
        rc = feed(&h, "X-Many: v\r\n");
    CHECK(rc == -1 && h.n <= 1000, "field count is bounded (%zu)", h.n);
    cf_headers_free(&h);
    cf_headers_init(&h);
    feed(&h, "HTTP/1.1 200 OK\r\n");
    {
        char *big = repeat("x", 200 * 1024, "\r\n");
        memcpy(big, "Big: ", 5);
        CHECK(feed(&h, big) == -1, "200 KiB field refused");
        free(big);
        big = repeat("y", 90 * 1024, "\r\n");
        memcpy(big, "Big: ", 5);
        CHECK(feed(&h, big) == 0, "90 KiB field accepted (libcurl's limit is 100 KiB)");
        big[0] = ' ';
        rc = 0;
        for (i = 0; i < 10 && rc == 0; i++)
            rc = feed(&h, big);
        CHECK(rc == -1, "folding cannot grow a field without limit");
        free(big);
    }
    cf_headers_free(&h);

    /* garbage lines never crash and never corrupt the store */
    cf_headers_init(&h);
    for (i = 0; i < 20000; i++) {
        char line[80];
        static const char alphabet[] = "HTP/1.2 0:\r\n\t a-Zz\x01\xff";
        size_t len = rnd() % sizeof line, k;
        for (k = 0; k < len; k++)
            line[k] = alphabet[rnd() % (sizeof alphabet - 1)];
        if (rnd() % 10 == 0 && len >= 9)
            memcpy(line, "HTTP/1.1 ", 9);
        (void)cf_headers_feed(&h, line, len);
    }
    CHECK(h.n <= h.cap && h.n <= 1000, "store consistent after garbage");
    cf_headers_free(&h);
}

static void test_status_line(void)
{
    static const struct {
        const char *line;
        int rc, major, status;
    } cases[] = {
        {"HTTP/1.0 200 OK", 0, 1, 200},
        {"HTTP/1.1 404 Not Found\r\n", 0, 1, 404},
        {"HTTP/2 200", 0, 2, 200},
        {"HTTP/2 200 \r\n", 0, 2, 200},
        {"HTTP/2.0 206 Partial Content", 0, 2, 206},
        {"HTTP/3 204\r\n", 0, 3, 204},
        {"HTTP/1.1 599 odd", 0, 1, 599},
        {"HTTP/1.1  200  two spaces", 0, 1, 200},
        {"HTTP/1.1 200\tOK", 0, 1, 200},
        {"HTTP/1.1 2000 OK", -1, 0, 0},
        {"HTTP/1.1 20 OK", -1, 0, 0},
        {"HTTP/1.1 099 OK", -1, 0, 0},
        {"HTTP/1.1 200OK", -1, 0, 0},
        {"HTTP/1.1 abc", -1, 0, 0},
        {"HTTP/1.1", -1, 0, 0},
        {"HTTP/1.1 ", -1, 0, 0},
        {"HTTP/4 200 OK", -1, 0, 0},
        {"HTTP/1.2 200 OK", -1, 0, 0},
        {"HTTP/0.9 200 OK", -1, 0, 0},
        {"http/1.1 200 OK", -1, 0, 0},
        {"HTTP/1.1200 OK", -1, 0, 0},
        {"", -1, 0, 0},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int major = -7, status = -7;
        int rc = cf_parse_status_line(cases[i].line, strlen(cases[i].line), &major, &status);
        if (cases[i].rc == 0)
            CHECK(rc == 0 && major == cases[i].major && status == cases[i].status,
                  "status line \"%s\" -> rc %d major %d status %d", cases[i].line, rc, major, status);
        else
            CHECK(rc == -1 && major == -7 && status == -7, "status line \"%s\" must fail",
                  cases[i].line);
    }
    {
        int major = 0, status = 0;
        CHECK(cf_parse_status_line(NULL, 0, &major, &status) == -1, "NULL status line");
    }
}

/* ---- value parsers -------------------------------------------------------- */

static void test_content_length(void)
{
    static const struct {
        const char *v;
        int rc;
        int64_t want;
    } cases[] = {
        {"0", 0, 0},
        {"1234", 0, 1234},
        {"  42 ", 0, 42},
        {"007", 0, 7},
        {"9223372036854775807", 0, INT64_MAX},
        {"9223372036854775808", -1, 0},
        {"99999999999999999999", -1, 0},
        {"", -1, 0},
        {"   ", -1, 0},
        {"-1", -1, 0},
        {"+1", -1, 0},
        {"1a", -1, 0},
        {"1 2", -1, 0},
        {"1,1", -1, 0},
        {"0x10", -1, 0},
        {"1.0", -1, 0},
    };
    size_t i;
    int64_t out;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        out = -99;
        if (cases[i].rc == 0)
            CHECK(cf_parse_content_length(cases[i].v, &out) == 0 && out == cases[i].want,
                  "Content-Length \"%s\"", cases[i].v);
        else
            CHECK(cf_parse_content_length(cases[i].v, &out) == -1 && out == -99,
                  "Content-Length \"%s\" must fail, output untouched", cases[i].v);
    }
    CHECK(cf_parse_content_length(NULL, &out) == -1, "Content-Length NULL");
}

static void test_content_range(void)
{
    static const struct {
        const char *v;
        int rc;
        int64_t first, last, total;
    } cases[] = {
        {"bytes 0-99/1000", 0, 0, 99, 1000},
        {"bytes 0-99/*", 0, 0, 99, -1},
        {"bytes */1000", 0, -1, -1, 1000},
        {"bytes */0", 0, -1, -1, 0},
        {"bytes 0-0/1", 0, 0, 0, 1},
        {"bytes 999-999/1000", 0, 999, 999, 1000},
        {"BYTES 5-9/10", 0, 5, 9, 10},
        {"  bytes 1-2/3  ", 0, 1, 2, 3},
        {"bytes 0-9223372036854775806/9223372036854775807", 0, 0, INT64_MAX - 1, INT64_MAX},
        {"bytes 5-4/10", -1, 0, 0, 0},       /* last < first */
        {"bytes 0-10/10", -1, 0, 0, 0},      /* last >= total */
        {"bytes 0-0/0", -1, 0, 0, 0},
        {"bytes */*", -1, 0, 0, 0},
        {"bytes 0-99", -1, 0, 0, 0},
        {"bytes 0-/100", -1, 0, 0, 0},
        {"bytes -5/100", -1, 0, 0, 0},
        {"bytes -5-10/20", -1, 0, 0, 0},
        {"bytes 0-99/100 x", -1, 0, 0, 0},
        {"bytes 0-99/-100", -1, 0, 0, 0},
        {"bytes 0 - 99/100", -1, 0, 0, 0},
        {"0-99/100", -1, 0, 0, 0},
        {"bytes=0-99/100", -1, 0, 0, 0},
        {"bytes: 0-99/100", -1, 0, 0, 0},
        {"items 0-99/100", -1, 0, 0, 0},
        {"bytes 0-99999999999999999999/*", -1, 0, 0, 0},
        {"bytes 0-1/99999999999999999999", -1, 0, 0, 0},
        {"bytes", -1, 0, 0, 0},
        {"bytes ", -1, 0, 0, 0},
        {"", -1, 0, 0, 0},
    };
    size_t i;
    int64_t f, l, t;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f = l = t = -99;
        if (cases[i].rc == 0)
            CHECK(cf_parse_content_range(cases[i].v, &f, &l, &t) == 0 && f == cases[i].first &&
                      l == cases[i].last && t == cases[i].total,
                  "Content-Range \"%s\" -> %lld %lld %lld", cases[i].v, (long long)f, (long long)l,
                  (long long)t);
        else
            CHECK(cf_parse_content_range(cases[i].v, &f, &l, &t) == -1 && f == -99 && l == -99 &&
                      t == -99,
                  "Content-Range \"%s\" must fail, outputs untouched", cases[i].v);
    }
    CHECK(cf_parse_content_range(NULL, &f, &l, &t) == -1, "Content-Range NULL");
}

static void test_retry_after(void)
{
    /* 784111777 is Sun, 06 Nov 1994 08:49:37 GMT; 1735689600 is 2025-01-01 */
    static const struct {
        const char *v;
        time_t now;
        int rc;
        double want;
    } cases[] = {
        {"120", 0, 0, 120},
        {"0", 0, 0, 0},
        {" 5 ", 0, 0, 5},
        {"99999999999999999999999", 0, 0, 2147483648.0},
        {"-1", 0, -1, 0},
        {"+1", 0, -1, 0},
        {"1.5", 0, -1, 0},
        {"5s", 0, -1, 0},
        {"", 0, -1, 0},
        {"abc", 0, -1, 0},
        /* the three HTTP-date forms, 30 s ahead */
        {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 30, 0, 30},
        {"Sunday, 06-Nov-94 08:49:37 GMT", 784111777 - 30, 0, 30},
        {"Sun Nov  6 08:49:37 1994", 784111777 - 30, 0, 30},
        {"sun, 06 nov 1994 08:49:37 gmt", 784111777 - 30, 0, 30},
        {"Sun Nov 16 08:49:37 1994", 784111777, 0, 864000},
        /* past dates give 0 */
        {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 100, 0, 0},
        {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777, 0, 0},
        {"Sunday, 06-Nov-94 08:49:37 GMT", 1735689600, 0, 0},
        /* RFC 850 two-digit years: up to 50 years ahead is the future */
        {"Tuesday, 01-Jan-75 00:00:00 GMT", 1735689600, 0, 1577836800.0},
        {"Monday, 01-Jan-76 00:00:00 GMT", 1735689600, 0, 0},
        {"Thu, 01 Jan 1970 00:00:00 GMT", 0, 0, 0},
        {"Sat, 01 Jan 2000 00:00:00 GMT", 946684800 - 3600, 0, 3600},
        {"Thu, 29 Feb 2024 00:00:00 GMT", 1709164800 - 1, 0, 1},
        {"Fri, 01 Jan 2100 00:00:00 GMT", 4102444800LL - 1, 0, 1},
        {"Sun, 06 Nov 1994 08:49:60 GMT", 784111777, 0, 23}, /* leap second */
        /* malformed dates */
        {"Wed, 29 Feb 2023 00:00:00 GMT", 0, -1, 0},
        {"Sun, 31 Feb 1994 08:49:37 GMT", 0, -1, 0},
        {"Sun, 00 Nov 1994 08:49:37 GMT", 0, -1, 0},
        {"Sun, 06 Nov 1994 24:00:00 GMT", 0, -1, 0},
        {"Sun, 06 Nov 1994 08:60:00 GMT", 0, -1, 0},
        {"Sun, 06 Nov 1994 08:49:37 PST", 0, -1, 0},
        {"Sun, 06 Nov 1994 08:49:37", 0, -1, 0},
        {"Sun, 06 Nov 1994 08:49:37 GMT junk", 0, -1, 0},
        {"Sun, 6 Nov 1994 08:49:37 GMT", 0, -1, 0},
        {"Sun, 06 Nov 94 08:49:37 GMT", 0, -1, 0},
        {"Foo, 06 Nov 1994 08:49:37 GMT", 0, -1, 0},
        {"Sun, 06 Foo 1994 08:49:37 GMT", 0, -1, 0},
        {"Sun, 06 Nov 1994 8:49:37 GMT", 0, -1, 0},
        {"Sunday, 06-Nov-1994 08:49:37 GMT", 0, -1, 0},
        {"Sun Nov  6 08:49:37 1994 GMT", 0, -1, 0},
        {"Sun Nov 6 08:49:37 1994", 0, -1, 0},
        {"Sun,", 0, -1, 0},
        {"Sunday", 0, -1, 0},
        {"Sun", 0, -1, 0},
    };
    size_t i;
    double out;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        out = -99;
        if (cases[i].rc == 0)
            CHECK(cf_parse_retry_after(cases[i].v, cases[i].now, &out) == 0 && out == cases[i].want,
                  "Retry-After \"%s\" (now %lld) -> %.0f, want %.0f", cases[i].v,
                  (long long)cases[i].now, out, cases[i].want);
        else
            CHECK(cf_parse_retry_after(cases[i].v, cases[i].now, &out) == -1 && out == -99,
                  "Retry-After \"%s\" must fail, output untouched", cases[i].v);
    }
    CHECK(cf_parse_retry_after(NULL, 0, &out) == -1, "Retry-After NULL");
}

/* ---- digests --------------------------------------------------------------- */

static int hex_is(cf_digests *d, int alg, const char *want)
{
    char hex[CF_HEX_MAX];
    if (cf_digests_hex(d, alg, hex) != 0)
        return 0;
    if (strcmp(hex, want) != 0) {
        printf("  %s: got %s want %s\n", cf_digest_name(alg), hex, want);
        return 0;
    }
    return 1;
}

static void check_vector(const char *msg, const char *sha1, const char *sha256, const char *md5)
{
    cf_digests *d = cf_digests_new(CF_SHA1 | CF_SHA256 | CF_MD5);
    CHECK(d != NULL, "cf_digests_new");
    if (!d)
        return;
    CHECK(cf_digests_update(d, msg, strlen(msg)) == 0, "update");
    if (sha1)
        CHECK(hex_is(d, CF_SHA1, sha1), "SHA-1 of \"%s\"", msg);
    if (sha256)
        CHECK(hex_is(d, CF_SHA256, sha256), "SHA-256 of \"%s\"", msg);
    if (md5)
        CHECK(hex_is(d, CF_MD5, md5), "MD5 of \"%s\"", msg);
    cf_digests_free(d);
}

static void test_digests(void)
{
    cf_digests *d;
    char hex[CF_HEX_MAX];
    size_t fed, piece;
    char *million;

    CHECK(cf_digest_alg("sha1") == CF_SHA1 && cf_digest_alg("sha256") == CF_SHA256 &&
              cf_digest_alg("md5") == CF_MD5,
          "algorithm names");
    CHECK(cf_digest_alg("SHA256") == CF_SHA256, "algorithm names are case-insensitive");
    CHECK(cf_digest_alg("sha512") == 0 && cf_digest_alg("") == 0 && cf_digest_alg(NULL) == 0 &&
              cf_digest_alg("sha") == 0 && cf_digest_alg("sha1 ") == 0,
          "unknown algorithm names");
    CHECK(strcmp(cf_digest_name(CF_SHA1), "sha1") == 0 &&
              strcmp(cf_digest_name(CF_SHA256), "sha256") == 0 &&
              strcmp(cf_digest_name(CF_MD5), "md5") == 0,
          "cf_digest_name");
    CHECK(cf_digest_name(0) == NULL && cf_digest_name(3) == NULL && cf_digest_name(8) == NULL,
          "cf_digest_name of a non-algorithm");
    CHECK(cf_digests_new(8) == NULL, "unknown mask bit refused");

    /* FIPS 180-2 and RFC 1321 vectors */
    check_vector("", "da39a3ee5e6b4b0d3255bfef95601890afd80709",
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                 "d41d8cd98f00b204e9800998ecf8427e");
    check_vector("abc", "a9993e364706816aba3e25717850c26c9cd0d89d",
                 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                 "900150983cd24fb0d6963f7d28e17f72");
    check_vector("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                 "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", NULL);
    check_vector("a", NULL, NULL, "0cc175b9c0f1b6a831c399e269772661");
    check_vector("message digest", NULL, NULL, "f96b697d7cb7938d525a2f31aaf161d0");
    check_vector("abcdefghijklmnopqrstuvwxyz", NULL, NULL, "c3fcd3d76192e4007dfb496cca67e13b");
    check_vector("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", NULL, NULL,
                 "d174ab98d277d9f5a5611c2c9f419d9f");
    check_vector("1234567890123456789012345678901234567890123456789012345678901234567890123456"
                 "7890",
                 NULL, NULL, "57edf4a22be3c955ac49da2e2107b67a");

    /* one million 'a' in uneven pieces */
    million = malloc(1000000);
    memset(million, 'a', 1000000);
    d = cf_digests_new(CF_SHA1 | CF_SHA256 | CF_MD5);
    CHECK(d && cf_digests_mask(d) == (CF_SHA1 | CF_SHA256 | CF_MD5), "mask of a full set");
    for (fed = 0, piece = 1; d && fed < 1000000; fed += piece, piece = piece * 7 % 9973 + 1) {
        if (piece > 1000000 - fed)
            piece = 1000000 - fed;
        if (cf_digests_update(d, million + fed, piece) != 0)
            break;
    }
    CHECK(fed == 1000000, "fed a million bytes (%zu)", fed);
    CHECK(hex_is(d, CF_SHA1, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"), "SHA-1 of a million a");
    CHECK(hex_is(d, CF_SHA256, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
          "SHA-256 of a million a");
    CHECK(hex_is(d, CF_MD5, "7707d6ae4e027c70eea2a935c2296f21"), "MD5 of a million a");
    cf_digests_free(d);
    free(million);

    /* hex mid-stream does not end the digest */
    d = cf_digests_new(CF_SHA1 | CF_SHA256);
    CHECK(d != NULL, "sha1+sha256 set");
    cf_digests_update(d, "a", 1);
    CHECK(hex_is(d, CF_SHA1, "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"), "SHA-1 of \"a\" mid-stream");
    CHECK(hex_is(d, CF_SHA1, "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"), "hex twice is the same");
    CHECK(cf_digests_update(d, "bc", 2) == 0, "update after hex");
    CHECK(hex_is(d, CF_SHA1, "a9993e364706816aba3e25717850c26c9cd0d89d"), "SHA-1 continued to \"abc\"");
    CHECK(hex_is(d, CF_SHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
          "SHA-256 continued to \"abc\"");
    CHECK(cf_digests_hex(d, CF_MD5, hex) == -1, "hex of an algorithm not in the set fails");
    CHECK(cf_digests_hex(d, CF_SHA1 | CF_SHA256, hex) == -1, "hex of a combined mask fails");
    CHECK(cf_digests_hex(d, 0, hex) == -1, "hex of 0 fails");
    CHECK(cf_digests_update(d, NULL, 0) == 0, "empty update");
    CHECK(cf_digests_update(d, NULL, 5) == -1, "NULL data fails");
    CHECK(hex_is(d, CF_SHA1, "a9993e364706816aba3e25717850c26c9cd0d89d"), "unchanged by empty update");
    CHECK(cf_digests_mask(d) == (CF_SHA1 | CF_SHA256), "mask");
    cf_digests_free(d);

    /* an empty set accepts bytes and has no digests */
    d = cf_digests_new(0);
    CHECK(d && cf_digests_update(d, "x", 1) == 0 && cf_digests_hex(d, CF_SHA1, hex) == -1,
          "empty set");
    cf_digests_free(d);
    cf_digests_free(NULL);
    CHECK(cf_digests_mask(NULL) == 0 && cf_digests_update(NULL, "x", 1) == -1 &&
              cf_digests_hex(NULL, CF_SHA1, hex) == -1,
          "NULL set");
}

int main(void)
{
    test_disposition();
    test_sanitize();
    test_headers();
    test_status_line();
    test_content_length();
    test_content_range();
    test_retry_after();
    test_digests();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
