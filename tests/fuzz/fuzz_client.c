/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: libshmq's parsing of the daemon's replies.
 *
 * A client is built around one end of a SOCK_SEQPACKET socketpair; the
 * harness queues the fuzzer's reply datagrams on the other end, shuts it
 * down for writing (the client reads end of file after them), and makes
 * two public calls.  Whatever the "daemon" sent, each call must
 * return 0 or a -errno, and every descriptor it was sent must be handed to
 * the caller or closed (a leaked one shows up in the fd count check).
 *
 *   byte 0        low nibble: the first call; high nibble: the second
 *   then records  [u8 ctl][u16 len, little endian][len bytes]
 *       ctl bit 0   fix up the header: magic, version, size, op (as a
 *                   reply to the call), seq = the next request's + (bits 2..3)
 *       ctl bit 1   pass a descriptor with it (a memfd holding a valid queue
 *                   segment, or with bit 4 a valid semaphore segment)
 *       ctl bit 5   and a second one
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "libclient/client.h"
#include "shm/layout.h"
#include "shm/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint16_t call_ops[16] = {
	SHMQ_OP_STATUS, SHMQ_OP_CONFIG,	     SHMQ_OP_SESSIONS, SHMQ_OP_LIST,
	SHMQ_OP_STAT,	SHMQ_OP_ATTACHMENTS, SHMQ_OP_PURGE,    SHMQ_OP_UNLINK,
	SHMQ_OP_OPEN,	SHMQ_OP_OPEN,	     SHMQ_OP_OPEN,     SHMQ_OP_OPEN,
	SHMQ_OP_CREATE, SHMQ_OP_CREATE,	     SHMQ_OP_OPEN,     SHMQ_OP_STATUS,
};

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/* A memfd holding a freshly formatted segment, as the daemon would pass. */
static int segment_fd(bool sem)
{
	struct shmq_segment_params p = {
		.kind = sem ? SHMQ_KIND_SEM : SHMQ_KIND_QUEUE,
		.n_sessions = 2,
		.name = "f",
		.mode = 0600,
		.object_id = 1,
	};
	uint64_t size;
	void *base;
	int fd;

	if (sem) {
		p.geom.sem.initial = 1;
	} else {
		p.geom.queue.n_slots = 4;
		p.geom.queue.slot_size = 32;
		p.geom.queue.numa_node = -1;
	}
	fd = memfd_create("fuzz-segment", MFD_CLOEXEC);
	if (fd < 0 || shmq__segment_size(&p, &size) < 0 || ftruncate(fd, (off_t)size) < 0)
		abort();
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED || shmq__segment_format(base, size, &p) < 0)
		abort();
	munmap(base, size);
	return fd;
}

static void send_reply(int sock, const void *buf, size_t len, int n_fds, bool sem)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	int fds[2] = {-1, -1};

	if (n_fds) {
		struct cmsghdr *c;

		for (int i = 0; i < n_fds; i++)
			fds[i] = segment_fd(sem);
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE((size_t)n_fds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)n_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)n_fds * sizeof(int));
	}
	(void)sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL); /* full: the rest is dropped */
	for (int i = 0; i < n_fds; i++)
		close(fds[i]);
}

static int on_item(void *arg, const void *info)
{
	(void)info;
	return ++*(int *)arg > 1000 ? -ECANCELED : 0;
}

static int on_config(void *arg, const char *name, const char *value)
{
	if (!name || !value)
		abort();
	(void)strlen(name);
	(void)strlen(value);
	return on_item(arg, NULL);
}

static int obj_fn(void *arg, const struct shmq_object_info *i)
{
	return on_item(arg, i);
}

static int client_fn(void *arg, const struct shmq_client_info *i)
{
	return on_item(arg, i);
}

static int attach_fn(void *arg, const struct shmq_attach_info *i)
{
	return on_item(arg, i);
}

/* Return: the call's return; *@ret_items: how many items its callback saw. */
static int make_call(struct shmq_client *c, unsigned int which, int *ret_items)
{
	struct shmq_queue_attr qa = {.size = sizeof(qa), .n_slots = 4, .slot_size = 32};
	struct shmq_sem_attr sa = {.size = sizeof(sa), .initial = 1};
	struct shmq_daemon_status st = {.size = sizeof(st)};
	struct shmq_object_info oi = {.size = sizeof(oi)};
	struct shmq_queue *q;
	struct shmq_sem *s;
	struct shmq_view *v;
	int n = 0, r;

	*ret_items = -1; /* not a listing */
	switch (which) {
	case 0:
	case 15:
		return shmq_daemon_status(c, &st);
	case 1:
		r = shmq_daemon_config(c, on_config, &n);
		*ret_items = n;
		return r;
	case 2:
		r = shmq_daemon_clients(c, client_fn, &n);
		*ret_items = n;
		return r;
	case 3:
		r = shmq_object_list(c, obj_fn, &n);
		*ret_items = n;
		return r;
	case 4:
		return shmq_object_stat(c, "f", &oi);
	case 5:
		r = shmq_object_attachments(c, "f", attach_fn, &n);
		*ret_items = n;
		return r;
	case 6:
		/* The number of messages dropped: at most one lap of the largest ring. */
		r = shmq_queue_purge(c, "f");
		*ret_items = r >= 0 && (uint32_t)r <= SHMQ_SLOTS_MAX ? r : -1;
		return r;
	case 7:
		return shmq_unlink(c, "f");
	case 8:
	case 14:
		r = shmq_queue_open(c, "f", SHMQ_SEND | SHMQ_RECV, NULL, &q);
		if (r == 0) {
			char buf[64];

			(void)shmq_queue_send(q, "m", 1);
			(void)shmq_queue_recv(q, buf, sizeof(buf));
			(void)shmq_queue_close(q);
		}
		return r;
	case 9:
		r = shmq_sem_open(c, "f", 0, NULL, &s);
		if (r == 0) {
			(void)shmq_sem_post(s, 1);
			(void)shmq_sem_try_wait(s);
			(void)shmq_sem_close(s);
		}
		return r;
	case 10:
		r = shmq_view_open(c, "f", &v);
		if (r == 0) {
			const void *base;
			size_t len;

			(void)shmq_view_memory(v, &base, &len);
			(void)shmq_view_close(v);
		}
		return r;
	case 11:
		r = shmq_queue_open(c, "f", SHMQ_VIEW, NULL, &q);
		if (r == 0)
			(void)shmq_queue_close(q);
		return r;
	case 12:
		r = shmq_queue_open(c, "f", SHMQ_CREATE | SHMQ_SEND, &qa, &q);
		if (r == 0)
			(void)shmq_queue_close(q);
		return r;
	default:
		r = shmq_sem_open(c, "f", SHMQ_CREATE, &sa, &s);
		if (r == 0)
			(void)shmq_sem_close(s);
		return r;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char buf[SHMQ_MSG_MAX];
	int sv[2], fds_before = count_fds();
	struct shmq_client *c;
	unsigned int calls[2];
	size_t at = 1;

	if (size < 1)
		return 0;
	calls[0] = data[0] & 15;
	calls[1] = data[0] >> 4;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		abort();

	/* Replies first: the client reads them as they would arrive. */
	for (unsigned int k = 0; at + 3 <= size; k++) {
		uint8_t ctl = data[at];
		size_t len = (size_t)data[at + 1] | (size_t)data[at + 2] << 8;

		at += 3;
		if (len > size - at)
			len = size - at;
		memset(buf, 0, sizeof(struct shmq_msg_hdr));
		memcpy(buf, data + at, len);
		at += len;
		if (ctl & 1) {
			struct shmq_msg_hdr *h = (struct shmq_msg_hdr *)buf;

			if (len < sizeof(*h))
				len = sizeof(*h);
			h->magic = SHMQ_PROTO_MAGIC;
			h->version = SHMQ_PROTO_VERSION;
			h->size = (uint32_t)len;
			h->op = call_ops[calls[k ? 1 : 0]] | SHMQ_OP_REPLY;
			h->seq = 1 + k + ((ctl >> 2) & 3);
		}
		send_reply(sv[1], buf, len, (ctl & 2) ? ((ctl & 32) ? 2 : 1) : 0, ctl & 16);
	}
	/* Then end the stream: no call waits for more, but requests still go out. */
	if (shutdown(sv[1], SHUT_WR) < 0)
		abort();

	c = calloc(1, sizeof(*c));
	if (!c || pthread_mutex_init(&c->lock, NULL))
		abort();
	c->rx = malloc(SHMQ_MSG_MAX);
	if (!c->rx)
		abort();
	c->fd = sv[0];
	/*
	 * After the hang-up a call reconnects to c->path, retrying while the
	 * daemon restarts.  There is none here: a path under a file fails at
	 * once (ENOTDIR), so no input waits out the control timeout.
	 */
	snprintf(c->path, sizeof(c->path), "/dev/null/shmqd.sock");

	for (int i = 0; i < 2; i++) {
		int items, r = make_call(c, calls[i], &items);

		if (getenv("SHMQ_FUZZ_LOG"))
			fprintf(stderr, "call %u: %d (%s)\n", calls[i], r,
				strerror(r < 0 ? -r : 0));
		/* 0 or a -errno; a listing: the number of items it reported; purge: a count. */
		if (r < -4095 || (r > 0 && r != items) || (r == 0 && items > 0))
			abort();
	}
	if (shmq_client_close(c) < 0)
		abort(); /* every handle was closed above */
	close(sv[1]);
	if (count_fds() != fds_before)
		abort(); /* a descriptor from a reply leaked */
	return 0;
}
