/* Base64 (RFC 4648, with padding) for HTTP Basic credentials. */
#include "cloudfetch.h"

#include <openssl/evp.h>

size_t cf_base64(const void *data, size_t len, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, data, (int)len);
}
