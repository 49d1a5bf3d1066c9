/* SPDX-License-Identifier: MIT */
/*
 * Robust locks (threading.Lock / RLock between processes) in a
 * shared-memory segment.  One segment of kind SHMQ_KIND_LOCK holds one
 * struct shmq_lock_shm (shm/layout.h); SHMQ_LOCK_RECURSIVE in its geometry
 * makes it an RLock.
 *
 * The holder is a thread: its session's tag in the lock word, and its
 * thread id beside it.  When the holder's process dies, the daemon takes
 * the lock from it (shm/lock.c, the repair) and the next acquirer is told
 * with -EOWNERDEAD, holding the lock, so that it can repair what the lock
 * protects; shmq__lock_consistent() says it has.
 *
 * Every function returns >= 0 on success or a negative errno: -EAGAIN (a
 * try), -ETIMEDOUT (the absolute CLOCK_MONOTONIC deadline passed), -EPERM
 * (not the holder), -EDEADLK (a plain lock acquired again by its holder),
 * -EINVAL (misuse).  Waits never return -EINTR.  The shared word is
 * untrusted: a peer that scribbles on it can make the lock look held or
 * free, never make a call here loop or sleep past its deadline.
 *
 * The ordering and the lost-wake-up argument are at the top of shm/lock.c.
 */
#ifndef SHMQ_SHM_LOCK_H
#define SHMQ_SHM_LOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/layout.h"

/*
 * No spin by default: two processes contending for a short critical section
 * on two CPUs ran 2.4x (1 us of spin) to 3.5x (20 us) slower than with none,
 * the spinner stealing the line from the holder (shmq-bench --only sync).
 * A holder that keeps it briefly and a waiter that must run at once
 * can ask for a spin with shmq_lock_set_spin().
 */
#define SHMQ_LOCK_SPIN_NS_DEFAULT 0
#define SHMQ_LOCK_DEPTH_MAX	  UINT32_C(0x7fffffff) /* recursive acquisitions held */

/* Process-local handle, filled by shmq__lock_attach(); must not be copied after. */
struct shmq_lock {
	struct shmq_lock_shm *l;
	struct shmq_counters *c;   /* this session's counters, or &private_counters */
	_Atomic uint32_t *waiting; /* &record->k.lock.waiting, or NULL */
	uint32_t tag;		   /* our owner field (shm/owner.h); 0: no record, no acquiring */
	bool recursive;		   /* SHMQ_LOCK_RECURSIVE */
	uint64_t spin_ns;	   /* spin budget before sleeping; 0: sleep at once */
	struct shmq_counters private_counters;
};

/**
 * shmq__lock_attach() - bind a handle to the lock in a validated segment.
 * @lk:		handle to fill
 * @seg:	segment from shmq__segment_attach(), of kind SHMQ_KIND_LOCK
 * @session:	the caller's record index, or UINT32_MAX for none (a view:
 *		it may look, never acquire)
 * Return: 0; -EINVAL not a lock, or a bad record index.
 */
int shmq__lock_attach(struct shmq_lock *lk, const struct shmq_segment *seg, uint32_t session);

/**
 * shmq__lock_acquire() - take the lock, waiting until @deadline_ns.
 * @lk:		handle (with a record)
 * @deadline_ns: absolute CLOCK_MONOTONIC (a past one: one try)
 *
 * An RLock already held by the calling thread is taken once more.
 * Return: 0 held; -EOWNERDEAD held, and a holder died with it since the
 *         last shmq__lock_consistent(); -ETIMEDOUT; -EDEADLK a plain lock
 *         the calling thread holds; -EAGAIN an RLock held
 *         SHMQ_LOCK_DEPTH_MAX times; -EINVAL no record.
 */
int shmq__lock_acquire(struct shmq_lock *lk, uint64_t deadline_ns);

/**
 * shmq__lock_release() - give up one acquisition (an RLock: the lock is
 * free once every acquisition is given up), waking one sleeper.
 * Return: 0; -EPERM the calling thread does not hold it.
 */
int shmq__lock_release(struct shmq_lock *lk);

/**
 * shmq__lock_consistent() - the holder says what the lock protects is
 * repaired: later acquirers no longer get -EOWNERDEAD.
 * Return: 0; -EPERM not the holder; -EINVAL no holder had died.
 */
int shmq__lock_consistent(struct shmq_lock *lk);

/* Held by anyone now?  A snapshot. */
bool shmq__lock_is_locked(const struct shmq_lock *lk);

/* Held by the calling thread through this handle? */
bool shmq__lock_is_mine(const struct shmq_lock *lk);

/* The calling thread's acquisitions of it (0: not the holder). */
uint32_t shmq__lock_depth(const struct shmq_lock *lk);

/*
 * For a condition's wait: give the lock up entirely (every recursive
 * acquisition), returning the depth to restore in *@ret_depth; and take it
 * back with that depth.  shmq__lock_restore() returns as
 * shmq__lock_acquire(), never -EDEADLK or -EAGAIN.
 * Return (save): 0; -EPERM not the holder.
 */
int shmq__lock_save(struct shmq_lock *lk, uint32_t *ret_depth);
int shmq__lock_restore(struct shmq_lock *lk, uint32_t depth, uint64_t deadline_ns);

/*
 * The daemon: take the lock back from the holder whose owner field is
 * @holder (a dead session's, once its death is certain, or a forged one),
 * setting DEAD and waking a sleeper.  Return: true it was taken back.
 */
bool shmq__lock_take_back(const struct shmq_segment *seg, uint32_t holder);

/* The calling thread's id (cached; reset in a forked child). */
int32_t shmq__tid(void);

#endif /* SHMQ_SHM_LOCK_H */
