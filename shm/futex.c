/* SPDX-License-Identifier: MIT */
/* Futex system-call wrappers: -errno returns, absolute monotonic deadlines. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shm/futex.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif

static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "futex word must be 32 bits");

uint64_t shmq__now_ns(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer (vDSO, no syscall). */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

uint64_t shmq__deadline_after_ns(uint64_t timeout_ns)
{
	uint64_t now = shmq__now_ns();

	return timeout_ns >= SHMQ_DEADLINE_NEVER - now ? SHMQ_DEADLINE_NEVER : now + timeout_ns;
}

static struct timespec ns_to_timespec(uint64_t ns)
{
	return (struct timespec){
		.tv_sec = (time_t)(ns / UINT64_C(1000000000)),
		.tv_nsec = (long)(ns % UINT64_C(1000000000)),
	};
}

int shmq__futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns)
{
	struct timespec ts, *tsp = NULL;
	long r;

	if (deadline_ns != SHMQ_DEADLINE_NEVER) {
		if (shmq__now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		ts = ns_to_timespec(deadline_ns);
		tsp = &ts;
	}

	/* FUTEX_WAIT_BITSET: the timeout is absolute CLOCK_MONOTONIC. */
	r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET, expected, tsp, NULL,
		    FUTEX_BITSET_MATCH_ANY);
	if (r == 0)
		return 0;
	if (errno == EINTR)
		return 0; /* spurious: the caller re-checks */
	return -errno;
}

int shmq__futex_wake(_Atomic uint32_t *word, int n)
{
	long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);

	return r < 0 ? -errno : (int)r;
}

int shmq__futex_waitv(const struct shmq_futex_waiter *w, unsigned int n, uint64_t deadline_ns)
{
	struct futex_waitv v[SHMQ_FUTEX_WAITV_MAX];
	struct timespec ts, *tsp = NULL;
	long r;

	if (n == 0 || n > SHMQ_FUTEX_WAITV_MAX)
		return -EINVAL;

	for (unsigned int i = 0; i < n; i++)
		v[i] = (struct futex_waitv){
			.val = w[i].expected,
			.uaddr = (uint64_t)(uintptr_t)w[i].word,
			.flags = FUTEX2_SIZE_U32, /* shared: no FUTEX2_PRIVATE */
		};

	if (deadline_ns != SHMQ_DEADLINE_NEVER) {
		if (shmq__now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		ts = ns_to_timespec(deadline_ns);
		tsp = &ts;
	}

	/* futex_waitv's timeout is absolute on the clock named by the last argument. */
	r = syscall(SYS_futex_waitv, v, n, 0, tsp, CLOCK_MONOTONIC);
	if (r >= 0)
		return (int)r;
	if (errno == EINTR)
		return 0; /* spurious; caller re-checks every word */
	return -errno;
}
