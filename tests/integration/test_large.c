/* SPDX-License-Identifier: MIT */
/*
 * Integration: 64 MiB messages through a real shmqd, between processes,
 * without the sender splitting them -- copied and peeked in place; the
 * limit; a receiver SIGKILLed in the middle of reading one (the daemon
 * gives its region back and the message is delivered whole to the next
 * receiver); shmqctl's figures.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define WAIT_MS 20000
#define BIG	(64u << 20)

static struct t_daemon d;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(large, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 120);

static uint64_t deadline(void)
{
	return shmq_deadline_after((uint64_t)WAIT_MS * 1000000);
}

static void fill(unsigned char *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i += 4096)
		p[i] = (unsigned char)(seed + i / 4096);
	p[len - 1] = (unsigned char)seed;
}

static bool same(const unsigned char *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i += 4096)
		if (p[i] != (unsigned char)(seed + i / 4096))
			return false;
	return p[len - 1] == (unsigned char)seed;
}

struct peer {
	const char *sock;
	_Atomic int state;
};

/* Child: send three 64 MiB messages. */
static int send_big(void *arg)
{
	struct peer *p = arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	unsigned char *m = malloc(BIG);

	if (!m || shmq_client_connect(p->sock, &c) ||
	    shmq_queue_open(c, "big", SHMQ_SEND, NULL, &q))
		return 1;
	for (unsigned int i = 0; i < 3; i++) {
		fill(m, BIG, i);
		if (shmq_queue_send_wait(q, m, BIG, deadline()) != 0)
			return 2;
	}
	free(m);
	return shmq_queue_close(q) == 0 && shmq_client_close(c) == 0 ? 0 : 3;
}

/* Child: peek at a message, say so, and wait to be killed holding it. */
static int peek_hold(void *arg)
{
	struct peer *p = arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	const void *msg;

	if (shmq_client_connect(p->sock, &c) || shmq_queue_open(c, "big", SHMQ_RECV, NULL, &q))
		return 1;
	if (shmq_queue_peek(q, deadline(), &msg) != (int)BIG)
		return 2;
	atomic_store(&p->state, 1);
	for (;;)
		pause();
}

Test(large, messages_of_64_mib_cross_processes_whole_and_a_dead_reader_gives_its_back)
{
	struct shmq_queue_attr a = {
		.size = sizeof(a), .n_slots = 8, .slot_size = 256, .max_msg = BIG};
	const char *ctl = getenv("SHMQCTL");
	const char *const show[] = {ctl, "--socket", d.sock, "show", "big", NULL};
	struct peer *p = t_shared_alloc(sizeof(*p));
	struct shmq_client *c = t_connect(&d);
	unsigned char *buf = malloc(BIG + 1);
	struct shmq_queue *q, *tx;
	const void *msg;
	char out[8192];
	pid_t pid;

	cr_assert(buf != NULL);
	T_OK(shmq_queue_open(c, "big", SHMQ_CREATE | SHMQ_EXCL | SHMQ_RECV, &a, &q));
	cr_assert(eq(int, shmq_queue_max_msg(q), (int)BIG));
	T_OK(shmq_queue_open(c, "big", SHMQ_SEND, NULL, &tx));
	T_ERR(shmq_queue_send(tx, buf, BIG + 1), -EMSGSIZE);
	*p = (struct peer){.sock = d.sock};
	pid = t_fork_child(send_big, p);
	cr_assert(eq(int, shmq_queue_recv_wait(q, buf, BIG, deadline()), (int)BIG));
	cr_assert(same(buf, BIG, 0), "the first came torn");
	cr_assert(eq(int, shmq_queue_peek(q, deadline(), &msg), (int)BIG));
	cr_assert(same(msg, BIG, 1), "the second, in place, came torn");
	T_OK(shmq_queue_release(q));
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 0));
	/* the third: a reader in another process dies in the middle of it */
	T_OK(shmq_queue_close(q));
	pid = t_fork_child(peek_hold, p);
	for (uint64_t end = t_now_ns() + (uint64_t)WAIT_MS * 1000000;
	     !atomic_load(&p->state) && t_now_ns() < end;)
		t_sleep_ms(1);
	cr_assert(atomic_load(&p->state), "the reader never got it");
	cr_assert(ctl && *ctl, "SHMQCTL is not set: run `make test`, or set SHMQCTL=build/shmqctl");
	cr_assert(eq(int, t_run(show, out, sizeof(out), WAIT_MS), 0), "%s", out);
	cr_assert(strstr(out, "messages up to 67108864 bytes") != NULL, "%s", out);
	kill(pid, SIGKILL);
	cr_assert(eq(int, t_wait_peer_ms(pid, WAIT_MS), 128 + SIGKILL));
	T_OK(shmq_queue_open(c, "big", SHMQ_RECV, NULL, &q));
	cr_assert(eq(int, shmq_queue_recv_wait(q, buf, BIG, deadline()), (int)BIG));
	cr_assert(same(buf, BIG, 2), "the redelivered one came torn");
	T_ERR(shmq_queue_recv(q, buf, BIG), -EAGAIN);
	/* and the arena is whole again: two of the largest fit */
	memset(buf, 7, BIG);
	T_OK(shmq_queue_send(tx, buf, BIG));
	T_OK(shmq_queue_send(tx, buf, BIG));
	cr_assert(eq(int, shmq_queue_recv(q, buf, BIG), (int)BIG));
	cr_assert(eq(int, shmq_queue_recv(q, buf, BIG), (int)BIG));
	free(buf);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_queue_close(tx));
	T_OK(shmq_client_close(c));
}

Test(large, the_limits_are_refused_with_einval)
{
	struct shmq_queue_attr a = {.size = sizeof(a), .slot_size = 8, .max_msg = 4096};
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q;

	T_ERR(shmq_queue_open(c, "tiny", SHMQ_CREATE | SHMQ_SEND, &a, &q), -EINVAL);
	a = (struct shmq_queue_attr){.size = sizeof(a), .max_msg = SHMQ_MSG_SIZE_LIMIT + 1};
	T_ERR(shmq_queue_open(c, "huge", SHMQ_CREATE | SHMQ_SEND, &a, &q), -EINVAL);
	/* max_msg no larger than a slot: no arena, the slot is the limit */
	a = (struct shmq_queue_attr){.size = sizeof(a), .slot_size = 512, .max_msg = 100};
	T_OK(shmq_queue_open(c, "plain", SHMQ_CREATE | SHMQ_SEND, &a, &q));
	cr_assert(eq(int, shmq_queue_max_msg(q), 512));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
}
