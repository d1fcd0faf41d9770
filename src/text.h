/* Small ASCII helpers shared by the header parsers (internal to the core). */
#ifndef CLOUDFETCH_TEXT_H
#define CLOUDFETCH_TEXT_H

#include <stddef.h>
#include <string.h>

static inline int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static inline int is_blank(int c)
{
    return c == ' ' || c == '\t';
}

/* Case-insensitive comparison of the n bytes at s with the literal lit. */
static inline int ieqn(const char *s, size_t n, const char *lit)
{
    if (strlen(lit) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != lower((unsigned char)lit[i]))
            return 0;
    return 1;
}

#endif
