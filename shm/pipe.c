/* SPDX-License-Identifier: MIT */
/*
 * Pipes: two SPSC rings and the lifetime of two ends.  The design is at
 * the top of shm/pipe.h; the rings' ordering, blocking and shutdown
 * arguments are shm/ring.c's and are not repeated here.
 *
 * Ordering of a close:
 *
 *   closer                                  peer
 *   C1 store closed[e] (relaxed)            sees the ring's shutdown word
 *   S1 shutdown(dir[1 - e], drain)          (A5 in shm/ring.c: acquire)
 *   S1 shutdown(dir[e], immediate)
 *
 * closed[e] is for the daemon's admission and for display; no peer decides
 * anything from it, so it needs no ordering of its own.  What a peer acts
 * on is each ring's shutdown word, whose release (S1) follows every message
 * the closer sent, so the drain delivers all of them before end-of-file.
 */
#include <errno.h>
#include <stddef.h>

#include "shm/atomic.h"
#include "shm/kind.h"
#include "shm/pipe.h"

/* Direction @dir's ring in @seg (whose geometry attach validated). */
static struct shmq_ring_part part_of(const struct shmq_segment *seg, uint32_t dir)
{
	const struct shmq_pipe_geom *g = &seg->geom.pipe;
	struct shmq_pipe_shm *p = seg->object;

	return (struct shmq_ring_part){
		.q = &p->dir[dir],
		.slots = seg->slots + (uint64_t)dir * g->n_slots * g->slot_stride,
		.n_slots = g->n_slots,
		.slot_size = g->slot_size,
		.slot_stride = g->slot_stride,
		.mode = SHMQ_QMODE_SPSC,
	};
}

static int ring_of(struct shmq_ring *r, const struct shmq_segment *seg, uint32_t session,
		   uint32_t dir)
{
	struct shmq_ring_part part = part_of(seg, dir);

	return shmq__ring_attach_at(r, seg, session, &part);
}

/* The direction end @end sends on (@sending) or receives from; UINT32_MAX: it cannot. */
static uint32_t dir_of(const struct shmq_segment *seg, uint32_t end, bool sending)
{
	if (seg->geom.pipe.flags & SHMQ_PIPE_ONEWAY)
		return end == (sending ? 1u : 0u) ? 0 : UINT32_MAX;
	return sending ? 1 - end : end;
}

int shmq__pipe_attach_ring(struct shmq_ring *r, const struct shmq_segment *seg, uint32_t session,
			   uint32_t end, bool sending)
{
	uint32_t dir;

	if (!r || !seg || seg->kind != SHMQ_KIND_PIPE || end > 1)
		return -EINVAL;
	dir = dir_of(seg, end, sending);
	return dir == UINT32_MAX ? -EBADF : ring_of(r, seg, session, dir);
}

int shmq__pipe_attach(struct shmq_pipe *h, const struct shmq_segment *seg, uint32_t session,
		      uint32_t end)
{
	int r;

	if (!h || !seg || seg->kind != SHMQ_KIND_PIPE || end > 1)
		return -EINVAL;
	*h = (struct shmq_pipe){
		.p = seg->object,
		.end = end,
		.can_recv = dir_of(seg, end, false) != UINT32_MAX,
		.can_send = dir_of(seg, end, true) != UINT32_MAX,
	};
	/* One-way: end 1 receives nothing, but binds dir 0 too, for is_ready() on a bad call. */
	r = ring_of(&h->in, seg, session, h->can_recv ? dir_of(seg, end, false) : 0);
	if (r == 0 && h->can_send)
		r = shmq__pipe_attach_ring(&h->out, seg, session, end, true);
	return r;
}

bool shmq__pipe_end_closed(const struct shmq_segment *seg, uint32_t end)
{
	const struct shmq_pipe_shm *p = seg->object;

	return end <= 1 && load_relaxed(&p->closed[end]) != 0; /* a snapshot: see C1 */
}

int shmq__pipe_close_end(const struct shmq_segment *seg, uint32_t end)
{
	struct shmq_pipe_shm *p;
	struct shmq_ring r;
	uint32_t was;

	if (!seg || seg->kind != SHMQ_KIND_PIPE || end > 1)
		return -EINVAL;
	p = seg->object;
	was = load_relaxed(&p->closed[end]);
	store_relaxed(&p->closed[end], SHMQ_PIPE_CLOSED); /* C1 */
	if (seg->geom.pipe.flags & SHMQ_PIPE_ONEWAY) {
		/* The sender's close drains; the receiver's drops what nobody will read. */
		if (ring_of(&r, seg, UINT32_MAX, 0) == 0)
			shmq__ring_shutdown(&r, end == 0);
	} else {
		if (ring_of(&r, seg, UINT32_MAX, 1 - end) == 0)
			shmq__ring_shutdown(&r, false); /* S1: what it sent is still read */
		if (ring_of(&r, seg, UINT32_MAX, end) == 0)
			shmq__ring_shutdown(&r, true); /* S1: nobody will read what is sent to it */
	}
	/*
	 * Run the shutdowns even when it was closed already: a closer killed
	 * between C1 and S1 left them undone, and shutting down twice is a
	 * no-op.
	 */
	return was ? 0 : 1;
}

int shmq__pipe_poll(struct shmq_pipe *h, uint64_t deadline_ns)
{
	int r;

	if (!h->can_recv)
		return -EBADF;
	r = shmq__ring_wait_ready(&h->in, false, deadline_ns);
	return r == 0 ? 1 : r == -ETIMEDOUT ? 0 : r;
}

/* --- The kind --- */

static int pipe_geom_check(const union shmq_geom *u, bool formatted)
{
	const struct shmq_pipe_geom *g = &u->pipe;

	if (g->flags & ~SHMQ_PIPE_ONEWAY)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(g->reserved) / sizeof(g->reserved[0]); i++)
		if (g->reserved[i])
			return -EINVAL;
	return shmq__ring_geom_check(g->n_slots, g->slot_size, g->slot_stride, formatted);
}

static void pipe_geom_derive(union shmq_geom *u)
{
	u->pipe.slot_stride = shmq__ring_stride(u->pipe.slot_size);
}

static uint64_t pipe_tail_size(const union shmq_geom *u)
{
	/* <= 2 * 2^24 slots of <= 2^24 + 16 bytes: no 64-bit overflow. */
	return (uint64_t)shmq__pipe_dirs(&u->pipe) * u->pipe.n_slots * u->pipe.slot_stride;
}

static void pipe_format(void *object, unsigned char *tail, const union shmq_geom *u)
{
	const struct shmq_pipe_geom *g = &u->pipe;

	(void)object; /* indices, eventcounts and closed[] start at 0: the memory is zeroed */
	for (uint32_t d = 0; d < shmq__pipe_dirs(g); d++)
		shmq__ring_format(tail + (uint64_t)d * g->n_slots * g->slot_stride, g->n_slots,
				  g->slot_stride);
}

/*
 * closed[] takes two values at every instant.  At rest, each ring passes
 * shmq__ring_check(), and a closed end's close is complete: the direction
 * it sent on drains or is shut, the one it received on is shut at once.
 */
static int pipe_check(const struct shmq_segment *seg, bool quiescent)
{
	const struct shmq_pipe_geom *g = &seg->geom.pipe;
	const struct shmq_pipe_shm *p = seg->object;
	bool oneway = g->flags & SHMQ_PIPE_ONEWAY;

	for (uint32_t e = 0; e < 2; e++) {
		uint32_t c = load_relaxed(&p->closed[e]); /* snapshot */

		if (c != 0 && c != SHMQ_PIPE_CLOSED)
			return -EBADMSG;
	}
	if (!quiescent)
		return 0;
	for (uint32_t d = 0; d < shmq__pipe_dirs(g); d++) {
		struct shmq_ring r;
		uint32_t sd;

		if (ring_of(&r, seg, UINT32_MAX, d) < 0 || shmq__ring_check(&r) < 0)
			return -EBADMSG;
		sd = shmq__ring_shutdown_state(&r);
		if (sd > SHMQ_QUEUE_SHUTDOWN_IMMEDIATE)
			return -EBADMSG;
		/* dir d is received by end d and sent by the other (by end 1, one-way). */
		if (load_relaxed(&p->closed[d]) && sd != SHMQ_QUEUE_SHUTDOWN_IMMEDIATE)
			return -EBADMSG;
		if (load_relaxed(&p->closed[oneway ? 1 : 1 - d]) && !sd)
			return -EBADMSG;
	}
	return 0;
}

/* A dead holder's end closes, which wakes every sleeper on both rings. */
static int pipe_repair(const struct shmq_segment *seg, uint32_t index, struct shmq_kind_repair *ret)
{
	struct shmq_session_shm *rec = shmq__session_at(seg, index);
	uint32_t role = rec ? load_relaxed(&rec->role) : 0; /* untrusted: only picks an end */
	int r;

	if (!(role & SHMQ_ROLE_USER))
		return 0; /* not an end's record */
	/* SPSC rings hold nothing between claim and finish (shm/ring.c): no slot to repair. */
	r = shmq__pipe_close_end(seg, (role & SHMQ_ROLE_END1) ? 1 : 0);
	if (r > 0)
		ret->closed++;
	return r < 0 ? -EBADMSG : r;
}

static int pipe_kind_attach(void *handle, const struct shmq_segment *seg, uint32_t session)
{
	struct shmq_session_shm *rec =
		session == UINT32_MAX ? NULL : shmq__session_at(seg, session);
	uint32_t role = rec ? load_relaxed(&rec->role) : 0; /* the daemon wrote our record */

	return shmq__pipe_attach(handle, seg, session, (role & SHMQ_ROLE_END1) ? 1 : 0);
}

static bool pipe_is_ready(const void *handle, uint32_t events)
{
	const struct shmq_pipe *h = handle;

	if (events == SHMQ_KIND_EV_SEND)
		return !h->can_send || shmq__ring_is_ready(&h->out, true);
	return !h->can_recv || shmq__ring_is_ready(&h->in, false);
}

static int pipe_arm(void *handle, uint32_t events, struct shmq_kind_arm *ret)
{
	struct shmq_pipe *h = handle;
	bool send = events == SHMQ_KIND_EV_SEND;
	struct shmq_ring_arm a;
	int r;

	if (send ? !h->can_send : !h->can_recv)
		return 1; /* the attempt reports -EBADF at once */
	r = shmq__ring_arm(send ? &h->out : &h->in, send, &a);
	if (r == 0)
		*ret = (struct shmq_kind_arm){.word = a.word, .key = a.key, .bounded = a.bounded};
	return r;
}

const struct shmq_kind shmq__kind_pipe = {
	.id = SHMQ_KIND_PIPE,
	.name = "pipe",
	.short_name = "pipe",
	.events = SHMQ_KIND_EV_RECV | SHMQ_KIND_EV_SEND,
	.invariants = "each direction's ring indices and slot turns; closed ends are shut down",
	.object_size = sizeof(struct shmq_pipe_shm),
	.retired_off = offsetof(struct shmq_pipe_shm, retired),
	.geom_check = pipe_geom_check,
	.geom_derive = pipe_geom_derive,
	.tail_size = pipe_tail_size,
	.format = pipe_format,
	.check = pipe_check,
	.repair = pipe_repair,
	.attach = pipe_kind_attach,
	.is_ready = pipe_is_ready,
	.arm = pipe_arm,
};
