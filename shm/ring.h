/* SPDX-License-Identifier: MIT */
/*
 * Bounded ring queue of fixed-size slots in a shared-memory segment.
 *
 * One segment holds one queue (struct shmq_queue_shm + slots, see
 * shm/layout.h).  A process attaches a struct shmq_ring handle to it; the
 * handle holds the geometry, validated once, and per-handle caches.  A handle
 * is used by one thread at a time.
 *
 * Modes (fixed at creation, SHMQ_QMODE_*):
 *   SPSC       one producer, one consumer: head/tail indices only, no slot
 *              claims; the fastest path.
 *   MPSC/SPMC  the slot-turn algorithm on the "many" side, plain index
 *              stores on the "single" side.
 *   MPMC       the slot-turn algorithm on both sides (the default).
 *
 * Messages are 0..slot_size bytes; each keeps its length.  Work-queue
 * semantics: each message goes to exactly one receiver; messages from one
 * producer are received in the order they were sent.
 *
 * Every function returns >= 0 on success or a negative errno:
 *   -EAGAIN     full (send) or empty (receive), try variants
 *   -ETIMEDOUT  the absolute deadline passed
 *   -EMSGSIZE   message larger than the largest (slot_size, or max_msg
 *               when the queue has a large-message arena)
 *   -EBADMSG    shared state failed validation (a peer corrupted the ring);
 *               the offending slot is consumed so the queue never wedges
 *   -EINVAL     misuse (e.g. commit without reserve)
 *
 * Ordering, the blocking protocol and the repair argument are at the top of
 * shm/ring.c and in docs/design.md.
 */
#ifndef SHMQ_SHM_RING_H
#define SHMQ_SHM_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "shm/fence.h"
#include "shm/layout.h"
#include "shm/owner.h"

/* Default spin budget before a blocking call sleeps in the kernel. */
#define SHMQ_SPIN_NS_DEFAULT 20000

struct shmq_ring { /* process-local; validated at attach */
	struct shmq_queue_shm *q;
	unsigned char *slots;
	struct shmq_counters *c; /* this session's counters (or a private sink) */
	uint32_t mask;		 /* n_slots - 1 */
	uint32_t slot_size;
	uint32_t slot_stride;
	uint32_t mode;	  /* SHMQ_QMODE_* */
	uint32_t tag;	  /* session index + 1: owner tag in slot claims */
	uint64_t spin_ns; /* spin budget before sleeping; 0: sleep at once */
	/* SPSC: own indices live here (the shm copy is for observers, never read back). */
	uint32_t prod_pos;	      /* producer: next position to write */
	uint32_t cons_pos;	      /* consumer: next position to read */
	struct shmq_fence_user fence; /* light barrier on publish: see shm/fence.h */
	/* Zero-copy state: at most one reservation and one peek per handle. */
	uint32_t rsv_pos;
	uint32_t peek_pos;
	bool rsv_active;
	bool peek_active;
	bool peek_claimed;		       /* peek took a tagged claim (multi-consumer modes) */
	struct shmq_counters private_counters; /* used when no session record */
	/* Joinable queues (SHMQ_QUEUE_F_JOINABLE): see "Joinable" in shm/ring.c. */
	bool joinable;
	struct shmq_queue_rec *jrec;	/* our record's share, or NULL (no record) */
	struct shmq_owner_journal join; /* on q->unfinished, over jrec->owed */
	_Atomic uint32_t tasks;		/* taken by this handle and not yet done */
	/* Large messages (layout 1.8): see "Large messages" in shm/ring.c. */
	unsigned char *arena; /* NULL: no arena */
	uint32_t arena_size;  /* bytes, a multiple of SHMQ_ARENA_PAGE */
	uint32_t max_msg;     /* the largest message: slot_size without an arena */
	uint64_t peek_start;  /* a peeked large message's region, or UINT64_MAX */
};

/*
 * Attach a handle to the queue in @seg (a validated segment of kind QUEUE).
 * @session: the caller's session record index, or UINT32_MAX for none (tests
 * and benchmarks; counters go to a private sink and claims carry tag 0xfffe).
 */
int shmq__ring_attach(struct shmq_ring *r, const struct shmq_segment *seg, uint32_t session);

/*
 * A ring that is part of a segment of another kind (a pipe's directions):
 * its control block, its slots and its geometry, which the caller took from
 * a validated segment header.
 */
struct shmq_ring_part {
	struct shmq_queue_shm *q;
	unsigned char *slots;
	uint32_t n_slots; /* power of two */
	uint32_t slot_size;
	uint32_t slot_stride;
	uint32_t mode;	      /* SHMQ_QMODE_* */
	uint32_t flags;	      /* SHMQ_QUEUE_F_* */
	unsigned char *arena; /* the large-message arena, or NULL */
	uint32_t arena_size;
	uint32_t max_msg; /* > slot_size only with an arena */
};

/* As shmq__ring_attach(), to the ring @part of @seg.  Return: 0, -EINVAL. */
int shmq__ring_attach_at(struct shmq_ring *r, const struct shmq_segment *seg, uint32_t session,
			 const struct shmq_ring_part *part);

/* The slot stride for messages of up to @slot_size bytes: header + payload, aligned. */
uint32_t shmq__ring_stride(uint32_t slot_size);

/*
 * A ring's geometry: @n_slots a power of two in 2..SHMQ_SLOTS_MAX,
 * @slot_size 1..SHMQ_SLOT_SIZE_MAX and, once @formatted, a stride of whole
 * aligned slots.  Return: 0, -EINVAL.
 */
int shmq__ring_geom_check(uint32_t n_slots, uint32_t slot_size, uint32_t slot_stride,
			  bool formatted);

/* Set the slot turns of an empty ring of @n_slots at position 0 (formatting only). */
void shmq__ring_format(unsigned char *slots, uint32_t n_slots, uint32_t slot_stride);

/* Copy one message in.  Never blocks.  Return: 0, -EAGAIN, -EMSGSIZE, -EBADMSG. */
int shmq__ring_try_send(struct shmq_ring *r, const void *msg, size_t len);

/*
 * Copy one message out into @buf (@buf_size bytes; a message longer than
 * @buf_size is consumed and -EMSGSIZE returned, so nothing is silently cut).
 * Return: the message length (>= 0), -EAGAIN, -EMSGSIZE, -EBADMSG.
 */
int shmq__ring_try_recv(struct shmq_ring *r, void *buf, size_t buf_size);

/*
 * Blocking forms: spin for r->spin_ns, then sleep on the queue's eventcount
 * until @deadline_ns (CLOCK_MONOTONIC; SHMQ_DEADLINE_NEVER to wait forever).
 * Never -EINTR.  Return: as the try forms, or -ETIMEDOUT instead of -EAGAIN.
 */
int shmq__ring_send_wait(struct shmq_ring *r, const void *msg, size_t len, uint64_t deadline_ns);

/*
 * One message gathered from @n @parts (0: an empty message), as one send:
 * a receiver sees all of it or none.  @deadline_ns 0 is the try form.
 * Return: as shmq__ring_send_wait(); -EMSGSIZE the parts sum past max_msg;
 * -EINVAL a part without a base.
 */
int shmq__ring_sendv_wait(struct shmq_ring *r, const struct iovec *parts, unsigned int n,
			  uint64_t deadline_ns);
int shmq__ring_recv_wait(struct shmq_ring *r, void *buf, size_t buf_size, uint64_t deadline_ns);

/*
 * Batch: send up to @n messages (@msgs[i].iov_base, .iov_len) and wake
 * sleepers once.  Return: number sent (0..n; 0 means full), or -EMSGSIZE if
 * msgs[0] is too large (a later oversize message stops the batch there).
 */
int shmq__ring_send_batch(struct shmq_ring *r, const struct iovec *msgs, unsigned int n);

/*
 * Batch receive into @n buffers; @msgs[i].iov_len is the buffer size on
 * entry and the message length on return.  Return: number received (0..n;
 * 0 means empty), -EBADMSG / -EMSGSIZE when the first message is bad.
 */
int shmq__ring_recv_batch(struct shmq_ring *r, struct iovec *msgs, unsigned int n);

/*
 * Blocking batches: wait (spin, then sleep, as the blocking forms) until at
 * least one message can be sent or received, then take up to @n as the
 * try batches do, with one wake-up for the lot.
 * Return: the number (1..n); -ETIMEDOUT; -EINVAL @n == 0 or a reservation
 * (peek) is open; -EMSGSIZE, -EBADMSG as the try batches.
 */
int shmq__ring_send_batch_wait(struct shmq_ring *r, const struct iovec *msgs, unsigned int n,
			       uint64_t deadline_ns);
int shmq__ring_recv_batch_wait(struct shmq_ring *r, struct iovec *msgs, unsigned int n,
			       uint64_t deadline_ns);

/*
 * Zero-copy send: reserve the next slot and get a pointer to its slot_size
 * payload bytes; fill it; commit with its length (or cancel).
 * Return: 0 and *@ret_buf; -EAGAIN full; -EINVAL a reservation is open.
 */
int shmq__ring_reserve(struct shmq_ring *r, void **ret_buf);
int shmq__ring_reserve_wait(struct shmq_ring *r, void **ret_buf, uint64_t deadline_ns);
int shmq__ring_commit(struct shmq_ring *r, size_t len); /* 0, -EMSGSIZE, -EINVAL */
int shmq__ring_cancel(struct shmq_ring *r);		/* 0, -EINVAL */

/*
 * Zero-copy receive: take the next message in place.  The slot stays owned
 * by this handle (and is re-delivered if the process dies) until release.
 * Return: message length (>= 0) and *@ret_msg; -EAGAIN; -EBADMSG; -EINVAL a
 * peek is already open.
 */
int shmq__ring_peek(struct shmq_ring *r, const void **ret_msg);
int shmq__ring_peek_wait(struct shmq_ring *r, const void **ret_msg, uint64_t deadline_ns);
int shmq__ring_release(struct shmq_ring *r); /* 0, -EINVAL */

/*
 * Asynchronous waits (libclient's io_uring waiters): the eventcount
 * protocol of the blocking calls, split so that the sleep itself can be an
 * IORING_OP_FUTEX_WAIT (or a helper thread's futex_waitv) instead of a
 * futex(2) call in this thread.  See "Asynchronous waits" in shm/ring.c.
 */
struct shmq_ring_arm {
	_Atomic uint32_t *word; /* the eventcount to wait on */
	uint32_t key;		/* sleep only while *word == key */
	bool bounded; /* no heavy barrier here: bound the sleep (SHMQ_FENCE_FALLBACK_SLICE_NS) */
};

/*
 * Would a receive (@sender false) or a send (@sender true) find work now?
 * Never announces, never consumes.  False only when the attempt would
 * return -EAGAIN; true also when it would report an error, so a caller
 * that attempts on true never sleeps on a corrupt ring.
 */
bool shmq__ring_is_ready(const struct shmq_ring *r, bool sender);

/*
 * Announce a sleeper on the eventcount of @sender's direction, run the heavy
 * barrier and re-check.  Return: 1 ready now (re-attempt; nothing to undo);
 * 0 armed: sleep on @ret->word while it holds @ret->key -- any wake-up or
 * key mismatch means "re-check", never "ready".  Nothing needs withdrawing:
 * the waiter bit is cleared by the next waker.
 */
int shmq__ring_arm(struct shmq_ring *r, bool sender, struct shmq_ring_arm *ret);

/*
 * Wait, as the blocking forms do, until shmq__ring_is_ready(@sender) holds
 * -- a message (or end-of-queue) to receive, room (or -EPIPE) to send --
 * and take nothing.  Return: 0 ready; -ETIMEDOUT.
 */
int shmq__ring_wait_ready(struct shmq_ring *r, bool sender, uint64_t deadline_ns);

/*
 * Joinable queues (multiprocessing.JoinableQueue): every message sent
 * counts as an unfinished task until a receiver that took it says it is
 * done; join waits for the count to reach zero.  A handle's task_done
 * marks one of the tasks *it* received: more calls than that is -EINVAL
 * (Python's ValueError).  If a session goes -- it closes, or dies -- the
 * tasks it took and had not finished are counted done, and a send it had
 * counted but not published is taken back, exactly (the daemon,
 * shmq__ring_join_settle()).
 */
bool shmq__ring_is_joinable(const struct shmq_ring *r);

/* Return: 0; -EINVAL this handle holds no task (or the queue is not joinable); -EBUSY. */
int shmq__ring_task_done(struct shmq_ring *r);

/* Unfinished tasks now (a snapshot). */
uint32_t shmq__ring_unfinished(const struct shmq_ring *r);

/*
 * Wait until no task is unfinished.  Return: 0; -ETIMEDOUT; -EPIPE the
 * queue was shut down immediately (what was queued will never be done);
 * -EINVAL not joinable.
 */
int shmq__ring_join(struct shmq_ring *r, uint64_t deadline_ns);

/*
 * The daemon, for session record @index of a joinable queue that is going
 * (before the ring's repair of a dead one, and again, harmlessly, at its
 * release): take what the session owed off the unfinished count, wake the
 * joiners, forget the share.  Return: the tasks taken off (>= 0).
 */
uint32_t shmq__ring_join_settle(const struct shmq_segment *seg, uint32_t index);

/*
 * The arena's offset from the start of the slots: the slots rounded up to a
 * page (a queue's geometry, or 0 bytes of slots).
 */
uint64_t shmq__ring_arena_offset(uint32_t n_slots, uint32_t slot_stride);

/*
 * The arena size for messages of up to @max_msg bytes: room for two of the
 * largest regions, so an empty arena always takes one wherever its tail is.
 * Return: bytes (a multiple of SHMQ_ARENA_PAGE), or 0 if @max_msg is too large.
 */
uint32_t shmq__ring_arena_size(uint32_t max_msg);

/*
 * The arena regions held by session @tag (or, with @tag 0, by any session
 * whose record is free: a forgery, or a death whose repair was missed) go
 * back: a region being written is freed, one being read is freed if its
 * slot was consumed and made whole again if the ring will redeliver it.
 * Run before the ring's repair (which changes the slots it reads).
 * Return: regions repaired (>= 0).
 */
uint32_t shmq__ring_arena_repair(struct shmq_ring *r, const struct shmq_segment *seg, uint32_t tag);

/* Messages queued now (a snapshot; exact when quiescent). */
uint32_t shmq__ring_depth(const struct shmq_ring *r);

/* struct shmq_ring_look.flags */
#define SHMQ_LOOK_LARGE	      (1u << 0) /* in the arena */
#define SHMQ_LOOK_BEING_READ  (1u << 1) /* a receiver holds it (not told in SPSC) */
#define SHMQ_LOOK_TOMBSTONE   (1u << 2) /* receivers skip it: a dead writer's */
#define SHMQ_LOOK_REDELIVERED (1u << 3) /* put back after a receiver died */

struct shmq_ring_look {
	uint32_t pos;	 /* its ring position */
	uint32_t len;	 /* the whole message's bytes */
	uint32_t copied; /* bytes copied into the buffer: min(len, size) */
	uint32_t flags;	 /* SHMQ_LOOK_* */
};

/*
 * shmq__ring_look() - a look at a queued message without taking it.
 * @r:		handle (a view's will do: nothing is written)
 * @i:		which: 0 the oldest message still queued, 1 the next, ...
 * @buf:	where up to @size bytes of it go
 * @ret:	what it is
 *
 * For a viewer (shmqctl peek).  The message is read in place and its turn
 * read again after: a message taken or rewritten meanwhile is -EAGAIN,
 * never torn bytes reported as a message.  Everything read is checked as
 * a peer's writes are.
 * Return: 0; -ENOENT fewer than @i + 1 messages are queued; -EAGAIN the
 * ring moved under the look (look again); -EBADMSG it does not hold
 * together (a scribbler's, or an arena message being freed).
 */
int shmq__ring_look(const struct shmq_ring *r, uint32_t i, void *buf, size_t size,
		    struct shmq_ring_look *ret);

/*
 * Validate every invariant of a quiescent ring (indices in range, every slot
 * turn consistent with head and tail, lengths <= slot_size).
 * Return: 0 or -EBADMSG.
 */
int shmq__ring_check(const struct shmq_ring *r);

/*
 * Shut the queue down (Python 3.13's Queue.shutdown()): every send fails
 * with -EPIPE from now on; receivers drain what is queued and then get
 * -EPIPE, or get it at once when @immediate.  Irreversible; a drain
 * shutdown may be made immediate later.  Every sleeper, either way, and
 * every asynchronous waiter is woken.  Any handle may do it.  Return: 0.
 */
int shmq__ring_shutdown(struct shmq_ring *r, bool immediate);

/* SHMQ_QUEUE_SHUTDOWN_* now, or 0 (a snapshot). */
uint32_t shmq__ring_shutdown_state(const struct shmq_ring *r);

/* What shmq__ring_repair_session() did. */
struct shmq_ring_repair {
	uint32_t tombstoned;  /* half-written slots completed as tombstones */
	uint32_t redelivered; /* half-read slots put back for another receiver */
};

/*
 * Repair after the process behind session tag @tag died: every slot it had
 * claimed for writing becomes a tombstone that receivers skip; every slot it
 * had claimed for reading is given back and its message re-delivered.
 * Must run only once the session is known dead (the daemon, from its pidfd).
 * Return: number of slots repaired (>= 0), or -EBADMSG.
 */
int shmq__ring_repair_session(struct shmq_ring *r, uint32_t tag, struct shmq_ring_repair *ret);

/*
 * At daemon start, finish the repairs a daemon killed mid-repair left (slots
 * held under SHMQ_OWNER_REPAIR): an unpublished copy becomes a tombstone,
 * and its original is redelivered; an original whose copy was published is
 * freed, so no message is lost or delivered twice.  Only while no other
 * repair runs (the daemon is single-threaded).
 * Return: number of slots finished (>= 0), or -EBADMSG.
 */
int shmq__ring_repair_resume(struct shmq_ring *r, struct shmq_ring_repair *ret);

#endif /* SHMQ_SHM_RING_H */
