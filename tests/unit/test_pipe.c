/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for shm/pipe.c: both directions of a duplex pipe and the one
 * of a one-way pipe; what each end sees when the other closes (a drain to
 * end-of-file, -EPIPE on send), including callers blocked at the time;
 * poll; a holder that dies (the repair closes its end); the asynchronous
 * arm; the validator and the geometry.  Across processes with a daemon:
 * tests/integration/test_pipe.c.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/kind.h"
#include "shm/pipe.h"
#include "tests/helpers.h"

#define WAIT_MS 5000 /* the deadline of every wait that should succeed */

static struct t_seg fx;

static void teardown(void)
{
	t_seg_free(&fx);
}

TestSuite(pipe, .fini = teardown, .timeout = 30);

/* End @end on its own session record, as a client's open gives; the record index in *@ret. */
static void end_handle(struct shmq_pipe *h, uint32_t end, uint32_t *ret)
{
	uint32_t role = SHMQ_ROLE_USER | (end ? SHMQ_ROLE_END1 : 0), idx;

	cr_assert(eq(int, shmq__session_claim(&fx.seg, role, getpid(), getuid(), &idx), 0));
	cr_assert(eq(int, shmq__pipe_attach(h, &fx.seg, idx, end), 0));
	if (ret)
		*ret = idx;
}

static struct shmq_pipe_shm *shm(void)
{
	return fx.seg.object;
}

static int recv_str(struct shmq_pipe *h, char *buf, size_t size, uint64_t deadline)
{
	int r = shmq__ring_recv_wait(&h->in, buf, size - 1, deadline);

	if (r >= 0)
		buf[r] = '\0';
	return r;
}

Test(pipe, each_end_receives_what_the_other_sent_in_order_with_boundaries)
{
	struct shmq_pipe a, b;
	char buf[64];

	t_seg_new_pipe(&fx, 8, 64, 0);
	end_handle(&a, 0, NULL);
	end_handle(&b, 1, NULL);
	cr_assert(a.can_send && a.can_recv && b.can_send && b.can_recv);
	cr_assert(eq(int, shmq__ring_try_send(&a.out, "one", 3), 0));
	cr_assert(eq(int, shmq__ring_try_send(&a.out, "", 0), 0));
	cr_assert(eq(int, shmq__ring_try_send(&a.out, "three", 5), 0));
	cr_assert(eq(int, shmq__ring_try_send(&b.out, "back", 4), 0));
	/* nothing comes back to its own sender */
	cr_assert(eq(int, shmq__ring_try_recv(&b.in, buf, sizeof(buf)), 3));
	cr_assert(eq(int, shmq__ring_try_recv(&b.in, buf, sizeof(buf)), 0));
	cr_assert(eq(int, recv_str(&b, buf, sizeof(buf), t_deadline_ms(WAIT_MS)), 5));
	cr_assert(eq(int, memcmp(buf, "three", 6), 0)); /* eq(str) misreports under TSan */
	cr_assert(eq(int, shmq__ring_try_recv(&b.in, buf, sizeof(buf)), -EAGAIN));
	cr_assert(eq(int, recv_str(&a, buf, sizeof(buf), t_deadline_ms(WAIT_MS)), 4));
	cr_assert(eq(int, memcmp(buf, "back", 5), 0));
	cr_assert(eq(int, shmq__ring_try_recv(&a.in, buf, sizeof(buf)), -EAGAIN));
	cr_assert(eq(int, shmq__ring_try_send(&a.out, buf, 65), -EMSGSIZE));
	cr_assert(eq(int, shmq__kind_pipe.check(&fx.seg, true), 0));
}

Test(pipe, a_full_direction_holds_its_messages_and_the_other_direction_still_flows)
{
	struct shmq_pipe a, b;
	char buf[8];

	t_seg_new_pipe(&fx, 2, 8, 0);
	end_handle(&a, 0, NULL);
	end_handle(&b, 1, NULL);
	cr_assert(eq(int, shmq__ring_try_send(&a.out, "1", 1), 0));
	cr_assert(eq(int, shmq__ring_try_send(&a.out, "2", 1), 0));
	cr_assert(eq(int, shmq__ring_try_send(&a.out, "3", 1), -EAGAIN));
	cr_assert(eq(int, shmq__ring_send_wait(&a.out, "3", 1, t_deadline_ms(20)), -ETIMEDOUT));
	cr_assert(eq(int, shmq__ring_try_send(&b.out, "x", 1), 0)); /* its own ring */
	cr_assert(eq(int, shmq__ring_try_recv(&a.in, buf, sizeof(buf)), 1));
	cr_assert(eq(int, shmq__ring_try_recv(&b.in, buf, sizeof(buf)), 1));
	cr_assert(eq(int, buf[0], '1'));
}

Test(pipe, a_one_way_pipe_sends_from_end_1_to_end_0_only)
{
	struct shmq_pipe r, w;
	char buf[8];

	t_seg_new_pipe(&fx, 4, 8, SHMQ_PIPE_ONEWAY);
	end_handle(&r, 0, NULL);
	end_handle(&w, 1, NULL);
	cr_assert(r.can_recv && !r.can_send);
	cr_assert(w.can_send && !w.can_recv);
	cr_assert(eq(int, shmq__pipe_poll(&w, t_deadline_ms(1)), -EBADF));
	cr_assert(eq(int, shmq__ring_try_send(&w.out, "hi", 2), 0));
	cr_assert(eq(int, shmq__pipe_poll(&r, t_deadline_ms(WAIT_MS)), 1));
	cr_assert(eq(int, shmq__ring_try_recv(&r.in, buf, sizeof(buf)), 2));
	/* one direction: half the slots of a duplex pipe of the same geometry */
	cr_assert(eq(u64, shmq__kind_pipe.tail_size(&fx.seg.hdr->geom),
		     4u * fx.seg.geom.pipe.slot_stride));
	/* the sender's close drains; the receiver reads, then end-of-file */
	cr_assert(eq(int, shmq__ring_try_send(&w.out, "last", 4), 0));
	cr_assert(eq(int, shmq__pipe_close_end(&fx.seg, 1), 1));
	cr_assert(eq(int, shmq__ring_try_recv(&r.in, buf, sizeof(buf)), 4));
	cr_assert(eq(int, shmq__ring_try_recv(&r.in, buf, sizeof(buf)), -EPIPE));
	cr_assert(eq(int, shmq__kind_pipe.check(&fx.seg, true), 0));
}

Test(pipe, a_close_lets_the_peer_drain_to_end_of_file_and_fails_its_sends)
{
	struct shmq_pipe a, b;
	char buf[8];

	t_seg_new_pipe(&fx, 8, 8, 0);
	end_handle(&a, 0, NULL);
	end_handle(&b, 1, NULL);
	cr_assert(eq(int, shmq__ring_try_send(&b.out, "b1", 2), 0));
	cr_assert(eq(int, shmq__ring_try_send(&b.out, "b2", 2), 0));
	cr_assert(eq(int, shmq__ring_try_send(&a.out, "to-b", 4), 0)); /* b never reads it */
	cr_assert(not(shmq__pipe_end_closed(&fx.seg, 1)));
	cr_assert(eq(int, shmq__pipe_close_end(&fx.seg, 1), 1));
	cr_assert(eq(int, shmq__pipe_close_end(&fx.seg, 1), 0)); /* once */
	cr_assert(shmq__pipe_end_closed(&fx.seg, 1));
	cr_assert(not(shmq__pipe_end_closed(&fx.seg, 0)));
	/* what b sent before the close, in order, then end-of-file, for good */
	cr_assert(eq(int, shmq__ring_try_recv(&a.in, buf, sizeof(buf)), 2));
	cr_assert(eq(int, buf[1], '1'));
	cr_assert(
		eq(int, shmq__ring_recv_wait(&a.in, buf, sizeof(buf), t_deadline_ms(WAIT_MS)), 2));
	cr_assert(eq(int, buf[1], '2'));
	cr_assert(eq(int, shmq__ring_recv_wait(&a.in, buf, sizeof(buf), t_deadline_ms(WAIT_MS)),
		     -EPIPE));
	cr_assert(eq(int, shmq__ring_try_recv(&a.in, buf, sizeof(buf)), -EPIPE));
	cr_assert(eq(int, shmq__pipe_poll(&a, t_deadline_ms(WAIT_MS)), 1)); /* EOF is ready */
	/* nobody will read what a sends */
	cr_assert(eq(int, shmq__ring_try_send(&a.out, "x", 1), -EPIPE));
	cr_assert(eq(int, shmq__ring_send_wait(&a.out, "x", 1, t_deadline_ms(WAIT_MS)), -EPIPE));
	cr_assert(eq(int, shmq__kind_pipe.check(&fx.seg, true), 0));
}

struct blocked {
	struct shmq_pipe *h;
	bool send;
	int r;
};

static void *blocked_call(void *arg)
{
	struct blocked *b = arg;
	char buf[8] = "z";

	if (b->send) {
		do /* fill, then block */
			b->r = shmq__ring_send_wait(&b->h->out, buf, 1, t_deadline_ms(WAIT_MS));
		while (b->r == 0);
	} else {
		b->r = shmq__ring_recv_wait(&b->h->in, buf, sizeof(buf), t_deadline_ms(WAIT_MS));
	}
	return NULL;
}

static void close_under_blocked(bool send)
{
	struct blocked bl = {0};
	struct shmq_pipe a;
	pthread_t t;
	uint64_t t0;

	t_seg_new_pipe(&fx, 4, 8, 0);
	end_handle(&a, 0, NULL);
	a.in.spin_ns = a.out.spin_ns = 0;
	bl = (struct blocked){.h = &a, .send = send, .r = 1};
	cr_assert(eq(int, pthread_create(&t, NULL, blocked_call, &bl), 0));
	/* until the thread sleeps on the eventcount of its direction */
	for (int i = 0; i < 5000; i++) {
		_Atomic uint32_t *ec = send ? &shm()->dir[1].ec_send : &shm()->dir[0].ec_recv;

		if (load_relaxed(ec) & 1)
			break;
		t_sleep_ms(1);
	}
	t0 = t_now_ns();
	cr_assert(eq(int, shmq__pipe_close_end(&fx.seg, 1), 1));
	pthread_join(t, NULL);
	cr_assert(eq(int, bl.r, -EPIPE));
	cr_assert(t_now_ns() - t0 < (uint64_t)WAIT_MS * 1000000 / 2, "woken by the close");
}

Test(pipe, a_close_wakes_a_receiver_blocked_on_the_peer)
{
	close_under_blocked(false);
}

Test(pipe, a_close_wakes_a_sender_blocked_on_a_full_direction)
{
	close_under_blocked(true);
}

Test(pipe, poll_waits_for_a_message_and_takes_nothing)
{
	struct shmq_pipe a, b;
	char buf[8];

	t_seg_new_pipe(&fx, 4, 8, 0);
	end_handle(&a, 0, NULL);
	end_handle(&b, 1, NULL);
	cr_assert(eq(int, shmq__pipe_poll(&a, t_deadline_ms(20)), 0));
	cr_assert(eq(u64, load_relaxed(&a.in.c->empty), 0), "a poll is not a receive");
	cr_assert(eq(int, shmq__ring_try_send(&b.out, "m", 1), 0));
	cr_assert(eq(int, shmq__pipe_poll(&a, t_deadline_ms(WAIT_MS)), 1));
	cr_assert(eq(int, shmq__pipe_poll(&a, t_deadline_ms(WAIT_MS)), 1)); /* still there */
	cr_assert(eq(int, shmq__ring_try_recv(&a.in, buf, sizeof(buf)), 1));
	cr_assert(eq(int, shmq__pipe_poll(&a, t_deadline_ms(1)), 0));
}

struct dying {
	struct shmq_pipe h;
	int n; /* messages to send before dying */
};

static int send_and_die(void *arg)
{
	struct dying *d = arg;

	for (int i = 0; i < d->n; i++)
		if (shmq__ring_try_send(&d->h.out, &i, sizeof(i)) != 0)
			return 1;
	/* and then asleep on its own inbox, as a holder killed in a recv would be */
	d->h.in.spin_ns = 0;
	(void)shmq__ring_recv_wait(&d->h.in, &d->n, sizeof(d->n), SHMQ_DEADLINE_NEVER);
	return 2;
}

Test(pipe, the_repair_of_a_dead_holder_closes_its_end_and_clears_its_sleep)
{
	struct shmq_kind_repair rep = {0};
	struct dying dy = {.n = 3};
	struct shmq_pipe a;
	uint32_t idx;
	int v;
	pid_t pid;

	t_seg_new_pipe(&fx, 8, 8, 0);
	end_handle(&a, 0, NULL);
	end_handle(&dy.h, 1, &idx);
	pid = t_fork_peer(send_and_die, &dy);
	for (int i = 0; i < 5000 && !(load_relaxed(&shm()->dir[1].ec_recv) & 1); i++)
		t_sleep_ms(1);
	cr_assert(load_relaxed(&shm()->dir[1].ec_recv) & 1, "the holder never slept");
	kill(pid, SIGKILL);
	cr_assert(eq(int, t_wait_peer(pid), 128 + SIGKILL));
	/* the daemon, once the death is certain */
	cr_assert(eq(int, shmq__kind_pipe.repair(&fx.seg, idx, &rep), 1));
	cr_assert(eq(u32, rep.closed, 1));
	cr_assert(not(load_relaxed(&shm()->dir[1].ec_recv) & 1), "the dead sleeper's bit stays");
	for (int i = 0; i < 3; i++) {
		cr_assert(eq(int, shmq__ring_try_recv(&a.in, &v, sizeof(v)), (int)sizeof(v)));
		cr_assert(eq(int, v, i));
	}
	cr_assert(eq(int, shmq__ring_try_recv(&a.in, &v, sizeof(v)), -EPIPE));
	cr_assert(eq(int, shmq__ring_try_send(&a.out, &v, sizeof(v)), -EPIPE));
	rep = (struct shmq_kind_repair){0};
	cr_assert(eq(int, shmq__kind_pipe.repair(&fx.seg, idx, &rep), 0)); /* closed once */
	cr_assert(eq(int, shmq__kind_pipe.check(&fx.seg, true), 0));
}

Test(pipe, an_async_arm_sleeps_on_the_direction_and_a_send_moves_its_word)
{
	struct shmq_kind_arm arm;
	struct shmq_pipe a, b;

	t_seg_new_pipe(&fx, 2, 8, 0);
	end_handle(&a, 0, NULL);
	end_handle(&b, 1, NULL);
	cr_assert(not(shmq__kind_pipe.is_ready(&a, SHMQ_KIND_EV_RECV)));
	cr_assert(shmq__kind_pipe.is_ready(&a, SHMQ_KIND_EV_SEND));
	cr_assert(eq(int, shmq__kind_pipe.arm(&a, SHMQ_KIND_EV_RECV, &arm), 0));
	cr_assert(eq(ptr, (void *)arm.word, (void *)&shm()->dir[0].ec_recv));
	cr_assert(eq(int, shmq__ring_send_wait(&b.out, "m", 1, t_deadline_ms(WAIT_MS)), 0));
	cr_assert(ne(u32, load_relaxed(arm.word), arm.key), "the sleep would not end");
	cr_assert(shmq__kind_pipe.is_ready(&a, SHMQ_KIND_EV_RECV));
	/* the kind's attach reads the end from the record's role */
	{
		struct shmq_pipe k;
		uint32_t idx;

		cr_assert(eq(int,
			     shmq__session_claim(&fx.seg, SHMQ_ROLE_USER | SHMQ_ROLE_END1, getpid(),
						 getuid(), &idx),
			     0));
		cr_assert(eq(int, shmq__kind_pipe.attach(&k, &fx.seg, idx), 0));
		cr_assert(eq(u32, k.end, 1));
	}
}

Test(pipe, the_validator_catches_bad_closed_words_and_half_done_closes_at_rest)
{
	t_seg_new_pipe(&fx, 4, 8, 0);
	cr_assert(eq(int, shmq__kind_pipe.check(&fx.seg, true), 0));
	store_relaxed(&shm()->closed[1], 7);
	cr_assert(eq(int, shmq__kind_pipe.check(&fx.seg, false), -EBADMSG));
	store_relaxed(&shm()->closed[1], SHMQ_PIPE_CLOSED); /* and no shutdown: half done */
	cr_assert(eq(int, shmq__kind_pipe.check(&fx.seg, false), 0), "a close runs while busy");
	cr_assert(eq(int, shmq__kind_pipe.check(&fx.seg, true), -EBADMSG));
	cr_assert(eq(int, shmq__pipe_close_end(&fx.seg, 1), 0)); /* finishes it */
	cr_assert(eq(int, shmq__kind_pipe.check(&fx.seg, true), 0));
	store_relaxed(&shm()->dir[0].shutdown, 9);
	cr_assert(eq(int, shmq__kind_pipe.check(&fx.seg, true), -EBADMSG));
}

Test(pipe, geometry_is_a_queue_s_per_direction_with_only_the_oneway_flag)
{
	union shmq_geom g = {.pipe = {.n_slots = 8, .slot_size = 64}};

	cr_assert(eq(int, shmq__kind_pipe.geom_check(&g, false), 0));
	shmq__kind_pipe.geom_derive(&g);
	cr_assert(eq(u32, g.pipe.slot_stride, 80));
	cr_assert(eq(int, shmq__kind_pipe.geom_check(&g, true), 0));
	cr_assert(eq(u64, shmq__kind_pipe.tail_size(&g), 2u * 8 * 80));
	g.pipe.flags = 2;
	cr_assert(eq(int, shmq__kind_pipe.geom_check(&g, true), -EINVAL));
	g.pipe.flags = SHMQ_PIPE_ONEWAY;
	g.pipe.reserved[3] = 1;
	cr_assert(eq(int, shmq__kind_pipe.geom_check(&g, true), -EINVAL));
	g.pipe.reserved[3] = 0;
	g.pipe.n_slots = 6;
	cr_assert(eq(int, shmq__kind_pipe.geom_check(&g, true), -EINVAL));
	g.pipe.n_slots = 8;
	g.pipe.slot_stride = 72; /* not a whole slot */
	cr_assert(eq(int, shmq__kind_pipe.geom_check(&g, true), -EINVAL));
	cr_assert(
		eq(int, shmq__pipe_attach(&(struct shmq_pipe){0}, &fx.seg, UINT32_MAX, 0), -EINVAL),
		"no segment yet");
}
