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
 * threads never exit.  Sleepers always issue the heavy barrier, so opted-in
 * publishers stay correct next to default ones.
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

#endif /* SHMQ_SHM_FENCE_H */
