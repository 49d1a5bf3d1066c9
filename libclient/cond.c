/* SPDX-License-Identifier: MIT */
/*
 * Conditions: the public shmq_cond_* calls over shm/cond.c.  A condition
 * handle is bound to a handle of its lock, which it pins (the lock's close
 * is -EBUSY while bound: the condition's waits use it).  The public struct
 * shmq_cond * is the shm handle, the first member of struct cond_handle.
 */
#include <errno.h>
#include <stddef.h>

#include <shmq/shmq.h>

#include "libclient/object.h"
#include "shm/atomic.h"
#include "shm/cond.h"

struct cond_handle {
	struct shmq_cond cv; /* first: the public handle points here */
	struct shmq_sync s;
	struct shmq_object *lock_obj; /* pinned: its n_waiters counts us; NULL for a view */
};

static struct cond_handle *handle_of(const struct shmq_cond *cv)
{
	return (struct cond_handle *)((const char *)cv - offsetof(struct cond_handle, cv));
}

static int check_attr(const struct shmq_cond_attr *a, struct shmq_req_open *req)
{
	int r = shmq__object_take_attr(a, sizeof(*a), req);

	if (r < 0)
		return r;
	if (a->perm & ~0777u)
		return -EINVAL;
	if (a->perm)
		req->mode = a->perm;
	return 0;
}

SHMQ_API int shmq_cond_open(struct shmq_client *c, const char *name, unsigned int flags,
			    struct shmq_lock *lock, const struct shmq_cond_attr *attr,
			    struct shmq_cond **ret)
{
	struct shmq_req_open req = {.kind = SHMQ_KIND_COND, .mode = 0600};
	struct shmq_object *lo = shmq_lock_object(lock);
	struct cond_handle *h;
	int r;

	/* A user's waits release and take the lock: a handle of it that may (not a view). */
	if (!(flags & SHMQ_VIEW) && (!lo || lo->session == UINT32_MAX))
		return shmq__refuse(-EINVAL, "a condition's user needs a handle of its lock that "
					     "may take it (not a view)");
	if (flags & SHMQ_CREATE) {
		if (!lo)
			return -EINVAL;
		req.geom.cond.lock_id = lo->object_id;
		if (attr) {
			r = check_attr(attr, &req);
			if (r < 0)
				return r;
		}
	}
	r = shmq__sync_new(c, name, flags, &req, &shmq__kind_cond, sizeof(*h),
			   offsetof(struct cond_handle, s), (void **)&h);
	if (r < 0)
		return r;
	if (lo && h->cv.lock_id != lo->object_id) {
		(void)shmq__sync_free(h, offsetof(struct cond_handle, s));
		return -EXDEV;
	}
	if (!(flags & SHMQ_VIEW)) {
		h->cv.lk = lock;
		h->lock_obj = lo;
		fetch_add_relaxed(lo->n_waiters, 1); /* the lock's close waits for ours */
	}
	*ret = &h->cv;
	return 0;
}

SHMQ_API struct shmq_object *shmq_cond_object(struct shmq_cond *cv)
{
	return cv ? &handle_of(cv)->s.obj : NULL;
}

SHMQ_API int shmq_cond_close(struct shmq_cond *cv)
{
	struct shmq_object *lock_obj;
	struct cond_handle *h;
	int r;

	if (!cv)
		return 0;
	h = handle_of(cv);
	if (load_relaxed(&h->s.n_waiters))
		return -EBUSY;		  /* an asynchronous waiter still points at it */
	(void)shmq__cond_wait_cancel(cv); /* a joined asynchronous wait leaves with the handle */
	lock_obj = h->lock_obj;
	r = shmq__sync_free(h, offsetof(struct cond_handle, s));
	if (r == 0 && lock_obj)
		fetch_sub_relaxed(lock_obj->n_waiters, 1);
	return r;
}

/* The handle, if it may use the condition: -EINVAL none, -EBADF a view. */
static int usable(const struct shmq_cond *cv)
{
	return cv ? shmq__sync_usable(&handle_of(cv)->s) : -EINVAL;
}

SHMQ_API int shmq_cond_wait(struct shmq_cond *cv, uint64_t deadline_ns)
{
	int r = usable(cv);

	return r < 0 ? r : shmq__cond_wait(cv, deadline_ns);
}

SHMQ_API int shmq_cond_wait_for(struct shmq_cond *cv, shmq_cond_pred_fn *pred, void *arg,
				uint64_t deadline_ns)
{
	int r = usable(cv);

	if (r < 0)
		return r;
	if (!pred)
		return -EINVAL;
	if (!shmq__lock_is_mine(cv->lk))
		return -EPERM; /* before pred(): it may only run under the lock */
	while (!pred(arg)) {
		r = shmq__cond_wait(cv, deadline_ns);
		if (r == -ETIMEDOUT)
			return pred(arg) ? 0 : -ETIMEDOUT; /* the lock is held: one last look */
		if (r < 0)
			return r;
	}
	return 0;
}

SHMQ_API int shmq_cond_notify(struct shmq_cond *cv, unsigned int n)
{
	int r = usable(cv);

	return r < 0 ? r : shmq__cond_notify(cv, n);
}

SHMQ_API int shmq_cond_notify_all(struct shmq_cond *cv)
{
	int r = usable(cv);

	return r < 0 ? r : shmq__cond_notify(cv, UINT32_MAX);
}

SHMQ_API int shmq_cond_wait_begin(struct shmq_cond *cv)
{
	int r = usable(cv);

	return r < 0 ? r : shmq__cond_wait_begin(cv);
}

SHMQ_API int shmq_cond_wait_end(struct shmq_cond *cv)
{
	int r = usable(cv);

	return r < 0 ? r : shmq__cond_wait_end(cv);
}

SHMQ_API int shmq_cond_wait_cancel(struct shmq_cond *cv)
{
	int r = usable(cv);

	return r < 0 ? r : shmq__cond_wait_cancel(cv);
}
