/* CHECK(cond, fmt, ...): on failure print the line, the message and the
 * library's last error, and exit 1. Shared by the C examples and tests. */
#ifndef SIMPLERPC_CHECK_H
#define SIMPLERPC_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "simplerpc.h"

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL line %d: ", __LINE__);                  \
            fprintf(stderr, __VA_ARGS__);                                 \
            const char *m = srpc_last_error_message();                    \
            fprintf(stderr, " (last error: %s)\n", m ? m : "none");       \
            exit(1);                                                      \
        }                                                                 \
    } while (0)

#endif
