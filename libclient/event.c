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

#include <shmq/shmq.h>

#include "libclient/object.h"
#include "shm/atomic.h"
#include "shm/event.h"

struct event_handle {
	struct shmq_event ev; /* first: the public handle points here */
	struct shmq_sync s;
};

static struct event_handle *handle_of(const struct shmq_event *e)
{
	return (struct event_handle *)((const char *)e - offsetof(struct event_handle, ev));
}

static int geom_from_attr(const struct shmq_event_attr *a, struct shmq_req_open *req)
{
	int r = shmq__object_take_attr(a, sizeof(*a), req);

	if (r < 0)
		return r;
	if (a->initial > 1)
		return shmq__refuse(-EINVAL, "initial %u is not 0 (clear) or 1 (set)", a->initial);
	if (a->perm & ~0777u)
		return shmq__refuse(-EINVAL, "perm 0%o has bits outside 0777", a->perm);
	req->geom.event.initial = a->initial;
	if (a->perm)
		req->mode = a->perm;
	return 0;
}

SHMQ_API int shmq_event_open(struct shmq_client *c, const char *name, unsigned int flags,
			     const struct shmq_event_attr *attr, struct shmq_event **ret)
{
	struct shmq_req_open req = {.kind = SHMQ_KIND_EVENT, .mode = 0600};
	struct event_handle *h;
	int r;

	if ((flags & SHMQ_CREATE) && attr) {
		r = geom_from_attr(attr, &req);
		if (r < 0)
			return r;
	}
	r = shmq__sync_new(c, name, flags, &req, &shmq__kind_event, sizeof(*h),
			   offsetof(struct event_handle, s), (void **)&h);
	if (r == 0)
		*ret = &h->ev;
	return r;
}

SHMQ_API struct shmq_object *shmq_event_object(struct shmq_event *e)
{
	return e ? &handle_of(e)->s.obj : NULL;
}

SHMQ_API int shmq_event_close(struct shmq_event *e)
{
	return e ? shmq__sync_free(handle_of(e), offsetof(struct event_handle, s)) : 0;
}

/* The handle, if it may use the event: -EINVAL none, -EBADF a view. */
static int usable(const struct shmq_event *e)
{
	return e ? shmq__sync_usable(&handle_of(e)->s) : -EINVAL;
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

	if (r < 0)
		return r;
	if (deadline_ns == 0) /* the try form (shmq.h) */
		return shmq__event_is_set(e) ? 0 : -EAGAIN;
	return shmq__event_wait(e, deadline_ns);
}

SHMQ_API int shmq_event_set_spin(struct shmq_event *e, uint64_t spin_ns)
{
	int r = usable(e);

	if (r < 0)
		return r;
	e->spin_ns = spin_ns;
	return 0;
}
