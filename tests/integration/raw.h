/* SPDX-License-Identifier: MIT */
/*
 * A raw control-protocol client for the integration tests: speaks
 * shm/protocol.h over SOCK_SEQPACKET without libshmq, so tests can send
 * what the library never would (malformed requests, passed fds) and see
 * what it hides (the reply header, the granted fd).
 *
 * Nothing here asserts: the functions return codes, so forked children
 * running as another uid can use them too.
 */
#ifndef SHMQ_TESTS_INTEGRATION_RAW_H
#define SHMQ_TESTS_INTEGRATION_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/protocol.h"

#define T_RAW_TIMEOUT_MS 5000
/* t_raw_call(): the reply was not a well-formed reply to the request (never an errno). */
#define T_RAW_BAD_REPLY 1000

struct t_reply {
	struct shmq_msg_hdr hdr;
	unsigned char body[SHMQ_MSG_MAX];
	size_t len; /* bytes received, header included */
	int fd;	    /* passed with SCM_RIGHTS, or -1 */
	int n_fds;  /* how many were passed (extra ones are closed) */
};

/* Connect a SOCK_SEQPACKET socket to @path.  Returns the fd or -errno. */
int t_raw_connect(const char *path);

/* Send one datagram, with @pass_fd as SCM_RIGHTS unless it is < 0.  0 or -errno. */
int t_raw_send(int fd, const void *buf, size_t len, int pass_fd);

/*
 * Receive one datagram within @timeout_ms into @rep (rep->fd: a passed fd).
 * Returns its length (0: the daemon closed the connection), -ETIMEDOUT or -errno.
 */
int t_raw_recv(int fd, struct t_reply *rep, int timeout_ms);

/* Header + body into @buf (SHMQ_MSG_MAX bytes); returns the datagram size. */
size_t t_raw_build(void *buf, uint16_t op, uint32_t seq, const void *body, size_t body_len);

/*
 * Send a well-formed request and wait for its reply.  Returns the reply's
 * status (0 or -errno), -ECONNRESET when the daemon closed the connection,
 * -ETIMEDOUT, or T_RAW_BAD_REPLY when the reply's magic, version, op or seq
 * do not answer the request.
 */
int t_raw_call(int fd, uint16_t op, const void *body, size_t body_len, struct t_reply *rep);

/* HELLO with this build's versions.  Returns as t_raw_call(). */
int t_raw_hello(int fd);

/* Connect and HELLO.  Returns the fd or a negative errno. */
int t_raw_session(const char *path);

/* A STATUS round trip succeeds: the connection is usable. */
bool t_raw_alive(int fd);

/* An OPEN/CREATE body for a queue (numa_node -1; @perm: create only). */
void t_raw_queue_req(struct shmq_req_open *req, const char *name, uint32_t flags, uint32_t n_slots,
		     uint32_t slot_size, uint32_t qmode, uint32_t perm);

/* A STAT of @name: 0 and @ret filled, or -errno. */
int t_raw_stat(int fd, const char *name, struct shmq_obj_info *ret);

#endif /* SHMQ_TESTS_INTEGRATION_RAW_H */
