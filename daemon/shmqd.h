/* SPDX-License-Identifier: MIT */
/*
 * shmqd internals: the daemon state and the three things it keeps track of.
 *
 * DESIGN
 *
 *   struct shmqd            one per process: config, epoll, listening socket,
 *        |                  and the lists below
 *        +-- sessions       one per accepted connection (a client process)
 *        |      +-- attachments   one per granted CREATE/OPEN; each points
 *        |                        at one object and counts as a reference
 *        +-- objects        every live segment, named or unlinked, in
 *        |                  creation order; named ones are also in a hash
 *        |                  table by name
 *        +-- uids           per-owner usage (objects, bytes) for the limits
 *
 * An object lives while it has a name or an attachment: UNLINK drops the
 * name, and the last detach of an unlinked object frees it (munmap, close
 * the memfd, uncharge its owner).  A named object with no attachment stays,
 * like a POSIX shared-memory object.
 *
 * A session dies when its socket hangs up, its pidfd reports that the
 * process exited, or a reply cannot be sent.  Death only marks it and moves
 * it to the `dead` list; before_sleep() reaps it (repairs each queue the
 * process had a record in, releases the record, drops the attachment),
 * because the current epoll batch may still hold events that point at it.
 *
 * Everything the daemon decides on (owner, mode, geometry, which record
 * belongs to which attachment) is its own copy: clients with write access
 * can scribble on any byte of a segment, including its header.
 */
#ifndef SHMQD_SHMQD_H
#define SHMQD_SHMQD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/config.h"
#include "daemon/store.h"
#include "shm/layout.h"
#include "shm/protocol.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* --- Intrusive doubly linked list --- */

struct shmqd_list {
	struct shmqd_list *prev, *next;
};

static inline void list_init(struct shmqd_list *h)
{
	h->prev = h->next = h;
}

static inline bool list_is_empty(const struct shmqd_list *h)
{
	return h->next == h;
}

static inline void list_add_tail(struct shmqd_list *h, struct shmqd_list *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static inline void list_del(struct shmqd_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

#define list_for_each_safe(pos, tmp, head)                               \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); \
	     (pos) = (tmp), (tmp) = (pos)->next)

/* --- Event sources: epoll_event.data.ptr points at one of these --- */

enum shmqd_source {
	SHMQD_SRC_SIGNAL,
	SHMQD_SRC_LISTEN,
	SHMQD_SRC_CLIENT,	/* a session's socket */
	SHMQD_SRC_PIDFD,	/* a session's process */
	SHMQD_SRC_METRICS,	/* the metrics socket (metrics.c) */
	SHMQD_SRC_METRICS_CONN, /* one scraper's connection */
};

struct shmqd_watch {
	enum shmqd_source source;
};

/* --- Objects --- */

struct shmqd_uid_usage {
	struct shmqd_list link;
	uint32_t uid;
	uint32_t n_objects;
	uint64_t memory; /* bytes of segments owned */
};

struct shmqd_object {
	struct shmqd_list link;		/* shmqd.objects, creation order */
	struct shmqd_object *hash_next; /* name table chain, while named */
	char name[SHMQ_NAME_MAX + 1];
	uint64_t object_id;
	uint16_t kind; /* SHMQ_KIND_* */
	bool unlinked;
	bool hugetlb;
	int32_t numa_node; /* -1: none */
	uint32_t owner_uid;
	uint32_t owner_gid;
	uint32_t mode; /* 0777 mask */
	uint64_t created_realtime_ns;
	union shmq_geom geom;		 /* as formatted, slot_stride included */
	int memfd;			 /* read-write, sealed; writers get this one */
	uint64_t size;			 /* bytes: fd size == mapping == header size */
	struct shmq_segment seg;	 /* the daemon's view of its own mapping */
	uint32_t n_attached;		 /* attachments, all sessions */
	uint32_t n_senders;		 /* attachments with SHMQ_OPEN_SEND */
	uint32_t n_receivers;		 /* attachments with SHMQ_OPEN_RECV */
	uint32_t n_users;		 /* attachments that may write: any but a view */
	uint32_t n_ends[2];		 /* pipe: attachments holding end 0, end 1 */
	struct shmqd_uid_usage *charged; /* owner's usage, until freed */
	uint32_t reg;			 /* registry record, UINT32_MAX without a store */
	/* Quarantine (object.c): a validator failed; new opens are refused until removed. */
	bool quarantined;
	uint64_t ring_checked_ns; /* last full ring check while quiescent (heartbeat) */
};

/* One granted CREATE/OPEN: a reference from a session to an object. */
struct shmqd_attach {
	struct shmqd_list link; /* session.attachments */
	uint64_t attach_id;
	struct shmqd_object *obj;
	uint32_t flags;		/* granted SHMQ_OPEN_SEND/RECV/SEM/USE/VIEW, END1 */
	uint32_t session_index; /* record in the segment, UINT32_MAX for a view */
	uint32_t reg;		/* registry record, UINT32_MAX without a store */
	uint64_t seen_sent;	/* its record's counters at the last look (last sender) */
	uint64_t seen_received;
};

/* --- Sessions --- */

struct shmqd_session {
	struct shmqd_list link; /* shmqd.sessions, .rejected or .dead */
	struct shmqd_watch sock_watch;
	struct shmqd_watch pid_watch;
	int fd;
	int pidfd; /* -1 when the peer's pid is not visible to us */
	int32_t pid;
	uint32_t uid;
	uint32_t gid;
	uint32_t *groups; /* supplementary groups (SO_PEERGROUPS) */
	uint32_t n_groups;
	uint64_t session_id;
	uint64_t connected_ns;
	bool hello_done;
	uint16_t client_layout_minor; /* its HELLO's: before 9, it cannot say how it fences */
	bool over_limit; /* past max-clients(-per-uid): answered -ENOSPC, then dropped */
	bool dead;
	bool adopted;	    /* from the registry after a restart: no socket, pidfd only */
	uint64_t pid_start; /* the process's start time, for the registry */
	const char *death;  /* why it died, for the reap log line */
	char client_name[32];
	struct shmqd_list attachments;
	uint32_t n_attached;
};

/* --- The daemon --- */

struct shmqd {
	struct shmqd_config cfg;
	const struct shmqd_args *args;
	int epfd;
	int sigfd;
	int listen_fd;
	struct shmqd_watch sig_watch;
	struct shmqd_watch listen_watch;
	bool listen_activated; /* from systemd: never unlink its path */
	bool listen_paused;    /* out of fds: accept again at the next tick */
	bool listen_bound;     /* we created the socket file */
	dev_t socket_dev;
	ino_t socket_ino;
	char socket_path[SHMQD_SOCKET_PATH_MAX];
	bool stopping;
	bool numa_ok; /* numa_available() succeeded */
	uint64_t started_ns;
	uint64_t next_tick_ns;
	uint64_t tick_ns;
	bool watchdog;
	uint64_t next_session_id;
	uint64_t next_object_id;
	uint64_t next_attach_id;
	struct shmqd_list sessions; /* counted against max-clients */
	uint32_t n_sessions;
	struct shmqd_list rejected; /* over the limit, waiting for their -ENOSPC */
	uint32_t n_rejected;
	struct shmqd_list dead; /* reaped by before_sleep() */
	struct shmqd_list objects;
	uint32_t n_objects;
	uint64_t memory_bytes;
	struct shmqd_object **names; /* hash table of named objects */
	uint32_t n_buckets;	     /* power of two */
	uint32_t n_named;
	struct shmqd_list uids;
	uint32_t status_sessions; /* last STATUS= sent to systemd */
	uint32_t status_objects;
	struct shmqd_store store;
	unsigned char *rx; /* SHMQ_MSG_MAX bytes: one request */
	unsigned char *tx; /* SHMQ_MSG_MAX bytes: one reply */
	int metrics_fd;	   /* metrics-socket, or -1 */
	struct shmqd_watch metrics_watch;
	struct shmqd_list metrics_conns;
	uint32_t n_metrics_conns;
};

/* metrics.c: the optional OpenMetrics endpoint (metrics-socket) */
int shmqd_metrics_open(struct shmqd *d);
void shmqd_metrics_close(struct shmqd *d);
void shmqd_metrics_on_event(struct shmqd *d, struct shmqd_watch *w, uint32_t events);
void shmqd_metrics_tick(struct shmqd *d, uint64_t now_ns);

/* loop.c */
int shmqd_init(struct shmqd *d, const struct shmqd_config *cfg, const struct shmqd_args *args);
int shmqd_loop(struct shmqd *d);
void shmqd_fini(struct shmqd *d);
uint64_t shmqd_now_ns(void);
int shmqd_epoll_add(struct shmqd *d, int fd, uint32_t events, struct shmqd_watch *w);

/* listen.c: @fds/@names from sd_listen_fds_with_names(); taken names are NULL */
int shmqd_listen_open(struct shmqd *d, int n_fds, char **names);
void shmqd_listen_close(struct shmqd *d);

/* session.c */
struct shmqd_reply;
void shmqd_session_accept(struct shmqd *d, int fd);
void shmqd_session_on_event(struct shmqd *d, struct shmqd_watch *w, uint32_t events);
void shmqd_session_kill(struct shmqd *d, struct shmqd_session *s, const char *why);
void shmqd_session_reap_dead(struct shmqd *d);
void shmqd_session_free_all(struct shmqd *d);
struct shmqd_session *shmqd_session_adopt(struct shmqd *d, const struct shmqd_reg_attach *r);
void shmqd_session_drop_adopted(struct shmqd *d, struct shmqd_session *s);
bool shmqd_session_alive(const struct shmqd_session *s);

/*
 * Check and act on the request datagram of @n bytes in d->rx, without
 * touching the socket: the reply's header (op and seq echoed) goes to
 * @ret_hdr, its body, length and descriptor to @rep (an owned descriptor is
 * the caller's to close).  handle_datagram() sends it; the protocol fuzzer
 * (tests/fuzz/) calls this directly.  Return: 0 or the -errno to reply with.
 */
/*
 * Refuse a client's request: log why at @level, naming the client, and
 * return @r for the reply.  shmqd_bad() is the -EINVAL of a malformed one.
 */
/*
 * DISCONNECT (root, or a session of the asker's uid; not its own): the
 * session's process gets SIGKILL through its pidfd, and its death is then
 * handled as any other.  Return: 0; -ENOENT, -EACCES, -EINVAL, -EPERM
 * (shmqd may not signal it), -EOPNOTSUPP (no pidfd), with a reason.
 */
int shmqd_session_disconnect(struct shmqd *d, const struct shmqd_session *by, uint64_t id);

int shmqd_reject(const struct shmqd_session *s, int level, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define shmqd_bad(s, ...) shmqd_reject((s), LOG_INFO, -EINVAL, __VA_ARGS__)

int shmqd_session_request(struct shmqd *d, struct shmqd_session *s, size_t n, bool control,
			  bool truncated, struct shmq_msg_hdr *ret_hdr, struct shmqd_reply *rep);

/*
 * store.c: persistence (store.h).  Every function is a no-op without a
 * store.  The _add functions fail the request when the record cannot be
 * written, so nothing is granted that a restart would forget.
 */
int shmqd_store_take_passed(struct shmqd *d, int n_fds, char **names);
/* Return: 0 nothing to adopt; 1 a registry with records (shmqd_adopt()); -errno. */
int shmqd_store_open(struct shmqd *d);
/* For adopt.c: walk the registry's records, drop one, remove unnamed segments. */
void shmqd_store_each_object(struct shmqd *d,
			     int (*fn)(struct shmqd *d, const struct shmqd_reg_object *r, int fd,
				       uint32_t reg));
int shmqd_store_each_attach(struct shmqd *d,
			    int (*fn)(struct shmqd *d, const struct shmqd_reg_attach *r,
				      uint32_t reg, void *ctx),
			    void *ctx);
void shmqd_store_drop(struct shmqd *d, uint32_t reg, const char *why);
void shmqd_store_remove_orphans(struct shmqd *d, bool (*known)(const void *ctx, uint64_t id),
				const void *ctx);
void shmqd_store_close(struct shmqd *d);
int shmqd_store_object_add(struct shmqd *d, struct shmqd_object *o);
void shmqd_store_object_update(struct shmqd *d, const struct shmqd_object *o);
void shmqd_store_object_remove(struct shmqd *d, struct shmqd_object *o);
int shmqd_store_attach_add(struct shmqd *d, const struct shmqd_session *s, struct shmqd_attach *a);
void shmqd_store_attach_update(struct shmqd *d, const struct shmqd_session *s,
			       const struct shmqd_attach *a);
void shmqd_store_attach_remove(struct shmqd *d, struct shmqd_attach *a);
void shmqd_store_sync_ids(struct shmqd *d);

/*
 * request.c: handle one validated request.  On success the reply body is
 * written to @ret_body (at most SHMQ_MSG_MAX - header bytes), its length to
 * @ret_len, and an fd to pass to @ret_fd (closed by the caller after
 * sending when @ret_fd_owned).  Return: 0 or the -errno for the reply.
 */
struct shmqd_reply {
	void *body;
	size_t len;
	int fd;
	bool fd_owned;
};
int shmqd_request_handle(struct shmqd *d, struct shmqd_session *s, uint16_t op, const void *body,
			 struct shmqd_reply *ret);

/* object.c */
struct shmqd_create {
	const char *name;
	uint16_t kind;
	uint32_t mode;
	union shmq_geom geom; /* validated and defaults applied by the caller */
	bool hugetlb;
};
struct shmqd_object *shmqd_object_find(struct shmqd *d, const char *name);
int shmqd_object_create(struct shmqd *d, const struct shmqd_session *s,
			const struct shmqd_create *c, struct shmqd_object **ret);
void shmqd_object_unlink(struct shmqd *d, struct shmqd_object *o);
int shmqd_object_check_access(const struct shmqd_session *s, const struct shmqd_object *o,
			      uint32_t need);
/*
 * Whether @s may see @o in listings and look at it (STAT, ATTACHMENTS):
 * read permission, as ipcs shows a non-root user only what they may read.
 */
bool shmqd_object_visible(const struct shmqd_session *s, const struct shmqd_object *o);
/* What @uid owns, as the per-uid limits count it: objects and segment bytes. */
void shmqd_usage_of(struct shmqd *d, uint32_t uid, uint32_t *ret_objects, uint64_t *ret_memory);
/* Connected sessions of @uid (as max-clients-per-uid counts them). */
uint32_t shmqd_sessions_of_uid(struct shmqd *d, uint32_t uid);
/* Count an attachment with @flags in (@delta 1) or out (-1) of @o's totals. */
void shmqd_object_count(struct shmqd_object *o, uint32_t flags, int delta);
int shmqd_object_attach(struct shmqd *d, struct shmqd_session *s, struct shmqd_object *o,
			uint32_t flags, struct shmqd_attach **ret);
void shmqd_object_detach(struct shmqd *d, struct shmqd_session *s, struct shmqd_attach *a,
			 bool repair);
int shmqd_object_view_fd(const struct shmqd_object *o);
void shmqd_object_info(const struct shmqd_object *o, struct shmq_obj_info *ret);
void shmqd_object_heartbeat(struct shmqd *d, uint64_t now_ns);
/* Note each object's last sender and receiver (the tick's; see use_sample()). */
void shmqd_object_sample_use(struct shmqd *d);
int shmqd_object_validate(struct shmqd_object *o, bool full, const char **ret_what);
void shmqd_object_quarantine(struct shmqd_object *o, const char *why);
void shmqd_object_free_all(struct shmqd *d);
void shmqd_object_collect(struct shmqd *d, struct shmqd_object *o);
/* Re-adoption (adopt.c): what object.c offers it. */
int shmqd_object_add_adopted(struct shmqd *d, struct shmqd_object *o);
void shmqd_object_release_record(struct shmqd_object *o, uint32_t index, int32_t pid,
				 const char *death);

/* --- Re-adoption after a restart (adopt.c) --- */

/* After shmqd_store_open() returned 1: re-adopt the registry's objects and clients. */
int shmqd_adopt(struct shmqd *d);
/* REATTACH: the adopted attachment @attach_id of @s's process, and the session holding it. */
struct shmqd_attach *shmqd_adopt_find(struct shmqd *d, const struct shmqd_session *s,
				      uint64_t attach_id, struct shmqd_session **ret_owner);
int shmqd_adopt_reattach(struct shmqd *d, struct shmqd_session *s, uint64_t attach_id,
			 uint64_t object_id, uint32_t session_index, uint32_t flags);

/* memory.c: one segment's memory */
struct shmqd_memory {
	int fd;
	void *base;
	uint64_t size; /* rounded to the page or huge page size */
};
int shmqd_memory_numa_check(bool numa_ok, int32_t node);
int shmqd_memory_round(uint64_t seg_size, bool hugetlb, uint64_t *ret_size);
int shmqd_memory_new(const char *name, uint64_t size, bool hugetlb, int32_t node, int dirfd,
		     const char *file, struct shmqd_memory *ret);
int shmqd_memory_seal(const struct shmqd_memory *m);
void shmqd_memory_log_placement(const struct shmqd_memory *m, const char *name, int32_t node);
int shmqd_memory_open_readonly(int fd);
int shmqd_memory_map_existing(int fd, uint64_t size, struct shmqd_memory *ret);
void shmqd_memory_free(struct shmqd_memory *m);

#endif /* SHMQD_SHMQD_H */
