/* SPDX-License-Identifier: MIT */
/*
 * Robust locks between processes: one futex word that names its holder.
 *
 * DESIGN
 *
 * The word is the holder's owner field (bits 20..30: its session's tag,
 * shm/owner.h) | DEAD | WAITERS.  Taking the lock is one CAS from a word
 * with no holder; who holds it is recorded in the same atomic step that
 * takes it, so there is no instant at which the lock is held and its
 * holder unknown -- the property that lets the daemon take the lock back
 * from a dead process exactly (the owner journal's U2 with nothing to
 * count, so none of U1, U3, U4 is needed).  The holder's thread id and the
 * recursion depth sit beside the word on its line; only the holder writes
 * them, after taking the word and before giving it back.  It is the
 * classic three-state futex mutex (Drepper, "Futexes Are Tricky", mutex3)
 * with the holder's identity in place of "1".
 *
 * Ordering -- read before changing:
 *
 *   holder                                  acquirer
 *   ------------------------------------    ------------------------------------
 *   (the critical section)                  A1 cas_acquire(&word, w, tag | ...)
 *   R0 owner_tid = depth = 0                    where w has no holder
 *   R1 old = fetch_and_release(&word,  ---->  (the critical section)
 *            DEAD)
 *   R2 if (old & WAITERS) futex_wake(1)     sleeper:
 *                                           S1 cas(&word, w, w | WAITERS), w held
 *                                           S2 futex_wait(&word, w | WAITERS)
 *
 *   R1/A1: the release half publishes the critical section and R0 to the
 *   next holder's acquire.  Lost wake-ups: everything is one word.  If R1
 *   comes before S1 in the word's modification order, S1's CAS fails and
 *   the sleeper looks again (free: it takes the lock).  If after, R1 sees
 *   WAITERS and R2 wakes one sleeper; one that has not reached S2 yet finds
 *   the word changed (the kernel compares it under the futex bucket lock)
 *   and returns at once.  A woken sleeper takes the lock with WAITERS set,
 *   since it cannot know it was the last, so the next release wakes the
 *   next sleeper: one spare FUTEX_WAKE at the end of a contended episode.
 *
 *   A sleeper that was woken but does not take the lock -- its deadline
 *   passed, its asynchronous wait was cancelled, or it died -- may have
 *   swallowed the one wake meant for the others.  It passes it on
 *   (pass_on(): a free lock gets a FUTEX_WAKE, a held one its WAITERS bit
 *   back); for a dead one the daemon does, because the session counts its
 *   sleeping threads in its record (k.lock.waiting).
 *
 * Robustness.  A holder's process dies: the daemon (after the death is
 * certain, so the record and the word are final) reads the word with
 * acquire (A7, pairing with the dead holder's last A1), and if it still
 * names the dead session, clears R0's fields and the holder in one CAS
 * that sets DEAD, then wakes a sleeper.  Whoever takes a DEAD lock is told
 * (-EOWNERDEAD) and DEAD stays until a holder calls consistent(), so a
 * holder that cannot repair the data leaves the warning to the next one
 * instead of making the lock unusable (pthread's ENOTRECOVERABLE).  A
 * thread that exits while its process lives keeps the lock held, as with
 * a non-robust pthread mutex; only process death releases it.
 *
 * Invariants:
 *   - the holder field is 0, or the tag of a session whose thread owner_tid
 *     holds the lock depth times (or of a dead session, until repaired);
 *   - depth is 1 for a plain lock; no bits other than the holder field,
 *     DEAD and WAITERS are set.
 *
 * Untrusted peers: a scribbled word can name a live session as holder (the
 * lock looks held: waits end at their deadline), or a record that holds
 * nothing (the daemon's tick takes it back, as from a dead holder), or set
 * junk bits (the validator's business; the next take or release clears
 * them).  Every loop here is bounded by the deadline or by CAS_TRIES.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/lock.h"
#include "shm/owner.h"

#define HOLDER_MASK SHMQ_OWNER_FIELD_MASK
#define WORD_BITS   (HOLDER_MASK | SHMQ_LOCK_DEAD | SHMQ_LOCK_WAITERS)

/* Consecutive failed CASes before a loop re-reads the clock or gives up. */
#define CAS_TRIES (UINT32_C(1) << 16)

/* Polls of the word between clock reads while spinning. */
#define SPIN_CLOCK_EVERY 64

static _Thread_local int32_t cached_tid;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* In a forked child the forking thread has a new id; its copy of the cache is stale. */
static void forget_tid(void)
{
	cached_tid = 0;
}

static void register_atfork(void)
{
	(void)pthread_atfork(NULL, NULL, forget_tid);
}

int32_t shmq__tid(void)
{
	if (__builtin_expect(cached_tid == 0, 0)) {
		(void)pthread_once(&atfork_once, register_atfork);
		cached_tid = (int32_t)gettid();
	}
	return cached_tid;
}

int shmq__lock_attach(struct shmq_lock *lk, const struct shmq_segment *seg, uint32_t session)
{
	struct shmq_session_shm *rec = NULL;

	if (!lk || !seg || seg->kind != SHMQ_KIND_LOCK || !seg->object)
		return -EINVAL;
	if (session != UINT32_MAX) {
		rec = shmq__session_at(seg, session);
		if (!rec)
			return -EINVAL;
	}
	memset(lk, 0, sizeof(*lk));
	lk->l = seg->object;
	lk->c = rec ? &rec->c : &lk->private_counters;
	lk->waiting = rec ? &rec->k.lock.waiting : NULL;
	lk->tag = rec ? shmq__owner_field(session) : 0;
	lk->recursive = seg->geom.lock.flags & SHMQ_LOCK_RECURSIVE;
	lk->spin_ns = SHMQ_LOCK_SPIN_NS_DEFAULT;
	return 0;
}

static bool held_by(const struct shmq_lock *lk, uint32_t w, int32_t tid)
{
	return lk->tag && shmq__owner_of(w) == lk->tag && load_relaxed(&lk->l->owner_tid) == tid;
}

/*
 * A1: take the free word *@w, keeping DEAD, and WAITERS when @mark (a
 * woken sleeper: others may be queued) or when it was set.  Junk bits go.
 */
static bool take(struct shmq_lock *lk, uint32_t *w, bool mark)
{
	uint32_t keep = *w & (SHMQ_LOCK_DEAD | SHMQ_LOCK_WAITERS);

	return cas_acquire(&lk->l->word, w, lk->tag | keep | (mark ? SHMQ_LOCK_WAITERS : 0));
}

/* After A1 from @w: the holder's fields, and what the caller is told. */
static int got(struct shmq_lock *lk, uint32_t w, int32_t tid, uint32_t depth)
{
	store_relaxed(&lk->l->owner_tid, tid);
	store_relaxed(&lk->l->depth, depth);
	counter_inc(&lk->c->received, 1);
	return (w & SHMQ_LOCK_DEAD) ? -EOWNERDEAD : 0;
}

/* The calling thread holds it already: an RLock counts, a plain lock refuses. */
static int again(struct shmq_lock *lk, uint32_t w)
{
	uint32_t depth = load_relaxed(&lk->l->depth);

	if (!lk->recursive)
		return -EDEADLK;
	if (depth >= SHMQ_LOCK_DEPTH_MAX)
		return -EAGAIN;
	store_relaxed(&lk->l->depth, depth + 1);
	counter_inc(&lk->c->received, 1);
	return (w & SHMQ_LOCK_DEAD) ? -EOWNERDEAD : 0;
}

/* See DESIGN: hand on a wake this thread may have swallowed. */
static void pass_on(struct shmq_lock_shm *l)
{
	uint32_t w = load_relaxed(&l->word);

	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		if (!shmq__owner_of(w)) {
			(void)shmq__futex_wake(&l->word, 1);
			return;
		}
		if ((w & SHMQ_LOCK_WAITERS) || cas_relaxed(&l->word, &w, w | SHMQ_LOCK_WAITERS))
			return;
	}
}

static int acquire_slow(struct shmq_lock *lk, int32_t tid, uint32_t depth, uint64_t deadline_ns)
{
	_Atomic uint32_t *word = &lk->l->word;
	bool woken = false;
	uint32_t w;

	counter_inc(&lk->c->empty, 1);
	if (lk->spin_ns && shmq__now_ns() < deadline_ns) {
		uint64_t end = shmq__deadline_after_ns(lk->spin_ns);

		if (end > deadline_ns)
			end = deadline_ns;
		for (uint32_t i = 1;; i++) {
			cpu_relax();
			w = load_relaxed(word);
			if (!shmq__owner_of(w) && take(lk, &w, false))
				return got(lk, w, tid, depth);
			if (i % SPIN_CLOCK_EVERY == 0 && shmq__now_ns() >= end)
				break;
		}
	}
	w = load_relaxed(word);
	for (uint32_t i = 1;; i++) {
		int r;

		if (!shmq__owner_of(w)) {
			if (take(lk, &w, woken))
				return got(lk, w, tid, depth);
			if (i % CAS_TRIES || shmq__now_ns() < deadline_ns)
				continue; /* the CAS reloaded w */
			return -ETIMEDOUT;
		}
		/* S1: a held lock gets WAITERS before anyone sleeps on it */
		if (!(w & SHMQ_LOCK_WAITERS) && !cas_relaxed(word, &w, w | SHMQ_LOCK_WAITERS))
			continue; /* reloaded: look again */
		if (deadline_ns != SHMQ_DEADLINE_NEVER && shmq__now_ns() >= deadline_ns)
			return -ETIMEDOUT; /* WAITERS stands: a swallowed wake is passed on */
		if (lk->waiting)
			fetch_add_relaxed(lk->waiting, 1); /* for the daemon's pass_on if we die */
		counter_inc(&lk->c->sleeps, 1);
		r = shmq__futex_wait(word, w | SHMQ_LOCK_WAITERS, deadline_ns); /* S2 */
		if (lk->waiting)
			fetch_sub_relaxed(lk->waiting, 1);
		if (r < 0 && r != -EAGAIN && r != -ETIMEDOUT)
			return r;
		woken = true; /* or moved, or timed out: either way take with WAITERS */
		w = load_relaxed(word);
	}
}

int shmq__lock_acquire(struct shmq_lock *lk, uint64_t deadline_ns)
{
	int32_t tid;
	uint32_t w;

	if (!lk->tag)
		return -EINVAL;
	tid = shmq__tid();
	w = load_relaxed(&lk->l->word);
	if (!shmq__owner_of(w) && take(lk, &w, false))
		return got(lk, w, tid, 1);
	if (held_by(lk, w, tid))
		return again(lk, w);
	return acquire_slow(lk, tid, 1, deadline_ns);
}

/* R0..R2: give the word up. */
static void release_word(struct shmq_lock *lk)
{
	uint32_t old;

	store_relaxed(&lk->l->owner_tid, 0); /* R0: ordered before R1 */
	store_relaxed(&lk->l->depth, 0);
	old = fetch_and_release(&lk->l->word, SHMQ_LOCK_DEAD); /* R1: pairs with A1 */
	counter_inc(&lk->c->sent, 1);
	if (old & SHMQ_LOCK_WAITERS) { /* R2 */
		counter_inc(&lk->c->wakes, 1);
		(void)shmq__futex_wake(&lk->l->word, 1);
	}
}

int shmq__lock_release(struct shmq_lock *lk)
{
	uint32_t depth;

	if (!held_by(lk, load_relaxed(&lk->l->word), shmq__tid()))
		return -EPERM;
	depth = load_relaxed(&lk->l->depth);
	if (lk->recursive && depth > 1) {
		store_relaxed(&lk->l->depth, depth - 1);
		counter_inc(&lk->c->sent, 1);
		return 0;
	}
	release_word(lk);
	return 0;
}

int shmq__lock_consistent(struct shmq_lock *lk)
{
	uint32_t w = load_relaxed(&lk->l->word);

	if (!held_by(lk, w, shmq__tid()))
		return -EPERM;
	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		if (!(w & SHMQ_LOCK_DEAD))
			return -EINVAL;
		/* relaxed: the holder's own word; R1 publishes it with the rest */
		if (cas_relaxed(&lk->l->word, &w, w & ~SHMQ_LOCK_DEAD))
			return 0;
	}
	return -EBUSY; /* a peer rewrote the word on every try */
}

bool shmq__lock_is_locked(const struct shmq_lock *lk)
{
	return shmq__owner_of(load_acquire(&lk->l->word)) != 0;
}

bool shmq__lock_is_mine(const struct shmq_lock *lk)
{
	return held_by(lk, load_relaxed(&lk->l->word), shmq__tid());
}

uint32_t shmq__lock_depth(const struct shmq_lock *lk)
{
	return shmq__lock_is_mine(lk) ? load_relaxed(&lk->l->depth) : 0;
}

int shmq__lock_save(struct shmq_lock *lk, uint32_t *ret_depth)
{
	if (!held_by(lk, load_relaxed(&lk->l->word), shmq__tid()))
		return -EPERM;
	*ret_depth = load_relaxed(&lk->l->depth);
	release_word(lk);
	return 0;
}

int shmq__lock_restore(struct shmq_lock *lk, uint32_t depth, uint64_t deadline_ns)
{
	int32_t tid = shmq__tid();
	uint32_t w = load_relaxed(&lk->l->word);

	if (!lk->tag || !depth || depth > SHMQ_LOCK_DEPTH_MAX || (!lk->recursive && depth != 1))
		return -EINVAL;
	if (!shmq__owner_of(w) && take(lk, &w, false))
		return got(lk, w, tid, depth);
	return acquire_slow(lk, tid, depth, deadline_ns);
}

/* --- The lock kind (shm/kind.h) --- */

static int lock_kind_attach(void *handle, const struct shmq_segment *seg, uint32_t session)
{
	return shmq__lock_attach(handle, seg, session);
}

static int lock_geom_check(const union shmq_geom *u, bool formatted)
{
	const struct shmq_lock_geom *g = &u->lock;

	(void)formatted; /* nothing is derived */
	if (g->flags & ~SHMQ_LOCK_RECURSIVE)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(g->reserved) / sizeof(g->reserved[0]); i++)
		if (g->reserved[i])
			return -EINVAL;
	return 0;
}

static int lock_check(const struct shmq_segment *seg, bool quiescent)
{
	const struct shmq_lock_shm *l = seg->object;
	uint32_t w = load_relaxed(&l->word);

	if (w & ~WORD_BITS)
		return -EBADMSG;
	/* At rest, a free lock has no holder's fields left (R0 clears them). */
	if (quiescent && !shmq__owner_of(w) &&
	    (load_relaxed(&l->depth) || load_relaxed(&l->owner_tid)))
		return -EBADMSG;
	if (!(seg->geom.lock.flags & SHMQ_LOCK_RECURSIVE) && load_relaxed(&l->depth) > 1)
		return -EBADMSG;
	return 0;
}

/*
 * Take the lock from the session whose owner field is @holder (dead, or a
 * forgery): R0's fields, then the holder in one CAS that sets DEAD, then a
 * wake for whoever sleeps.  Return: true it was taken back.
 */
static bool take_back(struct shmq_lock_shm *l, uint32_t holder)
{
	uint32_t w = load_acquire(&l->word); /* A7: pairs with the holder's A1 */

	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		if (shmq__owner_of(w) != holder)
			return false;
		store_relaxed(&l->owner_tid, 0); /* the holder is gone: only we write them */
		store_relaxed(&l->depth, 0);
		/* release, like R1: the next holder sees the cleared fields */
		if (atomic_compare_exchange_strong_explicit(
			    &l->word, &w,
			    (w & ~(HOLDER_MASK | SHMQ_LOCK_WAITERS) & WORD_BITS) | SHMQ_LOCK_DEAD,
			    memory_order_release, memory_order_acquire)) {
			fetch_add_relaxed(&l->recoveries,
					  1);		     /* a statistic; the daemon writes it */
			(void)shmq__futex_wake(&l->word, 1); /* as R2: the woken marks WAITERS */
			return true;
		}
	}
	return false;
}

bool shmq__lock_take_back(const struct shmq_segment *seg, uint32_t holder)
{
	return take_back(seg->object, holder);
}

static int lock_repair(const struct shmq_segment *seg, uint32_t index, struct shmq_kind_repair *ret)
{
	struct shmq_session_shm *rec = shmq__session_at(seg, index);
	struct shmq_lock_shm *l = seg->object;
	uint32_t waiting;

	if (!rec)
		return 0;
	/* after the process is known dead: its own-record stores are all done */
	waiting = load_relaxed(&rec->k.lock.waiting);
	store_relaxed(&rec->k.lock.waiting, 0);
	if (take_back(l, shmq__owner_field(index)))
		ret->recovered++;
	else if (waiting)
		pass_on(l);
	ret->waiters += waiting;
	return ret->recovered > 0 || waiting > 0;
}

static bool lock_is_ready(const void *handle, uint32_t events)
{
	(void)events;
	return !shmq__lock_is_locked(handle);
}

static int lock_arm(void *handle, uint32_t events, struct shmq_kind_arm *ret)
{
	struct shmq_lock *lk = handle;
	_Atomic uint32_t *word = &lk->l->word;
	uint32_t w;

	(void)events;
	if (!lk->tag)
		return -EINVAL;
	if (lk->waiting)
		fetch_add_relaxed(lk->waiting, 1); /* before S1: a death here is a spare wake */
	w = load_relaxed(word);
	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		if (!shmq__owner_of(w)) {
			if (lk->waiting)
				fetch_sub_relaxed(lk->waiting, 1);
			return 1;
		}
		if ((w & SHMQ_LOCK_WAITERS) || cas_relaxed(word, &w, w | SHMQ_LOCK_WAITERS)) {
			counter_inc(&lk->c->sleeps, 1);
			*ret = (struct shmq_kind_arm){.word = word, .key = w | SHMQ_LOCK_WAITERS};
			return 0;
		}
	}
	if (lk->waiting)
		fetch_sub_relaxed(lk->waiting, 1);
	return 1; /* the word never held still: look again, as a spurious wake */
}

/* A completed or cancelled asynchronous wait does not take the lock itself: pass on. */
static void lock_disarm(void *handle)
{
	struct shmq_lock *lk = handle;

	if (lk->waiting)
		fetch_sub_relaxed(lk->waiting, 1);
	pass_on(lk->l);
}

const struct shmq_kind shmq__kind_lock = {
	.id = SHMQ_KIND_LOCK,
	.name = "lock",
	.short_name = "lock",
	.events = SHMQ_KIND_EV_RECV,
	.invariants = "lock word bits; a free lock at rest has no holder fields; a plain "
		      "lock's depth is at most 1",
	.object_size = sizeof(struct shmq_lock_shm),
	.retired_off = offsetof(struct shmq_lock_shm, retired),
	.geom_check = lock_geom_check,
	.attach = lock_kind_attach,
	.check = lock_check,
	.repair = lock_repair,
	.is_ready = lock_is_ready,
	.arm = lock_arm,
	.disarm = lock_disarm,
};
