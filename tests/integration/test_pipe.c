/* SPDX-License-Identifier: MIT */
/*
 * Integration: pipes between processes through a real shmqd -- a round
 * trip between two processes, one holder per end, no reopening a closed
 * end, a holder SIGKILLed while its peer is blocked (the peer reads what
 * was sent, then end-of-file, and its sends fail), a holder that detaches
 * without closing, one-way pipes, views and shmqctl's create, the
 * generic async entry points, and refusals of malformed opens.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "shm/layout.h"
#include "shm/protocol.h"
#include "tests/helpers.h"
#include "tests/integration/daemon.h"
#include "tests/integration/raw.h"

#define WAIT_MS 10000

static struct t_daemon d;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(pipe, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 60);

static struct shmq_pipe *pipe_new(struct shmq_client *c, const char *name, uint32_t flags)
{
	struct shmq_pipe_attr a = {
		.size = sizeof(a), .n_slots = 16, .slot_size = 256, .flags = flags};
	struct shmq_pipe *p;

	T_OK(shmq_pipe_open(c, name, 0, SHMQ_CREATE | SHMQ_EXCL, &a, &p));
	return p;
}

static uint64_t deadline(void)
{
	return shmq_deadline_after((uint64_t)WAIT_MS * 1000000);
}

struct peer {
	const char *sock;
	const char *name;
	_Atomic int state; /* 1: holds its end (and has sent what it sends), set by the child */
	int n;		   /* echo: round trips; sender: messages */
	int result;
};

/* Child: hold end 1 and echo every message back until end-of-file. */
static int peer_echo(void *arg)
{
	struct peer *p = arg;
	struct shmq_client *c;
	struct shmq_pipe *e;
	char buf[256];
	int r;

	if (shmq_client_connect(p->sock, &c) || shmq_pipe_open(c, p->name, 1, 0, NULL, &e))
		return 1;
	atomic_store(&p->state, 1);
	while ((r = shmq_pipe_recv(e, buf, sizeof(buf), SHMQ_FOREVER)) >= 0) {
		if (shmq_pipe_send(e, buf, (size_t)r, SHMQ_FOREVER) != 0)
			return 2;
		p->n++;
	}
	p->result = r;
	return r == -EPIPE && shmq_pipe_close(e) == 0 && shmq_client_close(c) == 0 ? 0 : 3;
}

Test(pipe, two_processes_make_round_trips_and_a_close_is_the_end_of_file)
{
	struct peer *p = t_shared_alloc(sizeof(*p));
	struct shmq_client *c = t_connect(&d);
	struct shmq_pipe *e = pipe_new(c, "rtt", 0);
	char buf[256];
	pid_t pid;

	cr_assert(eq(int, shmq_pipe_end(e), 0));
	cr_assert(eq(int, shmq_pipe_max_msg(e), 256));
	*p = (struct peer){.sock = d.sock, .name = "rtt"};
	pid = t_fork_child(peer_echo, p);
	for (int i = 0; i < 1000; i++) {
		int len = snprintf(buf, sizeof(buf), "message %d", i);
		char back[256];

		T_OK(shmq_pipe_send(e, buf, (size_t)len, deadline()));
		cr_assert(eq(int, shmq_pipe_recv(e, back, sizeof(back), deadline()), len));
		cr_assert(eq(int, memcmp(buf, back, (size_t)len), 0));
	}
	cr_assert(eq(int, shmq_pipe_peer_closed(e), 0));
	T_OK(shmq_pipe_close(e)); /* the child's recv sees end-of-file */
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 0), "child: %d", p->result);
	cr_assert(eq(int, p->n, 1000));
	T_OK(shmq_unlink(c, "rtt"));
	T_OK(shmq_client_close(c));
}

Test(pipe, an_end_has_one_holder_and_a_closed_end_stays_closed)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_pipe *a = pipe_new(c, "one-holder", 0), *b, *x;

	T_ERR(shmq_pipe_open(c, "one-holder", 0, 0, NULL, &x), -EBUSY);
	T_OK(shmq_pipe_open(c, "one-holder", 1, 0, NULL, &b));
	T_ERR(shmq_pipe_open(c, "one-holder", 1, 0, NULL, &x), -EBUSY);
	T_OK(shmq_pipe_close(b));
	cr_assert(eq(int, shmq_pipe_peer_closed(a), 1));
	T_ERR(shmq_pipe_open(c, "one-holder", 1, 0, NULL, &x), -EPIPE);
	T_ERR(shmq_pipe_send(a, "x", 1, 0), -EPIPE);
	T_ERR(shmq_pipe_recv(a, NULL, 0, 0), -EPIPE);
	/* the pipe is spent: unlinking it frees the name for a new one */
	T_OK(shmq_pipe_close(a));
	T_OK(shmq_unlink(c, "one-holder"));
	a = pipe_new(c, "one-holder", 0);
	T_OK(shmq_pipe_open(c, "one-holder", 1, 0, NULL, &b));
	T_OK(shmq_pipe_send(b, "new", 3, 0));
	T_OK(shmq_pipe_close(b));
	T_OK(shmq_pipe_close(a));
	T_OK(shmq_client_close(c));
}

/* Child: hold end 1, send p->n messages, say so, and wait to be killed. */
static int peer_send_hold(void *arg)
{
	struct peer *p = arg;
	struct shmq_client *c;
	struct shmq_pipe *e;

	if (shmq_client_connect(p->sock, &c) || shmq_pipe_open(c, p->name, 1, 0, NULL, &e))
		return 1;
	for (int i = 0; i < p->n; i++)
		if (shmq_pipe_send(e, &i, sizeof(i), SHMQ_FOREVER) != 0)
			return 2;
	atomic_store(&p->state, 1);
	for (;;)
		pause();
}

static void wait_state(struct peer *p)
{
	uint64_t end = t_now_ns() + UINT64_C(5) * 1000000000;

	while (!atomic_load(&p->state) && t_now_ns() < end)
		t_sleep_ms(1);
	cr_assert(atomic_load(&p->state), "the child never got there");
}

Test(pipe, a_holder_killed_leaves_its_messages_then_end_of_file_and_never_a_hang)
{
	struct peer *p = t_shared_alloc(sizeof(*p));
	struct shmq_client *c = t_connect(&d);
	struct shmq_pipe *e = pipe_new(c, "killed", 0);
	uint64_t t0;
	int v;
	pid_t pid;

	*p = (struct peer){.sock = d.sock, .name = "killed", .n = 5};
	pid = t_fork_child(peer_send_hold, p);
	wait_state(p);
	for (int i = 0; i < 5; i++) {
		cr_assert(eq(int, shmq_pipe_recv(e, &v, sizeof(v), deadline()), (int)sizeof(v)));
		cr_assert(eq(int, v, i));
	}
	cr_assert(eq(int, shmq_pipe_poll(e, 0), 0));
	t0 = t_now_ns();
	kill(pid, SIGKILL);
	/* blocked here when the daemon closes the dead holder's end */
	cr_assert(eq(int, shmq_pipe_recv(e, &v, sizeof(v), deadline()), -EPIPE));
	cr_assert(t_now_ns() - t0 < (uint64_t)WAIT_MS * 1000000 / 2, "woken by the close");
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 128 + SIGKILL));
	cr_assert(eq(int, shmq_pipe_peer_closed(e), 1));
	T_ERR(shmq_pipe_send(e, &v, sizeof(v), deadline()), -EPIPE);
	cr_assert(eq(int, shmq_pipe_poll(e, deadline()), 1)); /* end-of-file is ready */
	T_ERR(shmq_pipe_open(c, "killed", 1, 0, NULL, &(struct shmq_pipe *){NULL}), -EPIPE);
	T_OK(shmq_pipe_close(e));
	T_OK(shmq_client_close(c));
}

Test(pipe, a_holder_that_detaches_without_closing_is_closed_by_the_daemon)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_pipe *e = pipe_new(c, "raw-close", 0);
	struct shmq_req_open req = {.flags = SHMQ_OPEN_USE | SHMQ_OPEN_END1,
				    .kind = SHMQ_KIND_PIPE};
	struct shmq_rep_open op;
	struct shmq_req_close cl;
	struct t_reply rep;
	int fd = t_raw_session(d.sock);

	cr_assert(fd >= 0);
	strcpy(req.name, "raw-close");
	T_OK(t_raw_call(fd, SHMQ_OP_OPEN, &req, sizeof(req), &rep));
	memcpy(&op, rep.body, sizeof(op));
	cr_assert(eq(u32, op.flags & SHMQ_OPEN_END1, SHMQ_OPEN_END1), "granted as asked");
	if (rep.fd >= 0)
		close(rep.fd);
	cr_assert(eq(int, shmq_pipe_peer_closed(e), 0));
	cl = (struct shmq_req_close){.attach_id = op.attach_id};
	T_OK(t_raw_call(fd, SHMQ_OP_CLOSE, &cl, sizeof(cl), NULL)); /* never touched shm */
	cr_assert(eq(int, shmq_pipe_peer_closed(e), 1));
	T_ERR(shmq_pipe_recv(e, NULL, 0, deadline()), -EPIPE);
	close(fd);
	T_OK(shmq_pipe_close(e));
	T_OK(shmq_client_close(c));
}

Test(pipe, malformed_pipe_opens_are_refused)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_pipe_attr bad = {.size = sizeof(bad), .n_slots = 3};
	struct shmq_req_open req = {.flags = SHMQ_OPEN_USE | SHMQ_OPEN_END1,
				    .kind = SHMQ_KIND_QUEUE};
	struct shmq_pipe *p;
	struct t_reply rep;
	int fd = t_raw_session(d.sock);

	T_ERR(shmq_pipe_open(c, "bad", 2, SHMQ_CREATE, NULL, &p), -EINVAL);
	T_ERR(shmq_pipe_open(c, "bad", 1, SHMQ_VIEW, NULL, &p), -EINVAL);
	T_ERR(shmq_pipe_open(c, "bad", 0, SHMQ_CREATE | SHMQ_SEND, NULL, &p), -EINVAL);
	T_ERR(shmq_pipe_open(c, "bad", 0, SHMQ_CREATE, &bad, &p), -EINVAL);
	bad = (struct shmq_pipe_attr){.size = sizeof(bad), .flags = 2};
	T_ERR(shmq_pipe_open(c, "bad", 0, SHMQ_CREATE, &bad, &p), -EINVAL);
	T_ERR(shmq_pipe_open(c, "bad", 0, 0, NULL, &p), -ENOENT);
	/* END1 is a pipe's: not on a queue, not on a view */
	strcpy(req.name, "bad");
	T_ERR(t_raw_call(fd, SHMQ_OP_CREATE, &req, sizeof(req), &rep), -EINVAL);
	req.kind = SHMQ_KIND_PIPE;
	req.flags = SHMQ_OPEN_VIEW | SHMQ_OPEN_END1;
	T_ERR(t_raw_call(fd, SHMQ_OP_CREATE, &req, sizeof(req), &rep), -EINVAL);
	req.flags = SHMQ_OPEN_SEND; /* a pipe end is USE */
	T_ERR(t_raw_call(fd, SHMQ_OP_CREATE, &req, sizeof(req), &rep), -EINVAL);
	close(fd);
	/* a queue is not a pipe */
	{
		struct shmq_queue *q;

		T_OK(shmq_queue_open(c, "a-queue", SHMQ_CREATE | SHMQ_SEND, NULL, &q));
		T_ERR(shmq_pipe_open(c, "a-queue", 0, 0, NULL, &p), -EINVAL);
		T_OK(shmq_queue_close(q));
	}
	T_OK(shmq_client_close(c));
}

Test(pipe, a_one_way_pipe_created_by_shmqctl_carries_from_end_1_to_end_0)
{
	const char *ctl = getenv("SHMQCTL");
	const char *const argv[] = {ctl,	"--socket", d.sock, "create",	   "pipe", "oneway",
				    "--oneway", "--slots",  "4",    "--slot-size", "32",   NULL};
	const char *const ls[] = {ctl, "--socket", d.sock, "ls", NULL};
	const char *const show[] = {ctl, "--socket", d.sock, "--json", "show", "oneway", NULL};
	struct shmq_client *c = t_connect(&d);
	struct shmq_object_info info = {.size = sizeof(info)};
	struct shmq_pipe *r, *w;
	char out[8192], buf[32];

	cr_assert(ctl && *ctl, "SHMQCTL is not set: run `make test`, or set SHMQCTL=build/shmqctl");
	cr_assert(eq(int, t_run(argv, out, sizeof(out), WAIT_MS), 0), "%s", out);
	cr_assert(strstr(out, "created pipe 'oneway': one-way, 4 slots of 32 bytes each way") !=
			  NULL,
		  "%s", out);
	T_OK(shmq_object_stat(c, "oneway", &info));
	cr_assert(eq(u32, info.kind, SHMQ_OBJECT_PIPE));
	cr_assert(eq(u32, info.kind_flags, SHMQ_PIPE_ATTR_ONEWAY));
	cr_assert(eq(u32, info.n_slots, 4));
	T_OK(shmq_pipe_open(c, "oneway", 0, 0, NULL, &r));
	T_OK(shmq_pipe_open(c, "oneway", 1, 0, NULL, &w));
	T_ERR(shmq_pipe_send(r, "x", 1, 0), -EBADF);
	T_ERR(shmq_pipe_recv(w, buf, sizeof(buf), 0), -EBADF);
	T_ERR(shmq_pipe_poll(w, 0), -EBADF);
	T_OK(shmq_pipe_send(w, "hello", 5, 0));
	T_OK(shmq_pipe_send(w, "world", 5, 0));
	cr_assert(eq(int, t_run(ls, out, sizeof(out), WAIT_MS), 0), "%s", out);
	cr_assert(strstr(out, "oneway") && strstr(out, "pipe") && strstr(out, "one-way") != NULL,
		  "%s", out);
	cr_assert(eq(int, t_run(show, out, sizeof(out), WAIT_MS), 0), "%s", out);
	cr_assert(strstr(out, "\"kind\": \"pipe\"") != NULL, "%s", out);
	cr_assert(strstr(out, "\"depth_to_end0\": 2") != NULL, "%s", out);
	cr_assert(strstr(out, "\"end1_closed\": false") != NULL, "%s", out);
	T_OK(shmq_pipe_close(w));
	cr_assert(eq(int, t_run(show, out, sizeof(out), WAIT_MS), 0), "%s", out);
	cr_assert(strstr(out, "\"end1_closed\": true") != NULL, "%s", out);
	cr_assert(eq(int, shmq_pipe_recv(r, buf, sizeof(buf), deadline()), 5));
	cr_assert(eq(int, shmq_pipe_recv(r, buf, sizeof(buf), deadline()), 5));
	cr_assert(eq(int, memcmp(buf, "world", 5), 0));
	T_ERR(shmq_pipe_recv(r, buf, sizeof(buf), deadline()), -EPIPE);
	T_OK(shmq_pipe_close(r));
	T_OK(shmq_client_close(c));
}

static int on_ready(struct shmq_watch *w, int events, void *arg)
{
	(void)w;
	*(int *)arg = events;
	return 0;
}

Test(pipe, a_poller_watch_fires_for_a_message_and_for_the_end_of_file)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_pipe *a = pipe_new(c, "polled", 0), *b;
	struct shmq_poller *pl;
	struct shmq_watch *w;
	int fired = 0;
	char buf[16];

	T_OK(shmq_pipe_open(c, "polled", 1, 0, NULL, &b));
	T_OK(shmq_poller_new(0, &pl));
	T_OK(shmq_poller_add(pl, shmq_pipe_object(a), SHMQ_POLL_RECV, on_ready, &fired, &w));
	T_OK(shmq_poller_run_once(pl, shmq_deadline_after(20 * 1000000)));
	cr_assert(eq(int, fired, 0), "nothing to receive yet");
	T_OK(shmq_pipe_send(b, "m", 1, 0));
	for (int i = 0; i < 100 && !fired; i++)
		(void)shmq_poller_run_once(pl, deadline());
	cr_assert(fired > 0);
	cr_assert(eq(int, shmq_pipe_recv(a, buf, sizeof(buf), 0), 1));
	fired = 0;
	T_ERR(shmq_pipe_close(a), -EBUSY); /* the watch still points at it */
	T_OK(shmq_pipe_close(b));
	for (int i = 0; i < 100 && !fired; i++)
		(void)shmq_poller_run_once(pl, deadline());
	cr_assert(fired > 0, "end-of-file wakes the watch");
	T_ERR(shmq_pipe_recv(a, buf, sizeof(buf), 0), -EPIPE);
	shmq_watch_free(w);
	shmq_poller_free(pl);
	T_OK(shmq_pipe_close(a));
	T_OK(shmq_client_close(c));
}
