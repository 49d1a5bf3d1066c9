/* SPDX-License-Identifier: MIT */
/* The eventcount's out-of-line steps; the protocol is argued in shm/eventcount.h. */
#include <errno.h>
#include <limits.h>

#include "shm/eventcount.h"
#include "shm/futex.h"

bool shmq__ec_wake(_Atomic uint32_t *ec, uint32_t v)
{
	/* (f): change the word and clear the bit in one step. */
	while (!cas_seq_cst(ec, &v, (v + 2) & ~SHMQ_EC_WAITERS)) {
		if (!(v & SHMQ_EC_WAITERS))
			return false; /* another waker got there first and woke them */
	}
	(void)shmq__futex_wake(ec, INT_MAX);
	return true;
}

bool shmq__ec_wake_all(_Atomic uint32_t *ec)
{
	uint32_t v = load_relaxed(ec); /* the CAS in shmq__ec_wake() validates it */

	return (v & SHMQ_EC_WAITERS) && shmq__ec_wake(ec, v);
}

uint32_t shmq__ec_prepare(_Atomic uint32_t *ec, const struct shmq_fence_user *fu, bool *ret_bounded)
{
	/* (a) announce; the returned value is the key the kernel compares. */
	uint32_t key = fetch_or_seq_cst(ec, SHMQ_EC_WAITERS) | SHMQ_EC_WAITERS;

	/*
	 * H1: a full barrier on every publisher that skips F1's fence; pairs
	 * with F1 in shmq__ec_notify().  Only if the segment has one (T2).
	 */
	*ret_bounded = shmq__fence_sleeper(fu) < 0;
	fence_seq_cst(); /* F2: orders the caller's re-check (b) after (a) */
	return key;
}

int shmq__ec_sleep(_Atomic uint32_t *ec, uint32_t key, uint64_t deadline_ns, bool bounded)
{
	uint64_t sleep_until = deadline_ns;
	int r;

	if (bounded) {
		/* No heavy barrier: a publisher's wake may be missed; bound the sleep. */
		uint64_t slice = shmq__now_ns() + SHMQ_FENCE_FALLBACK_SLICE_NS;

		sleep_until = slice < deadline_ns ? slice : deadline_ns;
	}
	r = shmq__futex_wait(ec, key, sleep_until);
	if (r == -ETIMEDOUT)
		return sleep_until == deadline_ns ? -ETIMEDOUT : 0;
	return r == -EAGAIN ? 0 : r;
}
