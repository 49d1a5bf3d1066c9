/* SPDX-License-Identifier: MIT */
/*
 * Futex wrappers for 32-bit words shared between processes.
 *
 * Never FUTEX_PRIVATE_FLAG: the waiters are in other processes, and a private
 * futex is keyed on the mm, so a cross-process wake would be lost.
 *
 * Waits take an absolute CLOCK_MONOTONIC deadline in nanoseconds
 * (SHMQ_DEADLINE_NEVER for none).  FUTEX_WAIT_BITSET interprets its timeout
 * as absolute, so a wait that is interrupted and retried never stretches the
 * caller's timeout.  EINTR is never returned: a signal is reported as a
 * spurious wake-up (0), and every caller re-checks its condition anyway.
 */
#ifndef SHMQ_SHM_FUTEX_H
#define SHMQ_SHM_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>

#define SHMQ_DEADLINE_NEVER UINT64_MAX

/* CLOCK_MONOTONIC now, in nanoseconds. */
uint64_t shmq__now_ns(void);

/* Deadline @timeout_ns from now, saturating at SHMQ_DEADLINE_NEVER. */
uint64_t shmq__deadline_after_ns(uint64_t timeout_ns);

/*
 * Sleep while *@word == @expected, until woken or @deadline_ns.
 * Return: 0 woken (or spurious: re-check); -EAGAIN *@word != @expected at
 * entry; -ETIMEDOUT the deadline passed; -EFAULT, -EINVAL, -ENOSYS from the kernel.
 */
int shmq__futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns);

/* Wake up to @n sleepers on @word.  Return: number woken (>= 0), or -errno. */
int shmq__futex_wake(_Atomic uint32_t *word, int n);

/* One entry of shmq__futex_waitv(): sleep while *word == expected. */
struct shmq_futex_waiter {
	_Atomic uint32_t *word;
	uint32_t expected;
};

#define SHMQ_FUTEX_WAITV_MAX 128

/*
 * Sleep until any of @n words (1..SHMQ_FUTEX_WAITV_MAX) changes from its
 * expected value, is woken, or @deadline_ns passes (futex_waitv(2), 5.16+).
 * Return: index of the word that was woken (>= 0; re-check all);
 * -EAGAIN some word already differed; -ETIMEDOUT; -EINVAL; -ENOSYS.
 */
int shmq__futex_waitv(const struct shmq_futex_waiter *w, unsigned int n, uint64_t deadline_ns);

#endif /* SHMQ_SHM_FUTEX_H */
