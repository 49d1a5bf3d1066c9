/* SPDX-License-Identifier: MIT */
/*
 * Counting semaphore for cross-process use.  value is the futex word and the
 * token count; n_waiters counts the waiters that may be asleep on it, so that
 * post() skips the FUTEX_WAKE system call when nobody sleeps.
 *
 * DESIGN
 *
 * A wait first tries to take a token (a CAS that never takes value below 0),
 * then spins for spin_ns watching value (a wake-up from the kernel costs tens
 * of microseconds on a VM, a spin hand-off about a hundred nanoseconds), and
 * only then announces itself in n_waiters and sleeps in FUTEX_WAIT until
 * value is no longer 0.  A post adds its tokens with a CAS that refuses to
 * pass the ceiling, and wakes at most as many sleepers as it added tokens.
 *
 * Ordering and the lost-wake-up argument (see kernel/futex/waitwake.c,
 * barriers (A)/(B)) -- read before changing:
 *
 *   waiter: shmq__sem_wait()               poster: shmq__sem_post()
 *   ------------------------------------   ------------------------------------
 *   W1 fetch_add_seq_cst(&n_waiters, 1)    P1 cas_seq_cst(&value, v, v + n)
 *   W2 take(): A1 cas_acq_rel(&value,         (v + n <= ceiling, else nothing)
 *      v, v - 1) while v > 0; done if won  P2 w = load_seq_cst(&n_waiters)
 *   W3 futex_wait(&value, 0, deadline)     P3 if (w) futex_wake(&value, min(n, w))
 *      -- the kernel does smp_mb(), then
 *         re-reads value under the hash
 *         bucket lock: it sleeps only if
 *         value is still 0
 *   W4 woken or -EAGAIN: back to W2;
 *      -ETIMEDOUT: one last take(), leave
 *   W5 fetch_sub_seq_cst(&n_waiters, 1)
 *
 *   W1, P1 and P2 are seq_cst, and W3's read of value follows a full
 *   barrier: this is the store-buffering pattern, so at least one side sees
 *   the other's write.  In the single total order either
 *     - P2 comes before W1: then P1 comes before the kernel's barrier in W3,
 *       so W3 reads P1's value or a later one.  Non-zero: FUTEX_WAIT returns
 *       -EAGAIN at once and W2 takes the token.  Zero: a later take consumed
 *       the token, and sleeping is correct -- that token is gone either way.
 *     - W1 comes before P2: then P2 sees w >= 1 and P3 issues FUTEX_WAKE.
 *       The kernel's own (A)/(B) barriers guarantee that a FUTEX_WAIT whose
 *       read of value missed P1 is already queued when P3 looks, so it is
 *       woken.
 *   Acquire/release on either side would allow both loads to miss both
 *   stores (the waiter sleeps on 0, the poster sees no waiter): a lost wake.
 *
 *   Why min(n, w) sleepers are enough: a post of n tokens can satisfy at
 *   most n waiters, and FUTEX_WAKE wakes only threads really queued, so the
 *   budget is never spent on an announced waiter that is still awake (by
 *   the kernel guarantee above, that one's FUTEX_WAIT reads P1's value or a
 *   later one and does not sleep on a token).  Waking more would be a
 *   thundering herd.
 *
 *   Why a woken waiter always takes before it leaves: FUTEX_WAKE spends
 *   its count on each waiter it dequeues.  A woken W3 returns 0 (the kernel
 *   reports the wake even when the timer fires at the same moment) and W4
 *   goes back to W2, whose take reads value after P1 (the bucket lock
 *   orders P3 after P1 and our return after P3): we either take that token
 *   or see that somebody else did.  Leaving without looking could strand a
 *   token in value while another waiter sleeps next to it.  On -ETIMEDOUT,
 *   W4 still takes once more, so a token that arrives with the deadline is
 *   not left behind.  (Hence a lost wake-up would not show as an error but
 *   as a wait that succeeds only at its deadline: tests/stress/stress_sem.c
 *   counts that as a failure.)
 *
 *   A1 pairs with P1: the acquire half of a winning take reads the value
 *   written by a post's release (seq_cst) RMW, or by a later RMW in its
 *   release sequence, so everything the poster wrote before posting
 *   happens-before everything the taker does after taking.
 *
 * Asynchronous waiters (shmq__sem_arm()/shmq__sem_disarm()) run W1 and a
 * seq_cst load of value in place of W2, sleep in io_uring or a helper
 * thread instead of W3, and run W5 when their completion is consumed.  The
 * store-buffering argument is unchanged (the load is seq_cst, like the
 * CAS), and the kernel re-reads value when it issues the io_uring wait.
 * What changes is "a woken waiter always takes": an asynchronous one may
 * be cancelled or only want readiness.  So W5 is followed by the baton B1:
 * if a token is there and another waiter is announced, wake one.  The
 * woken one re-takes or re-sleeps, so at worst this is one spare wake.
 *
 * Invariants (checked by shmq__sem_check()):
 *   - 0 <= value <= ceiling (max when SHMQ_SEM_BOUNDED, else
 *     SHMQ_SEM_VALUE_MAX): take() writes v - 1 only for v > 0, and post()
 *     writes v + n only for v + n <= ceiling;
 *   - n_waiters == the number of waiters between W1 and W5, so it is at
 *     least the number of waiters asleep in W3;
 *   - a waiter sleeps in the kernel only while value == 0.
 *
 * Hostile peers.  Both words are untrusted.  A value above the ceiling makes
 * every post fail with -EOVERFLOW (v + n is never computed past the ceiling,
 * so it cannot wrap), and takes still only ever decrement a non-zero value.
 * n_waiters is only compared with 0 and used as an upper bound on a wake
 * count, so any value is safe: too high costs a spare FUTEX_WAKE, 0 makes
 * waiters sleep until their deadline.  Every CAS loop is bounded by
 * CAS_TRIES, and every other loop either takes a token or runs into the
 * deadline (checked by shmq__futex_wait() before each sleep).
 *
 * Undo semaphores (SHMQ_SEM_UNDO): exact across SIGKILL, on the owner
 * journal (shm/owner.h, where U1..U5 and their ordering are argued).  The
 * tokens a process holds are counted in its session record (k.sem.holds) so
 * the daemon can post them back when it dies.  A token and its count are
 * two words, and no CAS covers both, so the operation is journaled in the
 * word itself: bits 20..30 of an undo semaphore's word are the owner field,
 * the session tag of a process between moving tokens and recording them.
 *
 *   U1 store pending = the hold count after this operation
 *   U2 CAS word (v, owner 0) -> (v -/+ n, owner us)   (A1 / P1 as above)
 *   U3 store holds = pending
 *   U4 CAS word (v', owner us) -> (v', owner 0); wake as P2/P3 would
 *
 * While the owner field is set nobody else takes or posts (they spin, or
 * sleep on the word and are woken by U4), so at most one operation is in
 * flight.  If the process dies, the daemon (shmq__sem_undo()) reads the
 * word: carrying the tag means U2 happened and U4 did not, so pending is
 * the true count; otherwise U2 did not happen or U3 did, and holds is.  It
 * posts that many back in one CAS that clears the tag.  Threads sharing a
 * handle share the record, so the journal's process-local lock keeps their
 * U1..U4 apart.  The value limit of an undo semaphore is
 * SHMQ_SEM_UNDO_VALUE_MAX (1048575), SysV's being 32767.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/owner.h"
#include "shm/sem.h"

/*
 * Consecutive failed CASes before try_wait()/post() give up.  Every failure
 * means another party changed value; honest contention never comes close.
 */
#define CAS_TRIES (UINT32_C(1) << 16)

/* Clock reads during the spin: one per this many polls of value. */
#define SPIN_CLOCK_EVERY 64

/* The token count in a word, and the owner field (undo semaphores only). */
static inline uint32_t word_value(const struct shmq_sem *sem, uint32_t w)
{
	return sem->undo ? w & SHMQ_SEM_UNDO_VALUE_MAX : w;
}

static inline uint32_t word_owner(const struct shmq_sem *sem, uint32_t w)
{
	return sem->undo ? shmq__owner_of(w) : 0;
}

/*
 * W1, then this session's count of its announcements (its record), which
 * the daemon subtracts from n_waiters if the process dies announced.  W1
 * comes first and the count goes down before W5, so a death between the
 * two leaves n_waiters one too high (a spare FUTEX_WAKE, the harmless side),
 * never too low (a sleeper nobody wakes).
 */
static void announce(struct shmq_sem *sem)
{
	/* W1: seq_cst, store-buffering with P1/P2 in shmq__sem_post() (see top) */
	fetch_add_seq_cst(&sem->s->n_waiters, 1);
	/* own record; the daemon reads it only after our death */
	if (sem->waiting)
		fetch_add_relaxed(sem->waiting, 1);
}

static void withdraw(struct shmq_sem *sem)
{
	if (sem->waiting)
		fetch_sub_relaxed(sem->waiting, 1); /* own record */
	/*
	 * W5: seq_cst only because it is the one fetch_sub helper; no ordering
	 * is needed, since a waiter that leaves needs no wake and a stale high
	 * count costs a poster at most one spare FUTEX_WAKE.
	 */
	fetch_sub_seq_cst(&sem->s->n_waiters, 1);
}

/* P2/P3 for @v tokens now available: wake up to that many announced sleepers. */
static void wake_for(struct shmq_sem *sem, uint32_t v)
{
	/* P2: seq_cst, store-buffering with W1 (see top): after P1 (or U4) in the total order */
	uint32_t w = load_seq_cst(&sem->s->n_waiters);

	if (w == 0 || v == 0)
		return;
	counter_inc(&sem->c->wakes, 1);
	/*
	 * P3.  v <= SHMQ_SEM_VALUE_MAX == INT_MAX.  The result is ignored: a
	 * kernel that refuses FUTEX_WAKE refused the FUTEX_WAIT too, so nobody
	 * is asleep on the word.
	 */
	(void)shmq__futex_wake(&sem->s->value, (int)(v < w ? v : w));
}

/* U3, U4 (shm/owner.h): record the count, give the word back, pass on what it holds. */
static void undo_commit(struct shmq_sem *sem)
{
	uint32_t w;

	if (shmq__owner_commit(&sem->j, &sem->s->value, &w))
		wake_for(sem, word_value(sem, w));
}

/*
 * W2: take one token if value > 0.  *@ret_word gets the word last seen, to
 * sleep on.  Return: 0 taken; -EAGAIN none (or it kept changing); -EBUSY
 * another process's undo operation is in flight (U2..U4).
 */
static int take(struct shmq_sem *sem, uint32_t *ret_word)
{
	struct shmq_sem_shm *s = sem->s;
	/* relaxed: only a first guess, the CAS below re-reads and validates it */
	uint32_t w = load_relaxed(&s->value);
	int r = -EAGAIN;

	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		if (word_value(sem, w) == 0) {
			r = -EAGAIN;
			break;
		}
		if (word_owner(sem, w)) {
			r = -EBUSY;
			break;
		}
		if (sem->j.tag) {
			shmq__owner_lock(&sem->j);
			shmq__owner_begin(&sem->j, shmq__owner_count(&sem->j) + 1); /* U1 */
		}
		/* A1: acquire on success pairs with P1 in shmq__sem_post(); U2 with an owner */
		if (cas_acq_rel(&s->value, &w, (w - 1) | sem->j.tag)) {
			if (sem->j.tag) {
				undo_commit(sem);
				shmq__owner_unlock(&sem->j);
			}
			return 0;
		}
		if (sem->j.tag)
			shmq__owner_unlock(&sem->j);
	}
	*ret_word = w;
	return r;
}

/* Poll value for up to spin_ns (but not past @deadline_ns).  Return: 0 taken, -ETIMEDOUT. */
static int spin(struct shmq_sem *sem, uint64_t deadline_ns)
{
	uint64_t end = shmq__deadline_after_ns(sem->spin_ns);

	if (end > deadline_ns)
		end = deadline_ns;

	for (uint32_t i = 1;; i++) {
		cpu_relax();
		uint32_t w = load_relaxed(&sem->s->value); /* a hint; take() validates it */

		if (word_value(sem, w) != 0 && !word_owner(sem, w) && take(sem, &w) == 0)
			return 0;
		if (i % SPIN_CLOCK_EVERY == 0 && shmq__now_ns() >= end)
			return -ETIMEDOUT;
	}
}

int shmq__sem_attach(struct shmq_sem *sem, const struct shmq_segment *seg, uint32_t session)
{
	const struct shmq_sem_geom *g = &seg->geom.sem;
	struct shmq_session_shm *rec = NULL;
	bool bounded = g->flags & SHMQ_SEM_BOUNDED;

	if (seg->kind != SHMQ_KIND_SEM || !seg->object)
		return -EINVAL;
	/* shmq__segment_attach() validated these; a hand-built segment may not have. */
	if (g->flags & ~(SHMQ_SEM_BOUNDED | SHMQ_SEM_UNDO))
		return -EINVAL;
	if (bounded && (g->max == 0 || g->max > SHMQ_SEM_VALUE_MAX))
		return -EINVAL;
	if (session != UINT32_MAX) {
		rec = shmq__session_at(seg, session);
		if (!rec)
			return -EINVAL;
	}

	if ((g->flags & SHMQ_SEM_UNDO) && bounded && g->max > SHMQ_SEM_UNDO_VALUE_MAX)
		return -EINVAL;

	*sem = (struct shmq_sem){
		.s = seg->object,
		.max = bounded			    ? g->max
		       : (g->flags & SHMQ_SEM_UNDO) ? SHMQ_SEM_UNDO_VALUE_MAX
						    : SHMQ_SEM_VALUE_MAX,
		.flags = g->flags,
		.spin_ns = SHMQ_SEM_SPIN_NS_DEFAULT,
		.undo = g->flags & SHMQ_SEM_UNDO,
		.n_sessions = seg->n_sessions,
	};
	sem->c = rec ? &rec->c : &sem->private_counters;
	if (sem->undo && rec)
		shmq__owner_init(&sem->j, session, &rec->k.sem.holds, &rec->k.sem.pending);
	else
		shmq__owner_init(&sem->j, 0, NULL, NULL); /* no journal: nothing to undo */
	sem->waiting = rec ? &rec->k.sem.waiting : NULL;
	return 0;
}

int shmq__sem_try_wait(struct shmq_sem *sem)
{
	uint32_t w;

	if (take(sem, &w) < 0)
		return -EAGAIN; /* -EBUSY too: it would have to wait */
	counter_inc(&sem->c->received, 1);
	return 0;
}

int shmq__sem_wait(struct shmq_sem *sem, uint64_t deadline_ns)
{
	struct shmq_sem_shm *s = sem->s;
	uint32_t w;
	int r;

	if (take(sem, &w) == 0 || (sem->spin_ns && spin(sem, deadline_ns) == 0)) {
		counter_inc(&sem->c->received, 1);
		return 0;
	}

	announce(sem); /* W1 */
	for (;;) {
		r = take(sem, &w); /* W2 */
		if (r == 0)
			break;
		counter_inc(&sem->c->sleeps, 1);
		/* W3: asleep while the word is what W2 saw (no token, or an owner: U4 wakes) */
		r = shmq__futex_wait(&s->value, w, deadline_ns);
		if (r == 0 || r == -EAGAIN)
			continue; /* W4: woken, spurious, or value moved */
		/* W4: -ETIMEDOUT or refused: a token that came with the deadline is ours */
		if (take(sem, &w) == 0)
			r = 0;
		break;
	}
	withdraw(sem); /* W5 */

	if (r < 0)
		return r;
	counter_inc(&sem->c->received, 1);
	return 0;
}

int shmq__sem_post(struct shmq_sem *sem, uint32_t n)
{
	struct shmq_sem_shm *s = sem->s;
	uint32_t v, val;
	int r;

	if (n == 0)
		return -EINVAL;

	/* relaxed: only a first guess, the CAS below re-reads and validates it */
	v = load_relaxed(&s->value);
	for (uint32_t i = 0;; i++) {
		if (word_owner(sem, v)) {
			r = shmq__owner_wait(&s->value, &v); /* -EBUSY after SHMQ_OWNER_WAIT_NS */
			if (r < 0)
				return r;
		}
		val = word_value(sem, v);
		/* v comes from a peer: compare by subtraction so nothing wraps. */
		if (val > sem->max || n > sem->max - val)
			return -EOVERFLOW;
		if (i == CAS_TRIES)
			return -EAGAIN;
		if (sem->j.tag) {
			uint32_t held;

			shmq__owner_lock(&sem->j);
			held = shmq__owner_count(&sem->j);
			/* U1: posts beyond what we hold (a producer's) are not ours to count */
			shmq__owner_begin(&sem->j, held - (held < n ? held : n));
		}
		/*
		 * P1: seq_cst, store-buffering with W1 in shmq__sem_wait(); its
		 * release half pairs with A1 in take().  U2 with an owner.
		 */
		if (cas_seq_cst(&s->value, &v, (v + n) | sem->j.tag))
			break;
		if (sem->j.tag)
			shmq__owner_unlock(&sem->j);
	}
	counter_inc(&sem->c->sent, n);
	if (sem->j.tag) {
		undo_commit(sem); /* U3, U4, then P2/P3 */
		shmq__owner_unlock(&sem->j);
		return 0;
	}
	wake_for(sem, n);
	return 0;
}

int shmq__sem_undo(struct shmq_sem *sem, struct shmq_session_shm *rec, uint32_t index,
		   uint32_t *ret_posted)
{
	struct shmq_sem_shm *s = sem->s;
	uint32_t tag = shmq__owner_field(index);
	uint32_t w, holds, add = 0;
	int r = 0;

	*ret_posted = 0;
	if (!sem->undo || index >= sem->n_sessions)
		return -EINVAL;
	/* A7, U5 and the forgetting (shm/owner.h): the true count, and the word it came with. */
	holds = shmq__owner_resolve(&s->value, index, &rec->k.sem.holds, &rec->k.sem.pending, &w);
	for (uint32_t i = 0; i < CAS_TRIES; i++) {
		uint32_t val = word_value(sem, w), own = word_owner(sem, w);

		/* Another owner (alive, or dead and next in line) keeps its tag. */
		if (own == tag)
			own = 0;
		if (val > sem->max) {
			r = -EBADMSG; /* corrupt: post nothing, but let the others go on */
			add = 0;
		} else {
			/* The count is untrusted: never past the ceiling. */
			add = holds < sem->max - val ? holds : sem->max - val;
		}
		if (w & ~(SHMQ_SEM_UNDO_VALUE_MAX | SHMQ_SEM_UNDO_OWNER_MASK))
			r = -EBADMSG;
		/* seq_cst like P1/U4: waiters held back by the tag, or by no token, go on */
		if (cas_seq_cst(&s->value, &w,
				(val > sem->max ? (val & SHMQ_SEM_UNDO_VALUE_MAX) : val + add) |
					own))
			break;
	}
	if (load_seq_cst(&s->n_waiters))
		(void)shmq__futex_wake(&s->value, INT32_MAX); /* few, and some held by the tag */
	*ret_posted = add;
	return r;
}

int shmq__sem_arm(struct shmq_sem *sem)
{
	struct shmq_sem_shm *s = sem->s;

	/* relaxed: a hint; the seq_cst look below is the one the argument uses */
	if (word_value(sem, load_relaxed(&s->value)) != 0)
		return 1;
	announce(sem); /* W1 */
	/*
	 * W2': W2 without the take; seq_cst, so it is ordered after W1 like the
	 * CAS.  The sleep expects the word to be 0: an owner field set meanwhile
	 * makes it return at once, and the caller arms again (U4 is near).
	 */
	if (word_value(sem, load_seq_cst(&s->value)) != 0) {
		shmq__sem_disarm(sem);
		return 1;
	}
	counter_inc(&sem->c->sleeps, 1);
	return 0;
}

void shmq__sem_disarm(struct shmq_sem *sem)
{
	struct shmq_sem_shm *s = sem->s;

	withdraw(sem); /* W5 (see top) */
	/*
	 * B1: seq_cst loads after W5.  A post that spent its wake on us did P1
	 * before P3, and our completion came after P3, so B1 sees its token
	 * unless somebody took it -- then nobody needs waking.
	 */
	if (word_value(sem, load_seq_cst(&s->value)) != 0 && load_seq_cst(&s->n_waiters) != 0) {
		counter_inc(&sem->c->wakes, 1);
		(void)shmq__futex_wake(&s->value, 1); /* as P3: nothing to do on failure */
	}
}

uint32_t shmq__sem_value(const struct shmq_sem *sem)
{
	/* relaxed: a display snapshot; nothing is read through it */
	return word_value(sem, load_relaxed(&sem->s->value));
}

int shmq__sem_check(const struct shmq_sem *sem)
{
	/* relaxed: a validation snapshot; each invariant is about one word alone */
	uint32_t v = load_relaxed(&sem->s->value);
	/* relaxed: as above */
	uint32_t w = load_relaxed(&sem->s->n_waiters);

	if (sem->undo) {
		uint32_t own = (v & SHMQ_SEM_UNDO_OWNER_MASK) >> SHMQ_SEM_UNDO_OWNER_SHIFT;

		/* An owner is a session tag, 1..n_sessions; bit 31 is never set. */
		if ((v & ~(SHMQ_SEM_UNDO_VALUE_MAX | SHMQ_SEM_UNDO_OWNER_MASK)) ||
		    own > sem->n_sessions)
			return -EBADMSG;
		v &= SHMQ_SEM_UNDO_VALUE_MAX;
	}
	if (v > sem->max)
		return -EBADMSG;
	if (w >= SHMQ_SEM_WAITERS_PLAUSIBLE)
		return -EBADMSG;
	return 0;
}

/* --- The semaphore kind (shm/kind.h) --- */

static int sem_geom_check(const union shmq_geom *u, bool formatted)
{
	const struct shmq_sem_geom *g = &u->sem;

	(void)formatted; /* nothing is derived: a header says what the creator asked */
	if (g->flags & ~(SHMQ_SEM_BOUNDED | SHMQ_SEM_UNDO))
		return -EINVAL;
	if (g->initial > SHMQ_SEM_VALUE_MAX)
		return -EINVAL;
	if ((g->flags & SHMQ_SEM_BOUNDED) &&
	    (g->max == 0 || g->max > SHMQ_SEM_VALUE_MAX || g->initial > g->max))
		return -EINVAL;
	/* The owner field takes the word's high bits (U1..U4 above). */
	if ((g->flags & SHMQ_SEM_UNDO) &&
	    (g->initial > SHMQ_SEM_UNDO_VALUE_MAX ||
	     ((g->flags & SHMQ_SEM_BOUNDED) && g->max > SHMQ_SEM_UNDO_VALUE_MAX)))
		return -EINVAL;
	return 0;
}

static void sem_format(void *object, unsigned char *tail, const union shmq_geom *u)
{
	struct shmq_sem_shm *s = object;

	(void)tail;
	store_relaxed(&s->value, u->sem.initial); /* before publication: ordered by R0 */
}

/* Both invariants hold at every instant for honest peers: checked busy or not. */
static int sem_kind_check(const struct shmq_segment *seg, bool quiescent)
{
	struct shmq_sem sem;

	(void)quiescent;
	if (shmq__sem_attach(&sem, seg, UINT32_MAX) < 0)
		return -EBADMSG;
	return shmq__sem_check(&sem);
}

/*
 * A dead session's announcements: subtract what its record counts from
 * n_waiters (never below 0: the count is untrusted, and so is n_waiters).
 * Its process is gone, so nothing of it can be between W1 and the count.
 * Return: how many were dropped.
 */
static uint32_t drop_dead_waiters(struct shmq_sem_shm *s, struct shmq_session_shm *rec)
{
	/* after the process is known dead: its own-record stores are all done */
	uint32_t mine = load_relaxed(&rec->k.sem.waiting), n = load_relaxed(&s->n_waiters);

	store_relaxed(&rec->k.sem.waiting, 0);
	for (uint32_t i = 0; mine && i < CAS_TRIES; i++) {
		uint32_t drop = mine < n ? mine : n;

		/* seq_cst like W5, whose job this is; live waiters race us with their own W1/W5 */
		if (cas_seq_cst(&s->n_waiters, &n, n - drop))
			return drop;
	}
	return 0;
}

static int sem_repair(const struct shmq_segment *seg, uint32_t index, struct shmq_kind_repair *ret)
{
	struct shmq_session_shm *rec = shmq__session_at(seg, index);
	struct shmq_sem sem;
	uint32_t posted = 0;
	int r;

	if (!rec)
		return 0;
	r = shmq__sem_attach(&sem, seg, UINT32_MAX);
	if (r < 0)
		return r;
	ret->waiters = drop_dead_waiters(sem.s, rec);
	if (seg->geom.sem.flags & SHMQ_SEM_UNDO) {
		r = shmq__sem_undo(&sem, rec, index, &posted);
		/* a statistic; the daemon alone writes it */
		if (posted)
			fetch_add_relaxed(&sem.s->repairs, 1);
	}
	ret->posted = posted;
	return r < 0 ? r : posted > 0 || ret->waiters > 0;
}

static bool sem_is_ready(const void *handle, uint32_t events)
{
	(void)events;
	return shmq__sem_value(handle) != 0;
}

static int sem_kind_arm(void *handle, uint32_t events, struct shmq_kind_arm *ret)
{
	struct shmq_sem *sem = handle;
	int r = shmq__sem_arm(sem);

	(void)events;
	if (r == 0)
		*ret = (struct shmq_kind_arm){.word = &sem->s->value, .key = 0};
	return r;
}

static void sem_kind_disarm(void *handle)
{
	shmq__sem_disarm(handle);
}

const struct shmq_kind shmq__kind_sem = {
	.id = SHMQ_KIND_SEM,
	.name = "semaphore",
	.short_name = "sem",
	.events = SHMQ_KIND_EV_RECV,
	.invariants = "semaphore value and waiter count",
	.object_size = sizeof(struct shmq_sem_shm),
	.retired_off = offsetof(struct shmq_sem_shm, retired),
	.geom_check = sem_geom_check,
	.format = sem_format,
	.check = sem_kind_check,
	.repair = sem_repair,
	.is_ready = sem_is_ready,
	.arm = sem_kind_arm,
	.disarm = sem_kind_disarm,
};
