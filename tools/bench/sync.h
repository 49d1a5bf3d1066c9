/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench's sync group: shmq's synchronisation kinds against their
 * process-shared pthread counterparts, measured in the same run on the same
 * CPUs.
 *
 *   lock-uncontended   one process, acquire + release in a loop: shmq_lock_*
 *                      (through a private shmqd) against a robust
 *                      (PTHREAD_MUTEX_ROBUST, PTHREAD_PROCESS_SHARED)
 *                      pthread_mutex_t in a MAP_SHARED page
 *   lock-contended     two processes, one per CPU, each acquire + bump a
 *                      shared counter + release in a loop: nanoseconds per
 *                      acquisition of the pair's wall time, and the share of
 *                      acquisitions that changed hands
 *   event-wake         two processes ping-pong through two events (set, the
 *                      other wakes and clears): nanoseconds per wake, against
 *                      the Event that Python builds from a mutex, a condition
 *                      variable and a flag (robust, process-shared)
 *   cond-handoff       two processes take turns through a lock and a
 *                      condition (wait while it is not my turn; pass the turn;
 *                      notify): nanoseconds per turn, against a robust
 *                      process-shared pthread_mutex_t and pthread_cond_t
 *   barrier-cycle      two processes cycle a barrier: nanoseconds per cycle,
 *                      against a process-shared pthread_barrier_t
 *
 * Every function returns >= 0 or a negative errno; every wait ends at a
 * deadline.
 */
#ifndef SHMQ_BENCH_SYNC_H
#define SHMQ_BENCH_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bench_sync_case {
	BENCH_SYNC_LOCK_UNCONTENDED,
	BENCH_SYNC_LOCK_CONTENDED,
	BENCH_SYNC_EVENT_WAKE,
	BENCH_SYNC_COND_HANDOFF,
	BENCH_SYNC_BARRIER_CYCLE,
	BENCH_SYNC_COUNT,
};

enum bench_sync_impl {
	BENCH_SYNC_SHMQ,
	BENCH_SYNC_PTHREAD,
	BENCH_SYNC_IMPLS,
};

extern const char *const bench_sync_names[BENCH_SYNC_COUNT];
extern const char *const bench_sync_about[BENCH_SYNC_COUNT];

/* One measurement: nanoseconds per operation, and (contended) the hand-off share. */
struct bench_sync_sample {
	double ns;
	double handoff; /* 0..1; NAN where it does not apply */
};

/*
 * One sample of @c for @impl: @iters operations (per process when
 * contended), shmq objects through the daemon at @socket, processes pinned
 * to @cpus (-1: not pinned).  On failure @what (at least 160 bytes) says what.
 */
int bench_sync_sample(enum bench_sync_case c, enum bench_sync_impl impl, const char *socket,
		      uint32_t iters, const int cpus[2], struct bench_sync_sample *ret, char *what,
		      size_t what_size);

#endif /* SHMQ_BENCH_SYNC_H */
