/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for large messages (shm/ring.c, "Large messages"): messages
 * above the slot size through the arena in every mode, in order with
 * small ones; the arena's wrap, fill and reuse; peeks in place; the
 * refusals; a sender blocked on a full arena; the repair of a reader
 * that died holding a region; the validator; and threads racing over it
 * (TSan checks the orderings).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/ring.h"
#include "tests/helpers.h"

#define WAIT_MS 5000
#define MAX_MSG (128u * 1024)

static struct t_seg fx;

static void teardown(void)
{
	t_seg_free(&fx);
}

TestSuite(large, .fini = teardown, .timeout = 60);

static void new_queue(uint32_t mode, uint32_t n_slots)
{
	struct shmq_segment_params p = {
		.kind = SHMQ_KIND_QUEUE,
		.n_sessions = 16,
		.geom.queue = {.n_slots = n_slots,
			       .slot_size = 64,
			       .mode = mode,
			       .numa_node = -1,
			       .max_msg = MAX_MSG},
		.name = "test-large",
		.owner_uid = (uint32_t)getuid(),
		.owner_gid = (uint32_t)getgid(),
		.mode = 0600,
		.object_id = 1,
	};

	t_seg_new(&fx, &p);
}

static uint32_t handle(struct shmq_ring *r, uint32_t role)
{
	return t_ring_handle(&fx, r, role);
}

static struct shmq_queue_shm *shm(void)
{
	return fx.seg.object;
}

static void fill(unsigned char *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(seed * 31 + i * 7);
}

static bool same(const unsigned char *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char)(seed * 31 + i * 7))
			return false;
	return true;
}

static void in_order_in_mode(uint32_t mode)
{
	static const uint32_t sizes[] = {10, 64, 65, 5000, MAX_MSG, 1, 100000, 0, 70000};
	static unsigned char out[MAX_MSG], in[MAX_MSG];
	const size_t n = sizeof(sizes) / sizeof(sizes[0]);
	struct shmq_ring p, c;

	new_queue(mode, 16);
	handle(&p, SHMQ_ROLE_PRODUCER);
	handle(&c, SHMQ_ROLE_CONSUMER);
	cr_assert(eq(u32, p.max_msg, MAX_MSG));
	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < n; i++) {
			fill(out, sizes[i], (uint32_t)(round * 100 + i));
			cr_assert(
				eq(int,
				   shmq__ring_send_wait(&p, out, sizes[i], t_deadline_ms(WAIT_MS)),
				   0),
				"mode %u round %d size %u", mode, round, sizes[i]);
			if (i % 3 ==
			    2) /* keep at most a few queued: the arena holds two of the largest */
				for (size_t k = i - 2; k <= i; k++) {
					int r = shmq__ring_recv_wait(&c, in, sizeof(in),
								     t_deadline_ms(WAIT_MS));

					cr_assert(eq(int, r, (int)sizes[k]), "mode %u size %u",
						  mode, sizes[k]);
					cr_assert(same(in, sizes[k], (uint32_t)(round * 100 + k)),
						  "torn: mode %u size %u", mode, sizes[k]);
				}
		}
	}
	cr_assert(eq(int, shmq__ring_try_recv(&c, in, sizeof(in)), -EAGAIN));
	cr_assert(eq(u64, load_relaxed(&shm()->arena_head), load_relaxed(&shm()->arena_tail)),
		  "every region given back");
	cr_assert(ne(u64, load_relaxed(&shm()->arena_tail), 0), "the arena was used");
	cr_assert(eq(int, shmq__kind_queue.check(&fx.seg, true), 0));
	t_seg_free(&fx);
}

Test(large, messages_above_a_slot_arrive_whole_and_in_order_in_every_mode)
{
	in_order_in_mode(SHMQ_QMODE_MPMC);
	in_order_in_mode(SHMQ_QMODE_SPSC);
	in_order_in_mode(SHMQ_QMODE_MPSC);
	in_order_in_mode(SHMQ_QMODE_SPMC);
}

Test(large, a_full_arena_refuses_then_takes_again_and_the_limits_hold)
{
	static unsigned char buf[MAX_MSG + 1];
	struct shmq_ring p, c;
	char small[8];
	int sent = 0;

	new_queue(SHMQ_QMODE_MPMC, 64);
	handle(&p, SHMQ_ROLE_PRODUCER);
	handle(&c, SHMQ_ROLE_CONSUMER);
	cr_assert(eq(int, shmq__ring_try_send(&p, buf, MAX_MSG + 1), -EMSGSIZE));
	while (shmq__ring_try_send(&p, buf, MAX_MSG) == 0)
		sent++;
	cr_assert(eq(int, sent, 2), "the arena holds two of the largest");
	cr_assert(eq(int, shmq__ring_try_send(&p, buf, MAX_MSG), -EAGAIN));
	cr_assert(eq(int, shmq__ring_send_wait(&p, buf, MAX_MSG, t_deadline_ms(20)), -ETIMEDOUT));
	cr_assert(eq(int, shmq__ring_try_send(&p, "s", 1), 0), "small messages still flow");
	/* too long for the buffer: consumed, and its region freed */
	cr_assert(eq(int, shmq__ring_try_recv(&c, small, sizeof(small)), -EMSGSIZE));
	cr_assert(eq(int, shmq__ring_try_send(&p, buf, MAX_MSG), 0), "room again");
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), (int)MAX_MSG));
	cr_assert(eq(int, shmq__ring_try_recv(&c, small, sizeof(small)), 1));
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), (int)MAX_MSG));
	cr_assert(eq(u64, load_relaxed(&shm()->arena_head), load_relaxed(&shm()->arena_tail)));
}

/* @len bytes of fill(seed) cut into @n parts at the cut points of @cuts. */
static int sendv_cut(struct shmq_ring *p, const unsigned char *msg, size_t len, const size_t *cuts,
		     unsigned int n, uint64_t deadline_ns)
{
	struct iovec parts[8];
	size_t at = 0;

	for (unsigned int i = 0; i < n; i++) {
		size_t end = i + 1 == n ? len : cuts[i];

		parts[i] = (struct iovec){.iov_base = (void *)(msg + at), .iov_len = end - at};
		at = end;
	}
	return shmq__ring_sendv_wait(p, parts, n, deadline_ns);
}

Test(large, a_gathered_send_arrives_as_one_message_in_a_slot_or_the_arena)
{
	static unsigned char out[MAX_MSG], in[MAX_MSG];
	static const struct {
		size_t len;
		size_t cuts[3];
		unsigned int n;
	} cases[] = {
		{40, {0, 10, 40}, 4},	  /* empty parts at both ends */
		{64, {30}, 2},		  /* exactly a slot */
		{65, {64}, 2},		  /* one byte past it: the arena */
		{MAX_MSG, {1, 70000}, 3}, /* the largest */
		{5000, {0}, 1},
	};
	struct iovec huge[2] = {{.iov_base = out, .iov_len = SIZE_MAX},
				{.iov_base = out, .iov_len = 2}};
	struct iovec nobase = {.iov_base = NULL, .iov_len = 1};
	struct shmq_ring p, c;

	new_queue(SHMQ_QMODE_MPMC, 16);
	handle(&p, SHMQ_ROLE_PRODUCER);
	handle(&c, SHMQ_ROLE_CONSUMER);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fill(out, cases[i].len, (uint32_t)i);
		cr_assert(
			eq(int, sendv_cut(&p, out, cases[i].len, cases[i].cuts, cases[i].n, 0), 0),
			"case %zu", i);
		memset(in, 0, sizeof(in));
		cr_assert(eq(int, shmq__ring_try_recv(&c, in, sizeof(in)), (int)cases[i].len),
			  "case %zu", i);
		cr_assert(same(in, cases[i].len, (uint32_t)i), "torn: case %zu", i);
	}
	cr_assert(eq(int, shmq__ring_sendv_wait(&p, NULL, 0, 0), 0), "no parts: an empty message");
	cr_assert(eq(int, shmq__ring_try_recv(&c, in, sizeof(in)), 0));
	cr_assert(eq(int, sendv_cut(&p, out, MAX_MSG + 1, (size_t[]){MAX_MSG}, 2, 0), -EMSGSIZE));
	cr_assert(eq(int, shmq__ring_sendv_wait(&p, huge, 2, 0), -EMSGSIZE), "a sum that wraps");
	cr_assert(eq(int, shmq__ring_sendv_wait(&p, &nobase, 1, 0), -EINVAL));
	cr_assert(eq(int, shmq__ring_sendv_wait(&p, NULL, 1, 0), -EINVAL));
	/* the arena full: the try form refuses, a deadline times out */
	fill(out, MAX_MSG, 7);
	cr_assert(eq(int, sendv_cut(&p, out, MAX_MSG, (size_t[]){100}, 2, 0), 0));
	cr_assert(eq(int, sendv_cut(&p, out, MAX_MSG, (size_t[]){100}, 2, 0), 0));
	cr_assert(eq(int, sendv_cut(&p, out, MAX_MSG, (size_t[]){100}, 2, 0), -EAGAIN));
	cr_assert(eq(int, sendv_cut(&p, out, MAX_MSG, (size_t[]){100}, 2, t_deadline_ms(20)),
		     -ETIMEDOUT));
	for (int k = 0; k < 2; k++) {
		cr_assert(eq(int, shmq__ring_try_recv(&c, in, sizeof(in)), (int)MAX_MSG));
		cr_assert(same(in, MAX_MSG, 7));
	}
	cr_assert(eq(u64, load_relaxed(&shm()->arena_head), load_relaxed(&shm()->arena_tail)));
	cr_assert(eq(int, shmq__kind_queue.check(&fx.seg, true), 0));
}

static bool msg_in_arena(const void *msg)
{
	return (const unsigned char *)msg > fx.seg.slots;
}

Test(large, a_peek_sees_the_message_in_place_and_its_release_frees_it)
{
	static unsigned char out[100000];
	struct shmq_ring p, c;
	const void *msg;

	new_queue(SHMQ_QMODE_SPSC, 8);
	handle(&p, SHMQ_ROLE_PRODUCER);
	handle(&c, SHMQ_ROLE_CONSUMER);
	fill(out, sizeof(out), 9);
	cr_assert(eq(int, shmq__ring_try_send(&p, out, sizeof(out)), 0));
	cr_assert(eq(int, shmq__ring_peek(&c, &msg), (int)sizeof(out)));
	cr_assert(same(msg, sizeof(out), 9));
	cr_assert(msg_in_arena(msg), "in the arena, after the slots");
	cr_assert(ne(u64, load_relaxed(&shm()->arena_head), load_relaxed(&shm()->arena_tail)));
	cr_assert(eq(int, shmq__ring_release(&c), 0));
	cr_assert(eq(u64, load_relaxed(&shm()->arena_head), load_relaxed(&shm()->arena_tail)));
}

struct sender {
	struct shmq_ring *r;
	int rc;
};

static void *send_big(void *arg)
{
	static unsigned char buf[MAX_MSG];
	struct sender *s = arg;

	s->rc = shmq__ring_send_wait(s->r, buf, MAX_MSG, t_deadline_ms(WAIT_MS));
	return NULL;
}

Test(large, a_sender_waiting_for_arena_space_is_woken_by_a_receive)
{
	static unsigned char buf[MAX_MSG];
	struct sender s = {0};
	struct shmq_ring p, c;
	pthread_t t;

	new_queue(SHMQ_QMODE_MPMC, 16);
	handle(&p, SHMQ_ROLE_PRODUCER);
	handle(&c, SHMQ_ROLE_CONSUMER);
	cr_assert(eq(int, shmq__ring_try_send(&p, buf, MAX_MSG), 0));
	cr_assert(eq(int, shmq__ring_try_send(&p, buf, MAX_MSG), 0));
	s = (struct sender){.r = &p, .rc = 1};
	cr_assert(eq(int, pthread_create(&t, NULL, send_big, &s), 0));
	for (int i = 0; i < 5000 && !(load_relaxed(&shm()->ec_send) & 1); i++)
		t_sleep_ms(1);
	cr_assert(load_relaxed(&shm()->ec_send) & 1, "the sender never slept");
	cr_assert(eq(int, shmq__ring_try_recv(&c, buf, sizeof(buf)), (int)MAX_MSG));
	pthread_join(t, NULL);
	cr_assert(eq(int, s.rc, 0));
}

static int peek_and_die(void *arg)
{
	struct shmq_ring *c = arg;
	const void *msg;

	if (shmq__ring_peek(c, &msg) != 5000)
		return 1;
	kill(getpid(), SIGKILL); /* holding the region, mid-read */
	return 2;
}

Test(large, a_reader_killed_holding_a_region_has_it_redelivered_whole)
{
	static unsigned char out[5000], in[5000];
	struct shmq_kind_repair rep = {0};
	struct shmq_ring p, c, c2;
	uint32_t ci;
	pid_t pid;

	new_queue(SHMQ_QMODE_MPMC, 8);
	handle(&p, SHMQ_ROLE_PRODUCER);
	ci = handle(&c, SHMQ_ROLE_CONSUMER);
	fill(out, sizeof(out), 4);
	cr_assert(eq(int, shmq__ring_try_send(&p, out, sizeof(out)), 0));
	pid = t_fork_peer(peek_and_die, &c);
	cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL));
	/* the daemon, once the death is certain */
	cr_assert(eq(int, shmq__kind_queue.repair(&fx.seg, ci, &rep), 1));
	cr_assert(eq(u32, rep.regions, 1));
	cr_assert(eq(u32, rep.redelivered, 1));
	shmq__session_release(&fx.seg, ci);
	handle(&c2, SHMQ_ROLE_CONSUMER);
	cr_assert(eq(int, shmq__ring_try_recv(&c2, in, sizeof(in)), (int)sizeof(in)));
	cr_assert(same(in, sizeof(in), 4));
	cr_assert(eq(u64, load_relaxed(&shm()->arena_head), load_relaxed(&shm()->arena_tail)));
	cr_assert(eq(int, shmq__kind_queue.check(&fx.seg, true), 0));
}

Test(large, a_writer_killed_holding_a_region_leaves_no_message_and_frees_it)
{
	static unsigned char out[5000], in[5000];
	struct shmq_kind_repair rep = {0};
	struct shmq_ring p, c;
	uint64_t start;
	uint32_t pi;

	new_queue(SHMQ_QMODE_MPMC, 8);
	pi = handle(&p, SHMQ_ROLE_PRODUCER);
	handle(&c, SHMQ_ROLE_CONSUMER);
	/* as if killed between its reserve and its slot: a region WRITING under its tag */
	start = load_relaxed(&shm()->arena_tail);
	cr_assert(eq(int, shmq__ring_try_send(&p, out, sizeof(out)), 0));
	cr_assert(eq(int, shmq__ring_try_recv(&c, in, sizeof(in)), (int)sizeof(in)));
	{
		struct shmq_region_hdr *rh =
			(struct shmq_region_hdr *)(p.arena +
						   load_relaxed(&shm()->arena_tail) % p.arena_size);
		uint64_t at = load_relaxed(&shm()->arena_tail);

		store_relaxed(&rh->state, SHMQ_OWNER_WRITING | p.tag);
		store_relaxed(&rh->size, 5056);
		store_relaxed(&rh->len, 5000);
		store_relaxed(&rh->start, at);
		store_relaxed(&shm()->arena_tail, at + 5056);
	}
	cr_assert(ne(u64, start, load_relaxed(&shm()->arena_tail)));
	cr_assert(eq(int, shmq__kind_queue.repair(&fx.seg, pi, &rep), 1));
	cr_assert(eq(u32, rep.regions, 1));
	cr_assert(eq(u64, load_relaxed(&shm()->arena_head), load_relaxed(&shm()->arena_tail)),
		  "freed, and the head passed it");
	cr_assert(eq(int, shmq__ring_try_recv(&c, in, sizeof(in)), -EAGAIN));
}

Test(large, scribbled_descriptors_and_headers_are_bad_messages_never_a_crash)
{
	static unsigned char out[5000], in[5000];
	struct shmq_ring p, c;
	struct shmq_slot_hdr *h;

	new_queue(SHMQ_QMODE_MPMC, 8);
	handle(&p, SHMQ_ROLE_PRODUCER);
	handle(&c, SHMQ_ROLE_CONSUMER);
	cr_assert(eq(int, shmq__ring_try_send(&p, out, sizeof(out)), 0));
	h = (struct shmq_slot_hdr *)fx.seg.slots;
	((struct shmq_slot_large *)(h + 1))->start = UINT64_C(1) << 40; /* outside the window */
	cr_assert(eq(int, shmq__ring_try_recv(&c, in, sizeof(in)), -EBADMSG));
	/* the region it named is an orphan, but well formed: the arena still tiles */
	cr_assert(eq(int, shmq__kind_queue.check(&fx.seg, true), 0));
	/* a header that lies about its size: the validator says so */
	{
		struct shmq_region_hdr *rh = (struct shmq_region_hdr *)p.arena;

		store_relaxed(&rh->size, 3);
		cr_assert(eq(int, shmq__kind_queue.check(&fx.seg, true), -EBADMSG));
	}
}

struct worker {
	struct shmq_ring r;
	int id;
	int n;
	int bad;
	_Atomic int *received;
};

static void *produce(void *arg)
{
	static _Thread_local unsigned char buf[MAX_MSG];
	struct worker *w = arg;
	uint64_t rng = (uint64_t)w->id * 0x9e3779b97f4a7c15u + 1;

	for (int i = 0; i < w->n; i++) {
		uint32_t len = 8 + (uint32_t)(t_rand(&rng) % (MAX_MSG - 8));
		uint32_t seed = (uint32_t)(w->id << 16 | i);

		if (t_rand(&rng) % 2)
			len = 8 + (uint32_t)(t_rand(&rng) % 56); /* a slot's */
		memcpy(buf, &seed, 4);
		memcpy(buf + 4, &len, 4);
		fill(buf + 8, len - 8, seed);
		if (shmq__ring_send_wait(&w->r, buf, len, t_deadline_ms(WAIT_MS)) != 0)
			w->bad++;
	}
	return NULL;
}

static void *consume(void *arg)
{
	static _Thread_local unsigned char buf[MAX_MSG];
	struct worker *w = arg;

	while (atomic_load(w->received) < w->n) {
		uint32_t seed, len;
		int r = shmq__ring_recv_wait(&w->r, buf, sizeof(buf), t_deadline_ms(50));

		if (r == -ETIMEDOUT)
			continue;
		memcpy(&seed, buf, 4);
		memcpy(&len, buf + 4, 4);
		if (r < 8 || (uint32_t)r != len || !same(buf + 8, len - 8, seed))
			w->bad++;
		atomic_fetch_add(w->received, 1);
	}
	return NULL;
}

Test(large, two_producers_and_two_consumers_race_over_the_arena)
{
	_Atomic int received = 0;
	struct worker w[4] = {0};
	pthread_t t[4];
	const int per = 300;

	new_queue(SHMQ_QMODE_MPMC, 16);
	for (int i = 0; i < 4; i++) {
		handle(&w[i].r, i < 2 ? SHMQ_ROLE_PRODUCER : SHMQ_ROLE_CONSUMER);
		w[i].r.spin_ns = 2000;
		w[i].id = i;
		w[i].n = i < 2 ? per : 2 * per;
		w[i].received = &received;
		cr_assert(
			eq(int, pthread_create(&t[i], NULL, i < 2 ? produce : consume, &w[i]), 0));
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 4; i++)
		cr_assert(eq(int, w[i].bad, 0), "worker %d", i);
	cr_assert(eq(int, atomic_load(&received), 2 * per));
	cr_assert(eq(u64, load_relaxed(&shm()->arena_head), load_relaxed(&shm()->arena_tail)));
	cr_assert(eq(int, shmq__kind_queue.check(&fx.seg, true), 0));
}
