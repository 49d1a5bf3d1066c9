/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory segment layout: the one format that shmqd, every libshmq
 * build and shmqctl must agree on.  docs/shm-layout.md specifies every byte;
 * the static_asserts at the bottom freeze it.
 *
 * Changing anything here is an ABI change:
 *   - additions that fit in reserved space or at the tail -> SHMQ_LAYOUT_MINOR++
 *   - anything else                                       -> SHMQ_LAYOUT_MAJOR++
 *     (a peer with another major gets -EPROTO at attach)
 *
 * Rules: fixed-width types only; offsets from the segment start, never
 * pointers; every field written after publication is _Atomic; geometry is
 * written once before `published` and copied out by attach, never re-read.
 *
 * A segment is, in order:
 *
 *   struct shmq_segment_hdr        256 B   identity, geometry, publication
 *   struct shmq_session_shm[n]     128 B each: who is attached, counters
 *   object block                   kind-specific control words
 *   slots (queues only)            n_slots * slot_stride bytes
 *
 * Every part starts on a SHMQ_FALSE_SHARING_ALIGN boundary.
 */
#ifndef SHMQ_SHM_LAYOUT_H
#define SHMQ_SHM_LAYOUT_H

#include <assert.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHMQ_SEGMENT_MAGIC UINT64_C(0x4d474553514d4853) /* "SHMQSEGM" in memory */
#define SHMQ_LAYOUT_MAJOR  1
#define SHMQ_LAYOUT_MINOR  10

/* Two cache lines: the adjacent-line prefetcher pulls lines in pairs. */
#define SHMQ_FALSE_SHARING_ALIGN 128

#define SHMQ_NAME_MAX	   63	/* bytes, without the NUL */
#define SHMQ_SESSIONS_MAX  1024 /* session records per segment, upper bound */
#define SHMQ_SLOTS_MAX	   (UINT32_C(1) << 24)
#define SHMQ_SLOT_SIZE_MAX (UINT32_C(1) << 24) /* 16 MiB per message */
#define SHMQ_SLOT_ALIGN	   16		       /* slot stride granularity */

/* struct shmq_segment_hdr.kind */
#define SHMQ_KIND_QUEUE	  1
#define SHMQ_KIND_SEM	  2
#define SHMQ_KIND_EVENT	  3 /* layout 1.2 */
#define SHMQ_KIND_LOCK	  4 /* layout 1.3 */
#define SHMQ_KIND_COND	  5 /* layout 1.4 */
#define SHMQ_KIND_BARRIER 6 /* layout 1.4 */
#define SHMQ_KIND_PIPE	  7 /* layout 1.6 */

/* struct shmq_segment_hdr.state bits */
#define SHMQ_SEG_PUBLISHED   (UINT32_C(1) << 0) /* geometry complete; attach may proceed */
#define SHMQ_SEG_QUARANTINED (UINT32_C(1) << 1) /* validator failed; daemon refuses new opens */

/* Queue modes: who may attach as producer / consumer (enforced at attach). */
#define SHMQ_QMODE_MPMC	 0
#define SHMQ_QMODE_SPSC	 1
#define SHMQ_QMODE_MPSC	 2
#define SHMQ_QMODE_SPMC	 3
#define SHMQ_QMODE_COUNT 4

/* Semaphore flags (struct shmq_sem_geom.flags) */
#define SHMQ_SEM_BOUNDED   (UINT32_C(1) << 0) /* post above max -> -EOVERFLOW */
#define SHMQ_SEM_UNDO	   (UINT32_C(1) << 1) /* holds of a dead session are posted back */
#define SHMQ_SEM_VALUE_MAX UINT32_C(0x7fffffff)
/*
 * An undo semaphore's word is value (bits 0..19) | owner (bits 20..30): the
 * session tag (index + 1) of a process between the CAS that moves tokens and
 * the store that records them in its holds (shm/sem.c, U1..U4).  So its
 * value is at most SHMQ_SEM_UNDO_VALUE_MAX.  Layout 1.1.  The holds and the
 * pending count live in the record's per-kind state (struct shmq_sem_rec).
 */
#define SHMQ_SEM_UNDO_VALUE_MAX	  UINT32_C(0x000fffff)
#define SHMQ_SEM_UNDO_OWNER_SHIFT 20
#define SHMQ_SEM_UNDO_OWNER_MASK  UINT32_C(0x7ff00000)

struct shmq_queue_geom {
	uint32_t n_slots;     /* power of two, 2..SHMQ_SLOTS_MAX */
	uint32_t slot_size;   /* largest message, bytes */
	uint32_t slot_stride; /* bytes between slots: header + slot_size, aligned */
	uint32_t mode;	      /* SHMQ_QMODE_* */
	int32_t numa_node;    /* -1: no binding */
	uint32_t flags;	      /* SHMQ_QUEUE_F_* (1.7; zero before) */
	uint32_t max_msg; /* largest message (1.8): > slot_size goes through the arena; 0: none */
	uint32_t arena_pages; /* the arena's size in SHMQ_ARENA_PAGE units (1.8); 0 without */
};

/*
 * The large-message arena (layout 1.8): a byte ring after the slots, of
 * regions each a header and a message.  A slot with SHMQ_SLOT_LARGE
 * carries the message's length in its len and, as its payload, the
 * region's 64-bit arena position (struct shmq_slot_large).  See shm/ring.c,
 * "Large messages".
 */
#define SHMQ_ARENA_PAGE	  UINT32_C(4096)
#define SHMQ_ARENA_ALIGN  UINT32_C(64)		/* regions start and end on it */
#define SHMQ_ARENA_MAX	  (UINT32_C(1) << 31)	/* bytes: sizes fit a uint32_t */
#define SHMQ_MSG_SIZE_MAX (UINT32_C(256) << 20) /* largest max_msg: 256 MiB */

/* struct shmq_region_hdr.state (or SHMQ_OWNER_WRITING|tag, SHMQ_OWNER_READING|tag) */
#define SHMQ_REGION_FREE (UINT32_C(1) << 28) /* freed (or padding): the head may pass it */
#define SHMQ_REGION_FULL (UINT32_C(1) << 29) /* a message a slot points to */

struct shmq_region_hdr {
	_Atomic uint64_t
		start; /* 0  its arena position: names the lap, so a stale header never passes */
	_Atomic uint32_t state; /* 8  SHMQ_REGION_*, or an owner: being written / read */
	_Atomic uint32_t size;	/* 12 bytes of the region, header included, a multiple of 64 */
	_Atomic uint32_t len;	/* 16 message bytes */
	_Atomic uint32_t pos;	/* 20 the ring position of the slot that points to it */
};

struct shmq_slot_large {
	uint64_t start; /* the region's arena position (a multiple of 64) */
	uint64_t reserved;
};

/* Queue flags (struct shmq_queue_geom.flags, layout 1.7) */
#define SHMQ_QUEUE_F_JOINABLE (UINT32_C(1) << 0) /* JoinableQueue: unfinished tasks counted */

/*
 * A joinable queue's unfinished word (struct shmq_queue_shm.unfinished):
 * the count (bits 0..19) | an owner field (bits 20..30, shm/owner.h) while
 * a session is between changing the count and recording its share.
 */
#define SHMQ_QUEUE_UNFINISHED_MAX UINT32_C(0x000fffff)

struct shmq_sem_geom {
	uint32_t initial; /* value at creation */
	uint32_t max;	  /* SHMQ_SEM_BOUNDED: highest value post() may reach */
	uint32_t flags;	  /* SHMQ_SEM_* */
	uint32_t reserved[5];
};

struct shmq_event_geom {
	uint32_t initial; /* 0 clear, 1 set at creation */
	uint32_t reserved[7];
};

/* Lock flags (struct shmq_lock_geom.flags) */
#define SHMQ_LOCK_RECURSIVE (UINT32_C(1) << 0) /* an RLock: the holder may acquire again */

struct shmq_lock_geom {
	uint32_t flags; /* SHMQ_LOCK_* */
	uint32_t reserved[7];
};

/* A condition is bound to one lock: the lock's object_id (1.4). */
struct shmq_cond_geom {
	uint64_t lock_id; /* struct shmq_segment_hdr.object_id of a SHMQ_KIND_LOCK object */
	uint32_t reserved[6];
};

#define SHMQ_BARRIER_PARTIES_MAX 32767 /* the count field of the state word (1.4) */

struct shmq_barrier_geom {
	uint32_t parties; /* 1..SHMQ_BARRIER_PARTIES_MAX */
	uint32_t reserved[7];
};

/* Pipe flags (struct shmq_pipe_geom.flags, layout 1.6) */
#define SHMQ_PIPE_ONEWAY (UINT32_C(1) << 0) /* one direction: end 1 sends, end 0 receives */

/*
 * A pipe is two rings in one segment (one, if SHMQ_PIPE_ONEWAY), each with
 * this queue geometry and mode SPSC: direction e carries messages to end e.
 */
struct shmq_pipe_geom {
	uint32_t n_slots;     /* per direction: power of two, 2..SHMQ_SLOTS_MAX */
	uint32_t slot_size;   /* largest message, bytes */
	uint32_t slot_stride; /* as a queue's */
	uint32_t flags;	      /* SHMQ_PIPE_* */
	uint32_t reserved[4];
};

union shmq_geom {
	struct shmq_queue_geom queue;
	struct shmq_pipe_geom pipe;
	struct shmq_sem_geom sem;
	struct shmq_event_geom event;
	struct shmq_lock_geom lock;
	struct shmq_cond_geom cond;
	struct shmq_barrier_geom barrier;
};

struct shmq_segment_hdr {
	uint64_t magic;			      /* 0   set before publish */
	uint16_t layout_major;		      /* 8 */
	uint16_t layout_minor;		      /* 10 */
	uint16_t kind;			      /* 12  SHMQ_KIND_* */
	uint16_t hdr_size;		      /* 14  sizeof(struct shmq_segment_hdr) */
	uint64_t size;			      /* 16  bytes, whole segment */
	uint64_t created_realtime_ns;	      /* 24  CLOCK_REALTIME, for display only */
	uint32_t owner_uid;		      /* 32 */
	uint32_t owner_gid;		      /* 36 */
	uint32_t mode;			      /* 40  permission bits, 0777 mask */
	uint32_t n_sessions;		      /* 44  session records */
	uint64_t sessions_off;		      /* 48 */
	uint64_t object_off;		      /* 56  the kind's control block */
	uint64_t slots_off;		      /* 64  the area after it (a queue's slots), or 0 */
	union shmq_geom geom;		      /* 72  32 bytes, by kind */
	char name[SHMQ_NAME_MAX + 1];	      /* 104 NUL-terminated, [A-Za-z0-9._-] */
	uint64_t object_id;		      /* 168 daemon-unique, never reused */
	_Atomic uint32_t state;		      /* 176 SHMQ_SEG_*; R0: PUBLISHED written last */
	uint32_t reserved0;		      /* 180 */
	_Atomic uint64_t daemon_heartbeat_ns; /* 184 CLOCK_MONOTONIC; shmqd writes */
	/*
	 * 192 (1.9): nonzero once a publisher that skips the full fence before
	 * its sleeper check (SHMQ_ASYM_FENCE=1, shm/fence.h), or a client too
	 * old to say whether it does, has used the object: its sleepers then
	 * issue the heavy barrier.  Never cleared.
	 */
	_Atomic uint32_t asym_fence;
	/*
	 * 196 (1.10): who last sent and who last received (posted, took), as
	 * shmqd sees it on its once-a-second tick and when a handle goes: a
	 * session whose counters moved.  shmqd writes; display only (ipcs -p
	 * and -t), 0 before anyone did.
	 */
	_Atomic int32_t last_send_pid;		/* 196 */
	_Atomic int32_t last_recv_pid;		/* 200 */
	uint32_t reserved1;			/* 204 zero */
	_Atomic uint64_t last_send_realtime_ns; /* 208 CLOCK_REALTIME */
	_Atomic uint64_t last_recv_realtime_ns; /* 216 */
	uint8_t reserved[32];			/* 224 zero; room for minor additions */
};

/* struct shmq_session_shm.state */
#define SHMQ_SESSION_FREE   0
#define SHMQ_SESSION_ACTIVE 1
#define SHMQ_SESSION_DEAD   2 /* process gone, repair pending */

/* struct shmq_session_shm.role bits */
#define SHMQ_ROLE_PRODUCER (UINT32_C(1) << 0)
#define SHMQ_ROLE_CONSUMER (UINT32_C(1) << 1)
#define SHMQ_ROLE_VIEWER   (UINT32_C(1) << 2)
#define SHMQ_ROLE_SEM	   (UINT32_C(1) << 3)
#define SHMQ_ROLE_USER	   (UINT32_C(1) << 4) /* a user of a synchronisation kind (1.2) */
#define SHMQ_ROLE_END1	   (UINT32_C(1) << 5) /* pipe: holds end 1, else end 0 (1.6) */
#define SHMQ_ROLES_ALL                                                                \
	(SHMQ_ROLE_PRODUCER | SHMQ_ROLE_CONSUMER | SHMQ_ROLE_VIEWER | SHMQ_ROLE_SEM | \
	 SHMQ_ROLE_USER | SHMQ_ROLE_END1)

/*
 * Per-session counters.  Each is written only by the process that owns the
 * session (a plain load + store, never a locked RMW), so a hot path pays no
 * cross-process contention for statistics; a viewer sums the records.
 */
struct shmq_counters {
	_Atomic uint64_t sent;	   /* messages published (queues) / posts (sems) */
	_Atomic uint64_t received; /* messages taken (queues) / acquisitions (sems) */
	_Atomic uint64_t full;	   /* send found the queue full */
	_Atomic uint64_t empty;	   /* receive found the queue empty */
	_Atomic uint64_t sleeps;   /* futex waits entered */
	_Atomic uint64_t wakes;	   /* futex wakes issued */
};

/* A semaphore session's per-kind state (struct shmq_session_shm.k). */
struct shmq_sem_rec {
	_Atomic uint32_t holds;	  /* undo semaphores: tokens held */
	_Atomic uint32_t pending; /* undo: holds once the op in flight is done (shm/sem.c, U1) */
	_Atomic uint32_t waiting; /* this session's announcements in n_waiters (1.2) */
};

/*
 * A joinable queue session's per-kind state (1.7): what the daemon takes
 * off the unfinished count if the session goes (shm/ring.c, "Joinable").
 */
struct shmq_queue_rec {
	_Atomic uint32_t owed;	       /* tasks taken not done, + a put counted not published */
	_Atomic uint32_t owed_pending; /* owed once the journaled op in flight is done */
	_Atomic uint32_t put_pos;      /* position + 1 of a put counted, until published; 0 */
	_Atomic uint32_t put_owed;     /* owed once that put is published */
	_Atomic uint32_t take_pos;     /* position + 1 of a message being consumed; 0 */
	_Atomic uint32_t take_owed;    /* owed once it is consumed */
};

/* A lock session's per-kind state (1.3). */
struct shmq_lock_rec {
	_Atomic uint32_t waiting; /* this session's threads asleep (or armed) on the lock word */
};

/* A condition session's per-kind state (1.4). */
struct shmq_cond_rec {
	_Atomic uint32_t waiting; /* this session's threads counted in waiting + pending */
};

/* Words of per-kind state in a session record: bytes 72..127 (layout 1.2). */
#define SHMQ_SESSION_KIND_WORDS 14

/*
 * One attached session.  The session's tag in slot claims is its index + 1
 * (SHMQ_OWNER_* below), so a repair can find everything a dead session held.
 * The tail of the record belongs to the object's kind: what a session of
 * that kind holds, for the kind's repair on death.  Claim zeroes it.
 */
struct shmq_session_shm {
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t state; /* 0  SHMQ_SESSION_* */
	_Atomic uint32_t role;					  /* 4   SHMQ_ROLE_* */
	_Atomic int32_t pid;					  /* 8   attaching process */
	_Atomic uint32_t uid;					  /* 12 */
	_Atomic uint64_t attached_ns;				  /* 16  CLOCK_MONOTONIC */
	struct shmq_counters c;					  /* 24  owner writes */
	union {							  /* 72  by kind (1.2) */
		struct shmq_sem_rec sem;
		struct shmq_queue_rec queue;
		struct shmq_lock_rec lock;
		struct shmq_cond_rec cond;
		_Atomic uint32_t words[SHMQ_SESSION_KIND_WORDS];
	} k;
};

/*
 * Queue control block.  Each word that one side writes on its fast path has
 * a line pair of its own, so producers and consumers never false-share.
 */
struct shmq_queue_shm {
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t tail; /* 0   producers */
	_Atomic uint64_t arena_tail; /* 8   producers: arena bytes reserved, ever (1.8) */
	_Atomic uint32_t arena_lock; /* 16  the tag of the producer reserving, or 0 (1.8) */
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t head; /* 128 consumers */
	_Atomic uint64_t arena_head; /* 136 consumers: arena bytes freed, ever (1.8) */
	/* Eventcounts (futex words): bit 0 = sleepers announced, bits 1..31 = epoch. */
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t ec_recv; /* 256 receivers sleep */
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t ec_send; /* 384 senders sleep */
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t hwm;	    /* 512 deepest seen */
	_Atomic uint32_t repairs;     /* 516 slots repaired after a death */
	_Atomic uint64_t tombstones;  /* 520 tombstones skipped by receivers */
	struct shmq_counters retired; /* 528 sums of detached sessions (daemon) */
	_Atomic uint32_t shutdown;    /* 576 SHMQ_QUEUE_SHUTDOWN_* (1.5); written once or twice */
	_Atomic uint32_t unfinished;  /* 580 joinable: tasks put and not done (1.7) */
	_Atomic uint32_t ec_join;     /* 584 eventcount: join() sleeps (1.7) */
};

/* struct shmq_queue_shm.shutdown (layout 1.5): 0 open; any other value is shut down. */
#define SHMQ_QUEUE_SHUTDOWN	      UINT32_C(1) /* sends fail; receivers drain what is left */
#define SHMQ_QUEUE_SHUTDOWN_IMMEDIATE UINT32_C(2) /* sends and receives fail */

/*
 * Slot header.  In SPSC queues only len and flags are used (head and tail
 * order everything).  In the other modes `state` is the slot's turn:
 *
 *   bits 63..32  seq   position this slot is ready for: pos (empty, or being
 *                      written for pos) or pos + 1 (published / being read)
 *   bits 31..0   owner 0, or SHMQ_OWNER_WRITING|tag / SHMQ_OWNER_READING|tag
 *
 * A claim is a CAS on this one word, so who holds a slot is recorded in the
 * same atomic step that takes it: there is no window in which a slot is
 * held but its holder unknown.  See shm/ring.c.
 */
struct shmq_slot_hdr {
	_Atomic uint64_t state; /* 0 */
	_Atomic uint32_t len;	/* 8   bytes of payload, <= slot_size */
	_Atomic uint32_t flags; /* 12  SHMQ_SLOT_* */
};

#define SHMQ_OWNER_WRITING  (UINT32_C(1) << 31)
#define SHMQ_OWNER_READING  (UINT32_C(1) << 30)
#define SHMQ_OWNER_TAG_MASK UINT32_C(0x0000ffff)
#define SHMQ_OWNER_REPAIR   UINT32_C(0x0000ffff) /* the daemon, while repairing */

#define SHMQ_SLOT_TOMBSTONE   (UINT32_C(1) << 0) /* receivers skip this slot */
#define SHMQ_SLOT_REDELIVERED (UINT32_C(1) << 1) /* put back after a receiver died */
/*
 * On a slot the daemon holds (READING|SHMQ_OWNER_REPAIR) while it copies the
 * message elsewhere: the copy's slot index is in bits 8..31.  Never seen by
 * receivers; only the daemon writes or reads it (shm/ring.c, J1).
 */
#define SHMQ_SLOT_MOVED	      (UINT32_C(1) << 2)
#define SHMQ_SLOT_LARGE	      (UINT32_C(1) << 3) /* the message is in the arena (1.8) */
#define SHMQ_SLOT_MOVED_SHIFT 8

/*
 * Pipe control block (layout 1.6): a queue control block per direction --
 * dir[e] carries messages to end e, and its slots are the e-th n_slots *
 * slot_stride bytes after the block -- and whether each end has closed.
 * An end closes once (its holder closed it or died) and never reopens; its
 * close shuts the direction it sent on down with a drain, so the peer
 * reads what was sent and then end-of-file, and the direction it received
 * on down at once, so the peer's sends fail (shm/pipe.c).
 */
#define SHMQ_PIPE_CLOSED UINT32_C(1) /* struct shmq_pipe_shm.closed[e] */
struct shmq_pipe_shm {
	struct shmq_queue_shm dir[2];					/* 0, 640 */
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t closed[2];	/* 1280: 0 or CLOSED */
	alignas(SHMQ_FALSE_SHARING_ALIGN) struct shmq_counters retired; /* 1408 */
};

/* Semaphore control block. */
struct shmq_sem_shm {
	/* value is the futex word; n_waiters lets post() skip the syscall. */
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t value; /* 0 */
	_Atomic uint32_t n_waiters;				  /* 4 */
	_Atomic uint32_t repairs; /* 8  dead sessions' undo holds posted back (daemon); 1.1 */
	alignas(SHMQ_FALSE_SHARING_ALIGN) struct shmq_counters retired; /* 128 */
};

/*
 * Event control block (layout 1.2).  state is bit 0 SET and bits 1..31 a
 * generation that every set moves on, so a waiter can tell that a set
 * happened even if a clear followed before it looked (shm/event.c).
 */
struct shmq_event_shm {
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t state; /* 0  setters, clearers */
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t ec; /* 128 eventcount: waiters sleep */
	alignas(SHMQ_FALSE_SHARING_ALIGN) struct shmq_counters retired; /* 256 */
};

/*
 * Lock control block (layout 1.3).  word is the futex word: the holder's
 * owner field (bits 20..30, the session tag as in shm/owner.h) |
 * SHMQ_LOCK_DEAD | SHMQ_LOCK_WAITERS; every other bit is zero.  The
 * holder writes owner_tid and depth, on the same line, after taking word
 * (shm/lock.c).
 */
#define SHMQ_LOCK_WAITERS (UINT32_C(1) << 0) /* sleepers may be queued: release wakes one */
#define SHMQ_LOCK_DEAD	  (UINT32_C(1) << 1) /* a holder died; not yet declared consistent */
struct shmq_lock_shm {
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t word; /* 0 */
	_Atomic int32_t owner_tid;				 /* 4  the holder's thread id */
	_Atomic uint32_t depth;	     /* 8  acquisitions held (> 1: recursive only) */
	_Atomic uint32_t recoveries; /* 12 holders that died holding it (daemon) */
	alignas(SHMQ_FALSE_SHARING_ALIGN) struct shmq_counters retired; /* 128 */
};

/*
 * Condition control block (layout 1.4), changed only by holders of its lock
 * (and by the daemon's repair, with atomic read-modify-writes).  seq is the
 * futex word: every notify that finds a waiter moves it on.  waiting counts
 * waiters no notify has counted yet, pending notifications no waiter has
 * taken yet (shm/cond.c).
 */
struct shmq_cond_shm {
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint32_t seq; /* 0 */
	_Atomic uint32_t waiting;				/* 4 */
	_Atomic uint32_t pending;				/* 8 */
	_Atomic uint32_t deaths; /* 12 waiters that died waiting (daemon) */
	alignas(SHMQ_FALSE_SHARING_ALIGN) struct shmq_counters retired; /* 128 */
};

/*
 * Barrier control block (layout 1.4).  state is one 64-bit word, changed
 * by CAS only (shm/barrier.c):
 *
 *   bits  0..31  generation: moves on when a cycle ends, released or
 *                broken; the low half is the futex word waiters sleep on
 *   bits 32..46  count: parties arrived in this cycle
 *   bit  47      BROKEN: arrivals fail until a reset
 *   bits 48..63  history: bit i says whether the cycle that ended i + 1
 *                generations ago was broken (1) or released (0)
 */
#define SHMQ_BARRIER_COUNT_SHIFT   32
#define SHMQ_BARRIER_COUNT_MASK	   (UINT64_C(0x7fff) << SHMQ_BARRIER_COUNT_SHIFT)
#define SHMQ_BARRIER_BROKEN	   (UINT64_C(1) << 47)
#define SHMQ_BARRIER_HISTORY_SHIFT 48
#define SHMQ_BARRIER_HISTORY_BITS  16
struct shmq_barrier_shm {
	alignas(SHMQ_FALSE_SHARING_ALIGN) _Atomic uint64_t state; /* 0 */
	_Atomic uint32_t breaks; /* 8  cycles broken by a death (daemon) */
	alignas(SHMQ_FALSE_SHARING_ALIGN) struct shmq_counters retired; /* 128 */
};

static_assert(sizeof(struct shmq_pipe_geom) == 32, "shm ABI changed");
static_assert(sizeof(struct shmq_pipe_shm) == 1536, "shm ABI changed");
static_assert(offsetof(struct shmq_pipe_shm, dir[1]) == 640, "shm ABI changed");
static_assert(offsetof(struct shmq_pipe_shm, closed) == 1280, "shm ABI changed");
static_assert(offsetof(struct shmq_pipe_shm, retired) == 1408, "shm ABI changed");
static_assert(sizeof(struct shmq_cond_geom) == 32, "shm ABI changed");
static_assert(sizeof(struct shmq_cond_shm) == 256, "shm ABI changed");
static_assert(offsetof(struct shmq_cond_shm, deaths) == 12, "shm ABI changed");
static_assert(offsetof(struct shmq_cond_shm, retired) == 128, "shm ABI changed");
static_assert(offsetof(struct shmq_session_shm, k.cond.waiting) == 72, "shm ABI changed");
static_assert(sizeof(struct shmq_barrier_geom) == 32, "shm ABI changed");
static_assert(sizeof(struct shmq_barrier_shm) == 256, "shm ABI changed");
static_assert(offsetof(struct shmq_barrier_shm, breaks) == 8, "shm ABI changed");
static_assert(offsetof(struct shmq_barrier_shm, retired) == 128, "shm ABI changed");
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	      "a barrier's futex word is the low half of its state at offset 0");
static_assert(sizeof(struct shmq_lock_geom) == 32, "shm ABI changed");
static_assert(sizeof(struct shmq_lock_shm) == 256, "shm ABI changed");
static_assert(offsetof(struct shmq_lock_shm, recoveries) == 12, "shm ABI changed");
static_assert(offsetof(struct shmq_lock_shm, retired) == 128, "shm ABI changed");
static_assert(offsetof(struct shmq_session_shm, k.lock.waiting) == 72, "shm ABI changed");
static_assert(sizeof(struct shmq_queue_geom) == 32, "shm ABI changed");
static_assert(sizeof(struct shmq_event_geom) == 32, "shm ABI changed");
static_assert(sizeof(struct shmq_event_shm) == 384, "shm ABI changed");
static_assert(offsetof(struct shmq_event_shm, ec) == 128, "shm ABI changed");
static_assert(offsetof(struct shmq_event_shm, retired) == 256, "shm ABI changed");
static_assert(sizeof(struct shmq_sem_geom) == 32, "shm ABI changed");
static_assert(sizeof(struct shmq_segment_hdr) == 256, "shm ABI changed");
static_assert(offsetof(struct shmq_segment_hdr, geom) == 72, "shm ABI changed");
static_assert(offsetof(struct shmq_segment_hdr, name) == 104, "shm ABI changed");
static_assert(offsetof(struct shmq_segment_hdr, object_id) == 168, "shm ABI changed");
static_assert(offsetof(struct shmq_segment_hdr, state) == 176, "shm ABI changed");
static_assert(offsetof(struct shmq_segment_hdr, daemon_heartbeat_ns) == 184, "shm ABI changed");
static_assert(offsetof(struct shmq_segment_hdr, last_send_pid) == 196, "shm ABI changed");
static_assert(offsetof(struct shmq_segment_hdr, last_send_realtime_ns) == 208, "shm ABI changed");
static_assert(offsetof(struct shmq_segment_hdr, reserved) == 224, "shm ABI changed");
static_assert(sizeof(struct shmq_segment_hdr) == 256, "shm ABI changed");
static_assert(sizeof(struct shmq_counters) == 48, "shm ABI changed");
static_assert(sizeof(struct shmq_session_shm) == 128, "shm ABI changed");
static_assert(offsetof(struct shmq_session_shm, c) == 24, "shm ABI changed");
static_assert(offsetof(struct shmq_session_shm, k) == 72, "shm ABI changed");
static_assert(offsetof(struct shmq_session_shm, k.sem.holds) == 72, "shm ABI changed");
static_assert(offsetof(struct shmq_session_shm, k.sem.pending) == 76, "shm ABI changed");
static_assert(offsetof(struct shmq_session_shm, k.sem.waiting) == 80, "shm ABI changed");
static_assert(sizeof(((struct shmq_session_shm *)0)->k) == 56, "shm ABI changed");
static_assert(SHMQ_SESSIONS_MAX < (SHMQ_SEM_UNDO_OWNER_MASK >> SHMQ_SEM_UNDO_OWNER_SHIFT),
	      "an undo semaphore's owner field must hold every session tag");
static_assert(sizeof(struct shmq_queue_shm) == 640, "shm ABI changed");
static_assert(offsetof(struct shmq_queue_shm, head) == 128, "shm ABI changed");
static_assert(offsetof(struct shmq_queue_shm, ec_recv) == 256, "shm ABI changed");
static_assert(offsetof(struct shmq_queue_shm, ec_send) == 384, "shm ABI changed");
static_assert(offsetof(struct shmq_queue_shm, hwm) == 512, "shm ABI changed");
static_assert(offsetof(struct shmq_queue_shm, retired) == 528, "shm ABI changed");
static_assert(offsetof(struct shmq_queue_shm, shutdown) == 576, "shm ABI changed");
static_assert(offsetof(struct shmq_queue_shm, unfinished) == 580, "shm ABI changed");
static_assert(offsetof(struct shmq_queue_shm, arena_tail) == 8, "shm ABI changed");
static_assert(offsetof(struct shmq_queue_shm, arena_head) == 136, "shm ABI changed");
static_assert(offsetof(struct shmq_queue_shm, arena_lock) == 16, "shm ABI changed");
static_assert(sizeof(struct shmq_region_hdr) == 24, "shm ABI changed");
static_assert(sizeof(struct shmq_slot_large) == 16, "shm ABI changed");
static_assert(offsetof(struct shmq_queue_shm, ec_join) == 584, "shm ABI changed");
static_assert(offsetof(struct shmq_session_shm, k.queue.take_owed) == 92, "shm ABI changed");
static_assert(SHMQ_QUEUE_UNFINISHED_MAX < (UINT32_C(1) << SHMQ_SEM_UNDO_OWNER_SHIFT),
	      "the unfinished count stays below the owner field");
static_assert(sizeof(struct shmq_slot_hdr) == 16, "shm ABI changed");
static_assert(sizeof(struct shmq_sem_shm) == 256, "shm ABI changed");
static_assert(offsetof(struct shmq_sem_shm, repairs) == 8, "shm ABI changed");
static_assert(offsetof(struct shmq_sem_shm, retired) == 128, "shm ABI changed");

/* --- Building and attaching segments (shm/layout.c) --- */

/*
 * What a creator asks for.  shmq__segment_size() and shmq__segment_format()
 * validate it; the daemon fills it from a create request.
 */
struct shmq_segment_params {
	uint16_t kind;	      /* SHMQ_KIND_* */
	uint32_t n_sessions;  /* 1..SHMQ_SESSIONS_MAX */
	union shmq_geom geom; /* queue: n_slots, slot_size, mode, numa_node; sem: ... */
	const char *name;     /* shmq__name_is_valid() */
	uint32_t owner_uid;
	uint32_t owner_gid;
	uint32_t mode; /* permission bits */
	uint64_t object_id;
};

/*
 * Process-local copy of a validated header.  Everything here was read once
 * at attach and is never re-read from shared memory.
 */
struct shmq_segment {
	void *base;    /* mapping */
	uint64_t size; /* bytes mapped == hdr->size */
	uint16_t kind;
	uint16_t layout_minor;
	uint32_t n_sessions;
	union shmq_geom geom;
	struct shmq_segment_hdr *hdr;
	struct shmq_session_shm *sessions;
	void *object;	      /* the kind's control block (struct shmq_queue_shm, ...) */
	unsigned char *slots; /* the area after it (a queue's slots), or NULL */
	char name[SHMQ_NAME_MAX + 1];
};

/*
 * The segment's asym_fence flag (shm/fence.h), or NULL for a segment older
 * than layout 1.9, whose sleepers must assume a publisher relies on them.
 */
static inline _Atomic uint32_t *shmq__segment_asym_flag(const struct shmq_segment *seg)
{
	return seg->layout_minor >= 9 ? &seg->hdr->asym_fence : NULL;
}

bool shmq__name_is_valid(const char *name);
int shmq__segment_size(const struct shmq_segment_params *p, uint64_t *ret_size);
int shmq__segment_format(void *base, uint64_t size, const struct shmq_segment_params *p);
int shmq__segment_attach(void *base, uint64_t size, struct shmq_segment *ret_seg);
int shmq__session_claim(struct shmq_segment *seg, uint32_t role, int32_t pid, uint32_t uid,
			uint32_t *ret_index);
void shmq__session_release(struct shmq_segment *seg, uint32_t index);

/* An object's counters, summed over its records and its retired totals. */
struct shmq_counter_totals {
	uint64_t sent, received, full, empty, sleeps, wakes;
};

/* Add one record's (or a retired block's) counters to @t. */
void shmq__counters_add(struct shmq_counter_totals *t, const struct shmq_counters *c);

/*
 * The totals of @seg (relaxed loads: a snapshot for display, as
 * shmq_queue_stats() reads them; peer-written, so a sum may wrap).
 */
void shmq__segment_counters(const struct shmq_segment *seg, struct shmq_counter_totals *ret);
struct shmq_session_shm *shmq__session_at(const struct shmq_segment *seg, uint32_t index);
/*
 * Does session tag @tag (a record index + 1, never 0) name no record, or a
 * FREE one?  A holder that an owner field or a claim names, and that no
 * record backs, is a forgery or a death the repair missed.  A snapshot.
 */
bool shmq__session_tag_free(const struct shmq_segment *seg, uint32_t tag);
int shmq__segment_check(const struct shmq_segment *seg);
/*
 * shmq__segment_check(), then the kind's own invariants (struct
 * shmq_kind.check); @quiescent: no sender or receiver is attached.
 * Return: 0 or -EBADMSG.
 */
int shmq__object_check(const struct shmq_segment *seg, bool quiescent);

/* Reset a quiescent, empty queue so its next position is @origin (tests: index wrap; shm/ring.c). */
void shmq__queue_reset_origin(const struct shmq_segment *seg, uint32_t origin);

#endif /* SHMQ_SHM_LAYOUT_H */
