/* SPDX-License-Identifier: MIT */
/*
 * The eventcount: how a thread in one process sleeps until a thread in
 * another publishes something, with no lost wake-up and no system call on
 * the publisher's side while nobody sleeps.  One 32-bit futex word per
 * direction of waiting (a queue has one for receivers and one for senders);
 * bit 0 says sleepers are announced, bits 1..31 are an epoch.  Every kind
 * that blocks is built on it; the protocol is argued here, once.
 *
 * Ordering -- read before changing:
 *
 *   sleeper                                 waker
 *   (a) key = fetch_or(&ec, WAITERS)        (c) publish (the kind's release
 *   H1  heavy barrier (shm/fence.h)           store: a ring's R1, R2, R4)
 *   F2  seq_cst fence                       (d) F1 fence; v = load(&ec)
 *   (b) re-check the condition              (f) if (v & WAITERS):
 *   (e) futex_wait(&ec, key)                      CAS ec -> (v + 2) & ~WAITERS
 *       -- the kernel compares *ec == key           futex_wake(&ec, all)
 *          under its hash-bucket lock
 *
 *   F1 and F2 are seq_cst fences around the store-buffering pattern
 *   (a)->(b) against (c)->(d): either (d) sees WAITERS, or (b) sees what
 *   (c) published and the sleeper never sleeps.  If (d) sees WAITERS, (f)
 *   changes the word before waking, so a sleeper that has not yet reached
 *   (e) finds *ec != key and returns at once (-EAGAIN), and one already
 *   asleep is woken.  The waiter bit lives in the futex word itself, and
 *   the waker changes the word in the same atomic step as it clears the
 *   bit: a separate flag word cleared by the waker is what loses wake-ups
 *   (the prototype lost them in a quarter of its streaming runs).  The bit
 *   is cleared for all sleepers at once, so a wake is a broadcast; losers
 *   re-announce.  When nobody sleeps, a publish costs F1 and one load of a
 *   line that only sleepers write: no locked RMW, no system call.
 *
 *   With SHMQ_ASYM_FENCE=1, F1 is a compiler barrier and H1 a
 *   membarrier(2) that makes every running thread of the process execute a
 *   full barrier, which puts F1's fence where it is needed (shm/fence.h,
 *   including why it is opt-in).  H1 runs only where the segment says a
 *   publisher relies on it (its asym_fence flag, layout 1.9): by default
 *   F1 is a real fence and a sleep issues no membarrier(2).  Where H1 is
 *   needed and fails, the sleep is cut into slices
 *   (SHMQ_FENCE_FALLBACK_SLICE_NS): a wake may be missed, a sleeper never
 *   waits longer than a slice for it.
 *
 * Asynchronous waits split (a)..(e) across two places: shmq__ec_prepare()
 * and the re-check run at arm time, and the sleep (e) is an io_uring
 * FUTEX_WAIT or a helper thread's futex_waitv, compared by the kernel at
 * issue time, which may be long after the arm.  Nothing above depends on
 * (e) following (b) promptly: if a waker runs (f) in between, the word no
 * longer equals the key and the wait completes at once; if after, the wait
 * is queued and woken.  The re-check must be false only where an attempt
 * would find nothing, since every other state is what (c) turns into a
 * notify on this word; a false positive only costs a re-check.
 *
 * Invariants:
 *   - only sleepers set WAITERS (fetch_or), only wakers clear it, and a
 *     waker clears it only together with an epoch step (one CAS);
 *   - a sleeper sleeps only on the key it announced with;
 *   - every publish that can satisfy a sleeper is followed by
 *     shmq__ec_notify() on that sleeper's word.
 *
 * Untrusted peers: the word is shared, so a peer can write anything into
 * it.  It is only ever compared with a key, or CASed: a scribbled word
 * costs a spare wake-up or a sleep until the deadline (or the next slice),
 * never a hang past the deadline.
 */
#ifndef SHMQ_SHM_EVENTCOUNT_H
#define SHMQ_SHM_EVENTCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/atomic.h"
#include "shm/fence.h"

#define SHMQ_EC_WAITERS UINT32_C(1)

/* (f): the slow half of shmq__ec_notify(), once sleepers were seen in @v. */
bool shmq__ec_wake(_Atomic uint32_t *ec, uint32_t v);

/*
 * (f) without a publish, for a repair: a session killed asleep leaves the
 * sleeper bit set, and every later notify pays a FUTEX_WAKE of nobody.
 * Clear it the way a waker does; live sleepers get one spare wake-up,
 * re-check and announce again.  Return: true when sleepers were woken.
 */
bool shmq__ec_wake_all(_Atomic uint32_t *ec);

/*
 * (d)..(f), after the caller published: wake every sleeper announced on @ec.
 * @fu: the publishing handle's fence state (shm/fence.h).
 * Return: true when a FUTEX_WAKE was issued (for the caller's counters).
 */
static inline bool shmq__ec_notify(_Atomic uint32_t *ec, struct shmq_fence_user *fu)
{
	uint32_t v;

	/* F1: the publish before the sleeper check; pairs with H1/F2 in shmq__ec_prepare(). */
	shmq__fence_light(shmq__fence_publisher(fu));
	v = load_relaxed(ec); /* ordered by F1 */
	if (!(v & SHMQ_EC_WAITERS))
		return false;
	return shmq__ec_wake(ec, v);
}

/*
 * (a), H1, F2: announce a sleeper on @ec.  The caller then re-checks (b)
 * and, if still nothing, sleeps on the returned key (shmq__ec_sleep(), or
 * an asynchronous wait on @ec for that key).  @fu: the caller's handle's
 * fence state; H1 only if its segment says a publisher relies on it
 * (shmq__fence_sleeper()).
 * @ret_bounded: set when this process has no heavy barrier, so the sleep
 * must be bounded by SHMQ_FENCE_FALLBACK_SLICE_NS.
 * Return: the key.
 */
uint32_t shmq__ec_prepare(_Atomic uint32_t *ec, const struct shmq_fence_user *fu,
			  bool *ret_bounded);

/*
 * (e): sleep while *@ec == @key, until the absolute CLOCK_MONOTONIC
 * @deadline_ns (or one slice, when @bounded).  Never surfaces EINTR.
 * Return: 0 woken, the word moved, or a slice ended -- re-check either way;
 *         -ETIMEDOUT @deadline_ns passed; another -errno from futex(2).
 */
int shmq__ec_sleep(_Atomic uint32_t *ec, uint32_t key, uint64_t deadline_ns, bool bounded);

#endif /* SHMQ_SHM_EVENTCOUNT_H */
