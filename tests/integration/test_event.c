/* SPDX-License-Identifier: MIT */
/*
 * Integration: events between processes through a real shmqd -- a set in
 * one process wakes waiters in others, a set cleared at once is not missed,
 * views and permissions, the generic async entry points, and a waiter
 * killed asleep.
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

#include "shm/layout.h"
#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define WAIT_MS 10000

static struct t_daemon d;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(event, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 60);

static struct shmq_event *event_new(struct shmq_client *c, const char *name, uint32_t initial,
				    uint32_t perm)
{
	struct shmq_event_attr a = {.size = sizeof(a), .initial = initial, .perm = perm};
	struct shmq_event *e;

	T_OK(shmq_event_open(c, name, SHMQ_CREATE | SHMQ_EXCL, &a, &e));
	return e;
}

struct peer {
	const char *sock;
	const char *name;
	int result;
};

/* Child: open @name and wait for it, sleeping at once. */
static int peer_wait(void *arg)
{
	struct peer *p = arg;
	struct shmq_client *c;
	struct shmq_event *e;

	if (shmq_client_connect(p->sock, &c) || shmq_event_open(c, p->name, 0, NULL, &e))
		return 1;
	shmq_event_set_spin(e, 0);
	p->result = shmq_event_wait(e, shmq_deadline_after(UINT64_C(20) * 1000000000));
	return p->result == 0 ? 0 : 2;
}

/* The event's live state through a view: its words, as shmqctl reads them. */
static struct shmq_view *view_words(struct shmq_client *c, const char *name,
				    struct shmq_event_shm **ret)
{
	struct shmq_segment seg;
	struct shmq_view *v;
	const void *base;
	size_t size;

	T_OK(shmq_view_open(c, name, &v));
	T_OK(shmq_view_memory(v, &base, &size));
	T_OK(shmq__segment_attach((void *)base, size, &seg));
	cr_assert(eq(u32, seg.kind, SHMQ_KIND_EVENT));
	*ret = seg.object;
	return v;
}

/* Until @n processes sleep on the event's eventcount, judged by its sleeps counter. */
static void wait_sleeping(struct shmq_client *c, const char *name)
{
	uint64_t deadline = t_now_ns() + UINT64_C(5) * 1000000000;
	struct shmq_event_shm *es;
	struct shmq_view *v = view_words(c, name, &es);

	while (!(atomic_load_explicit(&es->ec, memory_order_relaxed) & 1) && t_now_ns() < deadline)
		t_sleep_ms(1);
	cr_assert(atomic_load_explicit(&es->ec, memory_order_relaxed) & 1, "nobody went to sleep");
	t_sleep_ms(20); /* the other waiters, into FUTEX_WAIT */
	T_OK(shmq_view_close(v));
}

Test(event, a_set_in_one_process_wakes_waiters_in_two_others)
{
	struct peer *p = t_shared_alloc(2 * sizeof(*p));
	struct shmq_client *c = t_connect(&d);
	struct shmq_event *e = event_new(c, "go", 0, 0600);
	pid_t pid[2];

	for (int i = 0; i < 2; i++) {
		p[i] = (struct peer){.sock = d.sock, .name = "go", .result = -1};
		pid[i] = t_fork_child(peer_wait, &p[i]);
	}
	wait_sleeping(c, "go");
	cr_assert(eq(int, shmq_event_set(e), 1));
	for (int i = 0; i < 2; i++)
		cr_assert(eq(int, t_wait_peer_ms(pid[i], WAIT_MS), 0), "waiter %d: %d", i,
			  p[i].result);
	cr_assert(eq(int, shmq_event_is_set(e), 1));
	T_OK(shmq_event_close(e));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(event, waiters_in_other_processes_do_not_miss_a_set_that_is_cleared_at_once)
{
	struct peer *p = t_shared_alloc(sizeof(*p));
	struct shmq_client *c = t_connect(&d);
	struct shmq_event *e = event_new(c, "blink", 0, 0600);
	pid_t pid;

	*p = (struct peer){.sock = d.sock, .name = "blink", .result = -1};
	pid = t_fork_child(peer_wait, p);
	wait_sleeping(c, "blink");
	cr_assert(eq(int, shmq_event_set(e), 1));
	cr_assert(eq(int, shmq_event_clear(e), 1));
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 0), "the waiter missed the set: %d",
		  p->result);
	cr_assert(eq(int, shmq_event_is_set(e), 0));
	T_OK(shmq_event_close(e));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(event, try_and_timed_waits_and_bad_arguments)
{
	struct shmq_event_attr bad = {.size = sizeof(bad), .initial = 2};
	struct shmq_client *c = t_connect(&d);
	struct shmq_event *e = event_new(c, "ev", 1, 0600), *x = NULL;

	T_OK(shmq_event_try_wait(e));
	T_OK(shmq_event_wait(e, SHMQ_FOREVER));
	cr_assert(eq(int, shmq_event_clear(e), 1));
	T_ERR(shmq_event_try_wait(e), -EAGAIN);
	T_ERR(shmq_event_wait(e, t_deadline_ms(20)), -ETIMEDOUT);
	T_ERR(shmq_event_open(c, "ev2", SHMQ_CREATE, &bad, &x), -EINVAL);
	T_ERR(shmq_event_open(c, "ev", SHMQ_EXCL, NULL, &x), -EINVAL);
	T_ERR(shmq_event_open(c, "no-such", 0, NULL, &x), -ENOENT);
	cr_assert(x == NULL);
	T_ERR(shmq_event_set(NULL), -EINVAL);
	T_ERR(shmq_event_wait(NULL, SHMQ_FOREVER), -EINVAL);
	T_OK(shmq_event_close(NULL));
	T_OK(shmq_event_close(e));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(event, a_name_of_another_kind_is_not_an_event_and_a_view_only_looks)
{
	struct shmq_sem_attr sa = {.size = sizeof(sa), .initial = 1};
	struct shmq_client *c = t_connect(&d);
	struct shmq_event *e = event_new(c, "lamp", 1, 0644), *v, *x = NULL;
	struct shmq_sem *s, *y = NULL;

	T_OK(shmq_sem_open(c, "tokens", SHMQ_CREATE, &sa, &s));
	T_ERR(shmq_event_open(c, "tokens", 0, NULL, &x), -EINVAL);
	T_ERR(shmq_sem_open(c, "lamp", 0, NULL, &y), -EINVAL);
	cr_assert(x == NULL && y == NULL);
	T_OK(shmq_sem_close(s));
	T_OK(shmq_event_open(c, "lamp", SHMQ_VIEW, NULL, &v));
	cr_assert(eq(int, shmq_event_is_set(v), 1));
	T_ERR(shmq_event_set(v), -EBADF);
	T_ERR(shmq_event_clear(v), -EBADF);
	T_ERR(shmq_event_wait(v, SHMQ_FOREVER), -EBADF);
	T_OK(shmq_event_close(v));
	T_OK(shmq_event_close(e));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

struct other {
	const char *sock;
	int open_rw, open_view, is_set;
};

static int as_other(void *arg)
{
	struct other *o = arg;
	struct shmq_client *c;
	struct shmq_event *e;

	if (shmq_client_connect(o->sock, &c))
		return 1;
	o->open_rw = shmq_event_open(c, "mine", 0, NULL, &e);
	if (o->open_rw == 0)
		shmq_event_close(e);
	o->open_view = shmq_event_open(c, "mine", SHMQ_VIEW, NULL, &e);
	if (o->open_view == 0) {
		o->is_set = shmq_event_is_set(e);
		shmq_event_close(e);
	}
	shmq_client_close(c);
	return 0;
}

Test(event, another_user_needs_write_to_use_it_and_read_to_view_it)
{
	struct other *o = t_shared_alloc(sizeof(*o));
	struct shmq_client *c = t_connect(&d);
	struct shmq_event *e = event_new(c, "mine", 1, 0604);

	o->sock = d.sock;
	cr_assert(eq(int,
		     t_wait_peer_ms(t_fork_as(T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID, as_other, o),
				    WAIT_MS),
		     0));
	cr_assert(eq(int, o->open_rw, -EACCES));
	cr_assert(eq(int, o->open_view, 0));
	cr_assert(eq(int, o->is_set, 1));
	T_OK(shmq_event_close(e));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

static int on_set(struct shmq_watch *w, int events, void *arg)
{
	int *seen = arg;

	(void)w;
	*seen = events;
	return -ECANCELED; /* once is enough */
}

static int peer_set(void *arg)
{
	struct peer *p = arg;
	struct shmq_client *c;
	struct shmq_event *e;

	if (shmq_client_connect(p->sock, &c) || shmq_event_open(c, p->name, 0, NULL, &e))
		return 1;
	t_sleep_ms(50);
	return shmq_event_set(e) == 1 ? 0 : 2;
}

Test(event, the_poller_and_a_waiter_serve_an_event_through_the_generic_calls)
{
	struct peer *p = t_shared_alloc(sizeof(*p));
	struct shmq_client *c = t_connect(&d);
	struct shmq_event *e = event_new(c, "async", 0, 0600);
	struct shmq_waiter *w = NULL;
	struct shmq_poller *pl;
	struct shmq_watch *wt;
	int seen = 0;
	pid_t pid;

	T_ERR(shmq_waiter_new(shmq_event_object(e), SHMQ_POLL_SEND, &w), -EINVAL);
	T_OK(shmq_waiter_new(shmq_event_object(e), SHMQ_POLL_RECV, &w));
	cr_assert(eq(int, shmq_waiter_is_ready(w), 0));
	T_ERR(shmq_event_close(e), -EBUSY);
	T_OK(shmq_waiter_free(w));

	T_OK(shmq_poller_new(0, &pl));
	T_OK(shmq_poller_add(pl, shmq_event_object(e), SHMQ_POLL_RECV, on_set, &seen, &wt));
	*p = (struct peer){.sock = d.sock, .name = "async"};
	pid = t_fork_child(peer_set, p);
	T_ERR(shmq_poller_run(pl), -ECANCELED);
	cr_assert(eq(int, seen, SHMQ_POLL_RECV));
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 0));
	shmq_watch_free(wt);
	shmq_poller_free(pl);
	T_OK(shmq_event_close(e));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(event, a_waiter_killed_asleep_leaves_no_sleeper_bit_behind)
{
	struct peer *p = t_shared_alloc(sizeof(*p));
	struct shmq_client *c = t_connect(&d);
	struct shmq_event *e = event_new(c, "dead", 0, 0600);
	uint64_t deadline;
	struct shmq_event_shm *es;
	struct shmq_view *v;
	pid_t pid;

	*p = (struct peer){.sock = d.sock, .name = "dead", .result = -1};
	pid = t_fork_child(peer_wait, p);
	wait_sleeping(c, "dead");
	kill(pid, SIGKILL);
	cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL));
	v = view_words(c, "dead", &es);
	deadline = t_now_ns() + UINT64_C(5) * 1000000000;
	while ((atomic_load_explicit(&es->ec, memory_order_relaxed) & 1) && t_now_ns() < deadline)
		t_sleep_ms(1);
	cr_assert(eq(u32, atomic_load_explicit(&es->ec, memory_order_relaxed) & 1, 0),
		  "the dead sleeper's bit stayed");
	T_OK(shmq_view_close(v));
	T_OK(shmq_event_close(e));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}
