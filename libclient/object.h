/* SPDX-License-Identifier: MIT */
/*
 * libshmq internals: what a queue and a semaphore handle share -- the
 * daemon's attachment and the validated mapping.  Never installed.
 */
#ifndef SHMQ_LIBCLIENT_OBJECT_H
#define SHMQ_LIBCLIENT_OBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libclient/client.h"
#include "shm/kind.h"
#include "shm/layout.h"
#include "shm/protocol.h"

/* Largest attr->size accepted from a newer caller (openat2 draws the same line). */
#define SHMQ_ATTR_SIZE_MAX 4096

/*
 * Also the public struct shmq_object: any kind's handle as one type, for
 * shmq_waiter_new() and shmq_poller_add().
 */
struct shmq_object {
	struct shmq_client *client; /* NULL: a segment the caller mapped (see handle.h) */
	struct shmq_segment seg;    /* validated; seg.base and seg.size are the mapping */
	uint64_t attach_id;	    /* names the attachment in CLOSE; 0 once the daemon forgot it */
	uint64_t object_id;
	uint32_t session;		 /* our record in seg, UINT32_MAX for a view */
	uint32_t granted;		 /* SHMQ_OPEN_* */
	uint32_t conn_gen;		 /* the client connection that holds the attachment */
	struct shmq_object *prev, *next; /* client->objects, under the client lock */
	/* Asynchronous waits, set by the kind's open: */
	const struct shmq_kind *kind; /* from seg.kind */
	void *algo;		      /* the kind's handle: struct shmq_ring, struct shmq_sem */
	uint32_t wait_events;	      /* SHMQ_POLL_* this handle may wait for (its roles) */
	_Atomic unsigned int
		*n_waiters; /* async waiters, bound conditions: close refuses while > 0 */
};

/**
 * shmq__object_take_attr() - the extensible-struct rule for attributes.
 * @attr:	caller's struct; its first member is its size in bytes
 * @known:	sizeof the struct this build knows
 * @req:	the request it goes into: marked SHMQ_OPEN_SHAPE, for an
 *		attribute given is a geometry asked for (shmq__object_request()
 *		drops the mark where it does not apply)
 *
 * Return: 0; -EINVAL the size is smaller than @known or absurd, or bytes
 *         past @known (from a newer caller) are not zero.
 */
int shmq__object_take_attr(const void *attr, size_t known, struct shmq_req_open *req);

/**
 * shmq__object_request() - the part of an OPEN/CREATE request that queues
 * and semaphores share.
 * @req:	request; gets SHMQ_OPEN_CREATE for SHMQ_CREATE without
 *		SHMQ_EXCL, and @name
 * @name:	a valid name (shmq__name_is_valid())
 * @flags:	the caller's SHMQ_CREATE/SHMQ_EXCL (others are ignored here)
 *
 * Return: the op to send: SHMQ_OP_CREATE for an exclusive create, else
 *         SHMQ_OP_OPEN.
 */
uint16_t shmq__object_request(struct shmq_req_open *req, const char *name, unsigned int flags);

/**
 * shmq__object_open() - ask the daemon for an object and map it.
 * @c:		client
 * @op:		SHMQ_OP_OPEN or SHMQ_OP_CREATE
 * @req:	complete request
 * @ret:	filled on success
 *
 * Maps PROT_READ only for SHMQ_OPEN_VIEW.  Validates the reply, the
 * descriptor's size and the whole segment (shmq__segment_attach()); on any
 * failure after the daemon granted the attachment, it is closed again.
 * Context: takes the client lock.
 * Return: 0; the daemon's -errno; -EPROTO, -EBADMSG the reply or segment
 *         failed validation; -ECONNRESET; -ETIMEDOUT; -errno from mmap.
 */
int shmq__object_open(struct shmq_client *c, uint16_t op, const struct shmq_req_open *req,
		      struct shmq_object *ret);

/**
 * shmq__object_open_named() - the open path every kind's public open shares.
 * @c:		client
 * @name:	the name the caller gave
 * @flags:	the caller's flags: SHMQ_CREATE and SHMQ_EXCL are read here
 * @req:	the kind's request: kind, mode, role flags and, to create,
 *		geometry; the name and SHMQ_OPEN_CREATE are filled in here
 * @obj:	filled on success (see shmq__object_open())
 *
 * The kind then attaches its algorithm handle to @obj->seg, and closes @obj
 * again (-EBADMSG) if that fails.
 * Return: 0; -EINVAL no @c, a bad @name, or SHMQ_EXCL without SHMQ_CREATE;
 *         what shmq__object_open() returns.
 */
int shmq__object_open_named(struct shmq_client *c, const char *name, unsigned int flags,
			    struct shmq_req_open *req, struct shmq_object *obj);

/*
 * Unmap and detach (CLOSE, if the daemon is still there).  Takes the client
 * lock.  An object without a client (a wrapped segment) is left alone.
 */
void shmq__object_close(struct shmq_object *o);

/*
 * May a handle be closed?  Not while an asynchronous waiter of this
 * process still points at its mapping (the kernel may be waiting on it):
 * -EBUSY.  Return: 0 or -EBUSY.
 */
int shmq__object_busy(const struct shmq_object *o);

/*
 * The handle of a synchronisation kind (an event, a lock): the kind's
 * process-local algorithm handle comes first in the public handle's struct
 * (so the public pointer is the algorithm's), and this after it.
 */
struct shmq_sync {
	struct shmq_object obj;
	bool can_use; /* not a view */
	_Atomic unsigned int
		n_waiters; /* async waiters, bound conditions: close refuses while > 0 */
};

/*
 * The public open of a synchronisation kind: check @flags (SHMQ_CREATE,
 * SHMQ_EXCL, SHMQ_VIEW), allocate a zeroed handle of @size bytes -- the
 * kind's algorithm handle at offset 0, its struct shmq_sync at @sync_off
 * -- open @name as @req's kind @kind (SHMQ_VIEW: read-only, else for use),
 * and bind the algorithm handle with the kind's attach().
 * Return: 0 and the handle in *@ret; -EINVAL bad @flags or no @ret;
 * -ENOMEM; as shmq__object_open_named(); -EBADMSG the daemon handed over a
 * segment that will not bind.
 */
int shmq__sync_new(struct shmq_client *c, const char *name, unsigned int flags,
		   struct shmq_req_open *req, const struct shmq_kind *kind, size_t size,
		   size_t sync_off, void **ret);

/* Detach and free a handle from shmq__sync_new().  Return: 0; -EBUSY async waiters live. */
int shmq__sync_free(void *handle, size_t sync_off);

/* May @h use its object?  Return: 0; -EBADF a view. */
static inline int shmq__sync_usable(const struct shmq_sync *h)
{
	return h->can_use ? 0 : -EBADF;
}

#endif /* SHMQ_LIBCLIENT_OBJECT_H */
