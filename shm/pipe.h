/* SPDX-License-Identifier: MIT */
/*
 * Pipes (multiprocessing.Pipe between processes): a named channel with two
 * ends, duplex or one-way, in one shared-memory segment of kind
 * SHMQ_KIND_PIPE (struct shmq_pipe_shm, shm/layout.h).
 *
 * DESIGN
 *
 * A pipe is not a new algorithm: it is two SPSC rings of shm/ring.c in one
 * segment, direction e carrying messages to end e, so a pipe's data path is
 * exactly a queue's, and an end is one ring to receive from and one to send
 * on.  What is new is the end's lifetime, and that is built on the ring's
 * shutdown (Python 3.13's Queue.shutdown()), which already wakes every
 * sleeper and every asynchronous waiter and is already argued:
 *
 *   closing end e  =  closed[e] = CLOSED
 *                     shutdown(dir[1 - e], drain)     the peer reads what e
 *                                                     sent, then end-of-file
 *                     shutdown(dir[e], immediate)     the peer's sends fail
 *
 * The holder closes its end when it lets go (shmq_pipe_close()); the
 * daemon closes it when the holder detaches without doing so, or dies
 * (the kind's repair), so a survivor is told -- -EPIPE on send, -EPIPE as
 * end-of-file on receive once drained -- and never waits on a dead peer.
 * Each end has at most one holder at a time (the daemon admits one
 * session per end), which is what makes both rings SPSC.  A closed end
 * stays closed: a pipe, like pipe(2)'s, is for one pair of ends.
 *
 * An end may be used by one sending thread and one receiving thread at
 * once (the two rings are independent); its counters are then approximate.
 */
#ifndef SHMQ_SHM_PIPE_H
#define SHMQ_SHM_PIPE_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/layout.h"
#include "shm/ring.h"

/* Process-local handle of one end, filled by shmq__pipe_attach(); must not be copied after. */
struct shmq_pipe {
	struct shmq_ring in;  /* dir[end]: what this end receives */
	struct shmq_ring out; /* dir[1 - end]: what it sends (unbound if it cannot send) */
	struct shmq_pipe_shm *p;
	uint32_t end; /* 0 or 1 */
	bool can_recv;
	bool can_send;
};

/* How many directions a pipe of geometry @g has: 1 one-way, 2 duplex. */
static inline uint32_t shmq__pipe_dirs(const struct shmq_pipe_geom *g)
{
	return (g->flags & SHMQ_PIPE_ONEWAY) ? 1 : 2;
}

/**
 * shmq__pipe_attach() - bind a handle to end @end of the pipe in @seg.
 * @h:		handle to fill
 * @seg:	a validated segment of kind SHMQ_KIND_PIPE
 * @session:	the caller's record index, or UINT32_MAX (tests, benchmarks)
 * @end:	0 or 1; of a one-way pipe, end 0 receives and end 1 sends
 * Return: 0; -EINVAL not a pipe, a bad @end or record.
 */
int shmq__pipe_attach(struct shmq_pipe *h, const struct shmq_segment *seg, uint32_t session,
		      uint32_t end);

/**
 * shmq__pipe_attach_ring() - bind one ring of end @end: the one it sends
 * on (@sending) or receives from.  What a transport that wants one ring
 * handle per direction uses (shmq-bench).
 * Return: 0; -EBADF the end of a one-way pipe cannot go that way;
 *         -EINVAL as shmq__pipe_attach().
 */
int shmq__pipe_attach_ring(struct shmq_ring *r, const struct shmq_segment *seg, uint32_t session,
			   uint32_t end, bool sending);

/**
 * shmq__pipe_close_end() - close end @end for good (see DESIGN): anyone
 * with a writable mapping may, its holder and the daemon do.  Idempotent.
 * Return: 1 it was open; 0 it was closed already; -EINVAL.
 */
int shmq__pipe_close_end(const struct shmq_segment *seg, uint32_t end);

/* Has end @end closed?  (A snapshot; closed ends stay closed.) */
bool shmq__pipe_end_closed(const struct shmq_segment *seg, uint32_t end);

/*
 * Wait until end @h can receive without blocking -- a message, or the
 * end-of-file of a closed peer -- and take nothing (Connection.poll()).
 * Return: 1 ready; 0 @deadline_ns passed; -EBADF the end cannot receive.
 */
int shmq__pipe_poll(struct shmq_pipe *h, uint64_t deadline_ns);

#endif /* SHMQ_SHM_PIPE_H */
