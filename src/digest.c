/*
 * Incremental digests (SHA-1, SHA-256, MD5) over OpenSSL's EVP interface:
 * one EVP_MD_CTX per algorithm asked for, all fed the same bytes.
 */
#include "cloudfetch.h"

#include <openssl/evp.h>
#include <stdlib.h>

#define CF_NALGS 3

struct cf_digests {
    unsigned mask;
    EVP_MD_CTX *ctx[CF_NALGS]; /* index = bit position of the CF_* flag */
};

static const struct {
    int alg;
    const char *name;
} algs[CF_NALGS] = {{CF_SHA1, "sha1"}, {CF_SHA256, "sha256"}, {CF_MD5, "md5"}};

static const EVP_MD *md_of(int index)
{
    switch (index) {
    case 0:
        return EVP_sha1();
    case 1:
        return EVP_sha256();
    default:
        return EVP_md5();
    }
}

/* Index of a single-bit algorithm flag, or -1. */
static int index_of(int alg)
{
    int i;
    for (i = 0; i < CF_NALGS; i++)
        if (algs[i].alg == alg)
            return i;
    return -1;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int ieq(const char *a, const char *b)
{
    while (*a && *b && lower((unsigned char)*a) == lower((unsigned char)*b)) {
        a++;
        b++;
    }
    return *a == '\0' && *b == '\0';
}

int cf_digest_alg(const char *name)
{
    int i;
    if (!name)
        return 0;
    for (i = 0; i < CF_NALGS; i++)
        if (ieq(name, algs[i].name))
            return algs[i].alg;
    return 0;
}

const char *cf_digest_name(int alg)
{
    int i = index_of(alg);
    return i < 0 ? NULL : algs[i].name;
}

void cf_digests_free(cf_digests *d)
{
    int i;
    if (!d)
        return;
    for (i = 0; i < CF_NALGS; i++)
        EVP_MD_CTX_free(d->ctx[i]);
    free(d);
}

/* A mask of 0 is allowed: an empty set that accepts and ignores bytes. */
cf_digests *cf_digests_new(unsigned mask)
{
    cf_digests *d;
    int i;
    if (mask & ~(unsigned)(CF_SHA1 | CF_SHA256 | CF_MD5))
        return NULL;
    d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->mask = mask;
    for (i = 0; i < CF_NALGS; i++) {
        if (!(mask & (unsigned)algs[i].alg))
            continue;
        d->ctx[i] = EVP_MD_CTX_new();
        /* MD5 may be refused (FIPS providers): then the whole set fails. */
        if (!d->ctx[i] || EVP_DigestInit_ex(d->ctx[i], md_of(i), NULL) != 1) {
            cf_digests_free(d);
            return NULL;
        }
    }
    return d;
}

unsigned cf_digests_mask(const cf_digests *d)
{
    return d ? d->mask : 0;
}

int cf_digests_update(cf_digests *d, const void *data, size_t len)
{
    int i;
    if (!d || (!data && len > 0))
        return -1;
    if (len == 0)
        return 0;
    for (i = 0; i < CF_NALGS; i++)
        if (d->ctx[i] && EVP_DigestUpdate(d->ctx[i], data, len) != 1)
            return -1;
    return 0;
}

int cf_digests_hex(const cf_digests *d, int alg, char out[CF_HEX_MAX])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, k;
    EVP_MD_CTX *copy;
    int i = index_of(alg), ok;

    if (!d || !out || i < 0 || !d->ctx[i])
        return -1;
    /* Finish a copy so the running digest can still take more bytes. */
    copy = EVP_MD_CTX_new();
    if (!copy)
        return -1;
    ok = EVP_MD_CTX_copy_ex(copy, d->ctx[i]) == 1 && EVP_DigestFinal_ex(copy, md, &mdlen) == 1 &&
         mdlen * 2 < CF_HEX_MAX;
    EVP_MD_CTX_free(copy);
    if (!ok)
        return -1;
    for (k = 0; k < mdlen; k++) {
        out[2 * k] = hex[md[k] >> 4];
        out[2 * k + 1] = hex[md[k] & 0xf];
    }
    out[2 * mdlen] = '\0';
    return 0;
}
