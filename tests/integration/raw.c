/* SPDX-License-Identifier: MIT */
/* A raw control-protocol client for the integration tests; see raw.h. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/integration/raw.h"

int t_raw_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int t_raw_send(int fd, const void *buf, size_t len, int pass_fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (pass_fd >= 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		cm.h.cmsg_level = SOL_SOCKET;
		cm.h.cmsg_type = SCM_RIGHTS;
		cm.h.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&cm.h), &pass_fd, sizeof(int));
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

int t_raw_recv(int fd, struct t_reply *rep, int timeout_ms)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct iovec iov = {.iov_base = rep, .iov_len = sizeof(rep->hdr) + sizeof(rep->body)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	ssize_t n;
	int r;

	rep->fd = -1;
	rep->n_fds = 0;
	rep->len = 0;
	do
		r = poll(&pfd, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? 0 : -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int pfd_i;

			memcpy(&pfd_i, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (rep->n_fds++ == 0)
				rep->fd = pfd_i;
			else
				close(pfd_i);
		}
	}
	rep->len = (size_t)n;
	return (int)n;
}

size_t t_raw_build(void *buf, uint16_t op, uint32_t seq, const void *body, size_t body_len)
{
	struct shmq_msg_hdr h = {
		.magic = SHMQ_PROTO_MAGIC,
		.version = SHMQ_PROTO_VERSION,
		.op = op,
		.size = (uint32_t)(sizeof(h) + body_len),
		.seq = seq,
	};

	memcpy(buf, &h, sizeof(h));
	if (body_len)
		memcpy((char *)buf + sizeof(h), body, body_len);
	return sizeof(h) + body_len;
}

int t_raw_call(int fd, uint16_t op, const void *body, size_t body_len, struct t_reply *rep)
{
	static uint32_t next_seq = 1;
	static unsigned char buf[SHMQ_MSG_MAX];
	struct t_reply *own = NULL;
	uint32_t seq = next_seq++;
	int r;

	if (!rep) {
		own = malloc(sizeof(*own));
		if (!own)
			return -ENOMEM;
		rep = own;
	}
	r = t_raw_send(fd, buf, t_raw_build(buf, op, seq, body, body_len), -1);
	if (r < 0)
		goto out;
	r = t_raw_recv(fd, rep, T_RAW_TIMEOUT_MS);
	if (r == 0)
		r = -ECONNRESET;
	if (r < 0)
		goto out;
	if (rep->len < sizeof(rep->hdr) || rep->hdr.magic != SHMQ_PROTO_MAGIC ||
	    rep->hdr.version != SHMQ_PROTO_VERSION || rep->hdr.op != (op | SHMQ_OP_REPLY) ||
	    rep->hdr.seq != seq || rep->hdr.size != rep->len || rep->hdr.status > 0)
		r = T_RAW_BAD_REPLY;
	else
		r = rep->hdr.status;
out:
	if (own) {
		if (own->fd >= 0)
			close(own->fd);
		free(own);
	}
	return r;
}

int t_raw_hello(int fd)
{
	struct shmq_req_hello h = {
		.proto_version = SHMQ_PROTO_VERSION,
		.layout_major = SHMQ_LAYOUT_MAJOR,
		.layout_minor = SHMQ_LAYOUT_MINOR,
		.client_name = "integration-raw",
	};

	return t_raw_call(fd, SHMQ_OP_HELLO, &h, sizeof(h), NULL);
}

int t_raw_session(const char *path)
{
	int fd = t_raw_connect(path), r;

	if (fd < 0)
		return fd;
	r = t_raw_hello(fd);
	if (r != 0) {
		close(fd);
		return r < 0 ? r : -EPROTO;
	}
	return fd;
}

bool t_raw_alive(int fd)
{
	return t_raw_call(fd, SHMQ_OP_STATUS, NULL, 0, NULL) == 0;
}

void t_raw_queue_req(struct shmq_req_open *req, const char *name, uint32_t flags, uint32_t n_slots,
		     uint32_t slot_size, uint32_t qmode, uint32_t perm)
{
	memset(req, 0, sizeof(*req));
	req->flags = flags;
	req->kind = SHMQ_KIND_QUEUE;
	req->mode = perm;
	strncpy(req->name, name, sizeof(req->name) - 1);
	req->geom.queue.n_slots = n_slots;
	req->geom.queue.slot_size = slot_size;
	req->geom.queue.mode = qmode;
	req->geom.queue.numa_node = -1;
}

int t_raw_stat(int fd, const char *name, struct shmq_obj_info *ret)
{
	struct shmq_req_name req;
	struct t_reply *rep = malloc(sizeof(*rep));
	int r;

	if (!rep)
		return -ENOMEM;
	memset(&req, 0, sizeof(req));
	strncpy(req.name, name, sizeof(req.name) - 1);
	r = t_raw_call(fd, SHMQ_OP_STAT, &req, sizeof(req), rep);
	if (r == 0) {
		if (rep->len < sizeof(rep->hdr) + sizeof(*ret))
			r = T_RAW_BAD_REPLY;
		else
			memcpy(ret, rep->body, sizeof(*ret));
	}
	if (rep->fd >= 0)
		close(rep->fd);
	free(rep);
	return r;
}
