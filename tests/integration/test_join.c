/* SPDX-License-Identifier: MIT */
/*
 * Integration: joinable queues through a real shmqd -- workers in other
 * processes finish tasks while the producer joins; a worker SIGKILLed
 * holding tasks (the daemon counts them done, so join returns); a handle
 * closed holding tasks; purge; the refusals; shmqctl's rows.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define WAIT_MS 10000
#define N_TASKS 300

static struct t_daemon d;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(join, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 60);

static struct shmq_queue *joinable(struct shmq_client *c, const char *name, uint32_t mode)
{
	struct shmq_queue_attr a = {.size = sizeof(a),
				    .n_slots = 64,
				    .slot_size = 64,
				    .mode = mode,
				    .flags = SHMQ_QUEUE_JOINABLE};
	struct shmq_queue *q;

	T_OK(shmq_queue_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q));
	return q;
}

static uint64_t deadline(void)
{
	return shmq_deadline_after((uint64_t)WAIT_MS * 1000000);
}

struct worker {
	const char *sock;
	const char *name;
	int hold;	   /* take this many, then wait to be killed */
	_Atomic int state; /* 1: holding them */
	_Atomic int done;  /* tasks this worker finished */
};

/* Child: take tasks and finish them until the queue is shut down. */
static int work(void *arg)
{
	struct worker *w = arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	int v, r;

	if (shmq_client_connect(w->sock, &c) || shmq_queue_open(c, w->name, SHMQ_RECV, NULL, &q))
		return 1;
	while ((r = shmq_queue_recv_wait(q, &v, sizeof(v), deadline())) == (int)sizeof(v)) {
		if (w->hold) {
			if (--w->hold > 0)
				continue;
			atomic_store(&w->state, 1);
			for (;;) /* taken, never done: the daemon must settle them */
				pause();
		}
		atomic_fetch_add(&w->done, 1); /* the work, before it is reported done */
		if (shmq_queue_task_done(q) != 0)
			return 2;
	}
	return r == -EPIPE && shmq_queue_close(q) == 0 && shmq_client_close(c) == 0 ? 0 : 3;
}

Test(join, workers_in_other_processes_finish_the_tasks_and_join_returns)
{
	struct worker *w = t_shared_alloc(2 * sizeof(*w));
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = joinable(c, "jobs", SHMQ_MPMC);
	pid_t pid[2];

	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){.sock = d.sock, .name = "jobs"};
		pid[i] = t_fork_child(work, &w[i]);
	}
	for (int i = 0; i < N_TASKS; i++)
		T_OK(shmq_queue_send_wait(q, &i, sizeof(i), deadline()));
	T_OK(shmq_queue_join(q, deadline()));
	cr_assert(eq(int, shmq_queue_unfinished(q), 0));
	cr_assert(eq(int, atomic_load(&w[0].done) + atomic_load(&w[1].done), N_TASKS),
		  "join returned before every task was done");
	T_OK(shmq_queue_shutdown(q, 0));
	for (int i = 0; i < 2; i++)
		cr_assert(eq(int, t_wait_peer_ms(pid[i], WAIT_MS), 0));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_unlink(c, "jobs"));
	T_OK(shmq_client_close(c));
}

Test(join, a_worker_killed_holding_tasks_has_them_counted_done)
{
	struct worker *w = t_shared_alloc(2 * sizeof(*w));
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = joinable(c, "killed", SHMQ_MPMC);
	char log[16384];
	pid_t holder, finisher;
	int i = 0;

	w[0] = (struct worker){.sock = d.sock, .name = "killed", .hold = 3};
	holder = t_fork_child(work, &w[0]);
	for (; i < 3; i++)
		T_OK(shmq_queue_send_wait(q, &i, sizeof(i), deadline()));
	for (uint64_t end = t_now_ns() + (uint64_t)WAIT_MS * 1000000;
	     !atomic_load(&w[0].state) && t_now_ns() < end;)
		t_sleep_ms(1);
	cr_assert(atomic_load(&w[0].state), "the holder never took its three");
	w[1] = (struct worker){.sock = d.sock, .name = "killed"};
	finisher = t_fork_child(work, &w[1]);
	for (; i < 10; i++)
		T_OK(shmq_queue_send_wait(q, &i, sizeof(i), deadline()));
	T_ERR(shmq_queue_join(q, shmq_deadline_after(50 * 1000000)), -ETIMEDOUT);
	kill(holder, SIGKILL);
	cr_assert(eq(int, t_wait_peer_ms(holder, WAIT_MS), 128 + SIGKILL));
	T_OK(shmq_queue_join(q, deadline())); /* the daemon settled the dead worker's three */
	cr_assert(eq(int, atomic_load(&w[1].done), 7));
	/* The settle wakes the joiner before the daemon writes its log line: wait for it. */
	for (uint64_t end = t_now_ns() + (uint64_t)WAIT_MS * 1000000;; t_sleep_ms(10)) {
		t_daemon_read_log(&d, log, sizeof(log));
		if (strstr(log, "holding 3 unfinished tasks; counted them done") ||
		    t_now_ns() > end)
			break;
	}
	cr_assert(strstr(log, "holding 3 unfinished tasks; counted them done") != NULL, "%s", log);
	T_OK(shmq_queue_shutdown(q, 0));
	cr_assert(eq(int, t_wait_peer_ms(finisher, WAIT_MS), 0));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
}

Test(join, a_handle_closed_holding_tasks_and_a_purge_leave_nothing_unfinished)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = joinable(c, "closed", SHMQ_SPSC), *r;
	int v;

	T_OK(shmq_queue_open(c, "closed", SHMQ_RECV, NULL, &r));
	for (int i = 0; i < 5; i++)
		T_OK(shmq_queue_send(q, &i, sizeof(i)));
	cr_assert(eq(int, shmq_queue_recv(r, &v, sizeof(v)), (int)sizeof(v)));
	cr_assert(eq(int, shmq_queue_recv(r, &v, sizeof(v)), (int)sizeof(v)));
	T_OK(shmq_queue_task_done(r));
	cr_assert(eq(int, shmq_queue_unfinished(q), 4));
	T_OK(shmq_queue_close(r)); /* one taken, not done */
	for (uint64_t end = t_now_ns() + (uint64_t)WAIT_MS * 1000000;
	     shmq_queue_unfinished(q) != 3 && t_now_ns() < end;)
		t_sleep_ms(1);
	cr_assert(eq(int, shmq_queue_unfinished(q), 3), "the closed handle's task is done");
	/* the three queued: dropped, so done */
	cr_assert(eq(int, shmq_queue_purge(c, "closed"), 3));
	cr_assert(eq(int, shmq_queue_unfinished(q), 0));
	T_OK(shmq_queue_join(q, 0));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
}

Test(join, the_refusals_and_the_shmqctl_rows)
{
	const char *ctl = getenv("SHMQCTL");
	const char *const create[] = {ctl,     "--socket", d.sock,	 "create",
				      "queue", "jq",	   "--joinable", NULL};
	const char *const ls[] = {ctl, "--socket", d.sock, "ls", NULL};
	const char *const show[] = {ctl, "--socket", d.sock, "--json", "show", "jq", NULL};
	struct shmq_client *c = t_connect(&d);
	struct shmq_object_info info = {.size = sizeof(info)};
	struct shmq_queue *plain, *s, *r, *view;
	char out[8192];
	int v = 1;

	cr_assert(ctl && *ctl, "SHMQCTL is not set: run `make test`, or set SHMQCTL=build/shmqctl");
	T_OK(shmq_queue_open(c, "plain", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, NULL, &plain));
	T_ERR(shmq_queue_task_done(plain), -EINVAL);
	T_ERR(shmq_queue_join(plain, 0), -EINVAL);
	T_ERR(shmq_queue_unfinished(plain), -EINVAL);
	cr_assert(eq(int, t_run(create, out, sizeof(out), WAIT_MS), 0), "%s", out);
	cr_assert(strstr(out, "created queue 'jq': mpmc, joinable") != NULL, "%s", out);
	T_OK(shmq_object_stat(c, "jq", &info));
	cr_assert(eq(u32, info.kind_flags, SHMQ_QUEUE_JOINABLE));
	T_OK(shmq_queue_open(c, "jq", SHMQ_SEND, NULL, &s));
	T_OK(shmq_queue_open(c, "jq", SHMQ_RECV, NULL, &r));
	T_OK(shmq_queue_open(c, "jq", SHMQ_VIEW, NULL, &view));
	T_ERR(shmq_queue_task_done(s), -EBADF);
	T_ERR(shmq_queue_task_done(r), -EINVAL); /* took nothing */
	T_ERR(shmq_queue_join(view, deadline()), -EBADF);
	T_OK(shmq_queue_send(s, &v, sizeof(v)));
	T_ERR(shmq_queue_join(s, 0), -EAGAIN);
	cr_assert(eq(int, t_run(ls, out, sizeof(out), WAIT_MS), 0), "%s", out);
	cr_assert(strstr(out, "mpmc,joinable") != NULL, "%s", out);
	cr_assert(eq(int, t_run(show, out, sizeof(out), WAIT_MS), 0), "%s", out);
	cr_assert(strstr(out, "\"joinable\": true") != NULL, "%s", out);
	cr_assert(strstr(out, "\"unfinished\": 1") != NULL, "%s", out);
	cr_assert(eq(int, shmq_queue_recv(r, &v, sizeof(v)), (int)sizeof(v)));
	T_OK(shmq_queue_task_done(r));
	T_ERR(shmq_queue_task_done(r), -EINVAL);
	T_OK(shmq_queue_join(s, deadline()));
	T_OK(shmq_queue_shutdown(s, SHMQ_SHUTDOWN_IMMEDIATE));
	T_OK(shmq_queue_send(plain, &v, sizeof(v)));
	T_OK(shmq_queue_close(view));
	T_OK(shmq_queue_close(r));
	T_OK(shmq_queue_close(s));
	T_OK(shmq_queue_close(plain));
	T_OK(shmq_client_close(c));
}
