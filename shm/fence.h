/* SPDX-License-Identifier: MIT */
/*
 * Asymmetric memory barriers for the sleeper check on every publish.
 *
 * A publisher must order "publish the message" before "is anyone asleep?",
 * a store followed by a load: on x86 only a full fence does that, and the
 * fence drains the store buffer, putting the cross-core miss of the publish
 * on the critical path of every message.  Sleeping is rare and already
 * costs tens of microseconds, so the cost is moved there:
 *
 *   publisher (hot, every message)          sleeper (cold, before sleeping)
 *   publish (R1)                            announce (seq_cst RMW on the word)
 *   shmq__fence_light(): compiler-only    shmq__fence_heavy(): membarrier(2)
 *   load the eventcount                     re-check the ring
 *
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) returns only after every
 * running thread of every process registered with
 * MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED has executed a full barrier (a
 * thread not running passes one when it is switched out).  So the light
 * side's store and load are separated by a full barrier at some point: if
 * before the store, the load sees the announcement; if between them, the
 * store is visible before the load; if after the load, both are visible
 * before the sleeper's re-check.  Either the publisher sees the sleeper or
 * the sleeper sees the message.  (folly's asymmetricLightBarrier /
 * asymmetricHeavyBarrier use the same construction.)
 *
 * OPT-IN ONLY (SHMQ_ASYM_FENCE=1 in the publisher's environment).  The
 * kernel forgets a registration on a CPU after one of the process's
 * threads exits: exit_mm() clears that CPU's rq->membarrier_state, and
 * membarrier_switch_mm() does not restore it when the next task runs the
 * same mm (prev_mm == next_mm returns early), so GLOBAL_EXPEDITED skips
 * that CPU and a publisher there is not fenced: a sleeper can then miss
 * its wake-up.  Until that is fixed in the kernel, the default light side
 * is a real fence; enable the asymmetric one only in processes whose
 * threads never exit.  Sleepers issue the heavy barrier wherever an
 * opted-in publisher said it relies on it (struct shmq_fence_user below),
 * so opted-in publishers stay correct next to default ones, and by default
 * a sleep issues no membarrier(2) at all.
 *
 * A process whose registration fails (old kernel, seccomp) uses a real
 * fence on the light side, so it is correct on its own.  A sleeper whose
 * heavy barrier fails cannot know whether some publisher relies on it; it
 * then sleeps in bounded slices (SHMQ_FENCE_FALLBACK_SLICE_NS), so a
 * wake-up can be late by at most one slice, never lost.
 */
#ifndef SHMQ_SHM_FENCE_H
#define SHMQ_SHM_FENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/atomic.h"

#define SHMQ_FENCE_FALLBACK_SLICE_NS UINT64_C(1000000) /* 1 ms */

/*
 * Register this process for heavy barriers (once per process; cheap after
 * the first call, and redone in a forked child).  Return: true if the light
 * side may use a compiler barrier only: only with SHMQ_ASYM_FENCE=1 in
 * the environment (see OPT-IN above).
 */
bool shmq__fence_register(void);

/* Heavy side: a full barrier on every registered thread.  Return: 0 or -errno. */
int shmq__fence_heavy(void);

/* Light side; @asym from shmq__fence_register() of this process. */
static inline void shmq__fence_light(bool asym)
{
	if (asym)
		__asm__ __volatile__("" ::: "memory"); /* paired with the heavy side */
	else
		fence_seq_cst();
}

/*
 * Who pays the heavy barrier (layout 1.9).  A sleeper issues it only when
 * its segment's flag (struct shmq_segment_hdr.asym_fence) says that some
 * publisher relies on it; by default nobody does, and a sleep costs no
 * membarrier(2).  A publisher that skips the fence sets the flag before
 * the first check that skips it, then runs one full fence (X):
 *
 *   publisher                              sleeper
 *   T1 store_seq_cst(flag, 1); X fence     (a) fetch_or the eventcount
 *   (c) publish; F1 compiler barrier      T2 load_seq_cst(flag)
 *   (d) load the eventcount                 0: no H1; else H1; then F2, (b)
 *
 * If T2 reads 0, T2 precedes T1 in the seq_cst order, so (a) precedes the
 * fence X, which is sequenced before every later (d): each of those sees
 * the announcement.  If T2 reads 1, H1 runs as before the flag existed.
 * @flag is NULL for a segment older than 1.9: its sleepers always pay H1.
 */
struct shmq_fence_user {
	_Atomic uint32_t *flag; /* the segment's asym_fence, or NULL */
	bool asym;		/* this process skips F1's fence (shmq__fence_register()) */
	bool told;		/* T1 and X are done */
};

/* A handle of this process on a segment whose flag is @flag (or NULL). */
static inline void shmq__fence_user_init(struct shmq_fence_user *u, _Atomic uint32_t *flag)
{
	u->flag = flag;
	u->asym = shmq__fence_register();
	u->told = false;
}

/* T1 and X, once per handle. */
void shmq__fence_tell(struct shmq_fence_user *u);

/* Before a publisher's sleeper check: whether F1 may be light (T1, X done if so). */
static inline bool shmq__fence_publisher(struct shmq_fence_user *u)
{
	if (u->asym && !u->told)
		shmq__fence_tell(u);
	return u->asym;
}

/* A sleeper's H1, where a publisher may rely on it.  Return: 0 or -errno of the barrier. */
int shmq__fence_sleeper(const struct shmq_fence_user *u);

/* How many heavy barriers this process has issued (tests, shmq-bench). */
uint64_t shmq__fence_heavy_count(void);

#endif /* SHMQ_SHM_FENCE_H */
