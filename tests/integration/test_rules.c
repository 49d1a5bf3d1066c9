/* SPDX-License-Identifier: MIT */
/*
 * Integration: the rules every call of shmq.h follows, checked across the
 * kinds in one place so that a kind cannot quietly keep a rule of its own.
 *
 *   - a deadline of 0 is the call's try form: -EAGAIN, nothing changed;
 *     a deadline that passes while waiting is -ETIMEDOUT; the condition
 *     and barrier waits, whose waiting is their effect, take 0 as a past
 *     deadline (-ETIMEDOUT);
 *   - SHMQ_CREATE with an attr asks for that shape: an existing object of
 *     another shape is -EEXIST, unless SHMQ_ANY_GEOMETRY takes it as it
 *     is; a NULL attr asks for nothing; a starting state (a semaphore's
 *     initial value, an event's) or a placement (a NUMA node) is no shape.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"

static struct t_daemon d;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(rules, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 60);

static struct shmq_queue_attr qattr(uint32_t n_slots)
{
	return (struct shmq_queue_attr){
		.size = sizeof(struct shmq_queue_attr),
		.n_slots = n_slots,
		.slot_size = 64,
		.mode = SHMQ_MPMC,
		.numa_node = -1,
	};
}

/* --- Deadline 0 --- */

static int no_result(struct shmq_future *f, int result, void *arg)
{
	(void)f;
	(void)result;
	(void)arg;
	return 0;
}

Test(rules, deadline_0_is_the_try_form_of_every_call_that_has_one)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue_attr a = qattr(2);
	struct shmq_sem_attr sa = {.size = sizeof(sa)};
	struct shmq_queue *q, *other;
	struct shmq_sem *s;
	struct shmq_event *e;
	struct shmq_lock *l, *l2;
	struct shmq_pipe *p;
	struct shmq_poller *pl;
	struct shmq_future *f;
	struct shmq_queue_stats st = {.size = sizeof(st)};
	char buf[64] = "x";
	struct iovec iov[2] = {{buf, sizeof(buf)}, {buf, sizeof(buf)}};
	const void *msg;
	void *slot;
	uint64_t t0;

	a.flags = SHMQ_QUEUE_JOINABLE;
	T_OK(shmq_queue_open(c, "rq", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &q));
	a.flags = 0;
	T_OK(shmq_sem_open(c, "rs", SHMQ_CREATE, &sa, &s));
	T_OK(shmq_event_open(c, "re", SHMQ_CREATE, NULL, &e));
	T_OK(shmq_lock_open(c, "rl", SHMQ_CREATE, NULL, &l));
	T_OK(shmq_lock_open(c, "rl", 0, NULL, &l2));
	T_OK(shmq_pipe_open(c, "rp", 0, SHMQ_CREATE, NULL, &p));

	/* Empty, clear, zero, held by another handle: each would wait. */
	t0 = t_now_ns();
	cr_assert(eq(int, shmq_queue_recv_wait(q, buf, sizeof(buf), 0), -EAGAIN));
	cr_assert(eq(int, shmq_queue_recv_batch_wait(q, iov, 2, 0), -EAGAIN));
	cr_assert(eq(int, shmq_queue_peek(q, 0, &msg), -EAGAIN));
	cr_assert(eq(int, shmq_sem_wait(s, 0), -EAGAIN));
	cr_assert(eq(int, shmq_event_wait(e, 0), -EAGAIN));
	T_OK(shmq_lock_acquire(l2, SHMQ_FOREVER));
	cr_assert(eq(int, shmq_lock_acquire(l, 0), -EAGAIN));
	cr_assert(eq(int, shmq_pipe_recv(p, buf, sizeof(buf), 0), -EAGAIN));
	cr_assert(eq(int, shmq_pipe_poll(p, 0), 0));
	T_OK(shmq_queue_send(q, "t", 1));
	cr_assert(eq(int, shmq_queue_join(q, 0), -EAGAIN));
	/* Full. */
	T_OK(shmq_queue_send(q, "u", 1));
	cr_assert(eq(int, shmq_queue_send_wait(q, "v", 1, 0), -EAGAIN));
	cr_assert(eq(int, shmq_queue_send_batch_wait(q, iov, 2, 0), -EAGAIN));
	cr_assert(eq(int, shmq_queue_reserve(q, 0, &slot), -EAGAIN));
	/* Nothing slept: a try form never reaches the kernel's futex wait. */
	cr_assert(lt(u64, t_now_ns() - t0, 2000000000ull));
	T_OK(shmq_queue_stats(q, &st));
	cr_assert(eq(u64, st.sleeps, 0), "a deadline-0 call slept %llu times",
		  (unsigned long long)st.sleeps);
	cr_assert(eq(u32, st.depth, 2), "a refused call changed the queue");

	/* The poller's futures follow the same rule. */
	T_OK(shmq_poller_new(0, &pl));
	T_OK(shmq_queue_open(c, "rq2", SHMQ_CREATE | SHMQ_RECV, &a, &other));
	T_OK(shmq_poller_recv(pl, other, buf, sizeof(buf), 0, no_result, NULL, &f));
	cr_assert(eq(int, shmq_poller_wait(pl, &f, 1, SHMQ_WAIT_FIRST, t_deadline_ms(5000)), 1));
	cr_assert(eq(int, shmq_future_result(f), -EAGAIN));
	shmq_future_free(f);
	T_OK(shmq_poller_acquire(pl, s, 0, no_result, NULL, &f));
	cr_assert(eq(int, shmq_poller_wait(pl, &f, 1, SHMQ_WAIT_FIRST, t_deadline_ms(5000)), 1));
	cr_assert(eq(int, shmq_future_result(f), -EAGAIN));
	shmq_future_free(f);
	/* A past deadline other than 0 is a timeout. */
	T_OK(shmq_poller_acquire(pl, s, 1, no_result, NULL, &f));
	cr_assert(eq(int, shmq_poller_wait(pl, &f, 1, SHMQ_WAIT_FIRST, t_deadline_ms(5000)), 1));
	cr_assert(eq(int, shmq_future_result(f), -ETIMEDOUT));
	shmq_future_free(f);
	shmq_poller_free(pl);

	cr_assert(eq(int, shmq_sem_wait(s, 1), -ETIMEDOUT));
	cr_assert(eq(int, shmq_queue_recv_wait(other, buf, sizeof(buf), 1), -ETIMEDOUT));
	cr_assert(eq(int, shmq_lock_acquire(l, 1), -ETIMEDOUT));
	cr_assert(eq(int, shmq_event_wait(e, 1), -ETIMEDOUT));

	/* Ready: deadline 0 does the call. */
	T_OK(shmq_sem_post(s, 1));
	T_OK(shmq_sem_wait(s, 0));
	cr_assert(eq(int, shmq_event_set(e), 1));
	T_OK(shmq_event_wait(e, 0));
	T_OK(shmq_lock_release(l2));
	T_OK(shmq_lock_acquire(l, 0));
	T_OK(shmq_lock_release(l));
	cr_assert(eq(int, shmq_queue_recv_wait(q, buf, sizeof(buf), 0), 1));
	T_OK(shmq_queue_send_wait(q, "w", 1, 0));

	shmq_queue_close(other);
	shmq_pipe_close(p);
	shmq_lock_close(l2);
	shmq_lock_close(l);
	shmq_event_close(e);
	shmq_sem_close(s);
	shmq_queue_close(q);
	shmq_client_close(c);
}

Test(rules, deadline_0_is_a_past_deadline_for_the_waits_that_are_their_effect)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_barrier_attr ba = {.size = sizeof(ba), .parties = 2};
	struct shmq_lock *l;
	struct shmq_cond *cv;
	struct shmq_barrier *b;

	T_OK(shmq_lock_open(c, "rcl", SHMQ_CREATE, NULL, &l));
	T_OK(shmq_cond_open(c, "rcv", SHMQ_CREATE, l, NULL, &cv));
	T_OK(shmq_barrier_open(c, "rb", SHMQ_CREATE, &ba, &b));
	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	cr_assert(eq(int, shmq_cond_wait(cv, 0), -ETIMEDOUT));
	cr_assert(eq(int, shmq_lock_is_mine(l), 1), "the lock is held again after the timeout");
	T_OK(shmq_lock_release(l));
	cr_assert(eq(int, shmq_barrier_wait(b, 0), -ETIMEDOUT));
	cr_assert(eq(int, shmq_barrier_is_broken(b), 1));
	shmq_barrier_close(b);
	shmq_cond_close(cv);
	shmq_lock_close(l);
	shmq_client_close(c);
}

/* --- The shape a create asks for --- */

Test(rules, a_create_meets_an_existing_object_of_another_shape_with_eexist)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue_attr a = qattr(64), b;
	struct shmq_sem_attr sa = {
		.size = sizeof(sa), .initial = 1, .max = 4, .flags = SHMQ_SEM_ATTR_BOUNDED};
	struct shmq_sem_attr sb = sa;
	struct shmq_event_attr ea = {.size = sizeof(ea), .initial = 1};
	struct shmq_lock_attr la = {.size = sizeof(la), .flags = SHMQ_LOCK_ATTR_RECURSIVE};
	struct shmq_lock_attr lb = {.size = sizeof(lb)};
	struct shmq_barrier_attr ba = {.size = sizeof(ba), .parties = 3};
	struct shmq_barrier_attr bb = {.size = sizeof(bb), .parties = 2};
	struct shmq_pipe_attr pa = {.size = sizeof(pa), .n_slots = 8, .slot_size = 64};
	struct shmq_pipe_attr pb = pa;
	const unsigned int cq = SHMQ_CREATE | SHMQ_SEND;
	struct shmq_queue *q, *q2;
	struct shmq_sem *s, *s2;
	struct shmq_event *e, *e2;
	struct shmq_lock *l, *l2;
	struct shmq_barrier *br, *br2;
	struct shmq_pipe *p, *p2;

	T_OK(shmq_queue_open(c, "shape", cq, &a, &q));
	/* The same shape, no shape, or any: opened. */
	T_OK(shmq_queue_open(c, "shape", cq, &a, &q2));
	shmq_queue_close(q2);
	T_OK(shmq_queue_open(c, "shape", cq, NULL, &q2));
	shmq_queue_close(q2);
	b = qattr(128);
	cr_assert(eq(int, shmq_queue_open(c, "shape", cq, &b, &q2), -EEXIST), "another n_slots");
	T_OK(shmq_queue_open(c, "shape", cq | SHMQ_ANY_GEOMETRY, &b, &q2));
	shmq_queue_close(q2);
	b = qattr(64);
	b.slot_size = 128;
	cr_assert(eq(int, shmq_queue_open(c, "shape", cq, &b, &q2), -EEXIST), "another slot_size");
	b = qattr(64);
	b.mode = SHMQ_SPSC;
	cr_assert(eq(int, shmq_queue_open(c, "shape", cq, &b, &q2), -EEXIST), "another mode");
	b = qattr(64);
	b.flags = SHMQ_QUEUE_JOINABLE;
	cr_assert(eq(int, shmq_queue_open(c, "shape", cq, &b, &q2), -EEXIST), "joinable");
	b = qattr(64);
	b.max_msg = 1 << 20;
	cr_assert(eq(int, shmq_queue_open(c, "shape", cq, &b, &q2), -EEXIST), "another max_msg");
	/* A max_msg a slot holds anyway is no arena: the same shape. */
	b.max_msg = 64;
	T_OK(shmq_queue_open(c, "shape", cq, &b, &q2));
	shmq_queue_close(q2);
	/* Placement and permissions are no shape. */
	b = qattr(64);
	b.flags = SHMQ_QUEUE_NUMA;
	b.numa_node = 0;
	b.perm = 0644;
	T_OK(shmq_queue_open(c, "shape", cq, &b, &q2));
	shmq_queue_close(q2);
	/* Exclusive: -EEXIST whatever the shape.  SHMQ_ANY_GEOMETRY alone asks nothing. */
	cr_assert(eq(int, shmq_queue_open(c, "shape", cq | SHMQ_EXCL, &a, &q2), -EEXIST));
	cr_assert(eq(int, shmq_queue_open(c, "shape", SHMQ_SEND | SHMQ_ANY_GEOMETRY, NULL, &q2),
		     -EINVAL));

	T_OK(shmq_sem_open(c, "shape-s", SHMQ_CREATE, &sa, &s));
	sb.initial = 3; /* where it starts, not what it is */
	T_OK(shmq_sem_open(c, "shape-s", SHMQ_CREATE, &sb, &s2));
	shmq_sem_close(s2);
	sb.max = 5;
	cr_assert(eq(int, shmq_sem_open(c, "shape-s", SHMQ_CREATE, &sb, &s2), -EEXIST));
	sb = sa;
	sb.flags = 0;
	sb.max = 0;
	cr_assert(eq(int, shmq_sem_open(c, "shape-s", SHMQ_CREATE, &sb, &s2), -EEXIST));

	T_OK(shmq_event_open(c, "shape-e", SHMQ_CREATE, &ea, &e));
	ea.initial = 0;
	T_OK(shmq_event_open(c, "shape-e", SHMQ_CREATE, &ea, &e2));
	shmq_event_close(e2);

	T_OK(shmq_lock_open(c, "shape-l", SHMQ_CREATE, &la, &l));
	cr_assert(eq(int, shmq_lock_open(c, "shape-l", SHMQ_CREATE, &lb, &l2), -EEXIST));
	T_OK(shmq_lock_open(c, "shape-l", SHMQ_CREATE, NULL, &l2));
	shmq_lock_close(l2);

	T_OK(shmq_barrier_open(c, "shape-b", SHMQ_CREATE, &ba, &br));
	cr_assert(eq(int, shmq_barrier_open(c, "shape-b", SHMQ_CREATE, &bb, &br2), -EEXIST));
	T_OK(shmq_barrier_open(c, "shape-b", SHMQ_CREATE | SHMQ_ANY_GEOMETRY, &bb, &br2));
	cr_assert(eq(int, shmq_barrier_parties(br2), 3));
	shmq_barrier_close(br2);

	T_OK(shmq_pipe_open(c, "shape-p", 0, SHMQ_CREATE, &pa, &p));
	pb.flags = SHMQ_PIPE_ATTR_ONEWAY;
	cr_assert(eq(int, shmq_pipe_open(c, "shape-p", 1, SHMQ_CREATE, &pb, &p2), -EEXIST));
	pb = pa;
	T_OK(shmq_pipe_open(c, "shape-p", 1, SHMQ_CREATE, &pb, &p2));
	shmq_pipe_close(p2);

	shmq_pipe_close(p);
	shmq_barrier_close(br);
	shmq_lock_close(l);
	shmq_event_close(e);
	shmq_sem_close(s);
	shmq_queue_close(q);
	shmq_client_close(c);
}

/* --- Errors say why --- */

static void says(int r, int want, const char *what)
{
	cr_assert(eq(int, r, want), "%s: %s", what, strerror(-r));
	cr_assert(strstr(shmq_last_error(), what) != NULL, "the reason '%s' lacks '%s'",
		  shmq_last_error(), what);
}

Test(rules, a_failed_control_call_says_why_and_a_good_one_clears_it)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue_attr a = qattr(1000), b = qattr(64);
	struct shmq_sem *s;
	struct shmq_queue *q;

	says(shmq_queue_open(c, "bad/name", SHMQ_CREATE | SHMQ_SEND, &b, &q), -EINVAL,
	     "invalid name");
	says(shmq_queue_open(c, "odd", SHMQ_CREATE | SHMQ_SEND, &a, &q), -EINVAL,
	     "not a power of two");
	T_OK(shmq_sem_open(c, "why-s1", SHMQ_CREATE, NULL, &s));
	cr_assert(shmq_last_error()[0] == '\0', "a good call leaves no reason");
	says(shmq_queue_purge(c, "why-s1"), -EINVAL, "semaphore");
	says(shmq_queue_open(c, "why-s1", SHMQ_SEND, NULL, &q), -EINVAL, "is of kind semaphore");
	T_OK(shmq_queue_open(c, "why-q", SHMQ_CREATE | SHMQ_SEND, &b, &q));
	b.n_slots = 128;
	{
		struct shmq_queue *q2;

		says(shmq_queue_open(c, "why-q", SHMQ_CREATE | SHMQ_SEND, &b, &q2), -EEXIST,
		     "another shape");
	}
	says(shmq_unlink(c, "why-nothing"), -ENOENT, "why-nothing");
	/* the library's own refusals say why too, one for each attr check */
	{
		struct shmq_sem_attr sa = {
			.size = sizeof(sa), .initial = 5, .max = 2, .flags = SHMQ_SEM_ATTR_BOUNDED};
		struct shmq_barrier_attr ba = {.size = sizeof(ba), .parties = 0};
		struct shmq_event_attr ea = {.size = sizeof(ea), .initial = 2};
		struct shmq_queue_attr qa = qattr(64);
		struct shmq_barrier *bar;
		struct shmq_event *ev;
		struct shmq_queue *qx;
		struct shmq_sem *sx;

		says(shmq_sem_open(c, "why-s2", SHMQ_CREATE, &sa, &sx), -EINVAL,
		     "initial value 5 is above the bound 2");
		sa = (struct shmq_sem_attr){.size = sizeof(sa), .max = 3};
		says(shmq_sem_open(c, "why-s2", SHMQ_CREATE, &sa, &sx), -EINVAL,
		     "needs SHMQ_SEM_ATTR_BOUNDED");
		says(shmq_barrier_open(c, "why-b", SHMQ_CREATE, &ba, &bar), -EINVAL,
		     "parties 0 is not in [1, 32767]");
		says(shmq_barrier_open(c, "why-b", SHMQ_CREATE, NULL, &bar), -EINVAL,
		     "needs its parties");
		says(shmq_event_open(c, "why-e", SHMQ_CREATE, &ea, &ev), -EINVAL,
		     "initial 2 is not 0 (clear) or 1 (set)");
		qa.perm = 01777;
		says(shmq_queue_open(c, "why-q2", SHMQ_CREATE | SHMQ_SEND, &qa, &qx), -EINVAL,
		     "perm 01777 has bits outside 0777");
		qa = qattr(64);
		qa.mode = 99;
		says(shmq_queue_open(c, "why-q2", SHMQ_CREATE | SHMQ_SEND, &qa, &qx), -EINVAL,
		     "mode 99 is not");
	}
	shmq_queue_close(q);
	shmq_sem_close(s);
	shmq_client_close(c);
}

Test(rules, a_limit_says_which_limit_and_by_how_much)
{
	static const char *args[] = {"--max-memory-per-uid=1048576", NULL};
	struct shmq_queue_attr a = qattr(4096);
	struct t_daemon lim;
	struct shmq_client *c;
	struct shmq_queue *q;

	a.slot_size = 1024;
	t_daemon_start(&lim, args, NULL);
	c = t_connect(&lim);
	says(shmq_queue_open(c, "big", SHMQ_CREATE | SHMQ_SEND, &a, &q), -ENOSPC,
	     "max-memory-per-uid");
	shmq_client_close(c);
	t_daemon_fini(&lim);
}

struct connect_probe {
	const char *sock;
	int r;
	char why[256];
};

static int connect_as_other(void *arg)
{
	struct connect_probe *p = arg;
	struct shmq_client *c;

	p->r = shmq_client_connect(p->sock, &c);
	snprintf(p->why, sizeof(p->why), "%s", shmq_last_error());
	if (p->r == 0)
		shmq_client_close(c);
	return 0;
}

Test(rules, a_failed_connect_names_the_socket_and_the_likely_fix)
{
	static const char *const closed[] = {"--socket-mode=0600", NULL};
	struct connect_probe *p = t_shared_alloc(sizeof(*p));
	struct shmq_client *c;
	struct t_daemon d2;

	says(shmq_client_connect("/tmp/shmq-nowhere/x.sock", &c), -ENOENT,
	     "shmqd at /tmp/shmq-nowhere/x.sock: no daemon listens there");
	T_OK(shmq_client_connect(d.sock, &c));
	cr_assert(shmq_last_error()[0] == '\0', "a good connect leaves no reason");
	T_OK(shmq_client_close(c));

	t_need_root("connecting as another uid");
	t_daemon_start(&d2, closed, NULL);
	*p = (struct connect_probe){.sock = d2.sock, .r = 1};
	cr_assert(eq(
		int,
		t_wait_peer_ms(t_fork_as(T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID, connect_as_other, p),
			       10000),
		0));
	cr_assert(eq(int, p->r, -EACCES), "%d", p->r);
	cr_assert(strstr(p->why, d2.sock) && strstr(p->why, "the socket is not open to you") &&
			  strstr(p->why, "group shmq"),
		  "reason: %s", p->why);
	t_daemon_fini(&d2);
}
