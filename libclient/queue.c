/* SPDX-License-Identifier: MIT */
/*
 * Queue handles: the public queue API over shm/ring.c.
 *
 * Opening is a control round trip (libclient/object.c); everything after
 * that is the ring alone, on this process's mapping, with no lock and no
 * system call unless a blocking call sleeps.  That is why a handle keeps
 * working while the daemon is away.  The checks here are the ones the ring
 * does not make: the handle's role (-EBADF) and the caller's pointers.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <shmq/shmq.h>

#include "libclient/handle.h"
#include "shm/atomic.h"
#include "shm/ring.h"

static_assert(SHMQ_MPMC == SHMQ_QMODE_MPMC && SHMQ_SPSC == SHMQ_QMODE_SPSC &&
		      SHMQ_MPSC == SHMQ_QMODE_MPSC && SHMQ_SPMC == SHMQ_QMODE_SPMC,
	      "public queue modes are the layout's");

/* The first struct shmq_queue_stats; a smaller one is a caller bug. */
#define STATS_SIZE_VER0 72
static_assert(sizeof(struct shmq_queue_stats) == STATS_SIZE_VER0, "append, then add _VER1");
static_assert(SHMQ_MSG_SIZE_LIMIT == SHMQ_MSG_SIZE_MAX, "the public limit is the layout's");
static_assert(SHMQ_QUEUE_UNFINISHED_LIMIT == SHMQ_QUEUE_UNFINISHED_MAX,
	      "the public limit is the layout's");

static int geom_from_attr(const struct shmq_queue_attr *a, struct shmq_req_open *req)
{
	int r = shmq__object_take_attr(a, sizeof(*a), req);

	if (r < 0)
		return r;
	/* 0 asks for the daemon's default; anything else is checked again there. */
	if ((a->n_slots & (a->n_slots - 1)) || a->n_slots > SHMQ_SLOTS_MAX)
		return shmq__refuse(-EINVAL, "n_slots %u is not a power of two in [2, %u]",
				    (unsigned int)a->n_slots, (unsigned int)SHMQ_SLOTS_MAX);
	if (a->slot_size > SHMQ_SLOT_SIZE_MAX)
		return shmq__refuse(-EINVAL, "slot_size %u is above the largest, %u",
				    (unsigned int)a->slot_size, (unsigned int)SHMQ_SLOT_SIZE_MAX);
	if (a->mode >= SHMQ_QMODE_COUNT)
		return shmq__refuse(-EINVAL, "mode %u is not SHMQ_MPMC, _SPSC, _MPSC or _SPMC",
				    (unsigned int)a->mode);
	if (a->perm & ~0777u)
		return shmq__refuse(-EINVAL, "perm 0%o has bits outside 0777", a->perm);
	if (a->flags & ~(SHMQ_QUEUE_NUMA | SHMQ_QUEUE_JOINABLE))
		return shmq__refuse(-EINVAL, "unknown queue flags 0x%x",
				    a->flags & ~(SHMQ_QUEUE_NUMA | SHMQ_QUEUE_JOINABLE));
	if (a->max_msg > SHMQ_MSG_SIZE_MAX)
		return shmq__refuse(-EINVAL, "max_msg %u is above the largest, %u",
				    (unsigned int)a->max_msg, (unsigned int)SHMQ_MSG_SIZE_MAX);
	if ((a->flags & SHMQ_QUEUE_NUMA) && a->numa_node < 0)
		return shmq__refuse(-EINVAL, "SHMQ_QUEUE_NUMA with numa_node %d",
				    (int)a->numa_node);
	req->geom.queue.n_slots = a->n_slots;
	req->geom.queue.slot_size = a->slot_size;
	req->geom.queue.mode = a->mode;
	req->geom.queue.numa_node = (a->flags & SHMQ_QUEUE_NUMA) ? a->numa_node : -1;
	req->geom.queue.flags = (a->flags & SHMQ_QUEUE_JOINABLE) ? SHMQ_QUEUE_F_JOINABLE : 0;
	req->geom.queue.max_msg = a->max_msg;
	if (a->perm)
		req->mode = a->perm;
	return 0;
}

/* The roles the handle was opened with, and what its async waits may ask for. */
static void queue_set_roles(struct shmq_queue *q, unsigned int flags)
{
	q->can_send = flags & SHMQ_SEND;
	q->can_recv = flags & SHMQ_RECV;
	q->obj.kind = &shmq__kind_queue;
	q->obj.algo = &q->ring;
	q->obj.wait_events =
		(q->can_recv ? SHMQ_POLL_RECV : 0) | (q->can_send ? SHMQ_POLL_SEND : 0);
	q->obj.n_waiters = &q->n_waiters;
}

SHMQ_API int shmq_queue_open(struct shmq_client *c, const char *name, unsigned int flags,
			     const struct shmq_queue_attr *attr, struct shmq_queue **ret)
{
	const unsigned int known = SHMQ_CREATE | SHMQ_EXCL | SHMQ_ANY_GEOMETRY | SHMQ_SEND |
				   SHMQ_RECV | SHMQ_VIEW | SHMQ_HUGEPAGES;
	struct shmq_req_open req = {.kind = SHMQ_KIND_QUEUE, .mode = 0600};
	bool create = flags & SHMQ_CREATE;
	struct shmq_queue *q;
	int r;

	if (!ret || (flags & ~known))
		return -EINVAL;
	if ((flags & SHMQ_VIEW) ? (flags & (SHMQ_SEND | SHMQ_RECV))
				: !(flags & (SHMQ_SEND | SHMQ_RECV)))
		return -EINVAL;
	/* Huge pages are chosen at creation: asked for on an open, they would be ignored. */
	if ((flags & SHMQ_HUGEPAGES) && !create)
		return -EINVAL;

	req.geom.queue.numa_node = -1;
	if (create && attr) {
		r = geom_from_attr(attr, &req);
		if (r < 0)
			return r;
	}
	if (flags & SHMQ_SEND)
		req.flags |= SHMQ_OPEN_SEND;
	if (flags & SHMQ_RECV)
		req.flags |= SHMQ_OPEN_RECV;
	if (flags & SHMQ_VIEW)
		req.flags |= SHMQ_OPEN_VIEW;
	if (create && (flags & SHMQ_HUGEPAGES))
		req.flags |= SHMQ_OPEN_HUGEPAGE;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	r = shmq__object_open_named(c, name, flags, &req, &q->obj);
	/* The segment passed attach: a handle that will not bind means the daemon lied. */
	if (r == 0 && shmq__ring_attach(&q->ring, &q->obj.seg, q->obj.session) < 0) {
		shmq__object_close(&q->obj);
		r = -EBADMSG;
	}
	if (r < 0) {
		free(q);
		return r;
	}
	queue_set_roles(q, flags);
	*ret = q;
	return 0;
}

int shmq__queue_wrap(const struct shmq_segment *seg, unsigned int flags, struct shmq_queue **ret)
{
	struct shmq_queue *q;

	if (!seg || !ret || !(flags & (SHMQ_SEND | SHMQ_RECV)) ||
	    (flags & ~(SHMQ_SEND | SHMQ_RECV)))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->obj.seg = *seg;
	q->obj.session = UINT32_MAX;
	if (shmq__ring_attach(&q->ring, &q->obj.seg, UINT32_MAX) < 0) {
		free(q);
		return -EINVAL;
	}
	queue_set_roles(q, flags);
	*ret = q;
	return 0;
}

SHMQ_API struct shmq_object *shmq_queue_object(struct shmq_queue *q)
{
	return q ? &q->obj : NULL;
}

SHMQ_API int shmq_queue_close(struct shmq_queue *q)
{
	if (!q)
		return 0;
	if (shmq__object_busy(&q->obj) < 0)
		return -EBUSY;
	/* A reservation becomes a tombstone; a peeked message counts as received. */
	if (q->ring.rsv_active)
		shmq__ring_cancel(&q->ring);
	if (q->ring.peek_active)
		shmq__ring_release(&q->ring);
	shmq__object_close(&q->obj);
	free(q);
	return 0;
}

SHMQ_API int shmq_queue_send(struct shmq_queue *q, const void *msg, size_t len)
{
	if (!q || (!msg && len))
		return -EINVAL;
	if (!q->can_send)
		return -EBADF;
	return shmq__ring_try_send(&q->ring, msg, len);
}

SHMQ_API int shmq_queue_send_wait(struct shmq_queue *q, const void *msg, size_t len,
				  uint64_t deadline_ns)
{
	if (!q || (!msg && len))
		return -EINVAL;
	if (!q->can_send)
		return -EBADF;
	return shmq__ring_send_wait(&q->ring, msg, len, deadline_ns);
}

SHMQ_API int shmq_queue_sendv(struct shmq_queue *q, const struct iovec *parts, unsigned int n,
			      uint64_t deadline_ns)
{
	if (!q)
		return -EINVAL;
	if (!q->can_send)
		return -EBADF;
	return shmq__ring_sendv_wait(&q->ring, parts, n, deadline_ns);
}

SHMQ_API int shmq_queue_recv(struct shmq_queue *q, void *buf, size_t size)
{
	if (!q || (!buf && size))
		return -EINVAL;
	if (!q->can_recv)
		return -EBADF;
	return shmq__ring_try_recv(&q->ring, buf, size);
}

SHMQ_API int shmq_queue_recv_wait(struct shmq_queue *q, void *buf, size_t size,
				  uint64_t deadline_ns)
{
	if (!q || (!buf && size))
		return -EINVAL;
	if (!q->can_recv)
		return -EBADF;
	return shmq__ring_recv_wait(&q->ring, buf, size, deadline_ns);
}

/* Every iovec names memory or is empty: a NULL base with a length is refused whole. */
static bool iovecs_ok(const struct iovec *msgs, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (!msgs[i].iov_base && msgs[i].iov_len)
			return false;
	return true;
}

SHMQ_API int shmq_queue_send_batch(struct shmq_queue *q, const struct iovec *msgs, unsigned int n)
{
	if (!q || (!msgs && n) || (msgs && !iovecs_ok(msgs, n)))
		return -EINVAL;
	if (!q->can_send)
		return -EBADF;
	return shmq__ring_send_batch(&q->ring, msgs, n);
}

SHMQ_API int shmq_queue_recv_batch(struct shmq_queue *q, struct iovec *msgs, unsigned int n)
{
	if (!q || (!msgs && n) || (msgs && !iovecs_ok(msgs, n)))
		return -EINVAL;
	if (!q->can_recv)
		return -EBADF;
	return shmq__ring_recv_batch(&q->ring, msgs, n);
}

SHMQ_API int shmq_queue_send_batch_wait(struct shmq_queue *q, const struct iovec *msgs,
					unsigned int n, uint64_t deadline_ns)
{
	if (!q || !msgs || !n || !iovecs_ok(msgs, n))
		return -EINVAL;
	if (!q->can_send)
		return -EBADF;
	return shmq__ring_send_batch_wait(&q->ring, msgs, n, deadline_ns);
}

SHMQ_API int shmq_queue_recv_batch_wait(struct shmq_queue *q, struct iovec *msgs, unsigned int n,
					uint64_t deadline_ns)
{
	if (!q || !msgs || !n || !iovecs_ok(msgs, n))
		return -EINVAL;
	if (!q->can_recv)
		return -EBADF;
	return shmq__ring_recv_batch_wait(&q->ring, msgs, n, deadline_ns);
}

SHMQ_API int shmq_queue_shutdown(struct shmq_queue *q, unsigned int flags)
{
	if (!q || (flags & ~SHMQ_SHUTDOWN_IMMEDIATE))
		return -EINVAL;
	if (!q->can_send && !q->can_recv)
		return -EBADF; /* a view maps read-only */
	return shmq__ring_shutdown(&q->ring, flags & SHMQ_SHUTDOWN_IMMEDIATE);
}

SHMQ_API int shmq_queue_is_shut_down(const struct shmq_queue *q)
{
	return q ? (int)shmq__ring_shutdown_state(&q->ring) : -EINVAL;
}

SHMQ_API int shmq_queue_reserve(struct shmq_queue *q, uint64_t deadline_ns, void **ret_buf)
{
	if (!q || !ret_buf)
		return -EINVAL;
	if (!q->can_send)
		return -EBADF;
	if (deadline_ns == 0)
		return shmq__ring_reserve(&q->ring, ret_buf);
	return shmq__ring_reserve_wait(&q->ring, ret_buf, deadline_ns);
}

SHMQ_API int shmq_queue_commit(struct shmq_queue *q, size_t len)
{
	if (!q)
		return -EINVAL;
	return shmq__ring_commit(&q->ring, len);
}

SHMQ_API int shmq_queue_cancel(struct shmq_queue *q)
{
	if (!q)
		return -EINVAL;
	return shmq__ring_cancel(&q->ring);
}

SHMQ_API int shmq_queue_peek(struct shmq_queue *q, uint64_t deadline_ns, const void **ret_msg)
{
	if (!q || !ret_msg)
		return -EINVAL;
	if (!q->can_recv)
		return -EBADF;
	if (deadline_ns == 0)
		return shmq__ring_peek(&q->ring, ret_msg);
	return shmq__ring_peek_wait(&q->ring, ret_msg, deadline_ns);
}

SHMQ_API int shmq_queue_release(struct shmq_queue *q)
{
	if (!q)
		return -EINVAL;
	return shmq__ring_release(&q->ring);
}

SHMQ_API int shmq_queue_max_msg(const struct shmq_queue *q)
{
	if (!q)
		return -EINVAL;
	return (int)q->ring.max_msg; /* <= SHMQ_MSG_SIZE_MAX, checked at attach */
}

SHMQ_API int shmq_queue_stats(const struct shmq_queue *q, struct shmq_queue_stats *ret)
{
	struct shmq_queue_stats st = {.size = 0};
	struct shmq_counter_totals t;
	const struct shmq_queue_shm *qs;
	uint32_t size;

	if (!q || !ret)
		return -EINVAL;
	size = ret->size;
	if (size < STATS_SIZE_VER0 || size > SHMQ_ATTR_SIZE_MAX)
		return -EINVAL;

	qs = q->ring.q;
	st.size = size;
	st.capacity = q->ring.mask + 1;
	st.slot_size = q->ring.slot_size;
	st.depth = shmq__ring_depth(&q->ring);
	/* hwm and repairs are peer-written: never report more than the ring holds. */
	st.high_water = load_relaxed(&qs->hwm);
	if (st.high_water > st.capacity)
		st.high_water = st.capacity;
	st.repairs = load_relaxed(&qs->repairs);
	/* Every record's, and the detached sessions' the daemon folded into retired. */
	shmq__segment_counters(&q->obj.seg, &t);
	st.sent = t.sent;
	st.received = t.received;
	st.full = t.full;
	st.empty = t.empty;
	st.sleeps = t.sleeps;
	st.wakes = t.wakes;

	memcpy(ret, &st, sizeof(st));
	/* A newer caller's fields this build does not know read as zero. */
	memset((unsigned char *)ret + sizeof(st), 0, size - sizeof(st));
	return 0;
}

SHMQ_API int shmq_queue_set_spin(struct shmq_queue *q, uint64_t spin_ns)
{
	if (!q)
		return -EINVAL;
	q->ring.spin_ns = spin_ns;
	return 0;
}

SHMQ_API int shmq_queue_task_done(struct shmq_queue *q)
{
	if (!q)
		return -EINVAL;
	if (!q->can_recv)
		return -EBADF;
	return shmq__ring_task_done(&q->ring);
}

SHMQ_API int shmq_queue_join(struct shmq_queue *q, uint64_t deadline_ns)
{
	if (!q || !shmq__ring_is_joinable(&q->ring))
		return -EINVAL;
	if (!q->can_send && !q->can_recv)
		return -EBADF; /* a view's mapping is read-only: it cannot announce a sleep */
	/* Deadline 0 never blocks, as a peek's: -EAGAIN while tasks are unfinished. */
	if (deadline_ns == 0)
		return shmq__ring_unfinished(&q->ring) == 0 ? 0
		       : shmq__ring_shutdown_state(&q->ring) == SHMQ_QUEUE_SHUTDOWN_IMMEDIATE
			       ? -EPIPE
			       : -EAGAIN;
	return shmq__ring_join(&q->ring, deadline_ns);
}

SHMQ_API int shmq_queue_unfinished(const struct shmq_queue *q)
{
	if (!q || !shmq__ring_is_joinable(&q->ring))
		return -EINVAL;
	return (int)shmq__ring_unfinished(&q->ring);
}
