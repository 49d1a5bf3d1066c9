/* SPDX-License-Identifier: MIT */
/*
 * Pipes: the public shmq_pipe_* calls over shm/pipe.c.  Opening is a
 * control round trip; sending and receiving are the rings alone, as a
 * queue's.  The public struct shmq_pipe * is the shm handle, the first
 * member of struct pipe_handle.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include <shmq/shmq.h>

#include "libclient/object.h"
#include "shm/atomic.h"
#include "shm/pipe.h"

static_assert(SHMQ_PIPE_ATTR_ONEWAY == SHMQ_PIPE_ONEWAY, "public flags are the layout's");

struct pipe_handle {
	struct shmq_pipe p; /* first, attached in place: the public handle points here */
	struct shmq_object obj;
	bool view;			/* SHMQ_VIEW: holds no end */
	_Atomic unsigned int n_waiters; /* live async waiters: close refuses while > 0 */
};

static struct pipe_handle *handle_of(const struct shmq_pipe *p)
{
	return (struct pipe_handle *)((const char *)p - offsetof(struct pipe_handle, p));
}

static int geom_from_attr(const struct shmq_pipe_attr *a, struct shmq_req_open *req)
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
	if (a->perm & ~0777u)
		return shmq__refuse(-EINVAL, "perm 0%o has bits outside 0777", a->perm);
	if ((a->flags & ~SHMQ_PIPE_ATTR_ONEWAY) || a->reserved)
		return shmq__refuse(-EINVAL, "unknown pipe flags 0x%x, or reserved not zero",
				    a->flags & ~SHMQ_PIPE_ATTR_ONEWAY);
	req->geom.pipe.n_slots = a->n_slots;
	req->geom.pipe.slot_size = a->slot_size;
	req->geom.pipe.flags = a->flags;
	if (a->perm)
		req->mode = a->perm;
	return 0;
}

SHMQ_API int shmq_pipe_open(struct shmq_client *c, const char *name, unsigned int end,
			    unsigned int flags, const struct shmq_pipe_attr *attr,
			    struct shmq_pipe **ret)
{
	struct shmq_req_open req = {.kind = SHMQ_KIND_PIPE, .mode = 0600};
	struct pipe_handle *h;
	int r;

	bool view = flags & SHMQ_VIEW;

	if (!ret || end > 1 || (view && end) ||
	    (flags & ~(SHMQ_CREATE | SHMQ_EXCL | SHMQ_ANY_GEOMETRY | SHMQ_VIEW)))
		return -EINVAL;
	if ((flags & SHMQ_CREATE) && attr) {
		r = geom_from_attr(attr, &req);
		if (r < 0)
			return r;
	}
	req.flags |= view ? SHMQ_OPEN_VIEW : SHMQ_OPEN_USE | (end ? SHMQ_OPEN_END1 : 0);
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	r = shmq__object_open_named(c, name, flags, &req, &h->obj);
	/* The segment passed attach: a handle that will not bind means the daemon lied. */
	if (r == 0 && shmq__pipe_attach(&h->p, &h->obj.seg, h->obj.session, end) < 0) {
		shmq__object_close(&h->obj);
		r = -EBADMSG;
	}
	if (r < 0) {
		free(h);
		return r;
	}
	if (view) { /* attach only read the mapping; nothing here may write it */
		h->view = true;
		h->p.can_recv = h->p.can_send = false;
	}
	h->obj.kind = &shmq__kind_pipe;
	h->obj.algo = &h->p;
	h->obj.wait_events =
		(h->p.can_recv ? SHMQ_POLL_RECV : 0) | (h->p.can_send ? SHMQ_POLL_SEND : 0);
	h->obj.n_waiters = &h->n_waiters;
	*ret = &h->p;
	return 0;
}

SHMQ_API int shmq_pipe_close(struct shmq_pipe *p)
{
	struct pipe_handle *h;

	if (!p)
		return 0;
	h = handle_of(p);
	if (shmq__object_busy(&h->obj) < 0)
		return -EBUSY;
	/* Before the CLOSE: the peer learns at once, not when the daemon gets round to it. */
	if (!h->view)
		shmq__pipe_close_end(&h->obj.seg, p->end);
	shmq__object_close(&h->obj);
	free(h);
	return 0;
}

SHMQ_API int shmq_pipe_send(struct shmq_pipe *p, const void *msg, size_t len, uint64_t deadline_ns)
{
	if (!p || (!msg && len))
		return -EINVAL;
	if (!p->can_send)
		return -EBADF;
	if (deadline_ns == 0)
		return shmq__ring_try_send(&p->out, msg, len);
	return shmq__ring_send_wait(&p->out, msg, len, deadline_ns);
}

SHMQ_API int shmq_pipe_sendv(struct shmq_pipe *p, const struct iovec *parts, unsigned int n,
			     uint64_t deadline_ns)
{
	if (!p)
		return -EINVAL;
	if (!p->can_send)
		return -EBADF;
	return shmq__ring_sendv_wait(&p->out, parts, n, deadline_ns);
}

SHMQ_API int shmq_pipe_recv(struct shmq_pipe *p, void *buf, size_t size, uint64_t deadline_ns)
{
	if (!p || (!buf && size))
		return -EINVAL;
	if (!p->can_recv)
		return -EBADF;
	if (deadline_ns == 0)
		return shmq__ring_try_recv(&p->in, buf, size);
	return shmq__ring_recv_wait(&p->in, buf, size, deadline_ns);
}

SHMQ_API int shmq_pipe_poll(struct shmq_pipe *p, uint64_t deadline_ns)
{
	if (!p)
		return -EINVAL;
	if (!p->can_recv)
		return -EBADF;
	if (deadline_ns == 0)
		return shmq__ring_is_ready(&p->in, false) ? 1 : 0;
	return shmq__pipe_poll(p, deadline_ns);
}

SHMQ_API int shmq_pipe_peer_closed(const struct shmq_pipe *p)
{
	if (!p)
		return -EINVAL;
	return shmq__pipe_end_closed(&handle_of(p)->obj.seg, 1 - p->end) ? 1 : 0;
}

SHMQ_API int shmq_pipe_end(const struct shmq_pipe *p)
{
	return p ? (int)p->end : -EINVAL;
}

SHMQ_API int shmq_pipe_max_msg(const struct shmq_pipe *p)
{
	return p ? (int)p->in.slot_size : -EINVAL;
}

SHMQ_API int shmq_pipe_set_spin(struct shmq_pipe *p, uint64_t spin_ns)
{
	if (!p)
		return -EINVAL;
	p->in.spin_ns = spin_ns;
	p->out.spin_ns = spin_ns;
	return 0;
}

SHMQ_API struct shmq_object *shmq_pipe_object(struct shmq_pipe *p)
{
	return p ? &handle_of(p)->obj : NULL;
}
