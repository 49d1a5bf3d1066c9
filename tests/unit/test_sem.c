/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for shm/sem.c: single-process edge cases, corrupt peers, and
 * the thread versions of the blocking protocol (run under TSan by
 * `make test SAN=thread`; the process versions are in tests/stress/stress_sem.c).
 *
 * Every thread attaches its own handle, as separate processes would.  Worker
 * threads never call cr_assert (criterion asserts belong to the test's main
 * thread); they report their results for the main thread to check.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/sem.h"
#include "tests/helpers.h"

/*
 * A waiter whose wake-up is lost still takes its token, at its deadline (a
 * wait takes a token that is there when it times out), so a lost wake-up
 * shows as a slow return, not an error: tests bound the latency instead.
 */
#define WAIT_TIMEOUT_MS	    5000 /* deadline of every wait that should succeed */
#define WAKE_LATENCY_MAX_MS 2000 /* a woken waiter returns well within this */
#define N_THREADS	    4
#define MUTEX_ROUNDS	    100000

static struct t_seg fx;
static struct shmq_sem sem;

static void sem_new(uint32_t initial, uint32_t max, uint32_t flags)
{
	int r;

	t_seg_new_sem(&fx, initial, max, flags);
	r = shmq__sem_attach(&sem, &fx.seg, UINT32_MAX);
	cr_assert(eq(int, r, 0), "sem_attach: %s", strerror(-r));
}

static void teardown(void)
{
	t_seg_free(&fx);
}

TestSuite(sem, .fini = teardown, .timeout = 15);

/* --- Helpers --- */

static struct shmq_sem_shm *shm(void)
{
	return fx.seg.object;
}

/* Simulate a hostile or buggy peer writing a shared word. */
static void poke_value(uint32_t v)
{
	store_relaxed(&shm()->value, v); /* test setup: no ordering needed */
}

static void poke_waiters(uint32_t v)
{
	store_relaxed(&shm()->n_waiters, v); /* test setup: no ordering needed */
}

static uint32_t peek_waiters(void)
{
	return load_relaxed(&shm()->n_waiters); /* polled until it settles */
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Poll n_waiters until it reads @n; fails the test after @ms. */
static void await_waiters(uint32_t n, unsigned int ms)
{
	uint64_t deadline = t_deadline_ms(ms);

	while (peek_waiters() != n) {
		cr_assert(shmq__now_ns() < deadline, "n_waiters stuck at %u, want %u",
			  peek_waiters(), n);
		sleep_ms(1);
	}
}

struct waiter {
	pthread_t th;
	struct shmq_sem h; /* own handle, as a separate process would have */
	uint64_t deadline_ns;
	int r;		       /* shmq__sem_wait() result */
	_Atomic uint32_t done; /* set after r; read by the main thread */
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->r = shmq__sem_wait(&w->h, w->deadline_ns);
	store_release(&w->done, 1); /* R: publishes r; pairs with the acquire in n_done() */
	return NULL;
}

static void waiters_start(struct waiter *w, int n, uint64_t spin_ns, unsigned int timeout_ms)
{
	for (int i = 0; i < n; i++) {
		cr_assert(eq(int, shmq__sem_attach(&w[i].h, &fx.seg, UINT32_MAX), 0));
		w[i].h.spin_ns = spin_ns;
		w[i].deadline_ns = t_deadline_ms(timeout_ms);
		store_relaxed(&w[i].done, 0); /* before pthread_create: no ordering needed */
		cr_assert(eq(int, pthread_create(&w[i].th, NULL, waiter_main, &w[i]), 0));
	}
}

static int n_done(struct waiter *w, int n)
{
	int done = 0;

	for (int i = 0; i < n; i++)
		done += (int)load_acquire(&w[i].done); /* A: pairs with R in waiter_main() */
	return done;
}

static void await_done(struct waiter *w, int n, int want, unsigned int ms)
{
	uint64_t deadline = t_deadline_ms(ms);

	while (n_done(w, n) < want) {
		cr_assert(shmq__now_ns() < deadline, "%d of %d waiters returned, want %d",
			  n_done(w, n), n, want);
		sleep_ms(1);
	}
}

/* --- try_wait and post --- */

Test(sem, try_wait_on_a_zero_semaphore_returns_eagain)
{
	sem_new(0, 0, 0);

	cr_assert(eq(int, shmq__sem_try_wait(&sem), -EAGAIN));
	cr_assert(eq(u32, shmq__sem_value(&sem), 0));
}

Test(sem, try_wait_takes_the_token_a_post_added)
{
	sem_new(0, 0, 0);

	cr_assert(eq(int, shmq__sem_post(&sem, 1), 0));
	cr_assert(eq(int, shmq__sem_try_wait(&sem), 0));
	cr_assert(eq(int, shmq__sem_try_wait(&sem), -EAGAIN));
}

Test(sem, initial_value_is_the_number_of_tokens_available)
{
	sem_new(3, 0, 0);

	cr_assert(eq(u32, shmq__sem_value(&sem), 3));
	for (int i = 0; i < 3; i++)
		cr_assert(eq(int, shmq__sem_try_wait(&sem), 0));
	cr_assert(eq(int, shmq__sem_try_wait(&sem), -EAGAIN));
}

Test(sem, post_of_n_adds_n_tokens)
{
	sem_new(0, 0, 0);

	cr_assert(eq(int, shmq__sem_post(&sem, 5), 0));
	cr_assert(eq(u32, shmq__sem_value(&sem), 5));
}

Test(sem, post_of_zero_tokens_returns_einval)
{
	sem_new(0, 0, 0);

	cr_assert(eq(int, shmq__sem_post(&sem, 0), -EINVAL));
	cr_assert(eq(u32, shmq__sem_value(&sem), 0));
}

Test(sem, bounded_post_up_to_exactly_max_succeeds)
{
	sem_new(1, 4, SHMQ_SEM_BOUNDED);

	cr_assert(eq(int, shmq__sem_post(&sem, 3), 0));
	cr_assert(eq(u32, shmq__sem_value(&sem), 4));
	cr_assert(eq(int, shmq__sem_check(&sem), 0));
}

Test(sem, bounded_post_above_max_returns_eoverflow_and_leaves_value_unchanged)
{
	sem_new(1, 2, SHMQ_SEM_BOUNDED);

	cr_assert(eq(int, shmq__sem_post(&sem, 2), -EOVERFLOW), "all or nothing");
	cr_assert(eq(u32, shmq__sem_value(&sem), 1));
	cr_assert(eq(int, shmq__sem_post(&sem, 1), 0));
	cr_assert(eq(int, shmq__sem_post(&sem, 1), -EOVERFLOW));
	cr_assert(eq(int, shmq__sem_post(&sem, UINT32_MAX), -EOVERFLOW));
	cr_assert(eq(u32, shmq__sem_value(&sem), 2));
}

Test(sem, unbounded_post_past_value_max_returns_eoverflow_and_leaves_value_unchanged)
{
	sem_new(SHMQ_SEM_VALUE_MAX - 1, 0, 0);

	cr_assert(eq(int, shmq__sem_post(&sem, 1), 0));
	cr_assert(eq(int, shmq__sem_post(&sem, 1), -EOVERFLOW));
	cr_assert(eq(int, shmq__sem_post(&sem, UINT32_MAX), -EOVERFLOW));
	cr_assert(eq(u32, shmq__sem_value(&sem), SHMQ_SEM_VALUE_MAX));
	cr_assert(eq(int, shmq__sem_check(&sem), 0));
}

Test(sem, post_and_take_bump_the_handle_counters)
{
	sem_new(0, 0, 0);

	cr_assert(eq(int, shmq__sem_post(&sem, 3), 0));
	cr_assert(eq(int, shmq__sem_try_wait(&sem), 0));
	cr_assert(eq(int, shmq__sem_wait(&sem, t_deadline_ms(WAIT_TIMEOUT_MS)), 0));

	cr_assert(eq(u64, load_relaxed(&sem.c->sent), 3)); /* own counters */
	cr_assert(eq(u64, load_relaxed(&sem.c->received), 2));
}

Test(sem, post_with_no_waiters_makes_no_wake_syscall)
{
	sem_new(0, 0, 0);

	for (int i = 0; i < 1000; i++)
		cr_assert(eq(int, shmq__sem_post(&sem, 1), 0));

	cr_assert(eq(u64, load_relaxed(&sem.c->wakes), 0)); /* own counters */
	cr_assert(eq(u64, load_relaxed(&sem.c->sent), 1000));
}

/* --- Attach --- */

Test(sem, attach_rejects_a_queue_segment)
{
	struct shmq_sem h;

	t_seg_new_queue(&fx, 4, 64, SHMQ_QMODE_MPMC);

	cr_assert(eq(int, shmq__sem_attach(&h, &fx.seg, UINT32_MAX), -EINVAL));
}

Test(sem, attach_rejects_a_session_index_past_the_session_table)
{
	struct shmq_sem h;

	sem_new(0, 0, 0);

	cr_assert(eq(int, shmq__sem_attach(&h, &fx.seg, fx.seg.n_sessions), -EINVAL));
}

Test(sem, attach_with_a_session_counts_into_that_session_record)
{
	struct shmq_sem h;

	sem_new(0, 0, 0);
	cr_assert(eq(int, shmq__sem_attach(&h, &fx.seg, 1), 0));

	cr_assert(eq(int, shmq__sem_post(&h, 2), 0));
	cr_assert(eq(int, shmq__sem_try_wait(&h), 0));

	cr_assert(eq(u64, load_relaxed(&fx.seg.sessions[1].c.sent), 2)); /* quiescent */
	cr_assert(eq(u64, load_relaxed(&fx.seg.sessions[1].c.received), 1));
	cr_assert(eq(u64, load_relaxed(&fx.seg.sessions[0].c.sent), 0));
}

Test(sem, attach_copies_the_bound_so_the_ceiling_is_max_only_when_bounded)
{
	sem_new(0, 7, SHMQ_SEM_BOUNDED);
	cr_assert(eq(u32, sem.max, 7));
	t_seg_free(&fx);

	sem_new(0, 7, 0);
	cr_assert(eq(u32, sem.max, SHMQ_SEM_VALUE_MAX));
}

/* --- Blocking --- */

Test(sem, wait_takes_an_available_token_without_sleeping)
{
	sem_new(1, 0, 0);

	cr_assert(eq(int, shmq__sem_wait(&sem, t_deadline_ms(WAIT_TIMEOUT_MS)), 0));
	cr_assert(eq(u64, load_relaxed(&sem.c->sleeps), 0)); /* own counters */
	cr_assert(eq(u32, peek_waiters(), 0));
}

Test(sem, wait_times_out_with_etimedout_near_the_deadline)
{
	uint64_t deadline;
	int r;

	sem_new(0, 0, 0);
	deadline = t_deadline_ms(100);

	r = shmq__sem_wait(&sem, deadline);

	cr_assert(eq(int, r, -ETIMEDOUT));
	cr_assert(ge(u64, shmq__now_ns(), deadline), "returned before the deadline");
	/* Generous: sanitizer builds on a loaded VM. */
	cr_assert(lt(u64, shmq__now_ns() - deadline, UINT64_C(1000000000)), "overslept");
	cr_assert(eq(u32, peek_waiters(), 0), "a timed-out waiter left n_waiters raised");
}

Test(sem, wait_with_a_past_deadline_still_takes_an_available_token)
{
	sem_new(1, 0, 0);

	cr_assert(eq(int, shmq__sem_wait(&sem, 0), 0));
	cr_assert(eq(int, shmq__sem_wait(&sem, 0), -ETIMEDOUT));
	cr_assert(eq(u32, peek_waiters(), 0));
}

Test(sem, a_sleeping_waiter_is_woken_by_a_post_from_another_thread)
{
	struct waiter w[1];

	sem_new(0, 0, 0);
	waiters_start(w, 1, 0, WAIT_TIMEOUT_MS);
	await_waiters(1, WAIT_TIMEOUT_MS);
	sleep_ms(20); /* let it reach FUTEX_WAIT */

	cr_assert(eq(int, shmq__sem_post(&sem, 1), 0));
	await_done(w, 1, 1, WAKE_LATENCY_MAX_MS);
	cr_assert(eq(int, pthread_join(w[0].th, NULL), 0));

	cr_assert(eq(int, w[0].r, 0));
	cr_assert(eq(u64, load_relaxed(&sem.c->wakes), 1)); /* own counters */
	cr_assert(eq(u32, shmq__sem_value(&sem), 0));
	cr_assert(eq(u32, peek_waiters(), 0));
}

Test(sem, post_of_n_wakes_n_sleeping_waiters)
{
	struct waiter w[N_THREADS];

	sem_new(0, 0, 0);
	waiters_start(w, N_THREADS, 0, WAIT_TIMEOUT_MS);
	await_waiters(N_THREADS, WAIT_TIMEOUT_MS);
	sleep_ms(20); /* let them reach FUTEX_WAIT */

	cr_assert(eq(int, shmq__sem_post(&sem, N_THREADS), 0));
	await_done(w, N_THREADS, N_THREADS, WAKE_LATENCY_MAX_MS);
	for (int i = 0; i < N_THREADS; i++) {
		cr_assert(eq(int, pthread_join(w[i].th, NULL), 0));
		cr_assert(eq(int, w[i].r, 0), "waiter %d: %s", i, strerror(-w[i].r));
	}

	cr_assert(eq(u64, load_relaxed(&sem.c->wakes), 1), "one FUTEX_WAKE for all");
	cr_assert(eq(u32, shmq__sem_value(&sem), 0));
	cr_assert(eq(u32, peek_waiters(), 0));
}

Test(sem, post_of_n_wakes_n_waiters_and_leaves_the_others_asleep)
{
	struct waiter w[N_THREADS];

	sem_new(0, 0, 0);
	waiters_start(w, N_THREADS, 0, WAIT_TIMEOUT_MS);
	await_waiters(N_THREADS, WAIT_TIMEOUT_MS);

	cr_assert(eq(int, shmq__sem_post(&sem, 2), 0));
	await_done(w, N_THREADS, 2, WAKE_LATENCY_MAX_MS);
	sleep_ms(20);
	cr_assert(eq(int, n_done(w, N_THREADS), 2), "more waiters than tokens returned");
	cr_assert(eq(u32, peek_waiters(), N_THREADS - 2));

	cr_assert(eq(int, shmq__sem_post(&sem, N_THREADS - 2), 0));
	await_done(w, N_THREADS, N_THREADS, WAKE_LATENCY_MAX_MS);
	for (int i = 0; i < N_THREADS; i++) {
		cr_assert(eq(int, pthread_join(w[i].th, NULL), 0));
		cr_assert(eq(int, w[i].r, 0), "waiter %d: %s", i, strerror(-w[i].r));
	}
	cr_assert(eq(u32, shmq__sem_value(&sem), 0));
}

/* --- Corrupt peers --- */

Test(sem, check_passes_on_a_fresh_semaphore)
{
	sem_new(3, 5, SHMQ_SEM_BOUNDED);

	cr_assert(eq(int, shmq__sem_check(&sem), 0));
}

Test(sem, corrupt_value_fails_check_and_post_returns_eoverflow_instead_of_wrapping)
{
	sem_new(0, 0, 0);
	poke_value(UINT32_MAX);

	cr_assert(eq(int, shmq__sem_check(&sem), -EBADMSG));
	cr_assert(eq(int, shmq__sem_post(&sem, 1), -EOVERFLOW));
	cr_assert(eq(u32, shmq__sem_value(&sem), UINT32_MAX), "post wrote a corrupt value");
}

Test(sem, bounded_value_above_max_fails_check_and_post)
{
	sem_new(0, 4, SHMQ_SEM_BOUNDED);
	poke_value(5);

	cr_assert(eq(int, shmq__sem_check(&sem), -EBADMSG));
	cr_assert(eq(int, shmq__sem_post(&sem, 1), -EOVERFLOW));
	cr_assert(eq(u32, shmq__sem_value(&sem), 5));
}

Test(sem, corrupt_value_never_makes_a_take_wrap_below_zero)
{
	sem_new(0, 0, 0);
	poke_value(1);

	cr_assert(eq(int, shmq__sem_try_wait(&sem), 0));
	cr_assert(eq(int, shmq__sem_try_wait(&sem), -EAGAIN));
	cr_assert(eq(u32, shmq__sem_value(&sem), 0));
}

Test(sem, implausible_waiter_count_fails_check)
{
	sem_new(0, 0, 0);
	poke_waiters(SHMQ_SEM_WAITERS_PLAUSIBLE);

	cr_assert(eq(int, shmq__sem_check(&sem), -EBADMSG));
}

Test(sem, huge_waiter_count_costs_one_harmless_wake_and_the_post_still_lands)
{
	sem_new(0, 0, 0);
	poke_waiters(UINT32_MAX);

	cr_assert(eq(int, shmq__sem_post(&sem, 1), 0));
	cr_assert(eq(u64, load_relaxed(&sem.c->wakes), 1)); /* own counters */
	cr_assert(eq(int, shmq__sem_try_wait(&sem), 0));
}

Test(sem, zeroed_waiter_count_delays_a_sleeper_only_until_its_deadline)
{
	struct waiter w[1];

	sem_new(0, 0, 0);
	waiters_start(w, 1, 0, 300);
	await_waiters(1, WAIT_TIMEOUT_MS);
	poke_waiters(0); /* the peer hides the sleeper from posters */
	sleep_ms(20);

	cr_assert(eq(int, shmq__sem_post(&sem, 1), 0));
	cr_assert(eq(int, pthread_join(w[0].th, NULL), 0));

	/* Either it saw the token before sleeping, or it timed out and took it then. */
	cr_assert(eq(int, w[0].r, 0));
	cr_assert(eq(u32, shmq__sem_value(&sem), 0));
}

/* --- Threads: the mutex test (run under TSan) --- */

struct mutex_worker {
	pthread_t th;
	struct shmq_sem h;
	uint64_t *counter; /* plain memory, protected by the semaphore */
	int r;		   /* first failure, or 0 */
	uint32_t failed_round;
};

static void *mutex_worker_main(void *arg)
{
	struct mutex_worker *m = arg;

	for (uint32_t i = 0; i < MUTEX_ROUNDS; i++) {
		uint64_t deadline = t_deadline_ms(WAIT_TIMEOUT_MS);
		int r = shmq__sem_wait(&m->h, deadline);

		if (r == 0) {
			bool lost_wake = shmq__now_ns() >= deadline;

			(*m->counter)++; /* TSan reports a race if the sem fails to order this */
			r = shmq__sem_post(&m->h, 1);
			if (r == 0 && lost_wake)
				r = -ETIMEDOUT; /* the token came only with the deadline */
		}
		if (r < 0) {
			m->r = r;
			m->failed_round = i;
			break;
		}
	}
	return NULL;
}

Test(sem, four_threads_using_the_semaphore_as_a_mutex_keep_a_plain_counter_exact)
{
	struct mutex_worker m[N_THREADS];
	uint64_t counter = 0;

	sem_new(1, 1, SHMQ_SEM_BOUNDED);

	for (int i = 0; i < N_THREADS; i++) {
		m[i] = (struct mutex_worker){.counter = &counter};
		cr_assert(eq(int, shmq__sem_attach(&m[i].h, &fx.seg, UINT32_MAX), 0));
		/* Half the threads sleep at once, so the futex path carries hand-offs. */
		m[i].h.spin_ns = i % 2 ? SHMQ_SEM_SPIN_NS_DEFAULT : 0;
	}
	for (int i = 0; i < N_THREADS; i++)
		cr_assert(eq(int, pthread_create(&m[i].th, NULL, mutex_worker_main, &m[i]), 0));
	for (int i = 0; i < N_THREADS; i++)
		cr_assert(eq(int, pthread_join(m[i].th, NULL), 0));

	for (int i = 0; i < N_THREADS; i++)
		cr_assert(eq(int, m[i].r, 0), "thread %d failed in round %u: %s", i,
			  m[i].failed_round, strerror(-m[i].r));
	cr_assert(eq(u64, counter, (uint64_t)N_THREADS * MUTEX_ROUNDS));
	cr_assert(eq(u32, shmq__sem_value(&sem), 1));
	cr_assert(eq(u32, peek_waiters(), 0));
	cr_assert(eq(int, shmq__sem_check(&sem), 0));
}

/* --- Undo semaphores: the journal in the word (U1..U5) --- */

/*
 * A session's handle (record @idx) on an undo semaphore of @initial tokens,
 * and the daemon's handle without a record, as shmqd attaches it.
 */
static void undo_new(uint32_t initial, struct shmq_sem *mine, uint32_t *idx,
		     struct shmq_sem *daemon)
{
	int r;

	t_seg_new_sem(&fx, initial, 0, SHMQ_SEM_UNDO);
	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_SEM, 1, 0, idx), 0));
	r = shmq__sem_attach(mine, &fx.seg, *idx);
	cr_assert(eq(int, r, 0), "sem_attach: %s", strerror(-r));
	cr_assert(eq(int, shmq__sem_attach(daemon, &fx.seg, UINT32_MAX), 0));
}

Test(sem, undo_counts_what_a_session_holds_and_the_word_carries_no_owner_at_rest)
{
	struct shmq_sem mine, daemon;
	struct shmq_session_shm *rec;
	uint32_t idx, posted;

	undo_new(3, &mine, &idx, &daemon);
	rec = shmq__session_at(&fx.seg, idx);
	cr_assert(eq(int, shmq__sem_try_wait(&mine), 0));
	cr_assert(eq(int, shmq__sem_wait(&mine, t_deadline_ms(WAIT_TIMEOUT_MS)), 0));
	cr_assert(eq(u32, load_relaxed(&rec->k.sem.holds), 2));
	cr_assert(eq(u32, load_relaxed(&shm()->value), 1), "no owner left in the word");
	cr_assert(eq(int, shmq__sem_post(&mine, 1), 0));
	cr_assert(eq(u32, load_relaxed(&rec->k.sem.holds), 1));
	cr_assert(eq(u32, shmq__sem_value(&mine), 2));
	/* The process dies holding one: the daemon posts exactly that one back. */
	cr_assert(eq(int, shmq__sem_undo(&daemon, rec, idx, &posted), 0));
	cr_assert(eq(u32, posted, 1));
	cr_assert(eq(u32, shmq__sem_value(&daemon), 3));
	cr_assert(eq(u32, load_relaxed(&rec->k.sem.holds), 0));
	cr_assert(eq(int, shmq__sem_check(&daemon), 0));
}

/* A death at each instruction of a take and of a post, rebuilt by hand. */
Test(sem, undo_is_exact_whatever_instruction_the_holder_dies_at)
{
	struct {
		const char *at;
		uint32_t holds, pending, value; /* the state the dead process left */
		bool tagged;			/* the word carries its tag (U2 done, U4 not) */
		uint32_t expect_posted;
	} cuts[] = {
		/* a take with 2 held before it, value 5 before it */
		{"take, before U1", 2, 0, 5, false, 2},
		{"take, U1 done", 2, 3, 5, false, 2},
		{"take, U2 done", 2, 3, 4, true, 3},
		{"take, U3 done", 3, 3, 4, true, 3},
		{"take, U4 done", 3, 3, 4, false, 3},
		/* a post of 2 with 3 held before it, value 4 before it */
		{"post, U1 done", 3, 1, 4, false, 3},
		{"post, U2 done", 3, 1, 6, true, 1},
		{"post, U3 done", 1, 1, 6, true, 1},
		{"post, U4 done", 1, 1, 6, false, 1},
	};

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		struct shmq_sem mine, daemon;
		struct shmq_session_shm *rec;
		uint32_t idx, posted, tag;

		undo_new(0, &mine, &idx, &daemon);
		rec = shmq__session_at(&fx.seg, idx);
		tag = (idx + 1) << SHMQ_SEM_UNDO_OWNER_SHIFT;
		store_relaxed(&rec->k.sem.holds, cuts[i].holds);
		store_relaxed(&rec->k.sem.pending, cuts[i].pending);
		store_relaxed(&shm()->value, cuts[i].value | (cuts[i].tagged ? tag : 0));
		if (cuts[i].tagged)
			cr_assert(eq(int, shmq__sem_try_wait(&daemon), -EAGAIN),
				  "%s: a take went past an operation in flight", cuts[i].at);
		cr_assert(eq(int, shmq__sem_undo(&daemon, rec, idx, &posted), 0), "%s", cuts[i].at);
		cr_assert(eq(u32, posted, cuts[i].expect_posted), "%s: posted %u", cuts[i].at,
			  posted);
		cr_assert(eq(u32, load_relaxed(&shm()->value), cuts[i].value + posted),
			  "%s: the tag was not cleared, or the post is wrong", cuts[i].at);
		t_seg_free(&fx);
	}
}

Test(sem, undo_of_one_session_keeps_another_sessions_operation_in_flight)
{
	struct shmq_sem mine, other, daemon;
	struct shmq_session_shm *rec;
	uint32_t idx, oidx, posted, otag;

	undo_new(1, &mine, &idx, &daemon);
	cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_SEM, 2, 0, &oidx), 0));
	cr_assert(eq(int, shmq__sem_attach(&other, &fx.seg, oidx), 0));
	rec = shmq__session_at(&fx.seg, idx);
	cr_assert(eq(int, shmq__sem_try_wait(&mine), 0));
	/* The other session is between U2 and U4 of a post of 1. */
	otag = (oidx + 1) << SHMQ_SEM_UNDO_OWNER_SHIFT;
	store_relaxed(&shm()->value, 1 | otag);
	cr_assert(eq(int, shmq__sem_undo(&daemon, rec, idx, &posted), 0));
	cr_assert(eq(u32, posted, 1));
	cr_assert(eq(u32, load_relaxed(&shm()->value), 2 | otag), "the other's tag must stay");
	t_seg_free(&fx);
}

Test(sem, undo_limits_and_a_corrupt_owner_field_are_checked)
{
	struct shmq_sem mine, daemon;
	uint32_t idx;

	undo_new(0, &mine, &idx, &daemon);
	cr_assert(eq(int, shmq__sem_post(&mine, SHMQ_SEM_UNDO_VALUE_MAX), 0));
	cr_assert(eq(int, shmq__sem_post(&mine, 1), -EOVERFLOW), "past the undo value limit");
	store_relaxed(&shm()->value, 1u | (1000u << SHMQ_SEM_UNDO_OWNER_SHIFT));
	cr_assert(eq(int, shmq__sem_check(&daemon), -EBADMSG), "an owner past the records");
	store_relaxed(&shm()->value, 1u | (UINT32_C(1) << 31));
	cr_assert(eq(int, shmq__sem_check(&daemon), -EBADMSG), "bit 31");
	t_seg_free(&fx);
}

/* Threads sharing one undo handle (one record), and others with their own. */
struct undo_worker {
	pthread_t th;
	struct shmq_sem *h;
	uint64_t *counter; /* plain memory, protected by the semaphore */
	int r;
};

static void *undo_worker_main(void *arg)
{
	struct undo_worker *u = arg;

	for (uint32_t i = 0; i < MUTEX_ROUNDS / 4; i++) {
		int r = shmq__sem_wait(u->h, t_deadline_ms(WAIT_TIMEOUT_MS));

		if (r == 0) {
			(*u->counter)++; /* TSan reports a race if the sem fails to order this */
			r = shmq__sem_post(u->h, 1);
		}
		if (r < 0) {
			u->r = r;
			break;
		}
	}
	return NULL;
}

Test(sem, threads_sharing_an_undo_handle_keep_its_hold_count_exact)
{
	struct shmq_sem shared, own[2], daemon;
	struct undo_worker u[N_THREADS + 2];
	uint64_t counter = 0;
	uint32_t idx, oidx[2];

	undo_new(1, &shared, &idx, &daemon);
	for (int i = 0; i < 2; i++) {
		cr_assert(eq(int, shmq__session_claim(&fx.seg, SHMQ_ROLE_SEM, 1, 0, &oidx[i]), 0));
		cr_assert(eq(int, shmq__sem_attach(&own[i], &fx.seg, oidx[i]), 0));
		own[i].spin_ns = 0;
	}
	for (int i = 0; i < N_THREADS + 2; i++) {
		u[i] = (struct undo_worker){.h = i < N_THREADS ? &shared : &own[i - N_THREADS],
					    .counter = &counter};
		cr_assert(eq(int, pthread_create(&u[i].th, NULL, undo_worker_main, &u[i]), 0));
	}
	for (int i = 0; i < N_THREADS + 2; i++)
		cr_assert(eq(int, pthread_join(u[i].th, NULL), 0));
	for (int i = 0; i < N_THREADS + 2; i++)
		cr_assert(eq(int, u[i].r, 0), "thread %d: %s", i, strerror(-u[i].r));
	cr_assert(eq(u64, counter, (uint64_t)(N_THREADS + 2) * (MUTEX_ROUNDS / 4)));
	cr_assert(eq(u32, load_relaxed(&shmq__session_at(&fx.seg, idx)->k.sem.holds), 0));
	cr_assert(eq(u32, load_relaxed(&shmq__session_at(&fx.seg, oidx[0])->k.sem.holds), 0));
	cr_assert(eq(u32, load_relaxed(&shm()->value), 1), "a token, and no owner left");
	cr_assert(eq(int, shmq__sem_check(&daemon), 0));
	t_seg_free(&fx);
}
