/* SPDX-License-Identifier: MIT */
/*
 * The client connection: connect, hello, unlink, and the control call that
 * every other control operation goes through.
 *
 * DESIGN
 *
 * One SOCK_SEQPACKET connection per client; one request datagram gets one
 * reply datagram (shm/protocol.h).  Calls are serialized by c->lock, so the
 * next reply is the one to our last request -- except after a timeout, when
 * the late reply to the abandoned request arrives first.  Replies are
 * therefore matched by seq and a stale one is dropped; if it granted an
 * attachment, its attach_id is kept and closed before the next call, so a
 * slow daemon never leaves a session record attached on our behalf.
 *
 * The socket is non-blocking and every wait is a poll() against one absolute
 * deadline per call: a stuck daemon costs SHMQ_CONTROL_TIMEOUT_NS and
 * -ETIMEDOUT, never a hang.  MSG_NOSIGNAL keeps a vanished daemon from
 * raising SIGPIPE in the caller.
 *
 * Daemon restarts.  A hang-up (EOF, EPIPE, ECONNRESET) marks the client
 * disconnected; every open handle keeps working, because the data path is
 * the mapping alone.  The next control call reconnects (waiting for a
 * restarting daemon within its own deadline), says HELLO, and takes every
 * open handle back with REATTACH: a restarted daemon re-adopted them from
 * its registry for this process (daemon/store.c).  Then the call goes on:
 * a request that never reached the daemon is sent again; one whose reply
 * was lost is sent again only if doing it twice is harmless (not CREATE,
 * UNLINK or PURGE: those answer -ECONNRESET, their outcome unknown).  A
 * reconnect that is itself cut off (the next daemon dies with our HELLO
 * unanswered) is tried again: the call keeps going for its whole budget
 * while a daemon can appear.  If none answers within it, the call fails
 * with -ECONNRESET, and for SHMQ_RECONNECT_BACKOFF_NS afterwards a call
 * tries one connect without waiting, so a program making calls after the
 * daemon is gone for good does not stall on each, and one whose daemon is
 * back gets it at once.  Closing a handle never waits for a daemon at all
 * (object.c).
 *
 * Nothing the daemon sends is trusted: header fields, sizes, status values
 * and descriptors are all checked, and every descriptor that is not handed
 * to the caller is closed.
 */
#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "libclient/client.h"
#include "libclient/object.h"
#include "shm/futex.h"
#include "shm/layout.h"

#define REQUEST_MAX   (sizeof(struct shmq_msg_hdr) + 256)
#define REPLY_FDS_MAX 8
/* Largest errno a reply may carry (the kernel's MAX_ERRNO). */
#define STATUS_MIN (-4095)

/* Between two connects to a restarting daemon, and between two tries of one call. */
#define RETRY_PAUSE_NS (10 * 1000000)

/*
 * Replies are received into c->rx, SHMQ_MSG_MAX bytes allocated at connect:
 * a LIST page is ~19 KiB, and a late reply to an abandoned call can be any
 * size, so a smaller buffer could truncate one and fail a later call.
 */
union reply {
	struct shmq_msg_hdr hdr;
	unsigned char bytes[SHMQ_MSG_MAX];
};

struct fds {
	int fd[REPLY_FDS_MAX];
	unsigned int n;
	bool truncated; /* MSG_CTRUNC: a passed descriptor did not fit (RLIMIT_NOFILE) */
};

void shmq__client_lock(struct shmq_client *c)
{
	pthread_mutex_lock(&c->lock);
}

void shmq__client_unlock(struct shmq_client *c)
{
	pthread_mutex_unlock(&c->lock);
}

static void fds_close(struct fds *f)
{
	for (unsigned int i = 0; i < f->n; i++)
		close(f->fd[i]);
	f->n = 0;
}

static int hung_up(struct shmq_client *c)
{
	c->dead = -ECONNRESET;
	return c->dead;
}

void shmq__client_link(struct shmq_client *c, struct shmq_object *o)
{
	o->prev = NULL;
	o->next = c->objects;
	if (c->objects)
		c->objects->prev = o;
	c->objects = o;
}

void shmq__client_unlink(struct shmq_client *c, struct shmq_object *o)
{
	if (o->prev)
		o->prev->next = o->next;
	else if (c->objects == o)
		c->objects = o->next;
	if (o->next)
		o->next->prev = o->prev;
	o->prev = o->next = NULL;
}

void shmq__client_defer_close(struct shmq_client *c, uint64_t attach_id)
{
	/* Past the bound the attachment lives until the process ends: still bounded. */
	if (c->n_orphans < SHMQ_CLIENT_ORPHANS_MAX)
		c->orphans[c->n_orphans++] = attach_id;
}

static bool is_hangup(int err)
{
	return err == EPIPE || err == ECONNRESET || err == ENOTCONN || err == ECONNREFUSED;
}

/* Wait for @events on @fd until @deadline_ns.  Return: 0; -ETIMEDOUT; -errno. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		uint64_t now = shmq__now_ns();
		int r;

		if (now >= deadline_ns)
			return -ETIMEDOUT;
		/* Round up, so a sub-millisecond remainder sleeps instead of spinning. */
		r = poll(&p, 1, (int)((deadline_ns - now + 999999) / 1000000));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int send_request(struct shmq_client *c, const void *msg, size_t size, uint64_t deadline_ns)
{
	for (;;) {
		ssize_t n = send(c->fd, msg, size, MSG_DONTWAIT | MSG_NOSIGNAL);
		int r;

		if (n >= 0)
			return (size_t)n == size ? 0 : -EPROTO; /* SEQPACKET: all or nothing */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return is_hangup(errno) ? hung_up(c) : -errno;
		r = wait_fd(c->fd, POLLOUT, deadline_ns);
		if (r < 0)
			return r;
	}
}

/* Receive one datagram and its descriptors.  Return: its length (> 0) or -errno. */
static int recv_reply(struct shmq_client *c, union reply *buf, struct fds *ret_fds,
		      uint64_t deadline_ns)
{
	union {
		struct cmsghdr align;
		char bytes[CMSG_SPACE(sizeof(int) * REPLY_FDS_MAX)];
	} ctl;
	struct msghdr mh;
	struct iovec iov;
	ssize_t n;

	for (;;) {
		int r;

		iov = (struct iovec){.iov_base = buf->bytes, .iov_len = sizeof(buf->bytes)};
		mh = (struct msghdr){.msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = ctl.bytes,
				     .msg_controllen = sizeof(ctl.bytes)};
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return is_hangup(errno) ? hung_up(c) : -errno;
		r = wait_fd(c->fd, POLLIN, deadline_ns);
		if (r < 0)
			return r;
	}

	/* Collect every descriptor first, so each error path below can close them. */
	ret_fds->n = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			if (ret_fds->n < REPLY_FDS_MAX)
				ret_fds->fd[ret_fds->n++] = fd;
			else
				close(fd);
		}
	}
	/*
	 * The daemon never sends an empty datagram: 0 is the hang-up.  An empty
	 * datagram can still carry descriptors; they were collected above, so
	 * they are closed here rather than leaked.
	 */
	if (n == 0) {
		fds_close(ret_fds);
		return hung_up(c);
	}
	if (mh.msg_flags & MSG_TRUNC) {
		fds_close(ret_fds);
		return -EPROTO;
	}
	/*
	 * The reply itself is whole; only its descriptor was dropped, because
	 * our table is full.  call() decides: a grant we cannot use is given back.
	 */
	ret_fds->truncated = mh.msg_flags & MSG_CTRUNC;
	return (int)n;
}

static int check_reply(const struct shmq_msg_hdr *h, size_t len)
{
	if (len < sizeof(*h) || h->magic != SHMQ_PROTO_MAGIC || h->version != SHMQ_PROTO_VERSION ||
	    h->size != len || !(h->op & SHMQ_OP_REPLY) || h->status > 0 || h->status < STATUS_MIN)
		return -EPROTO;
	return 0;
}

/* A reply to a request we gave up on: drop it, but never leak what it granted. */
static void stale_reply(struct shmq_client *c, const union reply *rep, size_t len)
{
	uint16_t op = rep->hdr.op & (uint16_t)~SHMQ_OP_REPLY;
	struct shmq_rep_open ro;

	if ((op != SHMQ_OP_OPEN && op != SHMQ_OP_CREATE) || rep->hdr.status != 0 ||
	    len < sizeof(rep->hdr) + sizeof(ro))
		return;
	memcpy(&ro, rep->bytes + sizeof(rep->hdr), sizeof(ro));
	shmq__client_defer_close(c, ro.attach_id);
}

/*
 * The daemon's reason for this thread's last failed control call
 * (shmq_last_error()).  Thread-local: calls on one client from several
 * threads each keep their own.
 */
static __thread char last_error[SHMQ_REASON_MAX];

void shmq__set_last_error(const char *text)
{
	snprintf(last_error, sizeof(last_error), "%s", text);
}

int shmq__refuse(int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return r;
}

/* An error reply's body, untrusted: printable ASCII up to its NUL, within @len. */
static void keep_reason(const unsigned char *body, size_t len)
{
	size_t i = 0;

	for (; i < len && i < sizeof(last_error) - 1 && body[i]; i++)
		last_error[i] = body[i] >= 0x20 && body[i] <= 0x7e ? (char)body[i] : '?';
	last_error[i] = '\0';
}

SHMQ_API const char *shmq_last_error(void)
{
	return last_error;
}

/* Requests the daemon may safely see twice, if the reply to the first was lost. */
static bool retry_safe(uint16_t op)
{
	switch (op) {
	case SHMQ_OP_CREATE: /* the second would answer -EEXIST */
	case SHMQ_OP_UNLINK: /* -ENOENT, or it removes a new object of that name */
	case SHMQ_OP_PURGE:  /* it would drop what was sent in between */
		return false;
	default:
		/*
		 * An OPEN granted twice leaves the first attachment with our
		 * process until it exits: a record held, never a loss.
		 */
		return true;
	}
}

static int ensure_session(struct shmq_client *c, uint64_t deadline_ns);

/*
 * One round trip.  On success the reply body is c->rx->bytes + header, and
 * *@ret_len (if not NULL) its length, at least @ret_size; @ret_body (if not
 * NULL) gets its first @ret_size bytes.
 */
static int call(struct shmq_client *c, uint16_t op, const void *body, size_t body_size,
		void *ret_body, size_t ret_size, size_t *ret_len, int *ret_fd)
{
	uint64_t deadline_ns = shmq__deadline_after_ns(SHMQ_CONTROL_TIMEOUT_NS);
	union {
		struct shmq_msg_hdr hdr;
		unsigned char bytes[REQUEST_MAX];
	} req;
	union reply *rep = c->rx;
	struct fds fds = {.n = 0};
	size_t len;
	int r;

	if (body_size > sizeof(req.bytes) - sizeof(req.hdr) ||
	    ret_size > sizeof(rep->bytes) - sizeof(rep->hdr))
		return -EINVAL;
	if (!c->reconnecting)
		last_error[0] = '\0'; /* a reason belongs to the call that failed */

	for (bool again = false;; again = true) {
		/*
		 * Never a HELLO: the reconnect that a retry makes says HELLO
		 * itself, and a replayed one is a second HELLO (-EINVAL).
		 * shmq_client_connect() retries its first one whole.  Every
		 * retry stays inside the one deadline.
		 */
		bool retry =
			!c->reconnecting && op != SHMQ_OP_HELLO && shmq__now_ns() < deadline_ns;

		if (again) {
			/* A daemon that hangs up at once must not make this a busy loop. */
			struct timespec pause = {.tv_nsec = RETRY_PAUSE_NS};

			nanosleep(&pause, NULL);
		}
		r = ensure_session(c, deadline_ns);
		/*
		 * Cut off again while reconnecting: go on within the budget,
		 * unless this was the back-off's single try (reconnect()).
		 */
		if (r == -ECONNRESET && retry && shmq__now_ns() >= c->retry_after_ns)
			continue;
		if (r < 0)
			return r;
		req.hdr = (struct shmq_msg_hdr){
			.magic = SHMQ_PROTO_MAGIC,
			.version = SHMQ_PROTO_VERSION,
			.op = op,
			.size = (uint32_t)(sizeof(req.hdr) + body_size),
			.seq = ++c->seq,
		};
		if (body_size)
			memcpy(req.bytes + sizeof(req.hdr), body, body_size);
		r = send_request(c, req.bytes, sizeof(req.hdr) + body_size, deadline_ns);
		if (r == -ECONNRESET && retry)
			continue; /* it never reached the daemon */
		if (r < 0)
			return r;

		for (;;) {
			r = recv_reply(c, rep, &fds, deadline_ns);
			if (r < 0)
				break;
			len = (size_t)r;
			r = check_reply(&rep->hdr, len);
			if (r == 0 && rep->hdr.seq == req.hdr.seq)
				break;
			if (r == 0)
				stale_reply(c, rep, len);
			fds_close(&fds);
			if (r < 0)
				return r;
		}
		if (r == -ECONNRESET && retry && retry_safe(op))
			continue;
		if (r < 0)
			return r;
		break;
	}

	if (rep->hdr.op != (uint16_t)(op | SHMQ_OP_REPLY)) {
		r = -EPROTO;
	} else if (rep->hdr.status < 0) {
		r = rep->hdr.status;
		keep_reason(rep->bytes + sizeof(rep->hdr), len - sizeof(rep->hdr));
	} else if (fds.truncated) {
		/* Granted, but unusable without its descriptor: CLOSE it like a stale grant. */
		stale_reply(c, rep, len);
		r = -EMFILE;
	} else if (len - sizeof(rep->hdr) < ret_size || (ret_fd && fds.n == 0))
		r = -EPROTO;
	if (r < 0) {
		fds_close(&fds);
		return r;
	}

	if (ret_body && ret_size)
		memcpy(ret_body, rep->bytes + sizeof(rep->hdr), ret_size);
	if (ret_len)
		*ret_len = len - sizeof(rep->hdr);
	if (ret_fd) {
		/* Exactly one descriptor is ours; any extra one is closed. */
		*ret_fd = fds.fd[0];
		fds.fd[0] = fds.fd[--fds.n];
	}
	fds_close(&fds);
	return 0;
}

static void close_orphans(struct shmq_client *c)
{
	while (c->n_orphans && !c->dead && !c->reattach_pending) {
		struct shmq_req_close rq = {.attach_id = c->orphans[--c->n_orphans]};

		/* Best effort: a failure here belongs to no caller. */
		(void)call(c, SHMQ_OP_CLOSE, &rq, sizeof(rq), NULL, 0, NULL, NULL);
	}
}

int shmq__client_call(struct shmq_client *c, uint16_t op, const void *body, size_t body_size,
		      void *ret_body, size_t ret_size, int *ret_fd)
{
	int r;

	close_orphans(c);
	r = call(c, op, body, body_size, ret_body, ret_size, NULL, ret_fd);
	if (r == -EMFILE)
		close_orphans(c); /* the grant whose descriptor we could not receive */
	return r;
}

int shmq__client_call_var(struct shmq_client *c, uint16_t op, const void *body, size_t body_size,
			  size_t min_size, const void **ret_body, size_t *ret_len)
{
	size_t len;
	int r;

	close_orphans(c);
	r = call(c, op, body, body_size, NULL, min_size, &len, NULL);
	if (r < 0)
		return r;
	*ret_body = ((union reply *)c->rx)->bytes + sizeof(struct shmq_msg_hdr);
	*ret_len = len;
	return 0;
}

#define SYSTEM_SOCKET "/run/shmq/shmqd.sock"

/*
 * The default path rules of shmq_client_connect(), in its kernel-doc:
 * the first candidate into @buf.  *@ret_fallback tells whether the system
 * daemon's socket is a second one: for a process that is not root and named
 * no socket, whose per-user daemon is not running, so that a service
 * running as its own user finds the system daemon without SHMQ_SOCKET.
 */
static int socket_path(const char *path, char *buf, size_t size, bool *ret_fallback)
{
	const char *env;
	int n;

	*ret_fallback = false;
	if (path) {
		n = snprintf(buf, size, "%s", path);
	} else if ((env = secure_getenv("SHMQ_SOCKET")) && *env) {
		/* secure_getenv: a setuid caller must not be pointed at a fake daemon. */
		n = snprintf(buf, size, "%s", env);
	} else if (geteuid() == 0) {
		n = snprintf(buf, size, SYSTEM_SOCKET);
	} else {
		env = secure_getenv("XDG_RUNTIME_DIR");
		if (env && *env)
			n = snprintf(buf, size, "%s/shmq/shmqd.sock", env);
		else
			n = snprintf(buf, size, "/tmp/shmq-%u/shmqd.sock", (unsigned int)geteuid());
		*ret_fallback = true;
	}
	if (n <= 0 || (size_t)n >= size)
		return -EINVAL;
	return 0;
}

SHMQ_API int shmq_client_socket_path(const char *path, char *buf, size_t size)
{
	char first[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat st;
	bool fallback;
	int r, n;

	if (!buf || !size)
		return -EINVAL;
	r = socket_path(path, first, sizeof(first), &fallback);
	if (r < 0)
		return r;
	if (fallback && lstat(first, &st) < 0 && errno == ENOENT && lstat(SYSTEM_SOCKET, &st) == 0)
		n = snprintf(buf, size, "%s", SYSTEM_SOCKET);
	else
		n = snprintf(buf, size, "%s", first);
	return (size_t)n < size ? n : -ERANGE;
}

/*
 * connect() until @deadline_ns.  EAGAIN (the listen backlog is full: a
 * Unix socket cannot be polled for it) is retried every millisecond.  With
 * @restarting, ENOENT and ECONNREFUSED (no daemon listens yet: a restarted
 * one is on its way) are retried too, every 10 ms.
 */
static int connect_until(int fd, const struct sockaddr_un *sa, uint64_t deadline_ns,
			 bool restarting)
{
	for (;;) {
		struct timespec pause = {.tv_nsec = 1000000};

		if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EISCONN)
			return 0;
		if (restarting && (errno == ENOENT || errno == ECONNREFUSED))
			pause.tv_nsec = RETRY_PAUSE_NS;
		else if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (shmq__now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
}

static int hello(struct shmq_client *c)
{
	struct shmq_req_hello rq = {
		.proto_version = SHMQ_PROTO_VERSION,
		.layout_major = SHMQ_LAYOUT_MAJOR,
		.layout_minor = SHMQ_LAYOUT_MINOR,
	};
	struct shmq_rep_hello rp;
	int r;

	snprintf(rq.client_name, sizeof(rq.client_name), "%s", program_invocation_short_name);
	/* The daemon takes printable ASCII only; a UTF-8 program name must not fail HELLO. */
	for (char *p = rq.client_name; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	r = call(c, SHMQ_OP_HELLO, &rq, sizeof(rq), &rp, sizeof(rp), NULL, NULL);
	if (r < 0)
		return r;
	if (rp.proto_version != SHMQ_PROTO_VERSION || rp.layout_major != SHMQ_LAYOUT_MAJOR)
		return -EPROTO;
	c->session_id = rp.session_id;
	c->daemon_layout_minor = rp.layout_minor;
	return 0;
}

/*
 * Take every open handle back on this connection.  -ENOENT: the daemon
 * does not know the attachment any more (it lost the object): the mapping
 * stays valid memory, and close() has nothing to tell the daemon.  A
 * transport error stops here; the rest is retried on the next call.
 */
static int reattach_all(struct shmq_client *c)
{
	int r = 0;

	c->reconnecting = true;
	for (struct shmq_object *o = c->objects; o; o = o->next) {
		struct shmq_req_reattach rq = {
			.attach_id = o->attach_id,
			.object_id = o->object_id,
			.session_index = o->session,
			.flags = o->granted & SHMQ_OPEN_GRANTS,
		};

		if (!o->attach_id || o->conn_gen == c->conn_gen)
			continue;
		r = call(c, SHMQ_OP_REATTACH, &rq, sizeof(rq), NULL, 0, NULL, NULL);
		if (r == -ECONNRESET || r == -ETIMEDOUT || r == -EPROTO)
			break;
		if (r < 0)
			o->attach_id = 0;
		o->conn_gen = c->conn_gen;
		r = 0;
	}
	c->reconnecting = false;
	if (r == 0) {
		c->reattach_pending = false;
		close_orphans(c);
	}
	return r;
}

/*
 * Connect and say HELLO again.  Return: 0; -ECONNRESET no daemon (the
 * back-off's single try, or none within @deadline_ns: then the back-off
 * starts) or it hung up during HELLO (the caller may try again); another
 * -errno from HELLO.
 */
static int reconnect(struct shmq_client *c, uint64_t deadline_ns)
{
	/* Waiting for a daemon to appear is for calls outside the back-off. */
	bool wait = shmq__now_ns() >= c->retry_after_ns;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
	r = connect_until(fd, &sa, deadline_ns, wait);
	if (r < 0) {
		close(fd);
		if (wait)
			c->retry_after_ns = shmq__now_ns() + SHMQ_RECONNECT_BACKOFF_NS;
		return c->dead;
	}
	close(c->fd);
	c->fd = fd;
	c->dead = 0;
	c->conn_gen++;
	c->reconnecting = true;
	r = hello(c);
	c->reconnecting = false;
	if (r < 0) {
		/*
		 * Nothing was attached on this connection yet.  A hang-up is
		 * retried within the caller's budget; a daemon that answers
		 * nothing for the whole budget starts the back-off like an
		 * absent one.
		 */
		c->dead = -ECONNRESET;
		if (r == -ETIMEDOUT)
			c->retry_after_ns = shmq__now_ns() + SHMQ_RECONNECT_BACKOFF_NS;
		return r == -ETIMEDOUT ? -ECONNRESET : r;
	}
	c->retry_after_ns = 0;
	c->reattach_pending = c->objects != NULL;
	return 0;
}

static int ensure_session(struct shmq_client *c, uint64_t deadline_ns)
{
	int r;

	if (c->reconnecting)
		return c->dead; /* a call made by reconnect() itself */
	if (c->dead) {
		r = reconnect(c, deadline_ns);
		if (r < 0)
			return r;
	}
	if (c->reattach_pending) {
		r = reattach_all(c);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A new socket connected to @sa, or -errno. */
static int connect_new(const struct sockaddr_un *sa, uint64_t deadline_ns)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int r;

	if (fd < 0)
		return -errno;
	r = connect_until(fd, sa, deadline_ns, false);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/*
 * A failed connect's reason: the socket it tried and the likely fix, for
 * shmq_last_error() (shmqctl, the Python module, any client).
 */
static void connect_reason(int r, const char *path)
{
	const char *fix = NULL;

	switch (r) {
	case -ENOENT:
	case -ECONNREFUSED:
		fix = "no daemon listens there: start one (make run, or systemctl start shmqd), "
		      "or name its socket with SHMQ_SOCKET";
		break;
	case -EACCES:
	case -EPERM:
		fix = "the socket is not open to you: the system daemon accepts root and group "
		      "shmq (usermod -aG shmq USER, then log in again)";
		break;
	case -EPROTO:
		fix = "shmqd and this libshmq speak different protocol versions: use the pair "
		      "from one installation";
		break;
	case -ETIMEDOUT:
		fix = "the daemon accepted but did not answer: it may be stopped (SIGSTOP) or "
		      "overloaded";
		break;
	default:
		break;
	}
	if (last_error[0]) { /* the daemon said why (HELLO refused, max-clients): keep it */
		char why[sizeof(last_error)];

		memcpy(why, last_error, sizeof(why)); /* not the buffer it is written into */
		(void)shmq__refuse(r, "shmqd at %s: %.180s", path, why);
	} else if (fix)
		(void)shmq__refuse(r, "shmqd at %s: %s", path, fix);
	else
		(void)shmq__refuse(r, "shmqd at %s", path);
}

SHMQ_API int shmq_client_connect(const char *path, struct shmq_client **ret)
{
	uint64_t deadline_ns = shmq__deadline_after_ns(SHMQ_CONTROL_TIMEOUT_NS);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct shmq_client *c;
	bool fallback;
	int r;

	if (!ret)
		return -EINVAL;
	shmq__set_last_error("");
	r = socket_path(path, sa.sun_path, sizeof(sa.sun_path), &fallback);
	if (r < 0)
		return r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->rx = malloc(sizeof(union reply));
	if (!c->rx) {
		free(c);
		return -ENOMEM;
	}
	r = -pthread_mutex_init(&c->lock, NULL);
	if (r < 0) {
		free(c->rx);
		free(c);
		return r;
	}
	c->fd = connect_new(&sa, deadline_ns);
	if ((c->fd == -ENOENT || c->fd == -ECONNREFUSED) && fallback) {
		/*
		 * No per-user daemon: the system one, which group shmq may use
		 * (systemd/shmqd.socket).  Its error counts only if it exists.
		 */
		struct sockaddr_un sys = {.sun_family = AF_UNIX, .sun_path = SYSTEM_SOCKET};
		int fd = connect_new(&sys, deadline_ns);

		if (fd != -ENOENT) {
			c->fd = fd;
			sa = sys;
		}
	}
	memcpy(c->path, sa.sun_path, sizeof(c->path));
	r = c->fd < 0 ? c->fd : hello(c);
	/*
	 * The daemon died with our HELLO unanswered: within the call's budget,
	 * connect again, waiting for a restarted daemon, and say HELLO anew.
	 */
	while (r == -ECONNRESET && shmq__now_ns() < deadline_ns) {
		close(c->fd);
		c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (c->fd < 0) {
			r = -errno;
			break;
		}
		c->dead = 0;
		r = connect_until(c->fd, &sa, deadline_ns, true);
		if (r == 0)
			r = hello(c);
	}
	if (r < 0)
		goto fail;
	*ret = c;
	return 0;

fail:
	connect_reason(r, sa.sun_path);
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_destroy(&c->lock);
	free(c->rx);
	free(c);
	return r;
}

SHMQ_API int shmq_client_close(struct shmq_client *c)
{
	unsigned int n;

	if (!c)
		return 0;
	shmq__client_lock(c);
	n = c->n_handles;
	shmq__client_unlock(c);
	if (n)
		return -EBUSY;
	/* The daemon ends the session, and every attachment still in it, on hang-up. */
	close(c->fd);
	pthread_mutex_destroy(&c->lock);
	free(c->rx);
	free(c);
	return 0;
}

SHMQ_API int shmq_unlink(struct shmq_client *c, const char *name)
{
	struct shmq_req_name rq = {.name = {0}};
	int r;

	if (!c || !shmq__name_is_valid(name))
		return -EINVAL;
	memcpy(rq.name, name, strlen(name) + 1);
	shmq__client_lock(c);
	r = shmq__client_call(c, SHMQ_OP_UNLINK, &rq, sizeof(rq), NULL, 0, NULL);
	shmq__client_unlock(c);
	return r;
}
