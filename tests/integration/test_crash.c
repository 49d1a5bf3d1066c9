/* SPDX-License-Identifier: MIT */
/*
 * Integration: deaths and misbehaviour on either side of the socket.
 *
 * Clients that hang up in the middle of a request, or never read their
 * replies, must not disturb the daemon or anyone else.  A client process
 * killed while it holds a zero-copy reservation or a peek must not wedge
 * the queue: once the daemon sees the death it tombstones the half-written
 * slot and delivers the peeked message again.  The daemon killed while
 * clients exchange data must not stop the data (it is not on the data
 * path); only control calls fail, with -ECONNRESET.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "shm/layout.h"
#include "tests/helpers.h"
#include "tests/integration/daemon.h"
#include "tests/integration/raw.h"

#define CHILD_MS 20000
#define REAP_MS	 5000 /* the daemon notices a death within this (it waits on a pidfd) */
#define RECV_MS	 5000

static struct t_daemon d;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(crash, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 60);

static struct shmq_queue_attr qattr(uint32_t n_slots, uint32_t mode)
{
	return (struct shmq_queue_attr){
		.size = sizeof(struct shmq_queue_attr),
		.n_slots = n_slots,
		.slot_size = 64,
		.mode = mode,
		.numa_node = -1,
		.perm = 0600,
	};
}

/* A libshmq client and queue that work before and after whatever the test does. */
struct bystander {
	struct shmq_client *c;
	struct shmq_queue *q;
};

static void bystander_start(struct bystander *b)
{
	struct shmq_queue_attr a = qattr(8, SHMQ_MPMC);

	b->c = t_connect(&d);
	T_OK(shmq_queue_open(b->c, "bystander", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &b->q));
	T_OK(shmq_queue_send(b->q, "before", 6));
}

static void bystander_check(struct bystander *b)
{
	struct shmq_queue *v;
	char m[16];

	cr_assert(eq(int, shmq_queue_recv(b->q, m, sizeof(m)), 6),
		  "the bystander lost its message");
	T_OK(shmq_queue_send(b->q, "after", 5));
	cr_assert(eq(int, shmq_queue_recv(b->q, m, sizeof(m)), 5));
	T_OK(shmq_queue_open(b->c, "bystander", SHMQ_VIEW, NULL, &v));
	T_OK(shmq_queue_close(v));
	T_OK(shmq_queue_close(b->q));
	T_OK(shmq_client_close(b->c));
}

/* Wait (bounded) until STAT @name reports @n attachments; returns the last count seen. */
static uint32_t wait_attached(const char *name, uint32_t n)
{
	uint64_t deadline = t_now_ns() + REAP_MS * 1000000ull;
	struct shmq_obj_info info = {0};
	int fd = t_raw_session(d.sock);

	cr_assert(fd >= 0, "raw session: %s", strerror(-fd));
	do {
		T_OK(t_raw_stat(fd, name, &info));
		if (info.n_attached == n)
			break;
		t_sleep_ms(5);
	} while (t_now_ns() < deadline);
	close(fd);
	return info.n_attached;
}

Test(crash, clients_hanging_up_before_hello_or_mid_header_leave_the_daemon_serving)
{
	struct bystander b;
	unsigned char req[SHMQ_MSG_MAX];
	size_t n = t_raw_build(req, SHMQ_OP_STATUS, 1, NULL, 0);

	bystander_start(&b);
	for (int i = 0; i < 50; i++) {
		int fd = t_raw_connect(d.sock);

		cr_assert(fd >= 0, "connect %d: %s", i, strerror(-fd));
		switch (i % 3) {
		case 0: /* hang up at once */
			break;
		case 1: /* half a header */
			T_OK(t_raw_send(fd, req, n / 2, -1));
			break;
		default: /* HELLO, then half a header */
			T_OK(t_raw_hello(fd));
			T_OK(t_raw_send(fd, req, n - 1, -1));
			break;
		}
		close(fd);
	}
	bystander_check(&b);
	t_daemon_fini(&d);
}

Test(crash, client_hanging_up_before_reading_its_reply_leaves_no_attachment_behind)
{
	struct shmq_req_open req;
	unsigned char buf[512];
	struct bystander b;
	struct shmq_client *c;
	struct shmq_queue *q;

	bystander_start(&b);
	for (int i = 0; i < 20; i++) {
		int fd = t_raw_session(d.sock);

		cr_assert(fd >= 0, "session %d: %s", i, strerror(-fd));
		/* The first creates; the others attach: every reply carries a descriptor. */
		t_raw_queue_req(&req, "orphan", SHMQ_OPEN_CREATE | SHMQ_OPEN_RECV, 8, 64,
				SHMQ_QMODE_MPMC, 0600);
		T_OK(t_raw_send(fd, buf, t_raw_build(buf, SHMQ_OP_OPEN, 1, &req, sizeof(req)), -1));
		if (i % 2)
			shutdown(fd, SHUT_RDWR);
		close(fd);
	}
	cr_assert(eq(u32, wait_attached("orphan", 0), 0),
		  "attachments of clients that hung up were not released");
	c = t_connect(&d);
	T_OK(shmq_queue_open(c, "orphan", SHMQ_SEND, NULL, &q));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	bystander_check(&b);
	t_daemon_fini(&d);
}

Test(crash, client_that_never_reads_its_replies_does_not_stall_other_clients)
{
	unsigned char req[64];
	size_t n = t_raw_build(req, SHMQ_OP_STATUS, 1, NULL, 0);
	struct bystander b;
	struct shmq_client *c2;
	int hog = t_raw_session(d.sock), sent = 0;
	uint64_t deadline = t_now_ns() + 2000000000ull;

	cr_assert(hog >= 0);
	bystander_start(&b);
	cr_assert(fcntl(hog, F_SETFL, O_NONBLOCK) == 0);
	/* Requests until our socket is full: the daemon's replies have long filled its side. */
	while (sent < 100000 && t_now_ns() < deadline) {
		int r = t_raw_send(hog, req, n, -1);

		if (r == -EAGAIN) {
			t_sleep_ms(1);
			continue;
		}
		if (r < 0)
			break; /* the daemon dropped the hog: allowed */
		sent++;
	}
	/* Everyone else is still served promptly (each control call has a 5 s budget). */
	bystander_check(&b);
	c2 = t_connect(&d);
	T_OK(shmq_client_close(c2));
	close(hog);
	t_daemon_fini(&d);
}

/* --- Repair after a client process dies --- */

struct holder {
	const char *sock;
	int pipe_w;
	int result; /* what the child saw, written to the pipe */
	/* sem_hold_and_hang(): which semaphore, how many tokens to take and give back */
	const char *sem;
	int take, give;
};

static void msg_name(char *buf, size_t size, int i)
{
	snprintf(buf, size, "m%d", i);
}

static void notify(int fd, int v)
{
	if (write(fd, &v, sizeof(v)) != sizeof(v))
		_exit(3);
}

static int wait_notify(int fd)
{
	struct timeval tv = {.tv_sec = CHILD_MS / 1000};
	int v = -1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert(read(fd, &v, sizeof(v)) == sizeof(v), "the child did not report in time");
	return v;
}

/* Child: send m0..m4, then reserve the next slot, half-write it and wait to be killed. */
static int reserve_and_hang(void *arg)
{
	struct holder *h = arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	char name[8];
	void *slot;

	if (shmq_client_connect(h->sock, &c) || shmq_queue_open(c, "repair", SHMQ_SEND, NULL, &q))
		return 1;
	for (int i = 0; i < 5; i++) {
		msg_name(name, sizeof(name), i);
		if (shmq_queue_send(q, name, strlen(name)))
			return 2;
	}
	if (shmq_queue_reserve(q, 0, &slot))
		return 4;
	memset(slot, 'X', 32); /* half-written: never committed */
	notify(h->pipe_w, 0);
	for (;;)
		pause();
}

/* Child: peek the next message, report its first byte's number, and wait to be killed. */
static int peek_and_hang(void *arg)
{
	struct holder *h = arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	const void *msg;
	char got[8] = "";
	int n;

	if (shmq_client_connect(h->sock, &c) || shmq_queue_open(c, "repair", SHMQ_RECV, NULL, &q))
		return 1;
	n = shmq_queue_peek(q, shmq_deadline_after(RECV_MS * 1000000ull), &msg);
	if (n < 0 || n >= (int)sizeof(got))
		return 2;
	memcpy(got, msg, (size_t)n);
	notify(h->pipe_w, got[0] == 'm' ? atoi(got + 1) : -1);
	for (;;)
		pause();
}

/* Receive one "m<i>" and return i; @deadline_ns 0: do not wait (-EAGAIN). */
static int recv_name(struct shmq_queue *q, uint64_t deadline_ns)
{
	char buf[64];
	int n = deadline_ns ? shmq_queue_recv_wait(q, buf, sizeof(buf) - 1, deadline_ns)
			    : shmq_queue_recv(q, buf, sizeof(buf) - 1);

	if (n < 0)
		return n;
	buf[n] = '\0';
	cr_assert(n >= 2 && buf[0] == 'm' && buf[1] >= '0' && buf[1] <= '9',
		  "received '%s' (%d bytes): not a message that was sent", buf, n);
	return atoi(buf + 1);
}

Test(crash, killed_holders_of_a_reservation_and_a_peek_are_repaired_by_the_daemon)
{
	struct shmq_queue_attr a = qattr(16, SHMQ_MPMC);
	struct shmq_queue_stats st = {.size = sizeof(st)};
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q;
	struct holder *h = t_shared_alloc(sizeof(*h));
	int sv[2], seen[10] = {0}, got = 0, v;
	pid_t producer, consumer;
	char name[8];

	T_OK(shmq_queue_open(c, "repair", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND | SHMQ_RECV, &a, &q));
	cr_assert(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	h->sock = d.sock;
	h->pipe_w = sv[1];

	producer = t_fork_child(reserve_and_hang, h);
	T_OK(wait_notify(sv[0]));
	consumer = t_fork_child(peek_and_hang, h);
	cr_assert(eq(int, wait_notify(sv[0]), 0), "the consumer peeked another message than m0");
	for (int i = 5; i < 10; i++) {
		msg_name(name, sizeof(name), i);
		T_OK(shmq_queue_send(q, name, strlen(name)));
	}

	/* While both live: m1..m4, then the reserved slot blocks the way. */
	for (int i = 1; i < 5; i++)
		cr_assert(eq(int, recv_name(q, 0), i), "before the deaths");
	T_ERR(recv_name(q, 0), -EAGAIN);

	kill(producer, SIGKILL);
	kill(consumer, SIGKILL);
	cr_assert(eq(int, t_wait_peer(producer), 128 + SIGKILL));
	cr_assert(eq(int, t_wait_peer(consumer), 128 + SIGKILL));

	/* After the repair: m5..m9 and m0 again, each once, and nothing else. */
	while (got < 6) {
		v = recv_name(q, t_deadline_ms(RECV_MS));
		cr_assert(v >= 0, "after the deaths: %d (%s) with %d of 6 messages", v,
			  strerror(-v), got);
		cr_assert(v == 0 || (v >= 5 && v <= 9), "m%d delivered twice", v);
		cr_assert(seen[v]++ == 0, "m%d delivered twice", v);
		got++;
	}
	T_ERR(recv_name(q, t_deadline_ms(100)), -ETIMEDOUT);
	T_OK(shmq_queue_stats(q, &st));
	cr_assert(ge(u32, st.repairs, 2), "stats.repairs %u", st.repairs);

	/* The queue works normally afterwards, across the ring's wrap. */
	for (int i = 0; i < 40; i++) {
		msg_name(name, sizeof(name), i % 10);
		T_OK(shmq_queue_send(q, name, strlen(name)));
		cr_assert(eq(int, recv_name(q, 0), i % 10));
	}
	close(sv[0]);
	close(sv[1]);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* --- The daemon dies --- */

#define STREAM_N 200000

struct streamer {
	const char *sock;
	int result;
};

static int stream_out(void *arg)
{
	struct streamer *s = arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	uint64_t deadline = shmq_deadline_after(30 * 1000000000ull);

	s->result = shmq_client_connect(s->sock, &c);
	if (s->result)
		return 1;
	s->result = shmq_queue_open(c, "stream", SHMQ_SEND, NULL, &q);
	if (s->result)
		return 1;
	for (uint32_t i = 0; i < STREAM_N; i++) {
		s->result = shmq_queue_send_wait(q, &i, sizeof(i), deadline);
		if (s->result)
			return 2;
	}
	shmq_queue_close(q);
	shmq_client_close(c);
	return 0;
}

Test(crash, daemon_killed_mid_stream_leaves_data_flowing_and_control_calls_fail_econnreset)
{
	struct shmq_queue_attr a = qattr(256, SHMQ_SPSC);
	struct shmq_sem_attr sa = {.size = sizeof(sa)};
	struct streamer *s = t_shared_alloc(sizeof(*s));
	struct shmq_client *c = t_connect(&d), *c2 = NULL;
	struct shmq_queue *q, *q2 = NULL;
	struct shmq_sem *sem, *sem2 = NULL;
	pid_t producer;

	T_OK(shmq_queue_open(c, "stream", SHMQ_CREATE | SHMQ_EXCL | SHMQ_RECV, &a, &q));
	T_OK(shmq_sem_open(c, "sem", SHMQ_CREATE | SHMQ_EXCL, &sa, &sem));
	s->sock = d.sock;
	producer = t_fork_child(stream_out, s);

	for (uint32_t i = 0; i < STREAM_N; i++) {
		uint32_t v;
		int n;

		if (i == 1000)
			t_daemon_kill(&d);
		n = shmq_queue_recv_wait(q, &v, sizeof(v), t_deadline_ms(RECV_MS));
		cr_assert(eq(int, n, (int)sizeof(v)), "message %u%s: %d (%s)", i,
			  i >= 1000 ? " after the daemon died" : "", n, strerror(-n));
		cr_assert(eq(u32, v, i), "message %u arrived as %u", i, v);
	}
	cr_assert(eq(int, t_wait_peer_ms(producer, CHILD_MS), 0), "producer: %d (%s)", s->result,
		  strerror(-s->result));

	/* Semaphores too: they are shared memory, not daemon calls. */
	T_OK(shmq_sem_post(sem, 1));
	T_OK(shmq_sem_wait(sem, t_deadline_ms(RECV_MS)));

	/* Control calls report the daemon's death. */
	T_ERR(shmq_queue_open(c, "stream", SHMQ_VIEW, NULL, &q2), -ECONNRESET);
	T_ERR(shmq_queue_open(c, "other", SHMQ_CREATE | SHMQ_SEND, &a, &q2), -ECONNRESET);
	T_ERR(shmq_sem_open(c, "sem", 0, NULL, &sem2), -ECONNRESET);
	T_ERR(shmq_unlink(c, "stream"), -ECONNRESET);
	cr_assert(q2 == NULL && sem2 == NULL, "ret_ was written on failure");
	{
		int r = shmq_client_connect(d.sock, &c2);

		cr_assert(r == -ECONNREFUSED || r == -ENOENT, "connect with no daemon: %d (%s)", r,
			  strerror(-r));
	}
	/* Closing works without a daemon (the mapping is dropped locally). */
	T_OK(shmq_queue_close(q));
	T_OK(shmq_sem_close(sem));
	T_OK(shmq_client_close(c));

	/* A new daemon takes over the same socket path, stale socket file and all. */
	t_daemon_restart(&d);
	c = t_connect(&d);
	T_OK(shmq_queue_open(c, "fresh", SHMQ_CREATE | SHMQ_SEND, &a, &q));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(crash, daemon_stopped_by_sigterm_with_clients_attached_exits_0_and_data_keeps_flowing)
{
	struct shmq_queue_attr a = qattr(8, SHMQ_MPMC);
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q;
	char buf[8];

	T_OK(shmq_queue_open(c, "term", SHMQ_CREATE | SHMQ_SEND | SHMQ_RECV, &a, &q));
	cr_assert(eq(int, t_daemon_stop(&d), 0), "shmqd exit status after SIGTERM");
	T_OK(shmq_queue_send(q, "still", 5));
	cr_assert(eq(int, shmq_queue_recv(q, buf, sizeof(buf)), 5));
	T_ERR(shmq_unlink(c, "term"), -ECONNRESET);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* --- Handles closed, and semaphore holders killed, mid-operation --- */

/*
 * shmq_queue_close(): "an open peek is released", as by shmq_queue_release():
 * the peeked message counts as received.  (Only a death re-delivers it.)
 */
Test(crash, closing_a_handle_with_an_open_peek_releases_the_message)
{
	static const uint32_t modes[] = {SHMQ_MPMC, SHMQ_SPSC};
	struct shmq_client *c = t_connect(&d);

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct shmq_queue_attr a = qattr(8, modes[i]);
		struct shmq_queue *tx, *rx1, *rx2;
		const char *name = modes[i] == SHMQ_SPSC ? "peek-spsc" : "peek-mpmc";
		const void *msg;

		T_OK(shmq_queue_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &tx));
		T_OK(shmq_queue_open(c, name, SHMQ_RECV, NULL, &rx1));
		T_OK(shmq_queue_send(tx, "m1", 2));
		T_OK(shmq_queue_send(tx, "m2", 2));
		cr_assert(eq(int, shmq_queue_peek(rx1, 0, &msg), 2));
		T_OK(shmq_queue_close(rx1));
		T_OK(shmq_queue_open(c, name, SHMQ_RECV, NULL, &rx2));
		cr_assert(eq(int, recv_name(rx2, t_deadline_ms(RECV_MS)), 2), "%s", name);
		T_ERR(recv_name(rx2, 0), -EAGAIN);
		T_OK(shmq_queue_close(rx2));
		T_OK(shmq_queue_close(tx));
	}
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(crash, closing_a_handle_with_an_open_reservation_delivers_nothing_and_the_queue_moves_on)
{
	static const uint32_t modes[] = {SHMQ_MPMC, SHMQ_SPSC};
	struct shmq_client *c = t_connect(&d);

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct shmq_queue_attr a = qattr(8, modes[i]);
		struct shmq_queue *tx1, *tx2, *rx;
		const char *name = modes[i] == SHMQ_SPSC ? "resv-spsc" : "resv-mpmc";
		void *slot;

		T_OK(shmq_queue_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_RECV, &a, &rx));
		T_OK(shmq_queue_open(c, name, SHMQ_SEND, NULL, &tx1));
		T_OK(shmq_queue_send(tx1, "m1", 2));
		T_OK(shmq_queue_reserve(tx1, 0, &slot));
		memset(slot, 'X', 16);
		T_OK(shmq_queue_close(tx1));
		T_OK(shmq_queue_open(c, name, SHMQ_SEND, NULL, &tx2));
		T_OK(shmq_queue_send(tx2, "m2", 2));
		cr_assert(eq(int, recv_name(rx, t_deadline_ms(RECV_MS)), 1), "%s", name);
		cr_assert(eq(int, recv_name(rx, t_deadline_ms(RECV_MS)), 2), "%s", name);
		T_ERR(recv_name(rx, 0), -EAGAIN);
		T_OK(shmq_queue_close(tx2));
		T_OK(shmq_queue_close(rx));
	}
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* Child: take h->take tokens of h->sem, give h->give back, report, and wait to be killed. */
static int sem_hold_and_hang(void *arg)
{
	struct holder *h = arg;
	struct shmq_client *c;
	struct shmq_sem *s;

	if (shmq_client_connect(h->sock, &c) || shmq_sem_open(c, h->sem, 0, NULL, &s))
		return 1;
	for (int i = 0; i < h->take; i++)
		if (shmq_sem_wait(s, shmq_deadline_after(RECV_MS * 1000000ull)))
			return 2;
	if (h->give && shmq_sem_post(s, (unsigned int)h->give))
		return 2;
	notify(h->pipe_w, 0);
	for (;;)
		pause();
}

/*
 * SHMQ_SEM_ATTR_UNDO: the daemon posts back what a dead process still held,
 * and only that: tokens it took and gave back are not posted twice.
 */
Test(crash, killed_holder_of_an_undo_semaphore_has_exactly_its_holds_posted_back)
{
	struct shmq_sem_attr a = {.size = sizeof(a), .initial = 3, .flags = SHMQ_SEM_ATTR_UNDO};
	struct holder *h = t_shared_alloc(sizeof(*h));
	struct shmq_client *c = t_connect(&d);
	struct shmq_sem *s;
	uint64_t deadline;
	int sv[2], v;
	pid_t pid;

	T_OK(shmq_sem_open(c, "undo", SHMQ_CREATE | SHMQ_EXCL, &a, &s));
	cr_assert(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	*h = (struct holder){.sock = d.sock, .pipe_w = sv[1], .sem = "undo", .take = 2, .give = 1};
	pid = t_fork_child(sem_hold_and_hang, h);
	T_OK(wait_notify(sv[0]));
	cr_assert(eq(int, shmq_sem_value(s), 2), "the child holds one token");

	kill(pid, SIGKILL);
	cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL));
	deadline = t_now_ns() + REAP_MS * 1000000ull;
	while ((v = shmq_sem_value(s)) < 3 && t_now_ns() < deadline)
		t_sleep_ms(2);
	cr_assert(eq(int, v, 3), "after the holder died the value is %d (1 hold to return)", v);

	/* A process that exits holding nothing gets nothing posted. */
	T_OK(shmq_sem_wait(s, t_deadline_ms(RECV_MS)));
	T_OK(shmq_sem_post(s, 1));
	cr_assert(eq(int, shmq_sem_value(s), 3));
	close(sv[0]);
	close(sv[1]);
	T_OK(shmq_sem_close(s));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/*
 * The undo rule for a token handed off (shmq.h, SHMQ_SEM_ATTR_UNDO): A
 * takes it, B posts it, A dies.  Undo returns what A took and did not post
 * itself, so on an undo semaphore the value ends one above: B's post was a
 * producer's, a new token.  A semaphore without undo keeps the hand-off
 * exact, which is why hand-off patterns use one.
 */
Test(crash, a_token_taken_by_one_process_and_posted_by_another_follows_the_undo_rule)
{
	for (int undo = 1; undo >= 0; undo--) {
		struct shmq_sem_attr a = {
			.size = sizeof(a), .initial = 1, .flags = undo ? SHMQ_SEM_ATTR_UNDO : 0};
		struct holder *h = t_shared_alloc(sizeof(*h));
		struct shmq_client *c = t_connect(&d);
		struct shmq_sem *s;
		uint64_t deadline;
		int sv[2], v;
		pid_t pid;

		T_OK(shmq_sem_open(c, "handoff", SHMQ_CREATE | SHMQ_EXCL, &a, &s));
		cr_assert(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
		*h = (struct holder){.sock = d.sock, .pipe_w = sv[1], .sem = "handoff", .take = 1};
		pid = t_fork_child(sem_hold_and_hang, h);
		T_OK(wait_notify(sv[0]));
		cr_assert(eq(int, shmq_sem_value(s), 0));
		T_OK(shmq_sem_post(s, 1)); /* the hand-off: this process holds nothing */
		kill(pid, SIGKILL);
		cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL));
		/* Wait for the repair: the daemon drops the dead session once it is done. */
		deadline = t_now_ns() + REAP_MS * 1000000ull;
		while ((v = shmq_sem_value(s)) < 1 + undo && t_now_ns() < deadline)
			t_sleep_ms(2);
		t_sleep_ms(50); /* a repair that would post more has had its chance */
		v = shmq_sem_value(s);
		cr_assert(eq(int, v, 1 + undo), "%s semaphore: value %d after the taker died",
			  undo ? "an undo" : "a plain", v);
		close(sv[0]);
		close(sv[1]);
		T_OK(shmq_sem_close(s));
		T_OK(shmq_unlink(c, "handoff"));
		T_OK(shmq_client_close(c));
	}
	t_daemon_fini(&d);
}

/* --- Waiters killed asleep leave no announcement behind --- */

struct sleeper {
	const char *sock;
	const char *name;
	bool queue; /* sleep in shmq_queue_recv_wait(), else shmq_sem_wait() */
	bool async; /* sleep in a poller future instead */
};

static int sleep_forever(void *arg)
{
	struct sleeper *sl = arg;
	uint64_t forever = shmq_deadline_after(UINT64_C(60) * 1000000000);
	struct shmq_client *c;
	struct shmq_poller *p;
	struct shmq_future *f;
	struct shmq_queue *q;
	struct shmq_sem *s;
	char buf[64];

	if (shmq_client_connect(sl->sock, &c))
		return 1;
	if (sl->queue) {
		if (shmq_queue_open(c, sl->name, SHMQ_RECV, NULL, &q))
			return 2;
		shmq_queue_set_spin(q, 0);
		(void)shmq_queue_recv_wait(q, buf, sizeof(buf), forever);
		return 3; /* nothing is ever sent */
	}
	if (shmq_sem_open(c, sl->name, 0, NULL, &s))
		return 2;
	if (sl->async) {
		if (shmq_poller_new(0, &p) || shmq_poller_acquire(p, s, forever, NULL, NULL, &f))
			return 4;
		(void)shmq_poller_wait(p, &f, 1, SHMQ_WAIT_ALL, forever);
		return 3;
	}
	(void)shmq_sem_wait(s, forever);
	return 3; /* nothing is ever posted */
}

/* A view of @name's segment, for reading its words as a tool would. */
static struct shmq_view *view_of(struct shmq_client *c, const char *name,
				 struct shmq_segment *ret_seg)
{
	struct shmq_view *v;
	const void *base;
	size_t size;

	T_OK(shmq_view_open(c, name, &v));
	T_OK(shmq_view_memory(v, &base, &size));
	T_OK(shmq__segment_attach((void *)base, size, ret_seg));
	return v;
}

/* Wait until *@word, masked, equals @want; return what it was last. */
static uint32_t wait_word(_Atomic uint32_t *word, uint32_t mask, uint32_t want)
{
	uint64_t deadline = t_now_ns() + REAP_MS * 1000000ull;
	uint32_t v;

	while (((v = atomic_load_explicit(word, memory_order_relaxed)) & mask) != want &&
	       t_now_ns() < deadline)
		t_sleep_ms(1);
	return v & mask;
}

static void kill_sleepers(struct sleeper *sl, unsigned int n, _Atomic uint32_t *word, uint32_t mask,
			  uint32_t asleep)
{
	pid_t pid[8];

	cr_assert(n <= 8);
	for (unsigned int i = 0; i < n; i++)
		pid[i] = t_fork_child(sleep_forever, sl);
	cr_assert(eq(u32, wait_word(word, mask, asleep), asleep), "the sleepers never announced");
	t_sleep_ms(2); /* into the kernel's FUTEX_WAIT, past the announcement */
	for (unsigned int i = 0; i < n; i++) {
		kill(pid[i], SIGKILL);
		cr_assert(eq(int, t_wait_peer(pid[i]), 128 + SIGKILL));
	}
}

Test(crash, semaphore_waiters_killed_asleep_are_dropped_from_its_waiter_count)
{
	struct shmq_sem_attr a = {.size = sizeof(a), .initial = 0};
	struct sleeper *sl = t_shared_alloc(sizeof(*sl));
	struct shmq_client *c = t_connect(&d);
	struct shmq_segment seg;
	struct shmq_sem_shm *sm;
	struct shmq_view *v;
	struct shmq_sem *s;

	T_OK(shmq_sem_open(c, "wsem", SHMQ_CREATE | SHMQ_EXCL, &a, &s));
	v = view_of(c, "wsem", &seg);
	sm = seg.object;
	*sl = (struct sleeper){.sock = d.sock, .name = "wsem"};
	kill_sleepers(sl, 3, &sm->n_waiters, UINT32_MAX, 3);
	cr_assert(eq(u32, wait_word(&sm->n_waiters, UINT32_MAX, 0), 0),
		  "three sleepers were killed, and their announcements stayed");

	/* A kill loop: every death is repaired, none accumulates. */
	for (int i = 0; i < 25; i++) {
		sl->async = i % 2; /* an io_uring or helper-thread wait announces too */
		kill_sleepers(sl, 1, &sm->n_waiters, UINT32_MAX, 1);
		cr_assert(eq(u32, wait_word(&sm->n_waiters, UINT32_MAX, 0), 0),
			  "kill %d: the announcement stayed", i);
	}
	/* The token a post adds stays for the next taker: nobody is asleep. */
	T_OK(shmq_sem_post(s, 1));
	cr_assert(eq(int, shmq_sem_value(s), 1));
	T_OK(shmq_view_close(v));
	T_OK(shmq_sem_close(s));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(crash, a_receiver_killed_asleep_leaves_no_sleeper_bit_behind)
{
	struct shmq_queue_attr a = qattr(8, SHMQ_MPMC);
	struct sleeper *sl = t_shared_alloc(sizeof(*sl));
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue_shm *qs;
	struct shmq_segment seg;
	struct shmq_view *v;
	struct shmq_queue *q;
	char m[8];

	T_OK(shmq_queue_open(c, "wq", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &a, &q));
	v = view_of(c, "wq", &seg);
	qs = seg.object;
	*sl = (struct sleeper){.sock = d.sock, .name = "wq", .queue = true};
	kill_sleepers(sl, 2, &qs->ec_recv, 1, 1);
	cr_assert(eq(u32, wait_word(&qs->ec_recv, 1, 0), 0),
		  "receivers were killed asleep, and the sleeper bit stayed");
	/* The queue still works for the next receiver. */
	T_OK(shmq_queue_send(q, "x", 1));
	{
		struct shmq_queue *rx;

		T_OK(shmq_queue_open(c, "wq", SHMQ_RECV, NULL, &rx));
		cr_assert(eq(int, shmq_queue_recv(rx, m, sizeof(m)), 1));
		T_OK(shmq_queue_close(rx));
	}
	T_OK(shmq_view_close(v));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}
