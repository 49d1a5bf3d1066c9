/* SPDX-License-Identifier: MIT */
/*
 * Kill storm for large messages (shm/ring.c, "Large messages"): producers
 * send checksummed messages from a few bytes to the queue's max_msg
 * (most through the arena) and consumers receive them, copying or peeking
 * in place, while this process -- standing in for the daemon -- SIGKILLs
 * them at random points and repairs each dead record as shmqd does.
 *
 * Judged: no message received torn (wrong length or checksum) at any
 * point; after each round, with everyone dead and repaired, this process
 * drains the queue (every message intact) and the arena is empty again:
 * head == tail, nothing a dead writer or reader held is left, and the ring
 * and arena pass the validator.  Every wait has a deadline.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/ring.h"
#include "tests/helpers.h"

#define STRESS_SECONDS_DEFAULT 20
#define RUN_CAP_SECONDS	       120
#define WAIT_MS		       5000
#define MAX_MSG		       (64u * 1024)
#define N_PROCS		       4 /* two producers, two consumers */

TestSuite(stress_large, .timeout = 240);

static struct t_seg seg;
static _Atomic uint32_t *torn; /* shared with the children */

static int check_msg(const unsigned char *m, int len)
{
	uint32_t sum, n;

	if (len < 8)
		return -1;
	memcpy(&sum, m, 4);
	memcpy(&n, m + 4, 4);
	return (uint32_t)len == n && t_checksum(m + 8, n - 8) == sum ? 0 : -1;
}

static int producer(uint32_t idx)
{
	static unsigned char m[MAX_MSG];
	uint64_t rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15u;
	struct shmq_ring r;

	if (shmq__ring_attach(&r, &seg.seg, idx) < 0)
		return 1;
	r.spin_ns = (rng & 1) ? 0 : 2000;
	for (;;) {
		uint32_t n = 8 + (uint32_t)(t_rand(&rng) % (MAX_MSG - 8)), sum;

		if (t_rand(&rng) % 4 == 0)
			n = 8 + (uint32_t)(t_rand(&rng) % 24); /* a slot's */
		for (uint32_t i = 8; i < n; i++)
			m[i] = (unsigned char)(t_rand(&rng));
		sum = t_checksum(m + 8, n - 8);
		memcpy(m, &sum, 4);
		memcpy(m + 4, &n, 4);
		(void)shmq__ring_send_wait(&r, m, n, t_deadline_ms(WAIT_MS));
	}
}

static int consumer(uint32_t idx)
{
	static unsigned char m[MAX_MSG];
	uint64_t rng = (uint64_t)getpid() * 0xbf58476d1ce4e5b9u;
	struct shmq_ring r;

	if (shmq__ring_attach(&r, &seg.seg, idx) < 0)
		return 1;
	r.spin_ns = (rng & 1) ? 0 : 2000;
	for (;;) {
		const void *p;
		int n;

		if (t_rand(&rng) % 2) {
			n = shmq__ring_recv_wait(&r, m, sizeof(m), t_deadline_ms(WAIT_MS));
			if (n >= 0 && check_msg(m, n) < 0)
				fetch_add_relaxed(torn, 1);
		} else {
			n = shmq__ring_peek_wait(&r, &p, t_deadline_ms(WAIT_MS));
			if (n >= 0) {
				if (check_msg(p, n) < 0)
					fetch_add_relaxed(torn, 1);
				(void)shmq__ring_release(&r);
			}
		}
	}
}

static int child(void *arg)
{
	uint32_t v = (uint32_t)(uintptr_t)arg;

	return (v & 1) ? producer(v >> 1) : consumer(v >> 1);
}

static pid_t spawn(uint32_t *idx, bool prod)
{
	uint32_t role = prod ? SHMQ_ROLE_PRODUCER : SHMQ_ROLE_CONSUMER;

	cr_assert(eq(int, shmq__session_claim(&seg.seg, role, 1, 0, idx), 0));
	return t_fork_peer(child, (void *)(uintptr_t)(*idx << 1 | prod));
}

static void reap(uint32_t idx)
{
	struct shmq_kind_repair rep = {0};

	cr_assert(ge(int, shmq__kind_queue.repair(&seg.seg, idx, &rep), 0));
	shmq__session_release(&seg.seg, idx);
}

Test(stress_large, deaths_anywhere_leave_whole_messages_and_an_arena_that_drains)
{
	static unsigned char m[MAX_MSG];
	uint64_t seconds = t_stress_seconds(STRESS_SECONDS_DEFAULT);
	uint64_t end = shmq__deadline_after_ns(seconds * UINT64_C(1000000000));
	uint64_t cap = shmq__deadline_after_ns(RUN_CAP_SECONDS * UINT64_C(1000000000));
	uint64_t rng = t_seed(), rounds = 0, kills = 0, drained = 0;
	struct shmq_segment_params p = {
		.kind = SHMQ_KIND_QUEUE,
		.n_sessions = 16,
		.geom.queue = {.n_slots = 16, .slot_size = 32, .numa_node = -1, .max_msg = MAX_MSG},
		.name = "stress-large",
		.mode = 0600,
		.object_id = 1,
	};

	torn = mmap(NULL, sizeof(*torn), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(torn != MAP_FAILED);
	while ((rounds < 5 || shmq__now_ns() < end) && shmq__now_ns() < cap) {
		struct shmq_queue_shm *q;
		uint32_t idx[N_PROCS], mine;
		pid_t pid[N_PROCS];
		struct shmq_ring me;
		int rc;

		/* every other round SPSC: one producer and one consumer, no slot claims */
		bool spsc = rounds % 2;

		p.geom.queue.mode = spsc ? SHMQ_QMODE_SPSC : SHMQ_QMODE_MPMC;
		t_seg_new(&seg, &p);
		q = seg.seg.object;
		for (int i = 0; i < N_PROCS; i++)
			pid[i] = spsc && (i == 1 || i == 3) ? 0 : spawn(&idx[i], i < 2);
		for (int k = 0; k < 16; k++) {
			int w = (int)(t_rand(&rng) % N_PROCS);

			if (!pid[w])
				continue;
			t_sleep_ms((unsigned int)(t_rand(&rng) % 4));
			kill(pid[w], SIGKILL);
			cr_assert(eq(int, t_wait_peer(pid[w]), 128 + SIGKILL), "child %d failed",
				  w);
			reap(idx[w]);
			kills++;
			pid[w] = spawn(&idx[w], w < 2);
		}
		for (int i = N_PROCS - 1; i >= 0; i--) {
			if (!pid[i])
				continue;
			kill(pid[i], SIGKILL);
			t_wait_peer(pid[i]);
			reap(idx[i]);
		}
		cr_assert(
			eq(int, shmq__session_claim(&seg.seg, SHMQ_ROLE_CONSUMER, 1, 0, &mine), 0));
		cr_assert(eq(int, shmq__ring_attach(&me, &seg.seg, mine), 0));
		while ((rc = shmq__ring_try_recv(&me, m, sizeof(m))) >= 0) {
			cr_assert(eq(int, check_msg(m, rc), 0), "a torn message in the drain");
			drained++;
		}
		cr_assert(eq(int, rc, -EAGAIN), "drain: %d", rc);
		cr_assert(eq(u64, load_relaxed(&q->arena_head), load_relaxed(&q->arena_tail)),
			  "round %" PRIu64 ": the arena did not drain", rounds);
		cr_assert(eq(int, shmq__kind_queue.check(&seg.seg, true), 0));
		cr_assert(eq(u32, load_relaxed(torn), 0), "a consumer saw a torn message");
		rounds++;
		t_seg_free(&seg);
	}
	printf("large-message kill storm: %" PRIu64 " rounds, %" PRIu64 " kills, %" PRIu64
	       " drained after them; nothing torn, the arena empty after every round\n",
	       rounds, kills, drained);
}
