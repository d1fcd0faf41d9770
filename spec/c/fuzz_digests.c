/*
 * libFuzzer target: the digests (src/digest.c), base64 (src/base64.c) and
 * the stepwise file hashing (cf_filehash, src/files.c) that a body's bytes
 * go through.
 *
 * Input: one byte of algorithm mask and flags, four bytes of seed for the
 * split sizes, then the bytes to hash.  Checked (abort() when broken):
 *   - cf_digests fed the bytes in random pieces (empty ones too), asked for
 *     its hex at random points, equals OpenSSL's one-shot digest of the
 *     same prefix, for every algorithm in the mask; algorithms outside the
 *     mask give no hex; masks with unknown bits are refused;
 *   - cf_digest_alg/cf_digest_name agree on names (case-insensitively);
 *   - cf_base64 equals a plain reference encoder, writes exactly what it
 *     says (the buffer is exactly as large as documented, so ASan sees any
 *     overrun) and decodes back to the input;
 *   - cf_filehash over a file holding the bytes, in random step sizes,
 *     equals the one-shot digest.
 *
 *   make fuzz                                  (see mk/fuzz.mk)
 *   build/fuzz/fuzz_digests CRASH_FILE         (replays one input)
 */
#include "../../src/cloudfetch.h"

#define FUZZ_NAME "fuzz_digests"
#include "fuzz_util.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int ALGS[3] = {CF_SHA1, CF_SHA256, CF_MD5};
static const char *const NAMES[3] = {"sha1", "sha256", "md5"};

static const EVP_MD *md_of(int i)
{
    return i == 0 ? EVP_sha1() : i == 1 ? EVP_sha256() : EVP_md5();
}

static void oneshot_hex(int i, const uint8_t *p, size_t n, char out[CF_HEX_MAX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (EVP_Digest(p, n, md, &len, md_of(i), NULL) != 1)
        abort();
    for (unsigned k = 0; k < len; k++)
        snprintf(out + 2 * k, 3, "%02x", md[k]);
}

static void compare(const cf_digests *d, unsigned mask, const uint8_t *p, size_t n, const char *what)
{
    for (int i = 0; i < 3; i++) {
        char got[CF_HEX_MAX], want[CF_HEX_MAX];
        int rc = cf_digests_hex(d, ALGS[i], got);
        if (!(mask & (unsigned)ALGS[i])) {
            if (rc == 0)
                broken("%s: a %s hex although the mask %u does not have it", what, NAMES[i], mask);
            continue;
        }
        if (rc != 0)
            broken("%s: no %s hex", what, NAMES[i]);
        oneshot_hex(i, p, n, want);
        if (strcmp(got, want) != 0)
            broken("%s: %s of %zu bytes is %s, cf_digests says %s", what, NAMES[i], n, want, got);
    }
}

static char scratch[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(scratch, sizeof scratch, "/tmp/cloudfetch-fuzz-digests-%ld", (long)getpid());
    return 0;
}

static void check_names(const uint8_t *data, size_t size)
{
    char name[16];
    size_t n = size < sizeof name - 1 ? size : sizeof name - 1;
    memcpy(name, data, n);
    name[n] = '\0';
    int alg = cf_digest_alg(name);
    int want = 0;
    for (int i = 0; i < 3; i++)
        if (strcasecmp(name, NAMES[i]) == 0)
            want = ALGS[i];
    if (alg != want)
        broken("cf_digest_alg(\"%s\") = %d, expected %d", name, alg, want);
    if (alg && strcasecmp(cf_digest_name(alg), name) != 0)
        broken("cf_digest_name(%d) = %s for \"%s\"", alg, cf_digest_name(alg), name);
    if (cf_digest_name(0) || cf_digest_name(3) || cf_digest_name(8))
        broken("a name for a mask that is not one algorithm");
}

static void check_base64(const uint8_t *p, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t cap = 4 * ((n + 2) / 3) + 1; /* exactly what cloudfetch.h asks for */
    char *out = malloc(cap);
    char *want = malloc(cap);
    unsigned char *back = malloc(cap);
    if (!out || !want || !back)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        want[k++] = abc[v >> 18 & 63];
        want[k++] = abc[v >> 12 & 63];
        want[k++] = i + 1 < n ? abc[v >> 6 & 63] : '=';
        want[k++] = i + 2 < n ? abc[v & 63] : '=';
    }
    want[k] = '\0';
    size_t len = cf_base64(p, n, out);
    if (len != k || strlen(out) != k || memcmp(out, want, k + 1) != 0)
        broken("cf_base64 of %zu bytes gave %zu bytes \"%.80s\", expected \"%.80s\"", n, len, out, want);
    int dec = EVP_DecodeBlock(back, (const unsigned char *)out, (int)len);
    size_t pad = (len > 0 && out[len - 1] == '=') + (len > 1 && out[len - 2] == '=');
    if (dec < 0 || (size_t)dec - pad != n || memcmp(back, p, n) != 0)
        broken("cf_base64 of %zu bytes does not decode back", n);
    free(out);
    free(want);
    free(back);
}

static void check_filehash(unsigned mask, const uint8_t *p, size_t n, uint32_t *seed)
{
    int fd = open(scratch, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, p, n) != (ssize_t)n || close(fd) != 0) {
        perror(scratch);
        abort();
    }
    char err[CF_ERRLEN];
    cf_filehash *h = cf_filehash_open(scratch, mask, err, sizeof err);
    if (!h)
        broken("cf_filehash_open: %s", err);
    int rc, steps = 0;
    do {
        uint32_t r = next_rand(seed);
        size_t max = (r & 1) ? 1 + (r >> 1) % 64 : 1 + (r >> 1) % (n + 1);
        rc = cf_filehash_step(h, max, err, sizeof err);
        if (rc < 0)
            broken("cf_filehash_step: %s", err);
        if (++steps > (int)n + 3)
            broken("cf_filehash_step does not end (%d steps for %zu bytes)", steps, n);
    } while (rc == 1);
    compare(cf_filehash_digests(h), mask, p, n, "cf_filehash");
    cf_filehash_free(h);
    unlink(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    unsigned mask = data[0] & 7;
    unsigned flags = data[0] >> 3;
    uint32_t seed = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
    const uint8_t *p = data + 5;
    size_t n = size - 5;

    if (cf_digests_new(mask | 8u << (flags & 3)) != NULL)
        broken("cf_digests_new accepted the unknown mask bits %u", mask | 8u << (flags & 3));

    cf_digests *d = cf_digests_new(mask);
    if (!d)
        broken("cf_digests_new(%u) failed", mask);
    if (cf_digests_mask(d) != mask)
        broken("cf_digests_mask = %u, not %u", cf_digests_mask(d), mask);
    size_t at = 0;
    while (at < n) {
        uint32_t r = next_rand(&seed);
        size_t piece;
        switch (r & 3) {
        case 0: piece = 0; break;
        case 1: piece = 1; break;
        case 2: piece = (r >> 2) % 200; break;
        default: piece = (r >> 2) % (n - at + 1); break;
        }
        if (piece > n - at)
            piece = n - at;
        if (cf_digests_update(d, piece ? p + at : NULL, piece) != 0)
            broken("cf_digests_update of %zu bytes failed", piece);
        at += piece;
        if ((r & 0x300) == 0) /* the hex of a prefix, and the digest goes on */
            compare(d, mask, p, at, "a prefix");
    }
    compare(d, mask, p, n, "all the bytes");
    if (cf_digests_update(d, NULL, 1) == 0)
        broken("cf_digests_update took NULL with a length");
    cf_digests_free(d);

    check_names(p, n);
    check_base64(p, n);
    if (flags & 4)
        check_filehash(mask, p, n, &seed);
    return 0;
}
