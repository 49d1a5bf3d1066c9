/* SPDX-License-Identifier: MIT */
/*
 * Integration: the poller (libclient/poller.c) against a real shmqd --
 * many objects in one loop, futures that deliver messages and tokens,
 * deadlines, cancellation, wait-for-first and wait-for-all, a queue
 * unlinked under pending waits, and peers killed while we wait.
 *
 * `make test` runs this suite twice: as the kernel allows, and with
 * SHMQ_URING_FUTEX=0 (the helper-thread backend).  Every run call has a
 * deadline, so a lost wake-up fails a test instead of hanging it.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define RUN_MS	 5000 /* every run call's deadline */
#define REAP_MS	 5000 /* the daemon notices a death within this */
#define N_QUEUES 32
#define EARLY_NS UINT64_C(1000000) /* clock slack for "not before the deadline" */

static struct t_daemon d;
static struct shmq_client *c;
static struct shmq_poller *p;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
	c = t_connect(&d);
	T_OK(shmq_poller_new(0, &p));
}

static void teardown(void)
{
	t_daemon_cleanup_all();
}

TestSuite(async_poller, .init = setup, .fini = teardown, .timeout = 60);

/* Success path: free the poller, close the client, stop the daemon. */
static void finish(void)
{
	shmq_poller_free(p);
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

static struct shmq_queue *queue(const char *name, unsigned int flags, uint32_t mode)
{
	struct shmq_queue_attr a = {
		.size = sizeof(a), .n_slots = 8, .slot_size = 64, .mode = mode, .numa_node = -1};
	struct shmq_queue *q;

	T_OK(shmq_queue_open(c, name, SHMQ_CREATE | flags, &a, &q));
	return q;
}

static struct shmq_sem *sem(const char *name, uint32_t initial, uint32_t flags)
{
	struct shmq_sem_attr a = {.size = sizeof(a), .initial = initial, .flags = flags};
	struct shmq_sem *s;

	T_OK(shmq_sem_open(c, name, SHMQ_CREATE, &a, &s));
	return s;
}

static int expected_backend(void)
{
	const char *e = getenv("SHMQ_URING_FUTEX");

	return e && !strcmp(e, "0") ? SHMQ_BACKEND_HELPER_THREAD : SHMQ_BACKEND_URING_FUTEX;
}

/* Run the loop until *@flag is set, bounded by RUN_MS. */
static void run_until(const bool *flag)
{
	uint64_t deadline = t_deadline_ms(RUN_MS);

	while (!*flag) {
		int r = shmq_poller_run_once(p, deadline);

		cr_assert(ge(int, r, 0), "run_once: %s", strerror(-r));
		cr_assert(lt(u64, t_now_ns(), deadline), "nothing happened within %d ms", RUN_MS);
	}
}

/* Run until @f is done; returns its result. */
static int run_future(struct shmq_future *f)
{
	int r = shmq_poller_wait(p, &f, 1, SHMQ_WAIT_ALL, t_deadline_ms(RUN_MS));

	cr_assert(eq(int, r, 1), "future not done within %d ms: %s", RUN_MS, strerror(-r));
	return shmq_future_result(f);
}

/* --- Peers --- */

struct peer {
	const char *sock;
	char name[32];
	unsigned int delay_ms;
	unsigned int n;
	int pipe_fd;
};

static struct peer *peer_new(const char *name, unsigned int delay_ms)
{
	struct peer *pe = t_shared_alloc(sizeof(*pe));

	pe->sock = d.sock;
	snprintf(pe->name, sizeof(pe->name), "%s", name);
	pe->delay_ms = delay_ms;
	pe->pipe_fd = -1;
	return pe;
}

/* Child: open the queue @name and send "m<i>" for i < n after delay_ms. */
static int peer_send(void *arg)
{
	struct peer *pe = arg;
	struct shmq_client *pc;
	struct shmq_queue *q;
	char m[16];

	if (shmq_client_connect(pe->sock, &pc) ||
	    shmq_queue_open(pc, pe->name, SHMQ_SEND, NULL, &q))
		return 1;
	t_sleep_ms(pe->delay_ms);
	for (unsigned int i = 0; i < (pe->n ? pe->n : 1); i++) {
		int n = snprintf(m, sizeof(m), "m%u", i);

		if (shmq_queue_send_wait(q, m, (size_t)n,
					 shmq_deadline_after(UINT64_C(5000000000))))
			return 2;
	}
	shmq_queue_close(q);
	shmq_client_close(pc);
	return 0;
}

/* Child: open the semaphore @name and post n tokens after delay_ms. */
static int peer_post(void *arg)
{
	struct peer *pe = arg;
	struct shmq_client *pc;
	struct shmq_sem *s;

	if (shmq_client_connect(pe->sock, &pc) || shmq_sem_open(pc, pe->name, 0, NULL, &s))
		return 1;
	t_sleep_ms(pe->delay_ms);
	if (shmq_sem_post(s, pe->n ? pe->n : 1))
		return 2;
	shmq_sem_close(s);
	shmq_client_close(pc);
	return 0;
}

/* --- Callbacks --- */

struct tally {
	int calls;
	int last;
	bool done;
	int stop_after; /* > 0: return -ECANCELED on that call */
};

static int on_future(struct shmq_future *f, int result, void *arg)
{
	struct tally *t = arg;

	(void)f;
	t->calls++;
	t->last = result;
	t->done = true;
	return 0;
}

static int count_and_fail(struct shmq_watch *w, int events, void *arg)
{
	struct tally *t = arg;

	(void)w;
	(void)events;
	return ++t->calls == t->stop_after ? -ECANCELED : 0;
}

/* --- Backend --- */

Test(async_poller, poller_backend_is_the_one_shmq_uring_futex_asks_for)
{
	cr_assert(eq(int, shmq_poller_backend(p), expected_backend()));
	finish();
}

/* --- Many objects in one loop --- */

struct server {
	struct shmq_queue *q[N_QUEUES];
	unsigned int got[N_QUEUES];
	unsigned int total;
	unsigned int sem_tokens;
	unsigned int pipe_bytes;
	unsigned int ticks;
	struct shmq_sem *s;
	int pipe_rd;
	bool done;
};

static void server_check(struct server *sv)
{
	sv->done = sv->total == N_QUEUES * 3 && sv->sem_tokens == 5 && sv->pipe_bytes == 3 &&
		   sv->ticks >= 2;
}

static int on_queue(struct shmq_watch *w, int events, void *arg)
{
	struct server *sv = arg;
	char buf[64];

	(void)w;
	cr_assert(eq(int, events, SHMQ_POLL_RECV));
	for (int i = 0; i < N_QUEUES; i++) {
		int n;

		while ((n = shmq_queue_recv(sv->q[i], buf, sizeof(buf))) >= 0) {
			sv->got[i]++;
			sv->total++;
		}
		cr_assert(eq(int, n, -EAGAIN));
	}
	server_check(sv);
	return 0;
}

static int on_sem(struct shmq_watch *w, int events, void *arg)
{
	struct server *sv = arg;

	(void)w;
	cr_assert(eq(int, events, 1));
	while (shmq_sem_try_wait(sv->s) == 0)
		sv->sem_tokens++;
	server_check(sv);
	return 0;
}

static int on_pipe(struct shmq_watch *w, int events, void *arg)
{
	struct server *sv = arg;
	char buf[16];
	ssize_t n;

	(void)w;
	cr_assert(events & POLLIN, "revents %#x", events);
	n = read(sv->pipe_rd, buf, sizeof(buf));
	cr_assert(gt(long, (long)n, 0));
	sv->pipe_bytes += (unsigned int)n;
	server_check(sv);
	return 0;
}

static int on_tick(struct shmq_watch *w, int events, void *arg)
{
	struct server *sv = arg;

	(void)w;
	cr_assert(ge(int, events, 1));
	sv->ticks++;
	server_check(sv);
	return 0;
}

static int peer_many(void *arg)
{
	struct peer *pe = arg;
	struct shmq_client *pc;
	struct shmq_sem *s;
	char name[32];

	if (shmq_client_connect(pe->sock, &pc) || shmq_sem_open(pc, "many-sem", 0, NULL, &s))
		return 1;
	for (int round = 0; round < 3; round++) {
		t_sleep_ms(5);
		for (int i = round; i < N_QUEUES + round; i++) {
			struct shmq_queue *q;

			snprintf(name, sizeof(name), "many-%d", i % N_QUEUES);
			if (shmq_queue_open(pc, name, SHMQ_SEND, NULL, &q) ||
			    shmq_queue_send(q, "x", 1) || shmq_queue_close(q))
				return 2;
		}
		if (write(pe->pipe_fd, "p", 1) != 1)
			return 3;
	}
	if (shmq_sem_post(s, 2) || shmq_sem_post(s, 3))
		return 4;
	shmq_sem_close(s);
	shmq_client_close(pc);
	return 0;
}

Test(async_poller, one_loop_serves_many_queues_a_semaphore_a_pipe_and_a_timer)
{
	struct shmq_watch *w[N_QUEUES + 3];
	struct server sv = {0};
	struct peer *pe = peer_new("", 0);
	int pfd[2];
	pid_t pid;
	char name[32];

	for (int i = 0; i < N_QUEUES; i++) {
		snprintf(name, sizeof(name), "many-%d", i);
		sv.q[i] = queue(name, SHMQ_RECV, i % 2 ? SHMQ_SPSC : SHMQ_MPMC);
		T_OK(shmq_poller_add_queue(p, sv.q[i], SHMQ_POLL_RECV, on_queue, &sv, &w[i]));
	}
	sv.s = sem("many-sem", 0, 0);
	cr_assert(eq(int, pipe(pfd), 0));
	sv.pipe_rd = pfd[0];
	pe->pipe_fd = pfd[1];
	T_OK(shmq_poller_add_sem(p, sv.s, on_sem, &sv, &w[N_QUEUES]));
	T_OK(shmq_poller_add_fd(p, pfd[0], POLLIN, on_pipe, &sv, &w[N_QUEUES + 1]));
	T_OK(shmq_poller_add_timer(p, t_deadline_ms(1), UINT64_C(2000000), on_tick, &sv,
				   &w[N_QUEUES + 2]));

	pid = t_fork_child(peer_many, pe);
	run_until(&sv.done);
	cr_assert(eq(int, t_wait_peer_ms(pid, RUN_MS), 0));
	for (int i = 0; i < N_QUEUES; i++)
		cr_assert(eq(u32, sv.got[i], 3), "queue %d got %u", i, sv.got[i]);

	T_ERR(shmq_queue_close(sv.q[0]), -EBUSY);
	for (int i = 0; i < N_QUEUES + 3; i++)
		shmq_watch_free(w[i]);
	T_OK(shmq_poller_run_until_idle(p, t_deadline_ms(RUN_MS)));
	for (int i = 0; i < N_QUEUES; i++)
		T_OK(shmq_queue_close(sv.q[i]));
	T_OK(shmq_sem_close(sv.s));
	close(pfd[0]);
	close(pfd[1]);
	finish();
}

/* --- Futures --- */

Test(async_poller, recv_future_delivers_a_message_sent_later_by_another_process)
{
	struct shmq_queue *q = queue("later", SHMQ_RECV, SHMQ_MPMC);
	struct peer *pe = peer_new("later", 30);
	struct tally t = {0};
	struct shmq_future *f;
	char buf[64];
	pid_t pid;

	T_OK(shmq_poller_recv(p, q, buf, sizeof(buf), SHMQ_FOREVER, on_future, &t, &f));
	pid = t_fork_child(peer_send, pe);
	cr_assert(eq(int, run_future(f), 2));
	cr_assert(eq(int, memcmp(buf, "m0", 2), 0));
	cr_assert(eq(int, t.calls, 1));
	cr_assert(eq(int, t.last, 2));
	cr_assert(eq(int, t_wait_peer_ms(pid, RUN_MS), 0));
	shmq_future_free(f);
	T_OK(shmq_queue_close(q));
	finish();
}

/*
 * A future that can complete at once does (shmq.h): no waiter, no system
 * call, no clock read; its callback still runs from the loop.  Freed
 * futures are reused, so a stream of them allocates nothing either.
 */
Test(async_poller,
     recv_future_completes_at_once_when_a_message_is_queued_and_calls_back_from_the_loop)
{
	struct shmq_queue *q = queue("queued", SHMQ_RECV | SHMQ_SEND, SHMQ_SPSC);
	struct shmq_future *f, *g;
	struct tally t = {0};
	char buf[64];

	T_OK(shmq_queue_send(q, "hi", 2));
	T_OK(shmq_poller_recv(p, q, buf, sizeof(buf), SHMQ_FOREVER, on_future, &t, &f));
	cr_assert(eq(int, shmq_future_result(f), 2), "done at creation");
	cr_assert(eq(int, memcmp(buf, "hi", 2), 0));
	cr_assert(eq(int, t.calls, 0), "the callback waits for the loop");
	cr_assert(eq(int, shmq_poller_run_once(p, 0), 1));
	cr_assert(eq(int, t.calls, 1));
	cr_assert(eq(int, t.last, 2));
	shmq_future_free(f);
	/* Nothing queued: pending until a send, as before. */
	T_OK(shmq_poller_recv(p, q, buf, sizeof(buf), SHMQ_FOREVER, NULL, NULL, &g));
	T_ERR(shmq_future_result(g), -EINPROGRESS);
	cr_assert(g == f, "the freed future's memory serves the next one");
	T_OK(shmq_queue_send(q, "yo", 2));
	cr_assert(eq(int, shmq_poller_wait(p, &g, 1, SHMQ_WAIT_ALL, t_deadline_ms(RUN_MS)), 1));
	cr_assert(eq(int, shmq_future_result(g), 2));
	shmq_future_free(g);
	T_OK(shmq_queue_close(q));
	finish();
}

Test(async_poller, a_batch_future_takes_a_burst_in_one_completion)
{
	struct shmq_queue *q = queue("burst", SHMQ_RECV | SHMQ_SEND, SHMQ_MPMC);
	struct peer *pe = peer_new("burst", 30);
	char bufs[4][16];
	struct iovec iov[4];
	struct shmq_future *f;
	pid_t pid;

	for (int i = 0; i < 5; i++)
		T_OK(shmq_queue_send(q, "burst", 5));
	for (int i = 0; i < 4; i++)
		iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof(bufs[i])};
	T_OK(shmq_poller_recv_batch(p, q, iov, 4, SHMQ_FOREVER, NULL, NULL, &f));
	cr_assert(eq(int, run_future(f), 4), "four of the five, at once");
	for (int i = 0; i < 4; i++)
		cr_assert(eq(sz, iov[i].iov_len, 5));
	shmq_future_free(f);
	iov[0].iov_len = sizeof(bufs[0]);
	T_OK(shmq_poller_recv_batch(p, q, iov, 4, SHMQ_FOREVER, NULL, NULL, &f));
	cr_assert(eq(int, run_future(f), 1), "what is left: one");
	shmq_future_free(f);
	/* empty: the future waits for the next burst from another process */
	for (int i = 0; i < 4; i++)
		iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof(bufs[i])};
	T_OK(shmq_poller_recv_batch(p, q, iov, 4, SHMQ_FOREVER, NULL, NULL, &f));
	cr_assert(eq(int, shmq_poller_run_once(p, 0), 0));
	pid = t_fork_child(peer_send, pe);
	cr_assert(ge(int, run_future(f), 1));
	cr_assert(eq(int, memcmp(bufs[0], "m0", 2), 0));
	cr_assert(eq(int, t_wait_peer_ms(pid, RUN_MS), 0));
	shmq_future_free(f);
	T_ERR(shmq_poller_recv_batch(p, q, iov, 0, SHMQ_FOREVER, NULL, NULL, &f), -EINVAL);
	T_OK(shmq_queue_close(q));
	finish();
}

Test(async_poller, recv_future_too_small_for_the_message_reports_emsgsize)
{
	struct shmq_queue *q = queue("small", SHMQ_RECV | SHMQ_SEND, SHMQ_MPMC);
	struct shmq_future *f;
	char buf[2];

	T_OK(shmq_queue_send(q, "three", 5));
	T_OK(shmq_poller_recv(p, q, buf, sizeof(buf), SHMQ_FOREVER, NULL, NULL, &f));
	cr_assert(eq(int, run_future(f), -EMSGSIZE));
	shmq_future_free(f);
	T_OK(shmq_queue_close(q));
	finish();
}

Test(async_poller, recv_future_times_out_at_its_deadline_and_takes_nothing_later)
{
	struct shmq_queue *q = queue("nothing", SHMQ_RECV | SHMQ_SEND, SHMQ_MPMC);
	uint64_t deadline = t_deadline_ms(50);
	struct tally t = {0};
	struct shmq_future *f;
	char buf[64];

	T_OK(shmq_poller_recv(p, q, buf, sizeof(buf), deadline, on_future, &t, &f));
	cr_assert(eq(int, run_future(f), -ETIMEDOUT));
	cr_assert(ge(u64, t_now_ns() + EARLY_NS, deadline), "timed out early");
	cr_assert(lt(u64, t_now_ns() - deadline, UINT64_C(1000000000)), "timed out late");
	cr_assert(eq(int, t.calls, 1));
	T_OK(shmq_queue_send(q, "after", 5));
	cr_assert(eq(int, shmq_poller_run_once(p, 0), 0), "a done future must not run again");
	cr_assert(eq(int, shmq_queue_recv(q, buf, sizeof(buf)), 5), "the late message was taken");
	shmq_future_free(f);
	T_OK(shmq_queue_close(q));
	finish();
}

Test(async_poller, acquire_future_takes_the_token_posted_by_another_process)
{
	struct shmq_sem *s = sem("token", 0, 0);
	struct peer *pe = peer_new("token", 30);
	struct shmq_future *f;
	pid_t pid;

	T_OK(shmq_poller_acquire(p, s, SHMQ_FOREVER, NULL, NULL, &f));
	pid = t_fork_child(peer_post, pe);
	cr_assert(eq(int, run_future(f), 0));
	cr_assert(eq(int, t_wait_peer_ms(pid, RUN_MS), 0));
	cr_assert(eq(int, shmq_sem_value(s), 0), "the future holds the token");
	shmq_future_free(f);
	T_OK(shmq_sem_close(s));
	finish();
}

Test(async_poller, acquire_future_times_out_and_leaves_a_later_token_alone)
{
	struct shmq_sem *s = sem("late-token", 0, 0);
	struct shmq_future *f;

	T_OK(shmq_poller_acquire(p, s, t_deadline_ms(30), NULL, NULL, &f));
	cr_assert(eq(int, run_future(f), -ETIMEDOUT));
	T_OK(shmq_sem_post(s, 1));
	cr_assert(eq(int, shmq_poller_run_once(p, 0), 0));
	cr_assert(eq(int, shmq_sem_value(s), 1));
	shmq_future_free(f);
	T_OK(shmq_sem_close(s));
	finish();
}

Test(async_poller, many_acquire_futures_share_the_tokens_of_several_posts_exactly)
{
	struct shmq_sem *s = sem("share", 0, 0);
	struct peer *pe = peer_new("share", 20);
	struct shmq_future *f[8];
	pid_t pid;
	int r;

	for (int i = 0; i < 8; i++)
		T_OK(shmq_poller_acquire(p, s, t_deadline_ms(RUN_MS), NULL, NULL, &f[i]));
	pe->n = 5;
	pid = t_fork_child(peer_post, pe);
	cr_assert(eq(int, t_wait_peer_ms(pid, RUN_MS), 0));
	r = shmq_poller_wait(p, f, 8, SHMQ_WAIT_ALL, t_deadline_ms(200));
	cr_assert(eq(int, r, -ETIMEDOUT), "only 5 of 8 can be done");
	r = 0;
	for (int i = 0; i < 8; i++)
		r += shmq_future_result(f[i]) == 0;
	cr_assert(eq(int, r, 5), "%d futures took a token", r);
	T_OK(shmq_sem_post(s, 3));
	cr_assert(eq(int, shmq_poller_wait(p, f, 8, SHMQ_WAIT_ALL, t_deadline_ms(RUN_MS)), 8));
	for (int i = 0; i < 8; i++) {
		cr_assert(eq(int, shmq_future_result(f[i]), 0));
		shmq_future_free(f[i]);
	}
	cr_assert(eq(int, shmq_sem_value(s), 0));
	T_OK(shmq_sem_close(s));
	finish();
}

/* --- Cancellation --- */

Test(async_poller, cancelled_recv_future_reports_ecanceled_and_takes_nothing)
{
	struct shmq_queue *q = queue("cancel", SHMQ_RECV | SHMQ_SEND, SHMQ_MPMC);
	struct tally t = {0};
	struct shmq_future *f;
	char buf[64];

	T_OK(shmq_poller_recv(p, q, buf, sizeof(buf), SHMQ_FOREVER, on_future, &t, &f));
	cr_assert(eq(int, shmq_poller_run_once(p, 0), 0)); /* armed in the kernel */
	T_OK(shmq_future_cancel(f));
	T_ERR(shmq_future_cancel(f), -EALREADY);
	cr_assert(eq(int, shmq_future_result(f), -ECANCELED));
	T_OK(shmq_queue_send(q, "kept", 4));
	cr_assert(eq(int, shmq_poller_run_once(p, 0), 1), "the callback runs on the next run");
	cr_assert(eq(int, t.last, -ECANCELED));
	cr_assert(eq(int, shmq_queue_recv(q, buf, sizeof(buf)), 4), "cancelled future took it");
	shmq_future_free(f);
	T_OK(shmq_queue_close(q));
	finish();
}

Test(async_poller, freeing_a_pending_future_or_a_watch_lets_the_queue_close_at_once)
{
	struct shmq_queue *q = queue("close", SHMQ_RECV, SHMQ_MPMC);
	struct shmq_future *f;
	struct shmq_watch *w;
	struct tally t = {0};
	char buf[64];

	T_OK(shmq_poller_recv(p, q, buf, sizeof(buf), SHMQ_FOREVER, on_future, &t, &f));
	T_OK(shmq_poller_add_queue(p, q, SHMQ_POLL_RECV, count_and_fail, &t, &w));
	cr_assert(eq(int, shmq_poller_run_once(p, 0), 0));
	T_ERR(shmq_queue_close(q), -EBUSY);
	shmq_future_free(f);
	shmq_watch_free(w);
	T_OK(shmq_queue_close(q));
	cr_assert(eq(int, t.calls, 0), "a freed future's callback ran");
	T_OK(shmq_poller_run_until_idle(p, t_deadline_ms(RUN_MS)));
	finish();
}

static int free_self(struct shmq_watch *w, int events, void *arg)
{
	struct tally *t = arg;

	(void)events;
	t->calls++;
	t->done = true;
	shmq_watch_free(w);
	return 0;
}

Test(async_poller, a_watch_may_free_itself_in_its_callback)
{
	struct shmq_queue *q = queue("self", SHMQ_RECV | SHMQ_SEND, SHMQ_MPMC);
	struct tally t = {0};
	struct shmq_watch *w;

	T_OK(shmq_poller_add_queue(p, q, SHMQ_POLL_RECV, free_self, &t, &w));
	T_OK(shmq_queue_send(q, "x", 1));
	run_until(&t.done);
	T_OK(shmq_poller_run_until_idle(p, t_deadline_ms(RUN_MS)));
	cr_assert(eq(int, t.calls, 1));
	T_OK(shmq_queue_close(q));
	finish();
}

Test(async_poller, semaphore_watch_is_level_triggered_and_a_callback_error_ends_the_run)
{
	struct shmq_sem *s = sem("level", 1, 0);
	struct tally t = {.stop_after = 3};
	struct shmq_watch *w;

	T_OK(shmq_poller_add_sem(p, s, count_and_fail, &t, &w));
	/* The token is never taken: the watch fires on every iteration until it fails. */
	T_ERR(shmq_poller_run(p), -ECANCELED);
	cr_assert(eq(int, t.calls, 3));
	cr_assert(eq(int, shmq_sem_value(s), 1));
	shmq_watch_free(w);
	T_OK(shmq_sem_close(s));
	finish();
}

/* --- The generic entry points: any object --- */

struct gen_tally {
	unsigned int seen;
	int events;
};

static int on_any(struct shmq_watch *w, int events, void *arg)
{
	struct gen_tally *t = arg;

	(void)w;
	t->seen++;
	t->events = events;
	return -ECANCELED; /* one call is all this test needs */
}

Test(async_poller, poller_add_serves_a_queue_and_a_semaphore_through_one_object_type)
{
	struct shmq_queue *q = queue("anyq", SHMQ_RECV | SHMQ_SEND, SHMQ_MPMC);
	struct shmq_sem *s = sem("anys", 0, 0);
	struct gen_tally tq = {0}, ts = {0};
	struct shmq_watch *wq, *ws;

	T_OK(shmq_poller_add(p, shmq_queue_object(q), SHMQ_POLL_RECV, on_any, &tq, &wq));
	T_OK(shmq_poller_add(p, shmq_sem_object(s), SHMQ_POLL_RECV, on_any, &ts, &ws));
	T_OK(shmq_queue_send(q, "x", 1));
	T_ERR(shmq_poller_run(p), -ECANCELED);
	cr_assert(eq(u32, tq.seen, 1));
	cr_assert(eq(int, tq.events, SHMQ_POLL_RECV));
	cr_assert(eq(u32, ts.seen, 0), "a semaphore without a token fired");
	{
		char buf[8];

		/* Level-triggered: the queue fires again until its message is taken. */
		cr_assert(eq(int, shmq_queue_recv(q, buf, sizeof(buf)), 1));
	}
	T_OK(shmq_sem_post(s, 1));
	T_ERR(shmq_poller_run(p), -ECANCELED);
	cr_assert(eq(u32, ts.seen, 1));
	cr_assert(eq(u32, tq.seen, 1), "an empty queue fired");
	cr_assert(eq(int, ts.events, SHMQ_POLL_RECV));
	shmq_watch_free(wq);
	shmq_watch_free(ws);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_sem_close(s));
	finish();
}

Test(async_poller, waiter_new_refuses_what_the_kind_or_the_handle_cannot_wait_for)
{
	struct shmq_queue *rx = queue("only-rx", SHMQ_RECV, SHMQ_MPMC);
	struct shmq_sem *s = sem("tok", 1, 0), *view;
	struct shmq_waiter *w = NULL;
	struct shmq_watch *wt = NULL;
	struct gen_tally t = {0};

	T_ERR(shmq_waiter_new(NULL, SHMQ_POLL_RECV, &w), -EINVAL);
	T_ERR(shmq_waiter_new(shmq_queue_object(rx), SHMQ_POLL_RECV, NULL), -EINVAL);
	T_ERR(shmq_waiter_new(shmq_queue_object(rx), SHMQ_POLL_RECV | SHMQ_POLL_SEND, &w), -EINVAL);
	T_ERR(shmq_waiter_new(shmq_queue_object(rx), SHMQ_POLL_SEND, &w), -EBADF);
	/* A semaphore has tokens to take, never room to send into. */
	T_ERR(shmq_waiter_new(shmq_sem_object(s), SHMQ_POLL_SEND, &w), -EINVAL);
	T_ERR(shmq_poller_add(p, shmq_sem_object(s), SHMQ_POLL_SEND, on_any, &t, &wt), -EINVAL);
	T_OK(shmq_sem_open(c, "tok", SHMQ_VIEW, NULL, &view));
	T_ERR(shmq_waiter_new(shmq_sem_object(view), SHMQ_POLL_RECV, &w), -EBADF);
	cr_assert(w == NULL && wt == NULL, "a refused call wrote its ret_");
	cr_assert(shmq_queue_object(NULL) == NULL && shmq_sem_object(NULL) == NULL);

	/* Accepted: a waiter on a semaphore is ready when a token is there. */
	T_OK(shmq_waiter_new(shmq_sem_object(s), SHMQ_POLL_RECV, &w));
	cr_assert(eq(int, shmq_waiter_is_ready(w), 1));
	T_ERR(shmq_sem_close(s), -EBUSY);
	T_OK(shmq_waiter_free(w));
	T_OK(shmq_sem_close(view));
	T_OK(shmq_sem_close(s));
	T_OK(shmq_queue_close(rx));
	finish();
}

/* --- Waiting for several futures --- */

Test(async_poller, wait_first_returns_when_one_of_several_futures_is_done)
{
	struct shmq_queue *q[3];
	struct shmq_future *f[3];
	struct peer *pe = peer_new("first-1", 20);
	char buf[3][64];
	pid_t pid;

	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "first-%d", i);
		q[i] = queue(name, SHMQ_RECV, SHMQ_MPMC);
		T_OK(shmq_poller_recv(p, q[i], buf[i], sizeof(buf[i]), SHMQ_FOREVER, NULL, NULL,
				      &f[i]));
	}
	pid = t_fork_child(peer_send, pe);
	cr_assert(eq(int, shmq_poller_wait(p, f, 3, SHMQ_WAIT_FIRST, t_deadline_ms(RUN_MS)), 1));
	cr_assert(eq(int, shmq_future_result(f[1]), 2));
	T_ERR(shmq_future_result(f[0]), -EINPROGRESS);
	T_ERR(shmq_future_result(f[2]), -EINPROGRESS);
	cr_assert(eq(int, t_wait_peer_ms(pid, RUN_MS), 0));
	T_ERR(shmq_poller_wait(p, f, 3, SHMQ_WAIT_ALL, t_deadline_ms(30)), -ETIMEDOUT);
	for (int i = 0; i < 3; i++) {
		shmq_future_free(f[i]);
		T_OK(shmq_queue_close(q[i]));
	}
	finish();
}

Test(async_poller, ready_futures_on_several_queues_work_like_connection_wait)
{
	struct shmq_queue *q[2];
	struct shmq_future *f[2];
	char buf[64];

	q[0] = queue("conn-0", SHMQ_RECV | SHMQ_SEND, SHMQ_MPMC);
	q[1] = queue("conn-1", SHMQ_RECV | SHMQ_SEND, SHMQ_SPSC);
	for (int i = 0; i < 2; i++)
		T_OK(shmq_poller_ready(p, q[i], SHMQ_POLL_RECV, t_deadline_ms(RUN_MS), NULL, NULL,
				       &f[i]));
	cr_assert(eq(int, shmq_poller_run_once(p, 0), 0));
	T_OK(shmq_queue_send(q[1], "x", 1));
	cr_assert(eq(int, shmq_poller_wait(p, f, 2, SHMQ_WAIT_FIRST, t_deadline_ms(RUN_MS)), 1));
	cr_assert(eq(int, shmq_future_result(f[1]), SHMQ_POLL_RECV));
	cr_assert(eq(int, shmq_queue_recv(q[1], buf, sizeof(buf)), 1), "readiness took nothing");
	for (int i = 0; i < 2; i++) {
		shmq_future_free(f[i]);
		T_OK(shmq_queue_close(q[i]));
	}
	finish();
}

/* --- Stopping --- */

static void *stop_later(void *arg)
{
	t_sleep_ms(30);
	shmq_poller_stop(arg);
	return NULL;
}

Test(async_poller, stop_from_another_thread_ends_run_forever)
{
	struct shmq_queue *q = queue("forever", SHMQ_RECV, SHMQ_MPMC);
	struct tally t = {0};
	struct shmq_watch *w;
	pthread_t th;

	T_OK(shmq_poller_add_queue(p, q, SHMQ_POLL_RECV, count_and_fail, &t, &w));
	cr_assert(eq(int, pthread_create(&th, NULL, stop_later, p), 0));
	T_OK(shmq_poller_run(p));
	cr_assert(eq(int, pthread_join(th, NULL), 0));
	cr_assert(eq(int, t.calls, 0));
	shmq_watch_free(w);
	T_OK(shmq_queue_close(q));
	finish();
}

Test(async_poller, run_until_idle_times_out_while_a_watch_is_registered)
{
	struct shmq_watch *w;
	struct tally t = {0};

	T_OK(shmq_poller_add_timer(p, t_deadline_ms(1000000), 0, count_and_fail, &t, &w));
	T_ERR(shmq_poller_run_until_idle(p, t_deadline_ms(20)), -ETIMEDOUT);
	shmq_watch_free(w);
	T_OK(shmq_poller_run_until_idle(p, t_deadline_ms(RUN_MS)));
	finish();
}

/* --- Objects going away, peers dying --- */

Test(async_poller, queue_unlinked_while_a_future_waits_still_delivers_from_an_open_sender)
{
	struct shmq_queue *q = queue("unlinked", SHMQ_RECV, SHMQ_MPMC), *tx;
	struct shmq_future *f;
	char buf[64];

	T_OK(shmq_queue_open(c, "unlinked", SHMQ_SEND, NULL, &tx));
	T_OK(shmq_poller_recv(p, q, buf, sizeof(buf), t_deadline_ms(RUN_MS), NULL, NULL, &f));
	cr_assert(eq(int, shmq_poller_run_once(p, 0), 0));
	T_OK(shmq_unlink(c, "unlinked"));
	T_OK(shmq_queue_send(tx, "still", 5));
	cr_assert(eq(int, run_future(f), 5));
	shmq_future_free(f);
	T_OK(shmq_queue_close(tx));
	T_OK(shmq_queue_close(q));
	finish();
}

/* Child: reserve a slot and hang there until killed. */
static int reserve_and_hang(void *arg)
{
	struct peer *pe = arg;
	struct shmq_client *pc;
	struct shmq_queue *q;
	void *slot;
	char one = 1;

	if (shmq_client_connect(pe->sock, &pc) ||
	    shmq_queue_open(pc, pe->name, SHMQ_SEND, NULL, &q))
		return 1;
	if (shmq_queue_reserve(q, 0, &slot))
		return 2;
	if (write(pe->pipe_fd, &one, 1) != 1)
		return 3;
	for (;;)
		pause();
}

Test(async_poller, sender_killed_holding_a_slot_leaves_the_future_waiting_for_the_next_message)
{
	struct shmq_queue *q = queue("killed", SHMQ_RECV | SHMQ_SEND, SHMQ_MPMC);
	struct peer *pe = peer_new("killed", 0);
	struct shmq_queue_stats st = {.size = sizeof(st)};
	struct shmq_future *f;
	uint64_t deadline;
	int sv[2];
	char buf[64], one;
	pid_t pid;

	cr_assert(eq(int, socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0));
	pe->pipe_fd = sv[1];
	pid = t_fork_child(reserve_and_hang, pe);
	cr_assert(eq(int, read(sv[0], &one, 1), 1));
	T_OK(shmq_poller_recv(p, q, buf, sizeof(buf), t_deadline_ms(RUN_MS), NULL, NULL, &f));
	cr_assert(eq(int, shmq_poller_run_once(p, 0), 0));

	kill(pid, SIGKILL);
	cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL));
	/* The daemon tombstones the slot and wakes us; nothing to take yet. */
	deadline = t_deadline_ms(REAP_MS);
	do {
		cr_assert(ge(int, shmq_poller_run_once(p, t_deadline_ms(5)), 0));
		T_OK(shmq_queue_stats(q, &st));
	} while (st.repairs == 0 && t_now_ns() < deadline);
	cr_assert(eq(u32, st.repairs, 1), "the daemon did not repair the slot");
	T_ERR(shmq_future_result(f), -EINPROGRESS);

	T_OK(shmq_queue_send(q, "next", 4));
	cr_assert(eq(int, run_future(f), 4));
	cr_assert(eq(int, memcmp(buf, "next", 4), 0));
	shmq_future_free(f);
	close(sv[0]);
	close(sv[1]);
	T_OK(shmq_queue_close(q));
	finish();
}

/* Child: take the undo semaphore's only token and hang until killed. */
static int hold_and_hang(void *arg)
{
	struct peer *pe = arg;
	struct shmq_client *pc;
	struct shmq_sem *s;
	char one = 1;

	if (shmq_client_connect(pe->sock, &pc) || shmq_sem_open(pc, pe->name, 0, NULL, &s))
		return 1;
	if (shmq_sem_wait(s, shmq_deadline_after(UINT64_C(5000000000))))
		return 2;
	if (write(pe->pipe_fd, &one, 1) != 1)
		return 3;
	for (;;)
		pause();
}

Test(async_poller, holder_killed_while_we_wait_has_its_undo_token_delivered_to_our_future)
{
	struct shmq_sem *s = sem("undo", 1, SHMQ_SEM_ATTR_UNDO);
	struct peer *pe = peer_new("undo", 0);
	struct shmq_future *f;
	int sv[2];
	char one;
	pid_t pid;

	cr_assert(eq(int, socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0));
	pe->pipe_fd = sv[1];
	pid = t_fork_child(hold_and_hang, pe);
	cr_assert(eq(int, read(sv[0], &one, 1), 1));
	T_OK(shmq_poller_acquire(p, s, t_deadline_ms(REAP_MS + RUN_MS), NULL, NULL, &f));
	cr_assert(eq(int, shmq_poller_run_once(p, 0), 0));

	kill(pid, SIGKILL);
	cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL));
	cr_assert(eq(int, shmq_poller_wait(p, &f, 1, SHMQ_WAIT_ALL, t_deadline_ms(REAP_MS)), 1),
		  "the posted-back token did not wake the future");
	cr_assert(eq(int, shmq_future_result(f), 0));
	shmq_future_free(f);
	T_OK(shmq_sem_post(s, 1));
	close(sv[0]);
	close(sv[1]);
	T_OK(shmq_sem_close(s));
	finish();
}

/* --- The example --- */

#define EXAMPLE_QUEUES 100
#define EXAMPLE_PER_Q  10
#define EXAMPLE_MS     60000

static char example_out[64 * 1024];

Test(async_poller, async_server_example_serves_100_queues_and_a_timer_from_one_thread)
{
	const char *argv[] = {t_example_path("async_server"),
			      "--socket",
			      d.sock,
			      "--queues",
			      "100",
			      "--count",
			      "1000",
			      "--prefix",
			      "ex",
			      "--tick-ms",
			      "20",
			      "--timeout",
			      "50",
			      NULL};
	static struct shmq_queue *req[EXAMPLE_QUEUES], *rep[EXAMPLE_QUEUES];
	uint64_t deadline = t_deadline_ms(EXAMPLE_MS);
	struct t_proc srv;
	char name[32], want[32], buf[64];
	int st, r;

	t_spawn(&srv, argv);
	/* The server opens every reply queue before the request queue of the same index. */
	do {
		r = shmq_queue_open(c, "ex-req-99", SHMQ_SEND, NULL, &req[99]);
		if (r == -ENOENT)
			t_sleep_ms(5);
	} while (r == -ENOENT && t_now_ns() < deadline);
	T_OK(r);
	for (int i = 0; i < EXAMPLE_QUEUES; i++) {
		snprintf(name, sizeof(name), "ex-req-%d", i);
		if (i != 99)
			T_OK(shmq_queue_open(c, name, SHMQ_SEND, NULL, &req[i]));
		snprintf(name, sizeof(name), "ex-rep-%d", i);
		T_OK(shmq_queue_open(c, name, SHMQ_RECV, NULL, &rep[i]));
	}
	for (int k = 0; k < EXAMPLE_PER_Q; k++)
		for (int i = 0; i < EXAMPLE_QUEUES; i++) {
			int n = snprintf(buf, sizeof(buf), "r%d-%d", i, k);

			T_OK(shmq_queue_send_wait(req[i], buf, (size_t)n, deadline));
		}
	for (int i = 0; i < EXAMPLE_QUEUES; i++)
		for (int k = 0; k < EXAMPLE_PER_Q; k++) {
			int want_n = snprintf(want, sizeof(want), "ok:r%d-%d", i, k);
			int n = shmq_queue_recv_wait(rep[i], buf, sizeof(buf), deadline);

			cr_assert(eq(int, n, want_n), "queue %d reply %d: %d", i, k, n);
			cr_assert(eq(int, memcmp(buf, want, (size_t)n), 0), "queue %d reply %d", i,
				  k);
		}
	st = t_finish(&srv, example_out, sizeof(example_out), EXAMPLE_MS);
	cr_assert(eq(int, st, 0), "async_server exited %d:\n%s", st, example_out);
	cr_assert(strstr(example_out, "served 1000 requests on 100 queues from one thread") != NULL,
		  "async_server said:\n%s", example_out);
	for (int i = 0; i < EXAMPLE_QUEUES; i++) {
		T_OK(shmq_queue_close(req[i]));
		T_OK(shmq_queue_close(rep[i]));
	}
	finish();
}

Test(async_poller, async_server_example_exits_0_for_help_and_2_for_a_bad_argument)
{
	const char *help[] = {t_example_path("async_server"), "--help", NULL};
	const char *bad[] = {t_example_path("async_server"), "--queues", "0", NULL};
	const char *extra[] = {t_example_path("async_server"), "stray", NULL};

	cr_assert(eq(int, t_run(help, example_out, sizeof(example_out), EXAMPLE_MS), 0));
	cr_assert(strstr(example_out, "usage:") != NULL);
	cr_assert(eq(int, t_run(bad, example_out, sizeof(example_out), EXAMPLE_MS), 2));
	cr_assert(eq(int, t_run(extra, example_out, sizeof(example_out), EXAMPLE_MS), 2));
	finish();
}

Test(async_poller, async_server_example_exits_1_when_no_daemon_answers)
{
	const char *argv[] = {t_example_path("async_server"), "--socket", "/nonexistent/sock",
			      NULL};

	cr_assert(eq(int, t_run(argv, example_out, sizeof(example_out), EXAMPLE_MS), 1), "%s",
		  example_out);
	finish();
}

/*
 * Another event loop (asyncio, epoll) waits on shmq_poller_fd(): readable
 * once a wait has completed, and shmq_poller_run_once(p, 0) then
 * dispatches without sleeping.
 */
Test(async_poller, the_poller_fd_becomes_readable_when_a_wait_completes)
{
	struct shmq_queue *q = queue("by-fd", SHMQ_RECV | SHMQ_SEND, SHMQ_SPSC);
	struct pollfd pfd = {.fd = shmq_poller_fd(p), .events = POLLIN};
	struct shmq_future *f;
	char buf[64];

	cr_assert(ge(int, pfd.fd, 0));
	T_ERR(shmq_poller_fd(NULL), -EINVAL);
	T_OK(shmq_poller_recv(p, q, buf, sizeof(buf), SHMQ_FOREVER, NULL, NULL, &f));
	cr_assert(eq(int, shmq_poller_run_once(p, 0), 0), "arms the wait, sleeps not");
	cr_assert(eq(int, poll(&pfd, 1, 0), 0), "nothing completed yet");
	T_ERR(shmq_future_result(f), -EINPROGRESS);
	T_OK(shmq_queue_send(q, "fd", 2));
	cr_assert(eq(int, poll(&pfd, 1, RUN_MS), 1), "the wait's completion shows on the fd");
	cr_assert(ge(int, shmq_poller_run_once(p, 0), 1));
	cr_assert(eq(int, shmq_future_result(f), 2));
	shmq_future_free(f);
	T_OK(shmq_queue_close(q));
	finish();
}
