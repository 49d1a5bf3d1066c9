/* SPDX-License-Identifier: MIT */
/* Library-wide helpers of libshmq: version, error strings, deadlines. */
#include <assert.h>
#include <limits.h>
#include <string.h>

#include <shmq/shmq.h>
#include <shmq/version.h>

#include "shm/futex.h"

static_assert(SHMQ_FOREVER == SHMQ_DEADLINE_NEVER, "public and internal 'no deadline' differ");

SHMQ_API const char *shmq_version(void)
{
	return SHMQ_VERSION_STRING;
}

SHMQ_API const char *shmq_strerror(int r)
{
	const char *s;

	if (r >= 0)
		return "Success";
	/* strerrordesc_np: a static string, where strerror() may use a shared buffer. */
	s = r == INT_MIN ? NULL : strerrordesc_np(-r);
	return s ? s : "Unknown error";
}

SHMQ_API uint64_t shmq_deadline_after(uint64_t timeout_ns)
{
	return shmq__deadline_after_ns(timeout_ns);
}
