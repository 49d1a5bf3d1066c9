/* SPDX-License-Identifier: MIT */
/*
 * Barriers: the public shmq_barrier_* calls over shm/barrier.c, on an
 * object the daemon creates and guards like any other.  The public struct
 * shmq_barrier * is the shm handle, the first member of struct
 * barrier_handle.
 */
#include <errno.h>
#include <stddef.h>

#include <shmq/shmq.h>

#include "libclient/object.h"
#include "shm/barrier.h"

static_assert(SHMQ_BARRIER_PARTIES_LIMIT == SHMQ_BARRIER_PARTIES_MAX,
	      "the public limit is the layout's");

struct barrier_handle {
	struct shmq_barrier b; /* first: the public handle points here */
	struct shmq_sync s;
};

static struct barrier_handle *handle_of(const struct shmq_barrier *b)
{
	return (struct barrier_handle *)((const char *)b - offsetof(struct barrier_handle, b));
}

static int geom_from_attr(const struct shmq_barrier_attr *a, struct shmq_req_open *req)
{
	int r;

	if (!a) /* the parties have no default */
		return shmq__refuse(-EINVAL, "a barrier's create needs its parties (an attr)");
	r = shmq__object_take_attr(a, sizeof(*a), req);
	if (r < 0)
		return r;
	if (a->parties < 1 || a->parties > SHMQ_BARRIER_PARTIES_MAX)
		return shmq__refuse(-EINVAL, "parties %u is not in [1, %u]", a->parties,
				    (unsigned int)SHMQ_BARRIER_PARTIES_MAX);
	if (a->perm & ~0777u)
		return shmq__refuse(-EINVAL, "perm 0%o has bits outside 0777", a->perm);
	req->geom.barrier.parties = a->parties;
	if (a->perm)
		req->mode = a->perm;
	return 0;
}

SHMQ_API int shmq_barrier_open(struct shmq_client *c, const char *name, unsigned int flags,
			       const struct shmq_barrier_attr *attr, struct shmq_barrier **ret)
{
	struct shmq_req_open req = {.kind = SHMQ_KIND_BARRIER, .mode = 0600};
	struct barrier_handle *h;
	int r;

	if (flags & SHMQ_CREATE) {
		r = geom_from_attr(attr, &req);
		if (r < 0)
			return r;
	}
	r = shmq__sync_new(c, name, flags, &req, &shmq__kind_barrier, sizeof(*h),
			   offsetof(struct barrier_handle, s), (void **)&h);
	if (r == 0)
		*ret = &h->b;
	return r;
}

SHMQ_API struct shmq_object *shmq_barrier_object(struct shmq_barrier *b)
{
	return b ? &handle_of(b)->s.obj : NULL;
}

SHMQ_API int shmq_barrier_close(struct shmq_barrier *b)
{
	return b ? shmq__sync_free(handle_of(b), offsetof(struct barrier_handle, s)) : 0;
}

/* The handle, if it may use the barrier: -EINVAL none, -EBADF a view. */
static int usable(const struct shmq_barrier *b)
{
	return b ? shmq__sync_usable(&handle_of(b)->s) : -EINVAL;
}

SHMQ_API int shmq_barrier_wait(struct shmq_barrier *b, uint64_t deadline_ns)
{
	int r = usable(b);

	return r < 0 ? r : shmq__barrier_wait(b, deadline_ns);
}

SHMQ_API int shmq_barrier_arrive(struct shmq_barrier *b)
{
	int r = usable(b);

	return r < 0 ? r : shmq__barrier_arrive(b);
}

SHMQ_API int shmq_barrier_arrival(struct shmq_barrier *b)
{
	int r = usable(b);

	return r < 0 ? r : shmq__barrier_arrival(b);
}

SHMQ_API int shmq_barrier_await(struct shmq_barrier *b, uint64_t deadline_ns)
{
	int r = usable(b);

	return r < 0 ? r : shmq__barrier_await(b, deadline_ns);
}

SHMQ_API int shmq_barrier_cancel(struct shmq_barrier *b)
{
	int r = usable(b);

	return r < 0 ? r : shmq__barrier_cancel(b);
}

SHMQ_API int shmq_barrier_abort(struct shmq_barrier *b)
{
	int r = usable(b);

	return r < 0 ? r : shmq__barrier_abort(b);
}

SHMQ_API int shmq_barrier_reset(struct shmq_barrier *b)
{
	int r = usable(b);

	return r < 0 ? r : shmq__barrier_reset(b);
}

SHMQ_API int shmq_barrier_parties(const struct shmq_barrier *b)
{
	return b ? (int)b->parties : -EINVAL; /* a view may look */
}

SHMQ_API int shmq_barrier_n_waiting(const struct shmq_barrier *b)
{
	return b ? (int)shmq__barrier_n_waiting(b) : -EINVAL;
}

SHMQ_API int shmq_barrier_is_broken(const struct shmq_barrier *b)
{
	return b ? shmq__barrier_is_broken(b) : -EINVAL;
}

SHMQ_API int shmq_barrier_set_spin(struct shmq_barrier *b, uint64_t spin_ns)
{
	int r = usable(b);

	if (r < 0)
		return r;
	b->spin_ns = spin_ns;
	return 0;
}
