/* SPDX-License-Identifier: MIT */
/*
 * libshmq internals: the client connection and the control-call primitive
 * that every object open and close goes through.  Never installed.
 */
#ifndef SHMQ_LIBCLIENT_CLIENT_H
#define SHMQ_LIBCLIENT_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/protocol.h"

/* Every control call gets this long for its whole round trip. */
#define SHMQ_CONTROL_TIMEOUT_NS (UINT64_C(5) * 1000000000)

/* Attachments whose OPEN reply arrived after we gave up on it: see client.c. */
#define SHMQ_CLIENT_ORPHANS_MAX 16

/*
 * After a call found no daemon for its whole time, calls try one connect
 * without waiting for this long (client.c).
 */
#define SHMQ_RECONNECT_BACKOFF_NS (UINT64_C(1) * 1000000000)

struct shmq_object;

struct shmq_client {
	pthread_mutex_t lock;	      /* serializes control calls and the fields below */
	int fd;			      /* SOCK_SEQPACKET, non-blocking, CLOEXEC */
	int dead;		      /* 0, or -ECONNRESET while the daemon is gone */
	bool reconnecting;	      /* inside reconnect(): its own calls must not recurse */
	bool reattach_pending;	      /* connected, but some handles are not taken back yet */
	uint32_t conn_gen;	      /* connections made so far */
	uint32_t seq;		      /* of the last request sent */
	void *rx;		      /* SHMQ_MSG_MAX bytes: the last reply (client.c) */
	uint64_t session_id;	      /* the daemon's name for this connection */
	uint16_t daemon_layout_minor; /* its HELLO's: what the daemon knows of the protocol */
	uint64_t retry_after_ns;
	char path[108];		     /* the socket, to reconnect after a daemon restart */
	struct shmq_object *objects; /* open handles, for REATTACH (object.c) */
	unsigned int n_handles;
	unsigned int n_orphans;
	uint64_t orphans[SHMQ_CLIENT_ORPHANS_MAX];
};

/* Open handles: linked while they hold an attachment.  Caller holds the lock. */
void shmq__client_link(struct shmq_client *c, struct shmq_object *o);
void shmq__client_unlink(struct shmq_client *c, struct shmq_object *o);

/* An attachment to close at the next chance (after a reconnect). Caller holds the lock. */
void shmq__client_defer_close(struct shmq_client *c, uint64_t attach_id);

/* Set this thread's shmq_last_error() for a failure found in the library itself. */
void shmq__set_last_error(const char *text);
/* A library-side refusal with its reason: sets it (printf-style) and returns @r. */
int shmq__refuse(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void shmq__client_lock(struct shmq_client *c);
void shmq__client_unlock(struct shmq_client *c);

/**
 * shmq__client_call() - one request, one reply; the caller holds the lock.
 * @c:		client
 * @op:		SHMQ_OP_*
 * @body:	request body of shmq__proto_req_size(@op) bytes
 * @body_size:	its size
 * @ret_body:	where the reply body goes (at least @ret_size bytes of it
 *		must be there on success; a newer daemon's extra bytes are ignored)
 * @ret_size:	bytes expected at @ret_body, 0 for none
 * @ret_fd:	NULL, or where the one descriptor a successful reply must
 *		carry goes (CLOEXEC); any other descriptor is closed
 *
 * A daemon that hung up is reconnected to first (a restarted daemon gets
 * every open handle back with REATTACH); a request that never reached the
 * daemon is sent again, and so is one whose reply was lost when the
 * daemon may have acted on it, if doing it twice is harmless (client.c).
 *
 * Return: the reply's status when it is 0 or a -errno from the daemon;
 *         -ECONNRESET the daemon hung up and no daemon answers again within
 *         the call's time (then, for SHMQ_RECONNECT_BACKOFF_NS, calls try
 *         one connect without waiting), or it hung up on a request that is
 *         not safe to repeat; -ETIMEDOUT no reply within
 *         SHMQ_CONTROL_TIMEOUT_NS; -EPROTO a malformed reply.  Outputs
 *         untouched on failure.
 */
int shmq__client_call(struct shmq_client *c, uint16_t op, const void *body, size_t body_size,
		      void *ret_body, size_t ret_size, int *ret_fd);

/**
 * shmq__client_call_var() - a call whose reply body has a variable length.
 * @c:		client; the caller holds the lock
 * @op:		SHMQ_OP_*
 * @body:	request body
 * @body_size:	its size
 * @min_size:	the reply body must have at least this many bytes
 * @ret_body:	the reply body, inside @c: valid until the next call on @c,
 *		so read it before dropping the lock
 * @ret_len:	its length
 *
 * Return: as shmq__client_call().
 */
int shmq__client_call_var(struct shmq_client *c, uint16_t op, const void *body, size_t body_size,
			  size_t min_size, const void **ret_body, size_t *ret_len);

#endif /* SHMQ_LIBCLIENT_CLIENT_H */
