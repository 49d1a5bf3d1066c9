/* SPDX-License-Identifier: MIT */
/*
 * Client sessions: one per accepted connection.  Receiving and validating
 * request datagrams, sending replies, noticing death, and reaping.
 *
 * DESIGN
 *
 * Nothing a client does may stall the loop or another client:
 *   - sockets are non-blocking; one wake-up handles at most
 *     REQUESTS_PER_WAKEUP requests, so a flooding client waits its turn
 *     (epoll is level-triggered and comes back to it);
 *   - a reply that cannot be queued (EAGAIN: the client does not read its
 *     replies) ends the session rather than waiting for it;
 *   - every request datagram is checked field by field before it is acted
 *     on, and a bad one gets an error reply while the daemon keeps serving.
 *
 * Liveness: the peer's pidfd (SO_PEERPIDFD, which names the process that
 * connected even if its pid has since been reused; pidfd_open() on older
 * kernels) becomes readable when the process exits, and the socket reports
 * EPOLLHUP/EPOLLRDHUP when the last descriptor of the connection closes.
 * Either one ends the session.  A process's memory is gone before its
 * descriptors are closed (do_exit() runs exit_mm() before exit_files()), so
 * a hang-up of a dying client already means nobody runs on its claims.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/shmqd.h"
#include "shm/atomic.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5; glibc 2.36 predates it */
#endif

#define REQUESTS_PER_WAKEUP 16
#define FDS_PER_REQUEST_MAX 16	  /* more than this: MSG_CTRUNC, and the kernel drops the rest */
#define REJECT_BACKLOG	    64	  /* connections past max-clients waiting for their -ENOSPC */
#define PEER_GROUPS_MAX	    65536 /* NGROUPS_MAX */

static const char *const op_names[SHMQ_OP_COUNT] = {
	[SHMQ_OP_HELLO] = "HELLO",
	[SHMQ_OP_CREATE] = "CREATE",
	[SHMQ_OP_OPEN] = "OPEN",
	[SHMQ_OP_CLOSE] = "CLOSE",
	[SHMQ_OP_UNLINK] = "UNLINK",
	[SHMQ_OP_LIST] = "LIST",
	[SHMQ_OP_STAT] = "STAT",
	[SHMQ_OP_SESSIONS] = "SESSIONS",
	[SHMQ_OP_STATUS] = "STATUS",
	[SHMQ_OP_PURGE] = "PURGE",
	[SHMQ_OP_CONFIG] = "CONFIG",
	[SHMQ_OP_ATTACHMENTS] = "ATTACHMENTS",
	[SHMQ_OP_REATTACH] = "REATTACH",
	[SHMQ_OP_SHUTDOWN] = "SHUTDOWN",
	[SHMQ_OP_USAGE] = "USAGE",
	[SHMQ_OP_DISCONNECT] = "DISCONNECT",
	[SHMQ_OP_CONFIG_TYPED] = "CONFIG_TYPED",
};

static const char *op_name(uint16_t op)
{
	return op < SHMQ_OP_COUNT && op_names[op] ? op_names[op] : "?";
}

/* --- Setup --- */

static int peer_groups(struct shmqd_session *s)
{
	socklen_t len = 64 * sizeof(gid_t);

	for (;;) {
		gid_t *g = malloc(len);

		if (!g)
			return -ENOMEM;
		int r;

		if (getsockopt(s->fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			s->groups = (uint32_t *)g; /* gid_t is uint32_t on Linux */
			s->n_groups = len / sizeof(gid_t);
			return 0;
		}
		r = -errno;
		free(g);
		/* ERANGE: len now holds the size needed. */
		if (r != -ERANGE || len > PEER_GROUPS_MAX * sizeof(gid_t))
			return r;
	}
}

static int peer_pidfd(struct shmqd_session *s)
{
	socklen_t len = sizeof(int);
	int fd = -1;

	if (s->pid <= 0)
		return -ESRCH; /* peer in a pid namespace we cannot see */
	if (getsockopt(s->fd, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) == 0)
		return fd;
	if (errno != ENOPROTOOPT && errno != EINVAL)
		return -errno;
	/* Older kernel: racy against pid reuse, but the socket hang-up still works. */
	fd = pidfd_open(s->pid, 0);
	return fd < 0 ? -errno : fd;
}

static void session_free(struct shmqd_session *s)
{
	if (s->pidfd >= 0)
		close(s->pidfd);
	if (s->fd >= 0)
		close(s->fd);
	free(s->groups);
	free(s);
}

/*
 * Sessions of @uid, those still waiting for HELLO included: an idle
 * connection holds a slot as much as a busy one.  A walk per accept is
 * cheap next to the accept itself at the sizes max-clients allows.
 */
uint32_t shmqd_sessions_of_uid(struct shmqd *d, uint32_t uid)
{
	struct shmqd_list *pos, *tmp;
	uint32_t n = 0;

	list_for_each_safe(pos, tmp, &d->sessions)
	{
		if (container_of(pos, struct shmqd_session, link)->uid == uid)
			n++;
	}
	return n;
}

static void accept_peer(struct shmqd *d, int fd, const struct ucred *peer)
{
	struct shmqd_session *s;
	const char *limit = NULL;
	uint32_t limit_value = 0;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s) {
		log_warning_errno(-ENOMEM, "allocating a session for pid %d", (int)peer->pid);
		close(fd);
		return;
	}
	s->fd = fd;
	s->pidfd = -1;
	s->pid = peer->pid;
	s->uid = peer->uid;
	s->gid = peer->gid;
	s->sock_watch.source = SHMQD_SRC_CLIENT;
	s->pid_watch.source = SHMQD_SRC_PIDFD;
	s->session_id = d->next_session_id++;
	s->connected_ns = shmqd_now_ns();
	list_init(&s->attachments);
	if (d->store.kind != SHMQD_STORE_NONE) {
		/* Recorded with each attachment: a restart tells this process from a reuse. */
		s->pid_start = s->pid > 0 ? shmqd_pid_start_time(s->pid) : 0;
		shmqd_store_sync_ids(d);
	}

	if (d->n_sessions >= d->cfg.max_clients) {
		limit = "max-clients";
		limit_value = d->cfg.max_clients;
	} else if (s->uid != 0 && shmqd_sessions_of_uid(d, s->uid) >= d->cfg.max_clients_per_uid) {
		limit = "max-clients-per-uid";
		limit_value = d->cfg.max_clients_per_uid;
	}
	if (limit) {
		if (d->n_rejected >= REJECT_BACKLOG ||
		    shmqd_epoll_add(d, fd, EPOLLIN | EPOLLRDHUP, &s->sock_watch) < 0) {
			log_client(LOG_NOTICE,
				   "%s (%" PRIu32 ") reached: closing connection of pid %" PRId32,
				   limit, limit_value, s->pid);
			session_free(s);
			return;
		}
		log_client(LOG_NOTICE,
			   "%s (%" PRIu32 ") reached: refusing pid %" PRId32 " uid %" PRIu32, limit,
			   limit_value, s->pid, s->uid);
		s->over_limit = true;
		list_add_tail(&d->rejected, &s->link);
		d->n_rejected++;
		return;
	}

	/* Without the list, group permission checks only see the primary gid: stricter. */
	r = peer_groups(s);
	if (r < 0)
		log_warning_errno(r, "SO_PEERGROUPS of pid %" PRId32, s->pid);
	r = peer_pidfd(s);
	if (r == -ESRCH && s->pid > 0) {
		log_debug("pid %" PRId32 " exited before its connection was accepted", s->pid);
		session_free(s);
		return;
	}
	if (r < 0)
		log_debug_errno(r, "no pidfd for pid %" PRId32 "; watching its socket only",
				s->pid);
	else
		s->pidfd = r;

	if (shmqd_epoll_add(d, s->fd, EPOLLIN | EPOLLRDHUP, &s->sock_watch) < 0 ||
	    (s->pidfd >= 0 && shmqd_epoll_add(d, s->pidfd, EPOLLIN, &s->pid_watch) < 0)) {
		session_free(s); /* closing the fds also removes them from epoll */
		return;
	}
	list_add_tail(&d->sessions, &s->link);
	d->n_sessions++;
	log_debug("session %" PRIu64 ": pid %" PRId32 " uid %" PRIu32 " gid %" PRIu32 " connected",
		  s->session_id, s->pid, s->uid, s->gid);
}

void shmqd_session_accept(struct shmqd *d, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warning_errno(-errno, "SO_PEERCRED of a new connection");
		close(fd);
		return;
	}
	/* What a connect costs in log lines counts against its uid's rate limit. */
	shmqd_log_client_begin(cred.uid, 0, cred.pid);
	accept_peer(d, fd, &cred);
	shmqd_log_client_end();
}

/* --- Adopted sessions: clients of the daemon before a restart --- */

bool shmqd_session_alive(const struct shmqd_session *s)
{
	struct pollfd p = {.fd = s->pidfd, .events = POLLIN};

	/* A pidfd turns readable when its process exits. */
	return s->pidfd >= 0 && poll(&p, 1, 0) == 0;
}

struct shmqd_session *shmqd_session_adopt(struct shmqd *d, const struct shmqd_reg_attach *r)
{
	struct shmqd_session *s = calloc(1, sizeof(*s));
	uint64_t start;

	if (!s) {
		log_errno(-ENOMEM, "adopting a session");
		return NULL;
	}
	s->fd = -1;
	s->pidfd = -1;
	s->adopted = true;
	s->hello_done = true;
	s->pid = r->pid;
	s->pid_start = r->pid_start;
	s->uid = r->uid;
	s->gid = r->gid;
	s->session_id = load_relaxed(&r->session_id);
	s->connected_ns = shmqd_now_ns();
	s->pid_watch.source = SHMQD_SRC_PIDFD;
	s->sock_watch.source = SHMQD_SRC_CLIENT;
	memcpy(s->client_name, r->client_name, sizeof(s->client_name));
	list_init(&s->attachments);
	if (s->session_id >= d->next_session_id)
		d->next_session_id = s->session_id + 1;

	/*
	 * Pin the process first, then compare its start time: if the pidfd is
	 * still not readable after the read, the start time is that process's,
	 * so a reused pid is told apart from the client that held the record.
	 */
	s->pidfd = pidfd_open(s->pid, 0);
	if (s->pidfd >= 0) {
		start = shmqd_pid_start_time(s->pid);
		if (!start || start != s->pid_start || !shmqd_session_alive(s)) {
			close(s->pidfd);
			s->pidfd = -1;
		}
	}
	if (s->pidfd >= 0 && shmqd_epoll_add(d, s->pidfd, EPOLLIN, &s->pid_watch) < 0) {
		close(s->pidfd);
		s->pidfd = -1;
	}
	/* pidfd -1: gone; store.c kills it once its attachments are in place. */
	list_add_tail(&d->sessions, &s->link);
	d->n_sessions++;
	log_debug("session %" PRIu64 " of pid %" PRId32 " adopted (%s)", s->session_id, s->pid,
		  s->pidfd >= 0 ? "alive" : "gone");
	return s;
}

/* Every attachment was taken back: the adopted session ends without repair. */
void shmqd_session_drop_adopted(struct shmqd *d, struct shmqd_session *s)
{
	if (s->pidfd >= 0)
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, s->pidfd, NULL);
	list_del(&s->link);
	d->n_sessions--;
	log_debug("adopted session %" PRIu64 " of pid %" PRId32 " handed over", s->session_id,
		  s->pid);
	session_free(s);
}

/* --- DISCONNECT --- */

int shmqd_session_disconnect(struct shmqd *d, const struct shmqd_session *by, uint64_t id)
{
	struct shmqd_session *t = NULL;
	struct shmqd_list *pos, *tmp;

	list_for_each_safe(pos, tmp, &d->sessions)
	{
		struct shmqd_session *x = container_of(pos, struct shmqd_session, link);

		if (x->session_id == id)
			t = x;
	}
	if (!t)
		return shmqd_reject(by, LOG_DEBUG, -ENOENT, "DISCONNECT: no session %" PRIu64, id);
	/* A user's own sessions, as for kill(2); and what SESSIONS shows them. */
	if (by->uid != 0 && by->uid != t->uid)
		return shmqd_reject(by, LOG_INFO, -EACCES,
				    "DISCONNECT: session %" PRIu64 " is not this user's", id);
	if (t == by)
		return shmqd_reject(by, LOG_INFO, -EINVAL,
				    "DISCONNECT: session %" PRIu64 " is the asker's own", id);
	/*
	 * The one safe end of a live session is its process's: closing the
	 * socket alone would let a running process keep using records the
	 * daemon hands to others.  The pidfd names exactly the process that
	 * connected; its death is then repaired as any other.
	 */
	if (t->pidfd < 0)
		return shmqd_reject(by, LOG_NOTICE, -EOPNOTSUPP,
				    "DISCONNECT: no pidfd for session %" PRIu64 " (pid %" PRId32
				    "): kill the process to end it",
				    id, t->pid);
	if (pidfd_send_signal(t->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
		return shmqd_reject(by, LOG_NOTICE, -errno,
				    "DISCONNECT: shmqd (uid %u) may not signal pid %" PRId32
				    " of session %" PRIu64 ": kill -KILL %" PRId32
				    " with rights of your own",
				    (unsigned int)geteuid(), t->pid, id, t->pid);
	log_notice("session %" PRIu64 " (pid %" PRId32 " uid %" PRIu32 "%s%s%s) disconnected by "
		   "pid %" PRId32 " uid %" PRIu32 ": its process was sent SIGKILL",
		   id, t->pid, t->uid, t->client_name[0] ? ", '" : "", t->client_name,
		   t->client_name[0] ? "'" : "", by->pid, by->uid);
	return 0;
}

/* --- Death and reaping --- */

void shmqd_session_kill(struct shmqd *d, struct shmqd_session *s, const char *why)
{
	if (s->dead)
		return;
	s->dead = true;
	s->death = why;
	/* No more events for it; its memory stays until before_sleep() (see shmqd.h). */
	if (s->fd >= 0)
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	if (s->pidfd >= 0)
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, s->pidfd, NULL);
	list_del(&s->link);
	if (s->over_limit)
		d->n_rejected--;
	else
		d->n_sessions--;
	list_add_tail(&d->dead, &s->link);
}

void shmqd_session_reap_dead(struct shmqd *d)
{
	struct shmqd_list *pos, *tmp;

	list_for_each_safe(pos, tmp, &d->dead)
	{
		struct shmqd_session *s = container_of(pos, struct shmqd_session, link);
		struct shmqd_list *apos, *atmp;
		uint32_t n = s->n_attached;

		/* Its repairs and its last line count against its uid's rate limit. */
		shmqd_log_client_begin(s->uid, s->session_id, s->pid);
		list_for_each_safe(apos, atmp, &s->attachments) shmqd_object_detach(
			d, s, container_of(apos, struct shmqd_attach, link), true);
		if (n)
			shmqd_log_message_id(SHMQD_MESSAGE_SESSION);
		if (!s->over_limit)
			log_full_errno(n ? LOG_INFO : LOG_DEBUG, 0,
				       "session %" PRIu64 " (pid %" PRId32 " uid %" PRIu32
				       "%s%s%s) %s; %" PRIu32 " attachments released",
				       s->session_id, s->pid, s->uid,
				       s->client_name[0] ? ", '" : "", s->client_name,
				       s->client_name[0] ? "'" : "", s->death, n);
		shmqd_log_message_id(NULL); /* if the line was not written */
		list_del(&s->link);
		session_free(s);
		shmqd_log_client_end();
	}
}

static void free_list(struct shmqd_list *head)
{
	struct shmqd_list *pos, *tmp;

	list_for_each_safe(pos, tmp, head)
	{
		struct shmqd_session *s = container_of(pos, struct shmqd_session, link);
		struct shmqd_list *apos, *atmp;

		/*
		 * The daemon is exiting, the clients are not: they keep using
		 * their records, so leave the segments alone and free only our
		 * bookkeeping.  The objects go right after.
		 */
		list_for_each_safe(apos, atmp, &s->attachments)
			free(container_of(apos, struct shmqd_attach, link));
		list_del(&s->link);
		session_free(s);
	}
}

void shmqd_session_free_all(struct shmqd *d)
{
	shmqd_session_reap_dead(d);
	free_list(&d->sessions);
	free_list(&d->rejected);
	d->n_sessions = 0;
	d->n_rejected = 0;
}

/* --- Replies --- */

static void send_reply(struct shmqd *d, struct shmqd_session *s, uint16_t op, uint32_t seq,
		       int status, size_t body_len, int fd)
{
	struct shmq_msg_hdr *h = (struct shmq_msg_hdr *)d->tx;
	struct iovec iov = {.iov_base = d->tx, .iov_len = sizeof(*h) + body_len};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;
	int r;

	*h = (struct shmq_msg_hdr){
		.magic = SHMQ_PROTO_MAGIC,
		.version = SHMQ_PROTO_VERSION,
		.op = op | SHMQ_OP_REPLY,
		.size = (uint32_t)iov.iov_len,
		.seq = seq,
		.status = status,
	};
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(s->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return;
	r = -errno;
	if (r == -EPIPE || r == -ECONNRESET) {
		shmqd_session_kill(d, s, "disconnected");
		return;
	}
	log_client_errno(LOG_NOTICE, r, "session %" PRIu64 " (pid %" PRId32 "): sending %s reply",
			 s->session_id, s->pid, op_name(op));
	shmqd_session_kill(d, s,
			   r == -EAGAIN ? "stopped reading its replies" : "could not be answered");
}

/* --- Requests --- */

/* Close every descriptor a client attached; return whether there was any control data. */
static bool drop_control(struct msghdr *mh)
{
	bool any = false;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		any = true;
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < n; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				close(fd);
			}
		}
	}
	return any;
}

/*
 * Check the header and body size of one datagram of @n bytes in d->rx.
 * Return: the request's body size, or the -errno to answer with (logged).
 */
static int request_check(struct shmqd_session *s, const struct shmq_msg_hdr *h, size_t n,
			 bool control, bool truncated)
{
	long want;

	if (control)
		return log_client_errno(LOG_INFO, -EBADMSG,
					"pid %" PRId32
					": request carried file descriptors or other "
					"control data (closed)",
					s->pid);
	if (truncated)
		return log_client_errno(LOG_INFO, -EPROTO,
					"pid %" PRId32 ": datagram larger than %d bytes", s->pid,
					SHMQ_MSG_MAX);
	if (n < sizeof(*h))
		return log_client_errno(
			LOG_INFO, -EPROTO,
			"pid %" PRId32 ": datagram of %zu bytes, shorter than a header", s->pid, n);
	if (h->magic != SHMQ_PROTO_MAGIC)
		return log_client_errno(LOG_INFO, -EPROTO,
					"pid %" PRId32 ": bad magic 0x%08" PRIx32, s->pid,
					h->magic);
	if (h->version != SHMQ_PROTO_VERSION)
		return log_client_errno(LOG_INFO, -EPROTO,
					"pid %" PRId32
					": protocol version %u, this daemon speaks %d",
					s->pid, h->version, SHMQ_PROTO_VERSION);
	if (h->size != n)
		return log_client_errno(LOG_INFO, -EBADMSG,
					"pid %" PRId32 ": header says %" PRIu32
					" bytes, datagram has %zu",
					s->pid, h->size, n);
	if (h->status || h->reserved)
		return log_client_errno(
			LOG_INFO, -EINVAL,
			"pid %" PRId32 ": request header with nonzero status/reserved", s->pid);
	want = shmq__proto_req_size(h->op);
	if (want < 0)
		return log_client_errno(LOG_INFO, -EOPNOTSUPP, "pid %" PRId32 ": unknown op %u",
					s->pid, h->op);
	if (n - sizeof(*h) != (size_t)want)
		return log_client_errno(LOG_INFO, -EBADMSG,
					"pid %" PRId32 ": %s body is %zu bytes, expected %ld",
					s->pid, op_name(h->op), n - sizeof(*h), want);
	if (!s->hello_done && h->op != SHMQ_OP_HELLO)
		return log_client_errno(LOG_INFO, -EPROTO, "pid %" PRId32 ": %s before HELLO",
					s->pid, op_name(h->op));
	return (int)want;
}

/* The reply echoes op and seq when the datagram is long enough to hold them. */
static void echo_header(const struct shmqd *d, size_t n, struct shmq_msg_hdr *ret)
{
	*ret = (struct shmq_msg_hdr){0};
	memcpy(ret, d->rx, n < sizeof(*ret) ? n : sizeof(*ret));
	if (n < offsetof(struct shmq_msg_hdr, size))
		ret->op = 0;
	if (n < offsetof(struct shmq_msg_hdr, status))
		ret->seq = 0;
}

int shmqd_session_request(struct shmqd *d, struct shmqd_session *s, size_t n, bool control,
			  bool truncated, struct shmq_msg_hdr *ret_hdr, struct shmqd_reply *rep)
{
	int r;

	echo_header(d, n, ret_hdr);
	*rep = (struct shmqd_reply){.body = d->tx + sizeof(*ret_hdr), .fd = -1};
	r = request_check(s, ret_hdr, n, control, truncated);
	if (r >= 0)
		r = shmqd_request_handle(d, s, ret_hdr->op, d->rx + sizeof(*ret_hdr), rep);
	if (r < 0) {
		rep->len = 0;
		if (rep->fd_owned && rep->fd >= 0)
			close(rep->fd);
		rep->fd = -1;
		rep->fd_owned = false;
	}
	return r < 0 ? r : 0;
}

static void handle_datagram(struct shmqd *d, struct shmqd_session *s, size_t n, bool control,
			    bool truncated)
{
	struct shmq_msg_hdr h;
	struct shmqd_reply rep;
	int r;

	if (s->over_limit) {
		echo_header(d, n, &h);
		send_reply(d, s, h.op & ~SHMQ_OP_REPLY, h.seq, -ENOSPC, 0, -1);
		shmqd_session_kill(d, s, "refused: client limit");
		return;
	}
	shmqd_log_reason_clear();
	r = shmqd_session_request(d, s, n, control, truncated, &h, &rep);
	if (r < 0 && shmqd_log_reason()[0]) {
		/* The error reply's body: why, for the client to show (protocol.h). */
		size_t len = strlen(shmqd_log_reason()) + 1;

		if (len > SHMQ_REASON_MAX)
			len = SHMQ_REASON_MAX;
		memcpy(d->tx + sizeof(h), shmqd_log_reason(), len - 1);
		d->tx[sizeof(h) + len - 1] = '\0';
		rep.len = len;
	}
	send_reply(d, s, h.op & ~SHMQ_OP_REPLY, h.seq, r, rep.len, rep.fd);
	if (rep.fd_owned && rep.fd >= 0)
		close(rep.fd);
}

static void on_client_hangup(struct shmqd *d, struct shmqd_session *s)
{
	shmqd_session_kill(d, s, "disconnected");
}

/* After a 0-byte read: has the peer gone, or did it send an empty datagram? */
static bool peer_hung_up(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};

	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP));
}

static void on_client_request(struct shmqd *d, struct shmqd_session *s)
{
	for (int i = 0; i < REQUESTS_PER_WAKEUP && !s->dead; i++) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(FDS_PER_REQUEST_MAX * sizeof(int))];
		} ctl;
		struct iovec iov = {.iov_base = d->rx, .iov_len = SHMQ_MSG_MAX};
		struct msghdr mh = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = ctl.buf,
			.msg_controllen = sizeof(ctl.buf),
		};
		bool control;
		ssize_t n;

		n = recvmsg(s->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EAGAIN)
				return;
			if (errno == EINTR)
				continue;
			log_client_errno(LOG_INFO, -errno, "session %" PRIu64 ": receiving",
					 s->session_id);
			shmqd_session_kill(d, s, "broke its connection");
			return;
		}
		control = drop_control(&mh) || (mh.msg_flags & MSG_CTRUNC);
		/*
		 * n == 0 is an empty datagram or, once the peer has hung up,
		 * end of file.  An empty datagram gets -EPROTO like any other
		 * runt; end of file is left to on_client_hangup().
		 */
		if (n == 0 && !control && peer_hung_up(s->fd)) {
			on_client_hangup(d, s);
			return;
		}
		handle_datagram(d, s, (size_t)n, control, mh.msg_flags & MSG_TRUNC);
	}
}

static void on_pidfd_exit(struct shmqd *d, struct shmqd_session *s)
{
	shmqd_session_kill(d, s, "exited");
}

void shmqd_session_on_event(struct shmqd *d, struct shmqd_watch *w, uint32_t events)
{
	struct shmqd_session *s;

	if (w->source == SHMQD_SRC_PIDFD) {
		s = container_of(w, struct shmqd_session, pid_watch);
		if (!s->dead)
			on_pidfd_exit(d, s);
		return;
	}
	s = container_of(w, struct shmqd_session, sock_watch);
	shmqd_log_client_begin(s->uid, s->session_id, s->pid);
	if (!s->dead && (events & EPOLLIN))
		on_client_request(d, s);
	if (!s->dead && (events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)))
		on_client_hangup(d, s);
	shmqd_log_client_end();
}
