/* SPDX-License-Identifier: MIT */
/*
 * Object kinds: the one list of them, and the descriptor each kind's
 * algorithm file provides (shm/ring.c for queues, shm/sem.c for semaphores).
 *
 * DESIGN
 *
 * Everything that is the same for every object -- the segment header, the
 * session records, formatting, attaching, validation, repair on death,
 * asynchronous waits -- is written once, and asks the kind's descriptor for
 * what differs: the size and geometry of its control block and of the area
 * after it, how to format it, its
 * invariants, what to undo when a session dies, and how to wait for it.
 * The shared code never branches on the kind; an unknown kind is -EINVAL
 * (or -EBADMSG, read from a segment) in exactly one place: shmq__kind().
 * The models are systemd's unit_vtable[], libuv's UV_HANDLE_TYPE_MAP and
 * DPDK's rte_mempool_ops.
 *
 * Adding a kind: a SHMQ_KIND_* number in shm/layout.h (an ABI constant: it
 * is stored in every segment), its geometry in union shmq_geom and its
 * control block, an entry in SHMQ_KINDS below, and its descriptor in its
 * algorithm file.  The daemon (daemon/kind.h) and the tools have tables of
 * their own keyed the same way.
 */
#ifndef SHMQ_SHM_KIND_H
#define SHMQ_SHM_KIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

/*
 * X(NAME, ident): every kind, in SHMQ_KIND_* order.  ident names the
 * descriptor shmq__kind_<ident> that the kind's algorithm file defines.
 */
#define SHMQ_KINDS(X)       \
	X(QUEUE, queue)     \
	X(SEM, sem)         \
	X(EVENT, event)     \
	X(LOCK, lock)       \
	X(COND, cond)       \
	X(BARRIER, barrier) \
	X(PIPE, pipe)

/* One higher than every SHMQ_KIND_*: the size of tables indexed by kind. */
#define SHMQ_KIND_LIMIT 8

/* What a dead session's repair did, by kind (zero where it does not apply). */
struct shmq_kind_repair {
	uint32_t tombstoned;  /* queue: half-written slots completed as tombstones */
	uint32_t redelivered; /* queue: half-read messages put back */
	uint32_t posted;      /* undo semaphore: tokens posted back */
	uint32_t waiters;     /* announced waiters dropped from a waiter count */
	uint32_t woken;	      /* eventcounts whose stale sleeper bit was cleared (a wake) */
	uint32_t recovered;   /* lock: taken back from its dead holder */
	uint32_t broken;      /* barrier: broken because a party died */
	uint32_t closed;      /* pipe: ends closed because their holder died */
	uint32_t settled;     /* joinable queue: unfinished tasks counted done */
	uint32_t regions;     /* queue: large-message arena regions given back */
};

/*
 * An asynchronous wait's arm: sleep on @word while it holds @key (an io_uring
 * FUTEX_WAIT, or a helper thread's futex_waitv).  Any wake-up or mismatch
 * means "check again", never "ready".
 */
struct shmq_kind_arm {
	_Atomic uint32_t *word;
	uint32_t key;
	bool bounded; /* no heavy barrier here: bound the sleep (shm/fence.h) */
};

/* Async wait directions (the public SHMQ_POLL_* values). */
#define SHMQ_KIND_EV_RECV 1u /* a queue has a message; a semaphore has a token */
#define SHMQ_KIND_EV_SEND 2u /* a queue has room */

struct shmq_kind {
	uint16_t id;		/* SHMQ_KIND_* */
	const char *name;	/* "queue", "semaphore": logs, JSON */
	const char *short_name; /* "queue", "sem": table columns */
	uint32_t events;	/* SHMQ_KIND_EV_* an asynchronous wait may ask for */
	const char *invariants; /* what check() validates, for reports */
	uint64_t object_size;	/* bytes of the control block */
	size_t retired_off;	/* offset of its struct shmq_counters retired */

	/*
	 * Geometry: check what a creator asks for (@formatted false) or what
	 * a segment header says (@formatted true: derived fields too).
	 * Return: 0 or -EINVAL.
	 */
	int (*geom_check)(const union shmq_geom *g, bool formatted);
	/* Fill the fields derived from the request (a queue's slot stride); may be NULL. */
	void (*geom_derive)(union shmq_geom *g);
	/* Bytes after the control block (a queue's slots); NULL: none. */
	uint64_t (*tail_size)(const union shmq_geom *g);
	/* Initialise a zeroed control block and tail before publication; may be NULL. */
	void (*format)(void *object, unsigned char *tail, const union shmq_geom *g);

	/*
	 * The kind's invariants.  @quiescent: no sender or receiver is attached
	 * (views never write), so checks that only hold at rest may run.
	 * Return: 0 or -EBADMSG.
	 */
	int (*check)(const struct shmq_segment *seg, bool quiescent);
	/*
	 * Finish or undo what the dead session record @index held.  Must run
	 * only once its process is known dead, one repair at a time.
	 * Return: > 0 something was repaired; 0 nothing held; -EBADMSG.
	 */
	int (*repair)(const struct shmq_segment *seg, uint32_t index, struct shmq_kind_repair *ret);
	/* At daemon start: finish repairs a killed daemon left half done; may be NULL. */
	int (*resume)(const struct shmq_segment *seg, struct shmq_kind_repair *ret);

	/*
	 * Bind a process-local handle (struct shmq_event, ...) to a validated
	 * segment of this kind, as session record @session (UINT32_MAX: none,
	 * a view).  NULL for kinds whose handles are bound by their own calls.
	 * Return: 0; -EINVAL.
	 */
	int (*attach)(void *handle, const struct shmq_segment *seg, uint32_t session);

	/*
	 * Asynchronous waits on a process-local handle (struct shmq_ring,
	 * struct shmq_sem): is_ready() never announces or consumes, and is
	 * false only where an attempt would return -EAGAIN.  arm() announces,
	 * re-checks and returns 1 ready, or 0 with the word to sleep on; a
	 * kind whose announcement must be withdrawn sets disarm(), which runs
	 * exactly once per arm that returned 0.
	 */
	bool (*is_ready)(const void *handle, uint32_t events);
	int (*arm)(void *handle, uint32_t events, struct shmq_kind_arm *ret);
	void (*disarm)(void *handle);
};

#define X(NAME, ident) extern const struct shmq_kind shmq__kind_##ident;
SHMQ_KINDS(X)
#undef X

/* The descriptor of @kind, or NULL: the one place an unknown kind is caught. */
const struct shmq_kind *shmq__kind(uint32_t kind);

#endif /* SHMQ_SHM_KIND_H */
