/* SPDX-License-Identifier: MIT */
/*
 * Counting semaphore in a shared-memory segment: Semaphore and
 * BoundedSemaphore between unrelated processes.
 *
 * One segment of kind SHMQ_KIND_SEM holds one struct shmq_sem_shm (see
 * shm/layout.h): the token count `value`, which is also the futex word, and
 * `n_waiters`, the number of processes that announced they may sleep, so a
 * post() enters the kernel only when somebody could be asleep.  A process
 * attaches a struct shmq_sem handle; the handle holds the geometry (the
 * ceiling and the flags), copied once from the validated segment and never
 * re-read from shared memory.
 *
 * Waits spin for a bounded time before they sleep, take absolute
 * CLOCK_MONOTONIC deadlines and never return -EINTR.  The shared words are
 * untrusted: a peer that scribbles on them can make tokens appear or vanish,
 * but can never make post() wrap the count, nor make any call here loop or
 * sleep past its deadline.
 *
 * The ordering and lost-wake-up argument is at the top of shm/sem.c.
 */
#ifndef SHMQ_SHM_SEM_H
#define SHMQ_SHM_SEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "shm/layout.h"
#include "shm/owner.h"

/* Default spin budget before shmq__sem_wait() sleeps in the kernel. */
#define SHMQ_SEM_SPIN_NS_DEFAULT 20000

/* How long a post waits for another process's undo operation: shm/owner.h. */
#define SHMQ_SEM_OWNER_WAIT_NS SHMQ_OWNER_WAIT_NS

/* shmq__sem_check(): more announced waiters than this means a corrupt word. */
#define SHMQ_SEM_WAITERS_PLAUSIBLE (UINT32_C(1) << 20)

/*
 * Process-local handle; filled by shmq__sem_attach().  It points into itself
 * (@c may be &@private_counters), so it must not be copied after attach.
 */
struct shmq_sem {
	struct shmq_sem_shm *s;	 /* the shared control block */
	struct shmq_counters *c; /* this session's counters, or &private_counters */
	uint32_t max;		 /* ceiling: geom max if bounded, else the value limit */
	uint32_t flags;		 /* SHMQ_SEM_*, copied at attach */
	uint64_t spin_ns;	 /* spin budget before sleeping; 0: sleep at once */
	bool undo;		 /* SHMQ_SEM_UNDO: the word is value | owner */
	uint32_t n_sessions;	 /* owner tags run 1..n_sessions */
	/* Undo with a session record: its owner journal (shm/owner.h); tag 0 otherwise. */
	struct shmq_owner_journal j;
	_Atomic uint32_t *waiting; /* &record->k.sem.waiting: our share of n_waiters, or NULL */
	struct shmq_counters private_counters; /* sink when there is no session record */
};

/**
 * shmq__sem_attach() - bind a handle to the semaphore in a validated segment.
 * @sem:	handle to fill; must stay at this address while in use
 * @seg:	segment from shmq__segment_attach(), of kind SHMQ_KIND_SEM
 * @session:	index of the caller's record in @seg->sessions, whose counters
 *		this handle will bump; UINT32_MAX for a private counter sink
 *		(tests, benchmarks, the daemon)
 *
 * Copies the ceiling and the flags out of @seg once; the spin budget starts
 * at SHMQ_SEM_SPIN_NS_DEFAULT and the caller may change @sem->spin_ns.
 *
 * Context: any thread; never blocks; touches no shared word.
 * Return: 0; -EINVAL @seg is not a semaphore segment, its geometry is out of
 *         range, or @session is neither UINT32_MAX nor below @seg->n_sessions.
 */
int shmq__sem_attach(struct shmq_sem *sem, const struct shmq_segment *seg, uint32_t session);

/**
 * shmq__sem_try_wait() - take one token if one is available, without blocking.
 * @sem:	attached handle
 *
 * A successful take happens-after the shmq__sem_post() that made the token
 * available, so a semaphore of initial value 1 works as a mutex.  If a peer
 * rewrites the value on every one of a large number of attempts in a row
 * (which only a hostile peer does), gives up with -EAGAIN rather than
 * spinning without bound.
 *
 * Context: any thread, any number of processes; never blocks.  Threads that
 * share one handle share its counters, which are single-writer statistics
 * and may then lose increments (never tokens).
 * Return: 0 a token was taken; -EAGAIN the value was 0 (or kept changing).
 */
int shmq__sem_try_wait(struct shmq_sem *sem);

/**
 * shmq__sem_wait() - take one token, sleeping until one is posted or @deadline_ns.
 * @sem:	attached handle
 * @deadline_ns: absolute CLOCK_MONOTONIC deadline, or SHMQ_DEADLINE_NEVER
 *
 * Spins for up to @sem->spin_ns, then announces itself in n_waiters and
 * sleeps on the value word until a post wakes it.  Signals never end the
 * wait early.  A token that arrives together with the deadline may still be
 * taken (return 0); a past deadline still tries once.  Has the same
 * happens-after guarantee as shmq__sem_try_wait().
 *
 * Context: any thread, any number of processes; blocks.
 * Return: 0 a token was taken; -ETIMEDOUT @deadline_ns passed first;
 *         -ENOSYS, -EFAULT, -EINVAL passed through from futex(2) if the
 *         kernel (or a seccomp policy) refuses the wait.
 */
int shmq__sem_wait(struct shmq_sem *sem, uint64_t deadline_ns);

/**
 * shmq__sem_post() - add @n tokens and wake up to @n sleepers.
 * @sem:	attached handle
 * @n:		tokens to add, >= 1
 *
 * All or nothing: either the whole @n is added or nothing is.  Enters the
 * kernel only when n_waiters says somebody may be asleep.  The post
 * happens-before the waits that take its tokens.
 *
 * Context: any thread, any number of processes; never blocks.
 * Return: 0; -EINVAL @n is 0; -EOVERFLOW the value would exceed the ceiling
 *         (max for a bounded semaphore, else SHMQ_SEM_VALUE_MAX, or
 *         SHMQ_SEM_UNDO_VALUE_MAX for an undo one) or already does (a
 *         corrupt word), nothing posted; -EAGAIN a peer rewrote the value
 *         on every attempt (hostile), nothing posted; -EBUSY (undo) another
 *         process died in the middle of an operation and the daemon has not
 *         repaired it within SHMQ_SEM_OWNER_WAIT_NS, nothing posted.
 */
int shmq__sem_post(struct shmq_sem *sem, uint32_t n);

/**
 * shmq__sem_arm() - announce an asynchronous waiter and re-check, without taking.
 * @sem:	attached handle
 *
 * The first half of shmq__sem_wait() for a sleep that happens elsewhere (an
 * io_uring FUTEX_WAIT on &@sem->s->value expecting 0, or a helper thread):
 * W1, then a seq_cst look at value.  When this returns 0 the caller is
 * counted in n_waiters and must call shmq__sem_disarm() exactly once, after
 * its wait completed or was cancelled, whatever the outcome.
 *
 * Context: any thread; never blocks.
 * Return: 1 a token is available now (nothing announced: try to take it);
 *         0 announced: sleep on the value word while it is 0.
 */
int shmq__sem_arm(struct shmq_sem *sem);

/**
 * shmq__sem_disarm() - withdraw an announcement made by shmq__sem_arm().
 * @sem:	attached handle
 *
 * W5, then the baton: a post wakes at most as many sleepers as it adds
 * tokens, and an asynchronous waiter may have been one of them and not
 * take the token (it was cancelled, or its owner only wanted readiness).
 * If a token is there and somebody else is announced, wake one of them so
 * the token is never stranded next to a sleeper.
 *
 * Context: any thread; never blocks (one FUTEX_WAKE at most).
 */
void shmq__sem_disarm(struct shmq_sem *sem);

/**
 * shmq__sem_undo() - post back what a dead session held (the daemon only).
 * @sem:	handle without a session record (UINT32_MAX at attach)
 * @rec:	the dead session's record
 * @index:	its index
 * @ret_posted:	tokens posted back
 * Reads the session's journal: between its CAS and its commit the word
 * carries the session's tag and @rec->k.sem.pending holds the count after the
 * operation; otherwise @rec->k.sem.holds is the count.  Forgets the count,
 * then posts it back in one CAS that also clears the tag, never past the
 * ceiling, and wakes every sleeper.  Must run only once the session is known
 * dead, and never for two sessions at once.
 * Return: 0; -EINVAL not an undo semaphore; -EBADMSG the word is corrupt
 *         (the tag is still cleared when it is ours).
 */
int shmq__sem_undo(struct shmq_sem *sem, struct shmq_session_shm *rec, uint32_t index,
		   uint32_t *ret_posted);

/**
 * shmq__sem_value() - snapshot of the token count.
 * @sem:	attached handle
 *
 * Stale as soon as it returns; for display and tests, never for deciding
 * whether a wait would block.
 *
 * Context: any thread; never blocks.
 * Return: the value word as read (unvalidated: may exceed the ceiling if a
 *         peer corrupted it).
 */
uint32_t shmq__sem_value(const struct shmq_sem *sem);

/**
 * shmq__sem_check() - validate the shared words against the invariants.
 * @sem:	attached handle
 *
 * Checks value <= the ceiling and n_waiters < SHMQ_SEM_WAITERS_PLAUSIBLE.
 * Reads a snapshot without locking, so it is exact only when the semaphore
 * is quiescent; on a live one it never reports a false -EBADMSG, because
 * both invariants hold at every instant for honest peers.
 *
 * Context: any thread; never blocks; read-only (works on a PROT_READ mapping).
 * Return: 0 consistent; -EBADMSG a word is out of range (corrupt or hostile peer).
 */
int shmq__sem_check(const struct shmq_sem *sem);

#endif /* SHMQ_SHM_SEM_H */
