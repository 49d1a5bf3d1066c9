/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench's repair mode: how long after a client process dies the
 * daemon has repaired what it held, against the bare pidfd wake-up of the
 * same death.  Each sample is one death: a child takes something, reports
 * that it holds it, and sleeps; the parent reads the clock, SIGKILLs it and
 * waits for the observable end of the repair:
 *
 *   pidfd-wake   baseline: poll(2) on the child's pidfd until it is readable
 *                (the same notification shmqd waits for)
 *   repair-peek  the child holds a zero-copy peek of the only message of an
 *                MPMC queue; the parent's shmq_queue_recv_wait() returns it
 *                re-delivered
 *   repair-undo  the child holds the only token of an undo semaphore
 *                (SHMQ_SEM_ATTR_UNDO); the parent's shmq_sem_wait() gets it
 *
 * The repairs include the daemon's wake-up on the pidfd, its reaping of the
 * session, the ring or semaphore repair, and the futex wake of the waiting
 * parent.  Every function returns >= 0 or a negative errno; every wait ends
 * at a deadline.
 */
#ifndef SHMQ_BENCH_REPAIR_H
#define SHMQ_BENCH_REPAIR_H

#include <stdint.h>

enum bench_repair_kind {
	BENCH_REPAIR_PIDFD,
	BENCH_REPAIR_PEEK,
	BENCH_REPAIR_UNDO,
	BENCH_REPAIR_COUNT,
};

extern const char *const bench_repair_names[BENCH_REPAIR_COUNT];
extern const char *const bench_repair_about[BENCH_REPAIR_COUNT];

/*
 * One batch: @n deaths of @kind against the daemon listening on @socket
 * (unused by BENCH_REPAIR_PIDFD).  @ret_ns gets one latency per death, in
 * nanoseconds, unsorted.  On failure @what (at least 160 bytes) says what.
 */
int bench_repair_batch(enum bench_repair_kind kind, const char *socket, unsigned int n,
		       uint64_t *ret_ns, char *what, size_t what_size);

#endif /* SHMQ_BENCH_REPAIR_H */
