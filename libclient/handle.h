/* SPDX-License-Identifier: MIT */
/*
 * libshmq internals: the queue and semaphore handles behind the public
 * opaque types, shared by their own modules and by the asynchronous
 * waiters and the poller, which wait on the same shared words.  Never
 * installed.
 */
#ifndef SHMQ_LIBCLIENT_HANDLE_H
#define SHMQ_LIBCLIENT_HANDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libclient/object.h"
#include "shm/ring.h"
#include "shm/sem.h"

struct shmq_queue {
	struct shmq_ring ring; /* attached in place: it points into itself */
	struct shmq_object obj;
	bool can_send;
	bool can_recv;
	_Atomic unsigned int n_waiters; /* live async waiters: close refuses while > 0 */
};

struct sem_handle {
	struct shmq_sem sem; /* first, attached in place: the public handle points here */
	struct shmq_object obj;
	bool can_wait;			/* not a view */
	_Atomic unsigned int n_waiters; /* live async waiters: close refuses while > 0 */
};

/*
 * The public struct shmq_sem * is the shm handle, the first member of
 * struct sem_handle (see libclient/sem.c): container_of() finds the rest.
 */
static inline struct sem_handle *shmq__sem_handle_of(const struct shmq_sem *s)
{
	return (struct sem_handle *)((const char *)s - offsetof(struct sem_handle, sem));
}

/*
 * Handles on a segment the caller formatted and mapped itself, with no
 * daemon and no session record: the stress tests and the benchmark drive
 * the public queue, semaphore and poller API through these.  @flags:
 * SHMQ_SEND and/or SHMQ_RECV.  shmq_queue_close()/shmq_sem_close() free
 * the handle and leave the mapping to the caller.
 * Return: 0; -EINVAL @seg is not of the kind, or bad @flags; -ENOMEM.
 */
int shmq__queue_wrap(const struct shmq_segment *seg, unsigned int flags, struct shmq_queue **ret);
int shmq__sem_wrap(const struct shmq_segment *seg, struct shmq_sem **ret);

#endif /* SHMQ_LIBCLIENT_HANDLE_H */
