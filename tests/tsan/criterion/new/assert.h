/* SPDX-License-Identifier: MIT */
/*
 * Criterion's typed comparison helpers, for the TSan stand-in (see
 * ../criterion.h).  The type tag is accepted for source compatibility; the
 * failing expression and message are printed instead of the values.
 */
#ifndef SHMQ_TSAN_CRITERION_NEW_ASSERT_H
#define SHMQ_TSAN_CRITERION_NEW_ASSERT_H

#include "../criterion.h"

#define eq(type, a, b) ((a) == (b))
#define ne(type, a, b) ((a) != (b))
#define lt(type, a, b) ((a) < (b))
#define le(type, a, b) ((a) <= (b))
#define gt(type, a, b) ((a) > (b))
#define ge(type, a, b) ((a) >= (b))
#define not(x) (!(x))

#endif /* SHMQ_TSAN_CRITERION_NEW_ASSERT_H */
