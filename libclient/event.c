/* SPDX-License-Identifier: MIT */
/*
 * Events: the public shmq_event_* calls over shm/event.c, on an object the
 * daemon creates and guards like any other.  As with semaphores, the public
 * struct shmq_event * is the shm handle, the first member of struct
 * event_handle: container_of() finds the rest.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include <shmq/shmq.h>

#include "libclient/object.h"
#include "shm/atomic.h"
#include "shm/event.h"

struct event_handle {
	struct shmq_event ev; /* first: the public handle points here */
	struct shmq_object obj;
	bool can_use;			/* not a view */
	_Atomic unsigned int n_waiters; /* live async waiters: close refuses while > 0 */
};

static struct event_handle *handle_of(const struct shmq_event *e)
{
	return (struct event_handle *)((const char *)e - offsetof(struct event_handle, ev));
}

static int geom_from_attr(const struct shmq_event_attr *a, struct shmq_req_open *req)
{
	int r = shmq__object_check_attr(a, sizeof(*a));

	if (r < 0)
		return r;
	if (a->initial > 1 || (a->perm & ~0777u))
		return -EINVAL;
	req->geom.event.initial = a->initial;
	if (a->perm)
		req->mode = a->perm;
	return 0;
}

SHMQ_API int shmq_event_open(struct shmq_client *c, const char *name, unsigned int flags,
			     const struct shmq_event_attr *attr, struct shmq_event **ret)
{
	const unsigned int known = SHMQ_CREATE | SHMQ_EXCL | SHMQ_VIEW;
	struct shmq_req_open req = {.kind = SHMQ_KIND_EVENT, .mode = 0600};
	struct event_handle *h;
	int r;

	if (!ret || (flags & ~known))
		return -EINVAL;
	if ((flags & SHMQ_CREATE) && attr) {
		r = geom_from_attr(attr, &req);
		if (r < 0)
			return r;
	}
	req.flags = flags & SHMQ_VIEW ? SHMQ_OPEN_VIEW : SHMQ_OPEN_USE;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	r = shmq__object_open_named(c, name, flags, &req, &h->obj);
	/* The segment passed attach: a handle that will not bind means the daemon lied. */
	if (r == 0 && shmq__event_attach(&h->ev, &h->obj.seg, h->obj.session) < 0) {
		shmq__object_close(&h->obj);
		r = -EBADMSG;
	}
	if (r < 0) {
		free(h);
		return r;
	}
	h->can_use = !(flags & SHMQ_VIEW);
	h->obj.kind = &shmq__kind_event;
	h->obj.algo = &h->ev;
	h->obj.wait_events = h->can_use ? SHMQ_POLL_RECV : 0;
	h->obj.n_waiters = &h->n_waiters;
	*ret = &h->ev;
	return 0;
}

SHMQ_API struct shmq_object *shmq_event_object(struct shmq_event *e)
{
	return e ? &handle_of(e)->obj : NULL;
}

SHMQ_API int shmq_event_close(struct shmq_event *e)
{
	struct event_handle *h;

	if (!e)
		return 0;
	h = handle_of(e);
	/* A waiter still points at the mapping (and the kernel may be waiting on it). */
	if (load_relaxed(&h->n_waiters)) /* counted by this process's own threads */
		return -EBUSY;
	shmq__object_close(&h->obj);
	free(h);
	return 0;
}

/* The handle, if it may use the event: -EINVAL none, -EBADF a view. */
static int usable(const struct shmq_event *e)
{
	if (!e)
		return -EINVAL;
	return handle_of(e)->can_use ? 0 : -EBADF;
}

SHMQ_API int shmq_event_set(struct shmq_event *e)
{
	int r = usable(e);

	return r < 0 ? r : shmq__event_set(e);
}

SHMQ_API int shmq_event_clear(struct shmq_event *e)
{
	int r = usable(e);

	return r < 0 ? r : shmq__event_clear(e);
}

SHMQ_API int shmq_event_is_set(const struct shmq_event *e)
{
	if (!e)
		return -EINVAL;
	return shmq__event_is_set(e); /* a view may look */
}

SHMQ_API int shmq_event_try_wait(struct shmq_event *e)
{
	int r = usable(e);

	if (r < 0)
		return r;
	return shmq__event_is_set(e) ? 0 : -EAGAIN;
}

SHMQ_API int shmq_event_wait(struct shmq_event *e, uint64_t deadline_ns)
{
	int r = usable(e);

	return r < 0 ? r : shmq__event_wait(e, deadline_ns);
}

SHMQ_API int shmq_event_set_spin(struct shmq_event *e, uint64_t spin_ns)
{
	int r = usable(e);

	if (r < 0)
		return r;
	e->spin_ns = spin_ns;
	return 0;
}
