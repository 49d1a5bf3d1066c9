/* SPDX-License-Identifier: MIT */
/*
 * Conditions (threading.Condition / multiprocessing.Condition) in a
 * shared-memory segment, bound to one lock (shm/lock.h): wait() gives the
 * lock up and sleeps until notified, then takes it back; notify(n) wakes n
 * waiters, notify_all() every one.  One segment of kind SHMQ_KIND_COND
 * holds one struct shmq_cond_shm (shm/layout.h); its geometry names the
 * lock by object id.
 *
 * Every function returns >= 0 on success or a negative errno: -EPERM (the
 * calling thread does not hold the lock), -ETIMEDOUT (the absolute
 * CLOCK_MONOTONIC deadline passed), -EOWNERDEAD (the lock was taken back
 * from a dead holder: the caller holds it and must repair), -EINVAL
 * (misuse).  Waits never return -EINTR.  The shared words are untrusted:
 * a peer that scribbles on them can cause spare wake-ups or a sleep until
 * the deadline, never make a call here loop or corrupt the lock.
 *
 * The accounting, the ordering and the death argument are at the top of
 * shm/cond.c.
 */
#ifndef SHMQ_SHM_COND_H
#define SHMQ_SHM_COND_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/layout.h"
#include "shm/lock.h"

/* Process-local handle, filled by shmq__cond_attach(); must not be copied after. */
struct shmq_cond {
	struct shmq_cond_shm *cv;
	struct shmq_lock *lk;	 /* the bound lock's handle (set by the caller) */
	struct shmq_counters *c; /* this session's counters, or &private_counters */
	_Atomic uint32_t *mine;	 /* &record->k.cond.waiting, or NULL (a view) */
	uint64_t lock_id;	 /* the geometry's lock object id */
	/* An asynchronous wait (shmq__cond_wait_begin()): at most one per handle. */
	_Atomic bool joined;
	uint32_t entry; /* seq when it joined */
	struct shmq_counters private_counters;
};

/**
 * shmq__cond_attach() - bind a handle to the condition in a validated segment.
 * @cv:		handle to fill (its lk is kept: the caller binds the lock)
 * @seg:	segment from shmq__segment_attach(), of kind SHMQ_KIND_COND
 * @session:	the caller's record index, or UINT32_MAX for none (a view)
 * Return: 0; -EINVAL not a condition, or a bad record index.
 */
int shmq__cond_attach(struct shmq_cond *cv, const struct shmq_segment *seg, uint32_t session);

/**
 * shmq__cond_wait() - give the lock up, sleep until notified, take it back.
 * @cv:		handle (with a record and a lock the calling thread holds)
 * @deadline_ns: absolute CLOCK_MONOTONIC; a past one returns -ETIMEDOUT at
 *		once, the lock never given up
 *
 * The lock is held again on every return but -EPERM and -EINVAL, at the
 * depth it was held (an RLock's every acquisition is given up and
 * restored).  A return of 0 means a notify counted this waiter; it may
 * also be a spare wake-up after a process died in the middle of a wait,
 * so callers re-check what they wait for (shmq_cond_wait_for()).
 * Return: 0 notified; -ETIMEDOUT; -EOWNERDEAD held, notified or not;
 *         -EPERM not the holder; -EINVAL no record.
 */
int shmq__cond_wait(struct shmq_cond *cv, uint64_t deadline_ns);

/**
 * shmq__cond_notify() - wake up to @n waiters (UINT32_MAX: every one).
 *
 * Counts min(@n, waiters not yet counted) waiters as notified, and wakes
 * them; a waiter that begins waiting after this call is not among them.
 * Return: the number counted; -EPERM not the holder.
 */
int shmq__cond_notify(struct shmq_cond *cv, uint32_t n);

/*
 * An asynchronous wait, in steps a completion can drive: begin() joins
 * (holding the lock, held once) and gives the lock up; an asynchronous
 * wait on the condition (the kind's arm) reports that a notification may
 * be pending; end(), holding the lock again, takes it -- or says not yet,
 * and begin() gives the lock up again, still joined; cancel() leaves.
 * One asynchronous wait per handle.
 *
 * Return (begin): 0; -EPERM not the holder; -EDEADLK an RLock held more
 *         than once (its depth cannot be given back by a completion);
 *         -EBUSY another thread's asynchronous wait on this handle;
 *         -EINVAL no record.
 * Return (end): 0 notified, the wait is over; -EAGAIN not yet, still
 *         joined; -EPERM not the holder; -EINVAL not joined.
 * Return (cancel, with or without the lock): 1 a notification had come
 *         and is taken (treat as notified); 0 left; -EINVAL not joined.
 */
int shmq__cond_wait_begin(struct shmq_cond *cv);
int shmq__cond_wait_end(struct shmq_cond *cv);
int shmq__cond_wait_cancel(struct shmq_cond *cv);

/* Waiters not yet notified now: a snapshot, for tools. */
uint32_t shmq__cond_waiting(const struct shmq_cond *cv);

#endif /* SHMQ_SHM_COND_H */
