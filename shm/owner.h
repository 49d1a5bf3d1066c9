/* SPDX-License-Identifier: MIT */
/*
 * The owner journal: how a kind keeps, exactly across a SIGKILL at any
 * instruction, a count of what each session holds of a shared word, so the
 * daemon can undo a dead session's holds.  The undo semaphore is built on
 * it (shm/sem.c); so is anything that must give back what a dead process
 * held (a robust lock's ownership).
 *
 * DESIGN
 *
 * What a session holds (tokens taken) and the count of it (in its session
 * record's per-kind state) are two words, and no CAS covers both.  So the
 * operation in flight is journaled in the shared word itself: an *owner
 * field* (some high bits of the word, SHMQ_OWNER_FIELD_*) carries the
 * session's tag while the operation is between moving what it holds and
 * recording the count.
 *
 *   U1 store pending = the count after this operation      (own record)
 *   U2 CAS word (v, owner 0) -> (v', owner us)             (the kind's op)
 *   U3 store count = pending                               (own record)
 *   U4 CAS word (v', owner us) -> (v', owner 0); wake what the tag held back
 *
 * Ordering: U1 before U2 by U2's release half; U3 before U4 by U4's
 * release half; the daemon's A7 (an acquire load of the word, after the
 * process is known dead) pairs with the dead process's last release (U2 or
 * U4), so the record it reads is at least as new as the word it sees.
 *
 *   resolve (the daemon, once the session is dead):
 *     w = load_acquire(word)                                        A7
 *     owner(w) == tag: U2 happened, U4 did not  -> pending is true
 *     otherwise: U2 did not happen, or U3 did   -> count is true
 *     forget both (count = pending = 0), then give back, in one CAS
 *     that also clears the tag
 *
 * Forgetting before giving back means a daemon killed between the two
 * loses what it was giving back, and never gives it twice.
 *
 * While the owner field is set nobody else may operate on the word: they
 * wait (shmq__owner_wait(): spin, then sleep on the word, woken by U4 or by
 * the daemon's resolve), so at most one journaled operation is in flight.
 * Threads sharing one handle share its record, so a process-local flag
 * (struct shmq_owner_journal.lock) keeps their U1..U4 apart.
 *
 * Invariants:
 *   - the owner field is 0, or the tag (index + 1) of an ACTIVE record
 *     whose process is between U2 and U4 (or dead there, until resolved);
 *   - a record's pending differs from its count only between U1 and U3.
 *
 * Untrusted peers: a writer can forge a tag.  A tag naming a free record,
 * or no record, can only have been written by a scribbler
 * (shmq__owner_is_forged()); the daemon clears it on its tick, and waiters
 * give up after SHMQ_OWNER_WAIT_NS with -EBUSY, so a forged tag never makes
 * a call hang past that.
 */
#ifndef SHMQ_SHM_OWNER_H
#define SHMQ_SHM_OWNER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "shm/layout.h"

/*
 * The owner field: bits 20..30 of the word, room for every session tag
 * (1..SHMQ_SESSIONS_MAX); the bits below are the kind's (a semaphore's
 * tokens, at most 2^20 - 1).  Layout 1.1 (the undo semaphore's).
 */
#define SHMQ_OWNER_FIELD_SHIFT SHMQ_SEM_UNDO_OWNER_SHIFT
#define SHMQ_OWNER_FIELD_MASK  SHMQ_SEM_UNDO_OWNER_MASK

/*
 * How long an operation waits for another process's journaled operation
 * (U2..U4) to finish.  The fuzz build (tests/fuzz/module.mk) shortens it: a
 * forged owner tag would otherwise cost every fuzz input that meets one 2 s.
 */
#ifndef SHMQ_OWNER_WAIT_NS
#define SHMQ_OWNER_WAIT_NS (UINT64_C(2) * 1000000000)
#endif

/* A session's journal on one word: process-local, one per handle. */
struct shmq_owner_journal {
	uint32_t tag;		 /* our tag << SHMQ_OWNER_FIELD_SHIFT; 0: no journal */
	_Atomic uint32_t *count; /* the record's committed count */
	_Atomic uint32_t *pending;
	atomic_flag lock; /* threads sharing the handle journal one at a time */
};

/* The owner field of @w: 0, or a session tag << SHMQ_OWNER_FIELD_SHIFT. */
static inline uint32_t shmq__owner_of(uint32_t w)
{
	return w & SHMQ_OWNER_FIELD_MASK;
}

/* The owner field that names session record @index (its tag, index + 1). */
static inline uint32_t shmq__owner_field(uint32_t index)
{
	return (index + 1) << SHMQ_OWNER_FIELD_SHIFT;
}

/* The session tag (index + 1) behind an owner field, for lookups. */
static inline uint32_t shmq__owner_index1(uint32_t own)
{
	return own >> SHMQ_OWNER_FIELD_SHIFT;
}

/*
 * Bind @j to session record @index's count words @count and @pending (the
 * kind's per-session state).  A handle without a record has no journal
 * (tag 0): its operations are not counted and need no undo.
 */
void shmq__owner_init(struct shmq_owner_journal *j, uint32_t index, _Atomic uint32_t *count,
		      _Atomic uint32_t *pending);

/*
 * The handle's lock, around U1..U4: shmq__owner_lock() before U1, and
 * shmq__owner_unlock() after a failed U2 CAS or after shmq__owner_commit().
 */
void shmq__owner_lock(struct shmq_owner_journal *j);
void shmq__owner_unlock(struct shmq_owner_journal *j);

/*
 * U1: before the kind's U2 CAS (which sets our tag in the word), record
 * what the count will be once the operation is done.  Under the lock.
 */
void shmq__owner_begin(struct shmq_owner_journal *j, uint32_t after);

/*
 * U3, U4: record the count and give the word back (clear our tag), after
 * the kind's U2 CAS succeeded.  Under the lock; does not unlock.
 * @ret_word: the word the clearing CAS left (or last read).
 * Return: true our tag was cleared (or kept changing under us): the caller
 *         wakes what the tag held back; false a peer had scribbled our tag
 *         away, so there is nothing of ours left to clear.
 */
bool shmq__owner_commit(struct shmq_owner_journal *j, _Atomic uint32_t *word, uint32_t *ret_word);

/* The count this handle's session holds now (its own record: a plain read). */
uint32_t shmq__owner_count(const struct shmq_owner_journal *j);

/*
 * Another session's operation is between U2 and U4 on @word (last read as
 * *@w): spin a little, then sleep on the word in 1 ms slices until the
 * owner field clears, re-reading *@w.
 * Return: 0 the field is clear; -EBUSY still owned after SHMQ_OWNER_WAIT_NS
 *         (a process died there and no daemon has resolved it, or a forgery).
 */
int shmq__owner_wait(_Atomic uint32_t *word, uint32_t *w);

/*
 * The daemon, once session @index is known dead: A7, U5.  Reads which count
 * is true (pending when the word carries its tag, else count), forgets both,
 * and returns that count; *@ret_word gets the word A7 read.
 */
uint32_t shmq__owner_resolve(_Atomic uint32_t *word, uint32_t index, _Atomic uint32_t *count,
			     _Atomic uint32_t *pending, uint32_t *ret_word);

/*
 * Is the owner field @own a forgery?  Only the daemon claims and releases
 * records, and an honest session clears its tag before it can detach (or
 * the daemon's resolve clears it before the release), so a tag naming a
 * free record, or no record, was written by a scribbler.
 */
bool shmq__owner_is_forged(const struct shmq_segment *seg, uint32_t own);

#endif /* SHMQ_SHM_OWNER_H */
