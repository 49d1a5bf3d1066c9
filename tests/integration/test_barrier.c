/* SPDX-License-Identifier: MIT */
/*
 * Integration: barriers between processes through a real shmqd -- three
 * processes cycling with distinct arrival indices, a party SIGKILLed while
 * waiting (the daemon breaks the barrier; the others get -EPIPE, never a
 * hang), reset and the fresh start once nobody has it open, a timeout in
 * one process breaking it for another, the refusals, an asynchronous
 * arrival through the poller, and an await in slices with its cancel.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define WAIT_MS	  10000
#define N_PARTIES 3
#define N_CYCLES  200

static struct t_daemon d;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(barrier, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 60);

static uint64_t deadline_ms(uint64_t ms)
{
	return shmq_deadline_after(ms * 1000000);
}

struct shared {
	const char *sock;
	_Atomic int state;			  /* children: 1 about to wait */
	int result;				  /* a child's first failing result */
	_Atomic uint32_t seen[N_PARTIES];	  /* arrival indices handed out */
	_Atomic uint32_t cycle_of[N_PARTIES + 1]; /* each party's cycle, to check ordering */
	_Atomic uint32_t bad;			  /* a party behind after a cycle */
};

static struct shmq_barrier *barrier_new(struct shmq_client *c, const char *name, uint32_t n)
{
	struct shmq_barrier_attr a = {.size = sizeof(a), .parties = n};
	struct shmq_barrier *b;

	T_OK(shmq_barrier_open(c, name, SHMQ_CREATE | SHMQ_EXCL, &a, &b));
	return b;
}

/* One party's N_CYCLES cycles, as party @me. */
static int cycles(struct shared *s, struct shmq_barrier *b, uint32_t me)
{
	for (uint32_t cycle = 1; cycle <= N_CYCLES; cycle++) {
		int r;

		atomic_store_explicit(&s->cycle_of[me], cycle, memory_order_relaxed);
		r = shmq_barrier_wait(b, deadline_ms(WAIT_MS));
		if (r < 0 || r >= N_PARTIES)
			return r < 0 ? r : -ERANGE;
		atomic_fetch_add(&s->seen[r], 1);
		for (uint32_t i = 0; i < N_PARTIES; i++)
			if (atomic_load_explicit(&s->cycle_of[i], memory_order_relaxed) < cycle)
				atomic_fetch_add(&s->bad, 1);
		r = shmq_barrier_wait(b, deadline_ms(WAIT_MS)); /* nobody runs ahead */
		if (r < 0)
			return r;
	}
	return 0;
}

struct party_arg {
	struct shared *s;
	uint32_t me;
};

static int child_cycles(void *arg)
{
	struct party_arg *p = arg;
	struct shmq_client *c;
	struct shmq_barrier *b;
	int r;

	if (shmq_client_connect(p->s->sock, &c) || shmq_barrier_open(c, "b", 0, NULL, &b))
		return 1;
	r = cycles(p->s, b, p->me);
	if (r < 0) {
		p->s->result = r;
		return 2;
	}
	return shmq_barrier_close(b) || shmq_client_close(c) ? 3 : 0;
}

Test(barrier, three_processes_cycle_with_distinct_indices)
{
	struct shared *s = t_shared_alloc(sizeof(*s));
	struct party_arg *pa = t_shared_alloc(2 * sizeof(*pa));
	struct shmq_client *c = t_connect(&d);
	struct shmq_barrier *b = barrier_new(c, "b", N_PARTIES);
	pid_t pid[2];

	*s = (struct shared){.sock = d.sock};
	cr_assert(eq(int, shmq_barrier_parties(b), N_PARTIES));
	for (int i = 0; i < 2; i++) {
		pa[i] = (struct party_arg){.s = s, .me = (uint32_t)i + 1};
		pid[i] = t_fork_child(child_cycles, &pa[i]);
	}
	T_OK(cycles(s, b, 0));
	for (int i = 0; i < 2; i++)
		cr_assert(eq(int, t_wait_peer_ms(pid[i], WAIT_MS), 0), "child: %d", s->result);
	for (int i = 0; i < N_PARTIES; i++)
		cr_assert(eq(u32, atomic_load(&s->seen[i]), N_CYCLES), "index %d", i);
	cr_assert(eq(u32, atomic_load(&s->bad), 0));
	T_OK(shmq_barrier_close(b));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* Child: arrive and wait forever; it will be killed asleep. */
static int child_arrive(void *arg)
{
	struct shared *s = arg;
	struct shmq_client *c;
	struct shmq_barrier *b;

	if (shmq_client_connect(s->sock, &c) || shmq_barrier_open(c, "b", 0, NULL, &b))
		return 1;
	atomic_store(&s->state, 1);
	s->result = shmq_barrier_wait(b, SHMQ_FOREVER);
	return 2;
}

static void wait_arrived(struct shmq_barrier *b, int want)
{
	uint64_t deadline = t_now_ns() + UINT64_C(5) * 1000000000;

	while (shmq_barrier_n_waiting(b) < want && t_now_ns() < deadline)
		t_sleep_ms(1);
	cr_assert(eq(int, shmq_barrier_n_waiting(b), want));
}

Test(barrier, a_party_killed_waiting_breaks_it_and_nobody_hangs)
{
	struct shared *s = t_shared_alloc(sizeof(*s));
	struct shmq_client *c = t_connect(&d);
	struct shmq_barrier *b = barrier_new(c, "b", 3), *again;
	char log[16384];
	pid_t pid;

	*s = (struct shared){.sock = d.sock, .result = 99};
	pid = t_fork_child(child_arrive, s);
	wait_arrived(b, 1);
	kill(pid, SIGKILL);
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 128 + SIGKILL));
	/* the daemon breaks it: our wait fails at once instead of waiting for the dead */
	{
		uint64_t deadline = t_now_ns() + UINT64_C(5) * 1000000000;

		while (!shmq_barrier_is_broken(b) && t_now_ns() < deadline)
			t_sleep_ms(1);
	}
	cr_assert(eq(int, shmq_barrier_is_broken(b), 1));
	T_ERR(shmq_barrier_wait(b, deadline_ms(WAIT_MS)), -EPIPE);
	t_daemon_read_log(&d, log, sizeof(log));
	cr_assert(strstr(log, "barrier 'b': party pid") != NULL, "%s", log);
	T_OK(shmq_barrier_reset(b));
	cr_assert(eq(int, shmq_barrier_is_broken(b), 0));
	/* broken again, and then nobody has it open: the next users start afresh */
	T_OK(shmq_barrier_abort(b));
	T_OK(shmq_barrier_close(b));
	T_OK(shmq_barrier_open(c, "b", 0, NULL, &again));
	cr_assert(eq(int, shmq_barrier_is_broken(again), 0));
	T_OK(shmq_barrier_close(again));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* Child: arrive with a short deadline: it times out and breaks the cycle. */
static int child_time_out(void *arg)
{
	struct shared *s = arg;
	struct shmq_client *c;
	struct shmq_barrier *b;

	if (shmq_client_connect(s->sock, &c) || shmq_barrier_open(c, "b", 0, NULL, &b))
		return 1;
	s->result = shmq_barrier_wait(b, deadline_ms(50));
	return s->result == -ETIMEDOUT ? 0 : 2;
}

Test(barrier, a_timeout_in_one_process_breaks_the_cycle_for_another)
{
	struct shared *s = t_shared_alloc(sizeof(*s));
	struct shmq_client *c = t_connect(&d);
	struct shmq_barrier *b = barrier_new(c, "b", 3);
	pid_t pid;

	*s = (struct shared){.sock = d.sock, .result = 99};
	pid = t_fork_child(child_time_out, s);
	/* we arrive first or second; either way the child's deadline breaks the cycle */
	T_ERR(shmq_barrier_wait(b, deadline_ms(WAIT_MS)), -EPIPE);
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 0), "child: %d", s->result);
	T_OK(shmq_barrier_close(b));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(barrier, the_refusals_and_what_a_view_may_do)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_barrier_attr a = {.size = sizeof(a), .parties = 0};
	struct shmq_object_info info = {.size = sizeof(info)};
	struct shmq_barrier *b, *v;
	struct shmq_waiter *w;

	T_ERR(shmq_barrier_open(c, "b", SHMQ_CREATE, NULL, &b), -EINVAL);
	T_ERR(shmq_barrier_open(c, "b", SHMQ_CREATE, &a, &b), -EINVAL);
	a.parties = SHMQ_BARRIER_PARTIES_LIMIT + 1;
	T_ERR(shmq_barrier_open(c, "b", SHMQ_CREATE, &a, &b), -EINVAL);
	T_ERR(shmq_barrier_open(c, "b", 0, NULL, &b), -ENOENT);
	b = barrier_new(c, "b", 2);
	T_OK(shmq_object_stat(c, "b", &info));
	cr_assert(eq(u32, info.kind, SHMQ_OBJECT_BARRIER));
	cr_assert(eq(u32, info.barrier_parties, 2));
	T_OK(shmq_barrier_open(c, "b", SHMQ_VIEW, NULL, &v));
	cr_assert(eq(int, shmq_barrier_parties(v), 2));
	cr_assert(eq(int, shmq_barrier_n_waiting(v), 0));
	T_ERR(shmq_barrier_wait(v, deadline_ms(10)), -EBADF);
	T_ERR(shmq_barrier_abort(v), -EBADF);
	T_ERR(shmq_barrier_reset(v), -EBADF);
	T_ERR(shmq_waiter_new(shmq_barrier_object(b), SHMQ_POLL_SEND, &w), -EINVAL);
	T_ERR(shmq_waiter_new(shmq_barrier_object(v), SHMQ_POLL_RECV, &w), -EBADF);
	T_ERR(shmq_barrier_arrive(v), -EBADF);
	T_ERR(shmq_barrier_wait(b, 0), -ETIMEDOUT); /* a past deadline: one look, and broken */
	cr_assert(eq(int, shmq_barrier_is_broken(v), 1));
	T_OK(shmq_barrier_close(v));
	T_OK(shmq_barrier_close(b));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* Child: one blocking wait on the barrier. */
static int child_wait_once(void *arg)
{
	struct shared *s = arg;
	struct shmq_client *c;
	struct shmq_barrier *b;

	if (shmq_client_connect(s->sock, &c) || shmq_barrier_open(c, "b", 0, NULL, &b))
		return 1;
	t_sleep_ms(50); /* the parent's poller is asleep by now */
	s->result = shmq_barrier_wait(b, deadline_ms(WAIT_MS));
	return s->result == 1 && !shmq_barrier_close(b) && !shmq_client_close(c) ? 0 : 2;
}

static int on_ended(struct shmq_watch *w, int events, void *arg)
{
	int *seen = arg;

	(void)w;
	*seen = events;
	return -ECANCELED;
}

Test(barrier, an_asynchronous_arrival_through_the_poller_learns_its_index)
{
	struct shared *s = t_shared_alloc(sizeof(*s));
	struct shmq_client *c = t_connect(&d);
	struct shmq_barrier *b = barrier_new(c, "b", 2);
	struct shmq_poller *pl;
	struct shmq_watch *wt;
	int seen = 0;
	pid_t pid;

	*s = (struct shared){.sock = d.sock, .result = 99};
	T_ERR(shmq_barrier_arrive(b), -EINPROGRESS);
	T_ERR(shmq_barrier_arrival(b), -EAGAIN);
	pid = t_fork_child(child_wait_once, s);
	T_OK(shmq_poller_new(0, &pl));
	T_OK(shmq_poller_add(pl, shmq_barrier_object(b), SHMQ_POLL_RECV, on_ended, &seen, &wt));
	T_ERR(shmq_poller_run(pl), -ECANCELED);
	cr_assert(eq(int, seen, SHMQ_POLL_RECV));
	T_OK(shmq_barrier_arrival(b)); /* the first to arrive: index 0 */
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 0), "child: %d", s->result);
	shmq_watch_free(wt);
	shmq_poller_free(pl);
	T_OK(shmq_barrier_close(b));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(barrier, an_await_in_slices_breaks_nothing_and_a_cancel_breaks_only_its_own_cycle)
{
	struct shared *s = t_shared_alloc(sizeof(*s));
	struct shmq_client *c = t_connect(&d);
	struct shmq_barrier *b = barrier_new(c, "b", 2);
	pid_t pid;

	*s = (struct shared){.sock = d.sock, .result = 99};
	T_ERR(shmq_barrier_await(b, deadline_ms(10)), -EINVAL); /* nothing pending */
	T_ERR(shmq_barrier_cancel(b), -EINVAL);
	T_ERR(shmq_barrier_arrive(b), -EINPROGRESS);
	T_ERR(shmq_barrier_await(b, deadline_ms(20)), -ETIMEDOUT);
	T_ERR(shmq_barrier_await(b, 0), -EAGAIN);
	cr_assert(eq(int, shmq_barrier_is_broken(b), 0), "a slice that ended broke nothing");
	cr_assert(eq(int, shmq_barrier_n_waiting(b), 1));
	pid = t_fork_child(child_wait_once, s);
	T_OK(shmq_barrier_await(b, deadline_ms(WAIT_MS))); /* index 0: the first to arrive */
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 0), "child: %d", s->result);
	T_ERR(shmq_barrier_arrival(b), -EINVAL); /* the await ended the arrival */

	/* released before the cancel: the cancel says so and breaks nothing */
	T_ERR(shmq_barrier_arrive(b), -EINPROGRESS);
	s->result = 99;
	pid = t_fork_child(child_wait_once, s);
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 0), "child: %d", s->result);
	T_OK(shmq_barrier_cancel(b));
	cr_assert(eq(int, shmq_barrier_is_broken(b), 0), "the next cycle is not broken");

	/* not released: the cancel breaks the cycle, as a timeout would */
	T_ERR(shmq_barrier_arrive(b), -EINPROGRESS);
	T_ERR(shmq_barrier_cancel(b), -EPIPE);
	cr_assert(eq(int, shmq_barrier_is_broken(b), 1));
	T_ERR(shmq_barrier_arrival(b), -EINVAL);
	T_OK(shmq_barrier_reset(b));
	T_OK(shmq_barrier_close(b));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}
