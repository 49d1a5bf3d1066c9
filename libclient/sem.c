/* SPDX-License-Identifier: MIT */
/*
 * Semaphore handles: the public semaphore API over shm/sem.c.
 *
 * The public opaque type and shm/sem.h's process-local handle share the tag
 * struct shmq_sem, so the library's handle puts that struct first and hands
 * out a pointer to it: the caller's `struct shmq_sem *` is exactly the shm
 * handle, and container_of() finds the rest.  No cast between unrelated
 * types is ever needed.
 *
 * Undo (SHMQ_SEM_ATTR_UNDO): the tokens this attachment holds -- taken and
 * not yet posted back -- are counted in its session record's per-kind state (k.sem.holds), so
 * the daemon can post them back when the process dies.  shm/sem.c journals
 * each operation in the semaphore word (U1..U4), so the count is exact
 * whatever instruction the process dies at.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <shmq/shmq.h>

#include "libclient/handle.h"
#include "shm/atomic.h"
#include "shm/sem.h"

static_assert(SHMQ_SEM_ATTR_BOUNDED == SHMQ_SEM_BOUNDED && SHMQ_SEM_ATTR_UNDO == SHMQ_SEM_UNDO,
	      "public semaphore flags are the layout's");
static_assert(SHMQ_SEM_VALUE_MAX <= INT_MAX, "shmq_sem_value() returns int");

static int geom_from_attr(const struct shmq_sem_attr *a, struct shmq_req_open *req)
{
	const uint32_t known = SHMQ_SEM_ATTR_BOUNDED | SHMQ_SEM_ATTR_UNDO;
	int r = shmq__object_take_attr(a, sizeof(*a), req);

	if (r < 0)
		return r;
	if (a->flags & ~known)
		return shmq__refuse(-EINVAL, "unknown semaphore flags 0x%x", a->flags & ~known);
	if (a->initial > SHMQ_SEM_VALUE_MAX)
		return shmq__refuse(-EINVAL, "initial value %u is above the largest, %u",
				    a->initial, (unsigned int)SHMQ_SEM_VALUE_MAX);
	if (a->perm & ~0777u)
		return shmq__refuse(-EINVAL, "perm 0%o has bits outside 0777", a->perm);
	if ((a->flags & SHMQ_SEM_ATTR_BOUNDED) && (a->max == 0 || a->max > SHMQ_SEM_VALUE_MAX))
		return shmq__refuse(-EINVAL, "bound %u is not in [1, %u]", a->max,
				    (unsigned int)SHMQ_SEM_VALUE_MAX);
	if ((a->flags & SHMQ_SEM_ATTR_BOUNDED) && a->initial > a->max)
		return shmq__refuse(-EINVAL, "initial value %u is above the bound %u", a->initial,
				    a->max);
	/* A bound without SHMQ_SEM_ATTR_BOUNDED would be silently ignored: say so. */
	if (!(a->flags & SHMQ_SEM_ATTR_BOUNDED) && a->max)
		return shmq__refuse(-EINVAL, "a bound (%u) needs SHMQ_SEM_ATTR_BOUNDED", a->max);
	req->geom.sem.initial = a->initial;
	req->geom.sem.max = a->flags & SHMQ_SEM_ATTR_BOUNDED ? a->max : 0;
	req->geom.sem.flags = a->flags;
	if (a->perm)
		req->mode = a->perm;
	return 0;
}

/* What the handle may do, and what its async waits may ask for (a token). */
static void sem_set_roles(struct sem_handle *h, bool can_wait)
{
	h->can_wait = can_wait;
	h->obj.kind = &shmq__kind_sem;
	h->obj.algo = &h->sem;
	h->obj.wait_events = can_wait ? SHMQ_POLL_RECV : 0;
	h->obj.n_waiters = &h->n_waiters;
}

SHMQ_API int shmq_sem_open(struct shmq_client *c, const char *name, unsigned int flags,
			   const struct shmq_sem_attr *attr, struct shmq_sem **ret)
{
	const unsigned int known = SHMQ_CREATE | SHMQ_EXCL | SHMQ_ANY_GEOMETRY | SHMQ_VIEW;
	struct shmq_req_open req = {.kind = SHMQ_KIND_SEM, .mode = 0600};
	struct sem_handle *h;
	int r;

	if (!ret || (flags & ~known))
		return -EINVAL;
	if ((flags & SHMQ_CREATE) && attr) {
		r = geom_from_attr(attr, &req);
		if (r < 0)
			return r;
	}
	req.flags |= flags & SHMQ_VIEW ? SHMQ_OPEN_VIEW : SHMQ_OPEN_SEM;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	r = shmq__object_open_named(c, name, flags, &req, &h->obj);
	/* The segment passed attach: a handle that will not bind means the daemon lied. */
	if (r == 0 && shmq__sem_attach(&h->sem, &h->obj.seg, h->obj.session) < 0) {
		shmq__object_close(&h->obj);
		r = -EBADMSG;
	}
	if (r < 0) {
		free(h);
		return r;
	}
	sem_set_roles(h, !(flags & SHMQ_VIEW));
	*ret = &h->sem;
	return 0;
}

int shmq__sem_wrap(const struct shmq_segment *seg, struct shmq_sem **ret)
{
	struct sem_handle *h;

	if (!seg || !ret)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->obj.seg = *seg;
	h->obj.session = UINT32_MAX;
	if (shmq__sem_attach(&h->sem, &h->obj.seg, UINT32_MAX) < 0) {
		free(h);
		return -EINVAL;
	}
	sem_set_roles(h, true);
	*ret = &h->sem;
	return 0;
}

SHMQ_API struct shmq_object *shmq_sem_object(struct shmq_sem *s)
{
	return s ? &shmq__sem_handle_of(s)->obj : NULL;
}

SHMQ_API int shmq_sem_close(struct shmq_sem *s)
{
	struct sem_handle *h;

	if (!s)
		return 0;
	h = shmq__sem_handle_of(s);
	if (shmq__object_busy(&h->obj) < 0)
		return -EBUSY;
	shmq__object_close(&h->obj);
	free(h);
	return 0;
}

SHMQ_API int shmq_sem_try_wait(struct shmq_sem *s)
{
	if (!s)
		return -EINVAL;
	if (!shmq__sem_handle_of(s)->can_wait)
		return -EBADF;
	return shmq__sem_try_wait(s);
}

SHMQ_API int shmq_sem_wait(struct shmq_sem *s, uint64_t deadline_ns)
{
	if (!s)
		return -EINVAL;
	if (!shmq__sem_handle_of(s)->can_wait)
		return -EBADF;
	if (deadline_ns == 0)
		return shmq__sem_try_wait(s); /* the try form (shmq.h) */
	return shmq__sem_wait(s, deadline_ns);
}

SHMQ_API int shmq_sem_post(struct shmq_sem *s, unsigned int n)
{
	int r;

	if (!s || n == 0)
		return -EINVAL;
	if (!shmq__sem_handle_of(s)->can_wait)
		return -EBADF;
	r = shmq__sem_post(s, n);
	/* Only a peer rewriting the word 65536 times in a row makes a post give up. */
	return r == -EAGAIN ? -EBADMSG : r;
}

SHMQ_API int shmq_sem_value(const struct shmq_sem *s)
{
	uint32_t v;

	if (!s)
		return -EINVAL;
	v = shmq__sem_value(s);
	/* A corrupt word must not turn into a negative "error". */
	return v > SHMQ_SEM_VALUE_MAX ? (int)SHMQ_SEM_VALUE_MAX : (int)v;
}
