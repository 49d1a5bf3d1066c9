/* SPDX-License-Identifier: MIT */
/*
 * Opening and closing objects: one control round trip, then the memfd the
 * daemon hands over is checked and mapped.
 *
 * The daemon is trusted for what it decides (permissions, limits), never for
 * the bytes it hands over: the reply must match the request, the descriptor
 * must be as large as the reply says, and the segment must pass
 * shmq__segment_attach(), which validates every offset and size against the
 * mapping.  A view gets a read-only descriptor, so it is mapped PROT_READ; a
 * view handle never writes to the segment.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "libclient/object.h"
#include "shm/atomic.h"

int shmq__object_take_attr(const void *attr, size_t known, struct shmq_req_open *req)
{
	shmq__set_last_error(""); /* an open starts without a reason, even before its call */
	const unsigned char *p = attr;
	uint32_t size;

	memcpy(&size, attr, sizeof(size));
	if (size < known || size > SHMQ_ATTR_SIZE_MAX)
		return -EINVAL;
	for (size_t i = known; i < size; i++)
		if (p[i])
			return -EINVAL;
	req->flags |= SHMQ_OPEN_SHAPE;
	return 0;
}

uint16_t shmq__object_request(struct shmq_req_open *req, const char *name, unsigned int flags)
{
	uint16_t op = SHMQ_OP_OPEN;

	/* An exclusive create has nothing to match; SHMQ_ANY_GEOMETRY takes what is there. */
	if (!(flags & SHMQ_CREATE) || (flags & (SHMQ_EXCL | SHMQ_ANY_GEOMETRY)))
		req->flags &= ~SHMQ_OPEN_SHAPE;
	if (flags & SHMQ_EXCL)
		op = SHMQ_OP_CREATE;
	else if (flags & SHMQ_CREATE)
		req->flags |= SHMQ_OPEN_CREATE;
	memcpy(req->name, name, strlen(name) + 1);
	return op;
}

int shmq__object_open_named(struct shmq_client *c, const char *name, unsigned int flags,
			    struct shmq_req_open *req, struct shmq_object *obj)
{
	uint16_t op;

	if (!c || !name)
		return -EINVAL;
	if (!shmq__name_is_valid(name)) {
		shmq__set_last_error("invalid name: 1-63 bytes of [A-Za-z0-9._-]");
		return -EINVAL;
	}
	if ((flags & (SHMQ_EXCL | SHMQ_ANY_GEOMETRY)) && !(flags & SHMQ_CREATE)) {
		shmq__set_last_error("SHMQ_EXCL and SHMQ_ANY_GEOMETRY need SHMQ_CREATE");
		return -EINVAL;
	}
	op = shmq__object_request(req, name, flags);
	return shmq__object_open(c, op, req, obj);
}

static int map(const struct shmq_req_open *req, const struct shmq_rep_open *rep, int fd,
	       struct shmq_object *o)
{
	const uint32_t roles = SHMQ_OPEN_GRANTS;
	bool view = req->flags & SHMQ_OPEN_VIEW;
	struct shmq_segment seg;
	struct stat st;
	void *base;
	int r;

	/* Granted exactly the roles we asked for, of the kind we asked for. */
	if ((req->kind != SHMQ_KIND_ANY && rep->kind != req->kind) ||
	    (rep->flags & roles) != (req->flags & roles))
		return -EPROTO;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size != rep->size ||
	    rep->size < sizeof(struct shmq_segment_hdr) || (uint64_t)(size_t)rep->size != rep->size)
		return -EBADMSG;

	base = mmap(NULL, (size_t)rep->size, view ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	r = shmq__segment_attach(base, rep->size, &seg);
	/* The daemon formats before it replies: an unpublished segment is corrupt. */
	if (r == -EAGAIN)
		r = -EBADMSG;
	if (r == 0 && seg.kind != rep->kind)
		r = -EBADMSG;
	if (r == 0 && !view && rep->session_index >= seg.n_sessions)
		r = -EBADMSG;
	if (r < 0) {
		munmap(base, (size_t)rep->size);
		return r;
	}

	o->seg = seg;
	o->attach_id = rep->attach_id;
	o->object_id = rep->object_id;
	o->session = view ? UINT32_MAX : rep->session_index;
	o->granted = rep->flags;
	return 0;
}

static void detach(struct shmq_client *c, uint64_t attach_id)
{
	struct shmq_req_close rq = {.attach_id = attach_id};

	/*
	 * Nothing to report to anyone: if the daemon is gone it has dropped the
	 * attachment with the session; if it is slow, its late reply is dropped.
	 */
	(void)shmq__client_call(c, SHMQ_OP_CLOSE, &rq, sizeof(rq), NULL, 0, NULL);
}

int shmq__object_open(struct shmq_client *c, uint16_t op, const struct shmq_req_open *req,
		      struct shmq_object *ret)
{
	struct shmq_object o = {.client = c};
	struct shmq_req_open rq = *req;
	struct shmq_rep_open rep;
	int fd = -1;
	int r;

	shmq__client_lock(c);
	/* An older daemon has no shape rule, and would refuse the bit it does not know. */
	if (c->daemon_layout_minor < SHMQ_SHAPE_LAYOUT_MINOR)
		rq.flags &= ~SHMQ_OPEN_SHAPE;
	r = shmq__client_call(c, op, &rq, sizeof(rq), &rep, sizeof(rep), &fd);
	if (r == 0) {
		r = map(req, &rep, fd, &o);
		/* The mapping keeps the memory; the descriptor is not needed any more. */
		close(fd);
		if (r < 0) {
			detach(c, rep.attach_id);
		} else {
			/* Linked where it lives, so a reconnect can name it (REATTACH). */
			o.conn_gen = c->conn_gen;
			*ret = o;
			shmq__client_link(c, ret);
			c->n_handles++;
		}
	}
	shmq__client_unlock(c);
	return r;
}

void shmq__object_close(struct shmq_object *o)
{
	struct shmq_client *c = o->client;

	if (!c)
		return; /* shmq__queue_wrap()/shmq__sem_wrap(): the caller owns the mapping */
	/* Unmap first: the daemon may recycle our session record once it has the CLOSE. */
	munmap(o->seg.base, (size_t)o->seg.size);
	shmq__client_lock(c);
	shmq__client_unlink(c, o);
	/*
	 * While the daemon is away, never wait for it here: the attachment is
	 * closed after the next reconnect (a restarted daemon still holds it
	 * for us), or ends with this process.
	 */
	if (o->attach_id && c->dead)
		shmq__client_defer_close(c, o->attach_id);
	else if (o->attach_id)
		detach(c, o->attach_id);
	c->n_handles--;
	shmq__client_unlock(c);
}

int shmq__object_busy(const struct shmq_object *o)
{
	/* counted by this process's own threads: relaxed */
	return o->n_waiters && load_relaxed(o->n_waiters) ? -EBUSY : 0;
}

int shmq__sync_new(struct shmq_client *c, const char *name, unsigned int flags,
		   struct shmq_req_open *req, const struct shmq_kind *kind, size_t size,
		   size_t sync_off, void **ret)
{
	const unsigned int known = SHMQ_CREATE | SHMQ_EXCL | SHMQ_ANY_GEOMETRY | SHMQ_VIEW;
	struct shmq_sync *h;
	void *algo;
	int r;

	if (!ret || (flags & ~known))
		return -EINVAL;
	algo = calloc(1, size);
	if (!algo)
		return -ENOMEM;
	h = (struct shmq_sync *)((char *)algo + sync_off);
	req->flags |= flags & SHMQ_VIEW ? SHMQ_OPEN_VIEW : SHMQ_OPEN_USE;
	r = shmq__object_open_named(c, name, flags, req, &h->obj);
	if (r < 0) {
		free(algo);
		return r;
	}
	/* The segment passed attach: a handle that will not bind means the daemon lied. */
	if (kind->attach(algo, &h->obj.seg, h->obj.session) < 0) {
		shmq__object_close(&h->obj);
		free(algo);
		return -EBADMSG;
	}
	h->can_use = !(flags & SHMQ_VIEW);
	h->obj.kind = kind;
	h->obj.algo = algo;
	h->obj.wait_events = h->can_use ? kind->events : 0;
	h->obj.n_waiters = &h->n_waiters;
	*ret = algo;
	return 0;
}

int shmq__sync_free(void *handle, size_t sync_off)
{
	struct shmq_sync *h = (struct shmq_sync *)((char *)handle + sync_off);
	int r = shmq__object_busy(&h->obj);

	if (r < 0)
		return r;
	shmq__object_close(&h->obj);
	free(handle);
	return 0;
}
