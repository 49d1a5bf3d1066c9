/* SPDX-License-Identifier: MIT */
/*
 * The control protocol between libshmq and shmqd: the wire ABI, specified in
 * docs/protocol.md.  It lives beside the segment ABI because both the daemon
 * and the client library build on it and must never include each other.
 * Structs and pure validation only: no I/O, no allocation.
 *
 * Transport: a SOCK_SEQPACKET Unix socket.  One request datagram gets one
 * reply datagram; a reply that grants an object carries its memfd as
 * SCM_RIGHTS.  Every message starts with struct shmq_msg_hdr; `size` is the
 * whole datagram.  All integers are native little-endian, fixed width.
 *
 * Versioning: SHMQ_PROTO_VERSION is sent in every header.  The daemon
 * answers a header with another version with -EPROTO (in a version-1
 * header, which every version must be able to parse), then keeps serving.
 * In version 1 every request body has exactly the size its op defines
 * (shmq__proto_req_size()); a longer or shorter one is -EBADMSG.  So any
 * change to a body, appended fields included, is a new version; a new op
 * is compatible (an old daemon answers -EOPNOTSUPP).
 */
#ifndef SHMQ_SHM_PROTOCOL_H
#define SHMQ_SHM_PROTOCOL_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

#define SHMQ_PROTO_MAGIC   UINT32_C(0x51514d53) /* "SMQQ" in memory */
#define SHMQ_PROTO_VERSION 1
#define SHMQ_MSG_MAX	   65536 /* bytes, largest datagram either way */
/*
 * An error reply may carry a body (1.1): the daemon's reason, printable
 * ASCII, NUL-terminated, at most SHMQ_REASON_MAX bytes with the NUL.  A
 * client ignores it or shows it; 1.0 clients ignore every error body.
 */
#define SHMQ_REASON_MAX 256

/* struct shmq_msg_hdr.op; a reply carries the request's op | SHMQ_OP_REPLY. */
#define SHMQ_OP_HELLO	     1	/* versions both ways; must be the first request */
#define SHMQ_OP_CREATE	     2	/* create (and attach) an object; -EEXIST if it exists */
#define SHMQ_OP_OPEN	     3	/* attach an object, creating it with SHMQ_OPEN_CREATE */
#define SHMQ_OP_CLOSE	     4	/* detach one attachment of this session */
#define SHMQ_OP_UNLINK	     5	/* remove a name; memory lives while attached */
#define SHMQ_OP_LIST	     6	/* objects, paged */
#define SHMQ_OP_STAT	     7	/* one object by name */
#define SHMQ_OP_SESSIONS     8	/* connected sessions, paged */
#define SHMQ_OP_STATUS	     9	/* daemon status */
#define SHMQ_OP_PURGE	     10 /* drop every message queued in a queue (owner or root) */
#define SHMQ_OP_CONFIG	     11 /* the daemon's configuration in force, as text */
#define SHMQ_OP_ATTACHMENTS  12 /* one object's attachments, paged */
#define SHMQ_OP_REATTACH     13 /* after a daemon restart: take back one attachment */
#define SHMQ_OP_SHUTDOWN     14 /* shut a queue down (owner or root) */
#define SHMQ_OP_USAGE	     15 /* per-uid use of the per-uid limits, paged */
#define SHMQ_OP_DISCONNECT   16 /* end another session: its process is killed (root or its uid) */
#define SHMQ_OP_CONFIG_TYPED 17 /* CONFIG, each line led by its value's type */
#define SHMQ_OP_COUNT	     18
#define SHMQ_OP_REPLY	     UINT16_C(0x8000)

struct shmq_msg_hdr {
	uint32_t magic;	   /* 0  SHMQ_PROTO_MAGIC */
	uint16_t version;  /* 4  SHMQ_PROTO_VERSION */
	uint16_t op;	   /* 6  SHMQ_OP_*, | SHMQ_OP_REPLY in replies */
	uint32_t size;	   /* 8  whole datagram, header included */
	uint32_t seq;	   /* 12 chosen by the client, echoed in the reply */
	int32_t status;	   /* 16 replies: 0 or -errno; requests: 0 */
	uint32_t reserved; /* 20 zero */
};

/* --- HELLO --- */

struct shmq_req_hello {
	uint16_t proto_version; /* SHMQ_PROTO_VERSION */
	uint16_t layout_major;	/* SHMQ_LAYOUT_MAJOR of the client build */
	uint16_t layout_minor;	/* SHMQ_LAYOUT_MINOR of the client build */
	uint16_t reserved0;
	char client_name[32]; /* NUL-terminated, informational (shmqctl clients) */
};

struct shmq_rep_hello {
	uint16_t proto_version;
	uint16_t layout_major;
	uint16_t layout_minor;
	uint16_t reserved0;
	uint64_t session_id; /* daemon-unique */
	int32_t daemon_pid;
	uint32_t reserved1;
	char daemon_version[16]; /* "MAJOR.MINOR.PATCH" */
};

/* --- CREATE / OPEN --- */

/* struct shmq_req_open.flags */
#define SHMQ_OPEN_CREATE   (UINT32_C(1) << 0) /* OPEN: create if missing */
#define SHMQ_OPEN_SEND	   (UINT32_C(1) << 1) /* queue: will send (needs write) */
#define SHMQ_OPEN_RECV	   (UINT32_C(1) << 2) /* queue: will receive (needs write) */
#define SHMQ_OPEN_VIEW	   (UINT32_C(1) << 3) /* read-only view (needs read) */
#define SHMQ_OPEN_SEM	   (UINT32_C(1) << 4) /* semaphore: wait/post (needs write) */
#define SHMQ_OPEN_HUGEPAGE (UINT32_C(1) << 5) /* create: back with hugetlb pages */
#define SHMQ_OPEN_USE	   (UINT32_C(1) << 6) /* event: set/clear/wait (needs write) */
#define SHMQ_OPEN_END1	   (UINT32_C(1) << 7) /* pipe (with USE): end 1, else end 0 (1.6) */
/*
 * OPEN with SHMQ_OPEN_CREATE: the geometry is a requirement.  An existing
 * object whose shape (the kind's shape(), daemon/kind.h) or huge pages
 * differ is -EEXIST, not opened as it is (1.9).
 */
#define SHMQ_OPEN_SHAPE (UINT32_C(1) << 8)
/* The first layout minor whose daemons know SHMQ_OPEN_SHAPE (1.1): older ones refuse the bit. */
#define SHMQ_SHAPE_LAYOUT_MINOR 8
#define SHMQ_OPEN_ALL_FLAGS	(UINT32_C(0x1ff))
/* The role flags: what an attachment may do (one set per attachment). */
#define SHMQ_OPEN_ROLES \
	(SHMQ_OPEN_SEND | SHMQ_OPEN_RECV | SHMQ_OPEN_SEM | SHMQ_OPEN_USE | SHMQ_OPEN_VIEW)
/* What an attachment is granted and records, and REATTACH names: its roles and a pipe's end. */
#define SHMQ_OPEN_GRANTS (SHMQ_OPEN_ROLES | SHMQ_OPEN_END1)

/* The pipe end (0 or 1) that open flags name. */
static inline uint32_t shmq__open_end(uint32_t flags)
{
	return (flags & SHMQ_OPEN_END1) ? 1 : 0;
}

/*
 * struct shmq_req_open.kind of an OPEN of a view (no create): whatever
 * kind the name is; the reply says which (1.1).  A 1.0 daemon answers
 * -EINVAL, and the client asks kind by kind.
 */
#define SHMQ_KIND_ANY 0

struct shmq_req_open {
	uint32_t flags; /* SHMQ_OPEN_* */
	uint16_t kind;	/* SHMQ_KIND_*, or SHMQ_KIND_ANY */
	uint16_t reserved0;
	uint32_t mode; /* create: permission bits (0777 mask) */
	uint32_t reserved1;
	char name[SHMQ_NAME_MAX + 1]; /* NUL-terminated */
	union shmq_geom geom;	      /* create: queue n_slots/slot_size/mode/numa_node; sem */
};

struct shmq_rep_open {
	uint64_t object_id;
	uint64_t attach_id;	/* names this attachment in CLOSE */
	uint64_t size;		/* segment bytes: the fd's size */
	uint32_t session_index; /* record in the segment; UINT32_MAX for a view */
	uint32_t flags;		/* SHMQ_OPEN_* granted (VIEW: the fd is read-only) */
	uint16_t kind;
	uint16_t created; /* 1 if this request created the object */
	uint32_t reserved0;
}; /* + SCM_RIGHTS: the segment's memfd */

/* --- CLOSE / UNLINK / STAT --- */

struct shmq_req_close {
	uint64_t attach_id;
};

struct shmq_req_disconnect {
	uint64_t session_id; /* as SESSIONS lists it */
};

struct shmq_req_name {
	char name[SHMQ_NAME_MAX + 1];
};

/*
 * struct shmq_obj_info.flags, besides SHMQ_OPEN_HUGEPAGE: a bit no open
 * flag uses.  The daemon found the segment corrupt and refuses new opens
 * (views excepted) until the object is unlinked; see docs/reliability.md.
 */
#define SHMQ_OBJ_QUARANTINED (UINT32_C(1) << 31)
static_assert(!(SHMQ_OBJ_QUARANTINED & SHMQ_OPEN_ALL_FLAGS), "flag bits overlap");

/* One object, as LIST and STAT report it. */
struct shmq_obj_info {
	char name[SHMQ_NAME_MAX + 1];
	uint64_t object_id;
	uint64_t size; /* segment bytes */
	uint64_t created_realtime_ns;
	uint32_t owner_uid;
	uint32_t owner_gid;
	uint32_t mode;
	uint16_t kind;
	uint16_t unlinked;   /* 1: name removed, still attached */
	uint32_t n_attached; /* attachments, all sessions */
	int32_t numa_node;   /* -1: none */
	uint32_t flags;	     /* SHMQ_OPEN_HUGEPAGE if backed by huge pages; SHMQ_OBJ_QUARANTINED */
	uint32_t reserved0;
	union shmq_geom geom;
};

/* --- LIST / SESSIONS (paged) --- */

struct shmq_req_page {
	uint32_t offset; /* first item wanted */
	uint32_t reserved0;
};

#define SHMQ_LIST_PAGE	   128 /* objects per LIST reply */
#define SHMQ_SESSIONS_PAGE 128 /* sessions per SESSIONS reply */

struct shmq_rep_list {
	uint32_t total;		      /* objects now (may change between pages) */
	uint32_t count;		      /* items in this reply */
	struct shmq_obj_info items[]; /* count of them */
};

struct shmq_session_info {
	uint64_t session_id;
	uint64_t connected_ns; /* CLOCK_MONOTONIC */
	int32_t pid;
	uint32_t uid;
	uint32_t gid;
	uint32_t n_attached;
	char client_name[32];
};

struct shmq_rep_sessions {
	uint32_t total;
	uint32_t count;
	struct shmq_session_info items[];
};

/* --- USAGE (paged, as LIST) --- */

#define SHMQ_USAGE_PAGE 128 /* rows per USAGE reply */

struct shmq_usage_info {
	uint32_t uid;
	uint32_t n_objects;   /* objects it owns, unlinked ones still attached included */
	uint32_t n_clients;   /* its connected sessions */
	uint32_t max_objects; /* max-objects-per-uid */
	uint64_t memory;      /* bytes of the segments it owns */
	uint64_t max_memory;  /* max-memory-per-uid */
	uint32_t max_clients; /* max-clients-per-uid; 0: not limited (uid 0) */
	uint32_t reserved0;
	uint64_t reserved1;
};

struct shmq_rep_usage {
	uint32_t total;
	uint32_t count;
	struct shmq_usage_info items[];
};

/* --- STATUS --- */

struct shmq_rep_status {
	char daemon_version[16];
	int32_t pid;
	uint32_t n_sessions;
	uint64_t uptime_ns;
	uint32_t n_objects;
	uint32_t max_clients;
	uint64_t memory_bytes; /* all segments */
	char socket_path[108];
	uint32_t reserved0;
};

/* --- PURGE --- */

struct shmq_rep_purge {
	uint64_t dropped; /* messages taken out of the ring and discarded */
};

/* --- SHUTDOWN --- */

#define SHMQ_SHUTDOWN_F_IMMEDIATE (UINT32_C(1) << 0) /* receivers get nothing more */

struct shmq_req_shutdown {
	char name[SHMQ_NAME_MAX + 1];
	uint32_t flags; /* SHMQ_SHUTDOWN_F_* */
	uint32_t reserved;
};

/* --- CONFIG --- */

/*
 * No request body.  The reply body is NUL-terminated text, one
 * "name = value\n" line per option in the daemon's option table order, the
 * NUL included in the body's size.
 */
#define SHMQ_CONFIG_TEXT_MAX (SHMQ_MSG_MAX - sizeof(struct shmq_msg_hdr))

/* --- ATTACHMENTS (paged) --- */

struct shmq_req_attachments {
	char name[SHMQ_NAME_MAX + 1];
	uint32_t offset; /* first item wanted */
	uint32_t reserved0;
};

/* One attachment of the named object, as ATTACHMENTS reports it. */
struct shmq_attachment_info {
	uint64_t session_id;
	uint64_t attach_id;
	int32_t pid;
	uint32_t uid;
	uint32_t flags;		/* granted SHMQ_OPEN_SEND/RECV/SEM/VIEW */
	uint32_t session_index; /* record in the segment; UINT32_MAX for a view */
	char client_name[32];
};

#define SHMQ_ATTACHMENTS_PAGE 128 /* attachments per ATTACHMENTS reply */

struct shmq_rep_attachments {
	uint32_t total;
	uint32_t count;
	struct shmq_attachment_info items[];
};

/* --- REATTACH --- */

/*
 * After the daemon restarted, a client that was attached takes each of its
 * attachments back on a new connection, naming it as the old daemon
 * granted it.  The daemon re-adopted the attachment from its registry on
 * behalf of the same process (same pid, same start time, still alive) and
 * hands it over only to a connection of that process.  No descriptor: the
 * client still has its mapping.  -ENOENT: the daemon does not know it (the
 * object is gone, or it was released); the client keeps its mapping, which
 * still works as plain memory, and treats the handle as detached.
 */
struct shmq_req_reattach {
	uint64_t attach_id;
	uint64_t object_id;
	uint32_t session_index; /* UINT32_MAX for a view */
	uint32_t flags;		/* SHMQ_OPEN_SEND/RECV/SEM/USE/VIEW, END1, as granted */
};

static_assert(sizeof(struct shmq_req_reattach) == 24, "protocol ABI changed");
static_assert(sizeof(struct shmq_msg_hdr) == 24, "protocol ABI changed");
static_assert(sizeof(struct shmq_req_hello) == 40, "protocol ABI changed");
static_assert(sizeof(struct shmq_rep_hello) == 40, "protocol ABI changed");
static_assert(sizeof(struct shmq_req_open) == 112, "protocol ABI changed");
static_assert(sizeof(struct shmq_rep_open) == 40, "protocol ABI changed");
static_assert(sizeof(struct shmq_obj_info) == 152, "protocol ABI changed");
static_assert(sizeof(struct shmq_session_info) == 64, "protocol ABI changed");
static_assert(sizeof(struct shmq_req_close) == 8, "protocol ABI changed");
static_assert(sizeof(struct shmq_req_name) == 64, "protocol ABI changed");
static_assert(sizeof(struct shmq_req_shutdown) == 72, "protocol ABI changed");
static_assert(sizeof(struct shmq_req_page) == 8, "protocol ABI changed");
static_assert(sizeof(struct shmq_rep_list) == 8, "protocol ABI changed");
static_assert(sizeof(struct shmq_rep_sessions) == 8, "protocol ABI changed");
static_assert(sizeof(struct shmq_usage_info) == 48, "protocol ABI changed");
static_assert(sizeof(struct shmq_req_disconnect) == 8, "protocol ABI changed");
static_assert(sizeof(struct shmq_rep_usage) == 8, "protocol ABI changed");
static_assert(sizeof(struct shmq_rep_usage) + SHMQ_USAGE_PAGE * sizeof(struct shmq_usage_info) +
			      sizeof(struct shmq_msg_hdr) <=
		      SHMQ_MSG_MAX,
	      "a USAGE page must fit in one datagram");
static_assert(sizeof(struct shmq_rep_status) == 160, "protocol ABI changed");
static_assert(sizeof(struct shmq_rep_purge) == 8, "protocol ABI changed");
static_assert(sizeof(struct shmq_req_attachments) == 72, "protocol ABI changed");
static_assert(sizeof(struct shmq_attachment_info) == 64, "protocol ABI changed");
static_assert(sizeof(struct shmq_rep_attachments) == 8, "protocol ABI changed");
static_assert(sizeof(struct shmq_rep_list) + SHMQ_LIST_PAGE * sizeof(struct shmq_obj_info) +
			      sizeof(struct shmq_msg_hdr) <=
		      SHMQ_MSG_MAX,
	      "a LIST page must fit in one datagram");
static_assert(sizeof(struct shmq_rep_attachments) +
			      SHMQ_ATTACHMENTS_PAGE * sizeof(struct shmq_attachment_info) +
			      sizeof(struct shmq_msg_hdr) <=
		      SHMQ_MSG_MAX,
	      "an ATTACHMENTS page must fit in one datagram");

/*
 * Size of the body a request of @op must carry, or -1 for an unknown op.
 * The daemon rejects any other size with -EBADMSG.
 */
static inline long shmq__proto_req_size(uint16_t op)
{
	switch (op) {
	case SHMQ_OP_HELLO:
		return sizeof(struct shmq_req_hello);
	case SHMQ_OP_CREATE:
	case SHMQ_OP_OPEN:
		return sizeof(struct shmq_req_open);
	case SHMQ_OP_CLOSE:
		return sizeof(struct shmq_req_close);
	case SHMQ_OP_DISCONNECT:
		return sizeof(struct shmq_req_disconnect);
	case SHMQ_OP_UNLINK:
	case SHMQ_OP_STAT:
	case SHMQ_OP_PURGE:
		return sizeof(struct shmq_req_name);
	case SHMQ_OP_LIST:
	case SHMQ_OP_SESSIONS:
	case SHMQ_OP_USAGE:
		return sizeof(struct shmq_req_page);
	case SHMQ_OP_STATUS:
	case SHMQ_OP_CONFIG:
	case SHMQ_OP_CONFIG_TYPED:
		return 0;
	case SHMQ_OP_ATTACHMENTS:
		return sizeof(struct shmq_req_attachments);
	case SHMQ_OP_REATTACH:
		return sizeof(struct shmq_req_reattach);
	case SHMQ_OP_SHUTDOWN:
		return sizeof(struct shmq_req_shutdown);
	default:
		return -1;
	}
}

#endif /* SHMQ_SHM_PROTOCOL_H */
