/* SPDX-License-Identifier: MIT */
/*
 * Locks: the public shmq_lock_* calls over shm/lock.c, on an object the
 * daemon creates and guards like any other.  The public struct shmq_lock *
 * is the shm handle, the first member of struct lock_handle.
 */
#include <errno.h>
#include <stddef.h>

#include <shmq/shmq.h>

#include "libclient/object.h"
#include "shm/lock.h"

static_assert(SHMQ_LOCK_ATTR_RECURSIVE == SHMQ_LOCK_RECURSIVE, "public flags are the layout's");

struct lock_handle {
	struct shmq_lock lk; /* first: the public handle points here */
	struct shmq_sync s;
};

static struct lock_handle *handle_of(const struct shmq_lock *l)
{
	return (struct lock_handle *)((const char *)l - offsetof(struct lock_handle, lk));
}

static int geom_from_attr(const struct shmq_lock_attr *a, struct shmq_req_open *req)
{
	int r = shmq__object_take_attr(a, sizeof(*a), req);

	if (r < 0)
		return r;
	if (a->flags & ~SHMQ_LOCK_ATTR_RECURSIVE)
		return shmq__refuse(-EINVAL, "unknown lock flags 0x%x",
				    a->flags & ~SHMQ_LOCK_ATTR_RECURSIVE);
	if (a->perm & ~0777u)
		return shmq__refuse(-EINVAL, "perm 0%o has bits outside 0777", a->perm);
	req->geom.lock.flags = a->flags;
	if (a->perm)
		req->mode = a->perm;
	return 0;
}

SHMQ_API int shmq_lock_open(struct shmq_client *c, const char *name, unsigned int flags,
			    const struct shmq_lock_attr *attr, struct shmq_lock **ret)
{
	struct shmq_req_open req = {.kind = SHMQ_KIND_LOCK, .mode = 0600};
	struct lock_handle *h;
	int r;

	if ((flags & SHMQ_CREATE) && attr) {
		r = geom_from_attr(attr, &req);
		if (r < 0)
			return r;
	}
	r = shmq__sync_new(c, name, flags, &req, &shmq__kind_lock, sizeof(*h),
			   offsetof(struct lock_handle, s), (void **)&h);
	if (r == 0)
		*ret = &h->lk;
	return r;
}

SHMQ_API struct shmq_object *shmq_lock_object(struct shmq_lock *l)
{
	return l ? &handle_of(l)->s.obj : NULL;
}

SHMQ_API int shmq_lock_close(struct shmq_lock *l)
{
	if (!l)
		return 0;
	if (shmq__lock_is_mine(l))
		return -EBUSY; /* closing would leave it held until this process dies */
	return shmq__sync_free(handle_of(l), offsetof(struct lock_handle, s));
}

/* The handle, if it may use the lock: -EINVAL none, -EBADF a view. */
static int usable(const struct shmq_lock *l)
{
	return l ? shmq__sync_usable(&handle_of(l)->s) : -EINVAL;
}

SHMQ_API int shmq_lock_acquire(struct shmq_lock *l, uint64_t deadline_ns)
{
	int r = usable(l);

	if (r < 0)
		return r;
	r = shmq__lock_acquire(l, deadline_ns);
	/* deadline 0 is the try form (shmq.h): one try, no spin */
	return r == -ETIMEDOUT && deadline_ns == 0 ? -EAGAIN : r;
}

SHMQ_API int shmq_lock_try_acquire(struct shmq_lock *l)
{
	int r = usable(l);

	if (r < 0)
		return r;
	return shmq_lock_acquire(l, 0);
}

SHMQ_API int shmq_lock_release(struct shmq_lock *l)
{
	int r = usable(l);

	return r < 0 ? r : shmq__lock_release(l);
}

SHMQ_API int shmq_lock_consistent(struct shmq_lock *l)
{
	int r = usable(l);

	return r < 0 ? r : shmq__lock_consistent(l);
}

SHMQ_API int shmq_lock_is_locked(const struct shmq_lock *l)
{
	return l ? shmq__lock_is_locked(l) : -EINVAL; /* a view may look */
}

SHMQ_API int shmq_lock_is_mine(const struct shmq_lock *l)
{
	return l ? shmq__lock_is_mine(l) : -EINVAL;
}

SHMQ_API int shmq_lock_set_spin(struct shmq_lock *l, uint64_t spin_ns)
{
	int r = usable(l);

	if (r < 0)
		return r;
	l->spin_ns = spin_ns;
	return 0;
}
