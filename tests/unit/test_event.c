/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for shm/event.c: set, clear and wait in one process, threads
 * for the wake-ups (TSan checks the set -> wait ordering), and a peer that
 * scribbles on the word.  Across processes: tests/integration/test_event.c.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "shm/atomic.h"
#include "shm/event.h"
#include "shm/eventcount.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "tests/helpers.h"

#define WAIT_MS	  5000 /* the deadline of every wait that should succeed */
#define N_THREADS 4

static struct t_seg fx;
static struct shmq_event ev;

static void event_new(uint32_t initial)
{
	t_seg_new_event(&fx, initial);
	cr_assert(eq(int, shmq__event_attach(&ev, &fx.seg, UINT32_MAX), 0));
}

static void teardown(void)
{
	t_seg_free(&fx);
}

TestSuite(event, .fini = teardown, .timeout = 20);

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static struct shmq_event_shm *shm(void)
{
	return fx.seg.object;
}

Test(event, starts_clear_or_set_as_created)
{
	event_new(0);
	cr_assert(not(shmq__event_is_set(&ev)));
	t_seg_free(&fx);
	event_new(1);
	cr_assert(shmq__event_is_set(&ev));
}

Test(event, set_and_clear_report_whether_they_changed_the_flag)
{
	event_new(0);
	cr_assert(eq(int, shmq__event_set(&ev), 1));
	cr_assert(eq(int, shmq__event_set(&ev), 0));
	cr_assert(shmq__event_is_set(&ev));
	cr_assert(eq(int, shmq__event_clear(&ev), 1));
	cr_assert(eq(int, shmq__event_clear(&ev), 0));
	cr_assert(not(shmq__event_is_set(&ev)));
}

Test(event, every_set_moves_the_generation_and_a_clear_keeps_it)
{
	uint32_t g0;

	event_new(0);
	g0 = load_relaxed(&shm()->state) >> 1;
	shmq__event_set(&ev);
	shmq__event_clear(&ev);
	cr_assert(eq(u32, load_relaxed(&shm()->state) >> 1, g0 + 1));
	shmq__event_set(&ev);
	cr_assert(eq(u32, load_relaxed(&shm()->state), ((g0 + 2) << 1) | SHMQ_EVENT_SET));
}

Test(event, wait_returns_at_once_when_set_and_times_out_when_clear)
{
	uint64_t t0;

	event_new(1);
	cr_assert(eq(int, shmq__event_wait(&ev, t_deadline_ms(0)), 0));
	shmq__event_clear(&ev);
	cr_assert(eq(int, shmq__event_wait(&ev, 0), -ETIMEDOUT), "a past deadline looks once");
	ev.spin_ns = 0;
	t0 = shmq__now_ns();
	cr_assert(eq(int, shmq__event_wait(&ev, t_deadline_ms(50)), -ETIMEDOUT));
	cr_assert(ge(u64, shmq__now_ns() - t0, UINT64_C(50) * 1000000 - 1000000));
}

struct waiter {
	pthread_t t;
	struct shmq_event h; /* one handle per thread, as processes would have */
	int r;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->r = shmq__event_wait(&w->h, t_deadline_ms(WAIT_MS));
	return NULL;
}

static void start_waiters(struct waiter *w, int n)
{
	for (int i = 0; i < n; i++) {
		cr_assert(eq(int, shmq__event_attach(&w[i].h, &fx.seg, UINT32_MAX), 0));
		w[i].h.spin_ns = 0; /* sleep in the kernel at once */
		cr_assert(eq(int, pthread_create(&w[i].t, NULL, wait_thread, &w[i]), 0));
	}
}

/* Until every waiter has counted its sleep (it read the state before), bounded. */
static void wait_asleep(struct waiter *w, int n)
{
	uint64_t end = shmq__deadline_after_ns(UINT64_C(2) * 1000000000);

	for (int i = 0; i < n; i++)
		while (!load_relaxed(&w[i].h.private_counters.sleeps) && shmq__now_ns() < end)
			sleep_ms(1);
	sleep_ms(5); /* into FUTEX_WAIT, past the announcement */
}

Test(event, one_set_wakes_every_sleeping_waiter)
{
	struct waiter w[N_THREADS];

	event_new(0);
	start_waiters(w, N_THREADS);
	wait_asleep(w, N_THREADS);
	cr_assert(eq(int, shmq__event_set(&ev), 1));
	for (int i = 0; i < N_THREADS; i++) {
		pthread_join(w[i].t, NULL);
		cr_assert(eq(int, w[i].r, 0), "waiter %d: %s", i, strerror(-w[i].r));
	}
}

Test(event, a_set_cleared_at_once_still_wakes_the_waiters_that_slept_through_it)
{
	struct waiter w[N_THREADS];

	event_new(0);
	start_waiters(w, N_THREADS);
	wait_asleep(w, N_THREADS);
	shmq__event_set(&ev);
	shmq__event_clear(&ev); /* before any waiter could look at the flag */
	for (int i = 0; i < N_THREADS; i++) {
		pthread_join(w[i].t, NULL);
		cr_assert(eq(int, w[i].r, 0), "waiter %d missed the set: %s", i, strerror(-w[i].r));
	}
	cr_assert(not(shmq__event_is_set(&ev)));
}

Test(event, a_set_with_nobody_asleep_enters_no_kernel)
{
	event_new(0);
	shmq__event_set(&ev);
	cr_assert(eq(u64, load_relaxed(&ev.c->wakes), 0), "a FUTEX_WAKE for nobody");
}

Test(event, a_scribbled_word_is_just_some_flag_and_generation)
{
	event_new(0);
	store_relaxed(&shm()->state, UINT32_MAX); /* a hostile peer: set, top generation */
	cr_assert(shmq__event_is_set(&ev));
	cr_assert(eq(int, shmq__event_wait(&ev, t_deadline_ms(WAIT_MS)), 0));
	cr_assert(eq(int, shmq__event_clear(&ev), 1));
	cr_assert(eq(int, shmq__event_set(&ev), 1), "the generation wraps");
	store_relaxed(&shm()->ec, UINT32_MAX); /* a forged sleeper bit: one spare wake */
	shmq__event_clear(&ev);
	cr_assert(eq(int, shmq__event_set(&ev), 1));
	cr_assert(eq(int, shmq__kind_event.check(&fx.seg, true), 0));
}

Test(event, the_kind_refuses_a_bad_geometry)
{
	union shmq_geom g = {.event = {.initial = 2}};

	cr_assert(eq(int, shmq__kind_event.geom_check(&g, false), -EINVAL));
	g.event.initial = 1;
	g.event.reserved[3] = 1;
	cr_assert(eq(int, shmq__kind_event.geom_check(&g, false), -EINVAL));
	g.event.reserved[3] = 0;
	cr_assert(eq(int, shmq__kind_event.geom_check(&g, false), 0));
	cr_assert(shmq__kind(SHMQ_KIND_EVENT) == &shmq__kind_event);
	cr_assert(shmq__kind(SHMQ_KIND_LIMIT) == NULL);
	cr_assert(shmq__kind(0) == NULL);
}

Test(event, a_sleeper_bit_left_by_a_dead_session_is_cleared_by_the_repair)
{
	struct shmq_kind_repair rep = {0};
	bool bounded;

	event_new(0);
	(void)shmq__ec_prepare(&shm()->ec, &ev.fence,
			       &bounded); /* a sleeper that will never wake up */
	cr_assert(load_relaxed(&shm()->ec) & SHMQ_EC_WAITERS);
	cr_assert(eq(int, shmq__kind_event.repair(&fx.seg, 0, &rep), 1));
	cr_assert(eq(u32, rep.woken, 1));
	cr_assert(not(load_relaxed(&shm()->ec) & SHMQ_EC_WAITERS));
}
