/*
 * The host tests' checks: each counts a pass or prints the failure with its file, line
 * and the test's context, and the test's main() reports the counts. One copy for every
 * host test program (each includes it once; the counters are its own).
 */
#pragma once

#include <stdio.h>
#include <string.h>

static int g_passed;
static int g_failed;
static const char *g_context = "";

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (cond) {                                                                           \
            g_passed++;                                                                       \
        } else {                                                                              \
            g_failed++;                                                                       \
            fprintf(stderr, "FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, g_context, #cond);   \
        }                                                                                     \
    } while (0)

#define CHECK_STR(got, want)                                                                  \
    do {                                                                                      \
        const char *got_ = (got);                                                             \
        const char *want_ = (want);                                                           \
        if (got_ != NULL && strcmp(got_, want_) == 0) {                                       \
            g_passed++;                                                                       \
        } else {                                                                              \
            g_failed++;                                                                       \
            fprintf(stderr, "FAIL %s:%d [%s]:\n  got  \"%s\"\n  want \"%s\"\n", __FILE__,     \
                    __LINE__, g_context, got_ ? got_ : "(null)", want_);                      \
        }                                                                                     \
    } while (0)

#define CHECK_PREFIX(got, want)                                                               \
    do {                                                                                      \
        const char *got_ = (got);                                                             \
        const char *want_ = (want);                                                           \
        if (strncmp(got_, want_, strlen(want_)) == 0) {                                       \
            g_passed++;                                                                       \
        } else {                                                                              \
            g_failed++;                                                                       \
            fprintf(stderr, "FAIL %s:%d [%s]:\n  got  \"%s\"\n  want \"%s...\"\n", __FILE__, \
                    __LINE__, g_context, got_, want_);                                        \
        }                                                                                     \
    } while (0)
