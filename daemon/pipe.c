/* SPDX-License-Identifier: MIT */
/*
 * The pipe kind in the daemon: creation limits (a queue's, per direction),
 * one holder per end, no reopening of a closed end, and closing an end its
 * holder let go of or died holding.  The rings and the close are
 * shm/pipe.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "daemon/kind.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"
#include "shm/atomic.h"
#include "shm/pipe.h"

static int pipe_create_check(const struct shmqd_config *cfg, const struct shmqd_session *s,
			     union shmq_geom *u)
{
	struct shmq_pipe_geom *g = &u->pipe;

	if (g->slot_stride)
		return shmqd_bad(s, "pipe slot_stride not zero");
	if (g->flags & ~SHMQ_PIPE_ONEWAY)
		return shmqd_bad(s, "unknown pipe flags 0x%" PRIx32, g->flags & ~SHMQ_PIPE_ONEWAY);
	for (size_t i = 0; i < sizeof(g->reserved) / sizeof(g->reserved[0]); i++)
		if (g->reserved[i])
			return shmqd_bad(s, "pipe reserved fields not zero");
	return shmqd_ring_geom_check(cfg, s, &g->n_slots, &g->slot_size);
}

static void pipe_describe(const struct shmqd_object *o, char *buf, size_t size)
{
	snprintf(buf, size, "%s, %" PRIu32 " slots of %" PRIu32 " B each way",
		 (o->geom.pipe.flags & SHMQ_PIPE_ONEWAY) ? "one-way" : "duplex",
		 o->geom.pipe.n_slots, o->geom.pipe.slot_size);
}

/* One holder per end (so each ring is SPSC), and a closed end stays closed. */
static int pipe_admit(const struct shmqd_object *o, const struct shmqd_session *s, uint32_t flags)
{
	uint32_t end = shmq__open_end(flags);

	if (!(flags & SHMQ_OPEN_USE))
		return 0; /* a view */
	if (o->n_ends[end])
		return log_client_errno(LOG_DEBUG, -EBUSY,
					"pid %" PRId32 ": end %" PRIu32 " of pipe '%s' is held",
					s->pid, end, o->name);
	/* The daemon's own mapping: a scribbled flag can only refuse opens. */
	if (shmq__pipe_end_closed(&o->seg, end))
		return log_client_errno(LOG_DEBUG, -EPIPE,
					"pid %" PRId32 ": end %" PRIu32 " of pipe '%s' has closed; "
					"a pipe is for one pair of ends",
					s->pid, end, o->name);
	return 0;
}

static void pipe_log_repair(const struct shmqd_object *o, int32_t pid, const char *death,
			    uint32_t index, int r, const struct shmq_kind_repair *rep)
{
	if (r < 0)
		log_warning_errno(r,
				  "pipe '%s': repairing after pid %" PRId32 " (record %" PRIu32 ")",
				  o->name, pid, index);
	else if (rep->closed)
		log_info("pipe '%s': pid %" PRId32 " %s holding end %s; closed it, the peer "
			 "reads what was sent and then end-of-file",
			 o->name, pid, death ? death : "went away",
			 (load_relaxed(&shmq__session_at(&o->seg, index)->role) & SHMQ_ROLE_END1)
				 ? "1"
				 : "0");
}

/* A holder that detached without closing (or died: the repair did it) leaves its end closed. */
static void pipe_detached(struct shmqd_object *o, const struct shmqd_attach *a)
{
	uint32_t end = shmq__open_end(a->flags);

	if (!(a->flags & SHMQ_OPEN_USE))
		return;
	if (shmq__pipe_close_end(&o->seg, end) > 0)
		log_debug("pipe '%s': closed end %" PRIu32 " for its holder", o->name, end);
}

static void pipe_shape(union shmq_geom *g)
{
	g->pipe.slot_stride = 0;
}

static uint32_t pipe_check_cost(const union shmq_geom *g)
{
	return shmq__pipe_dirs(&g->pipe) * g->pipe.n_slots;
}

const struct shmqd_kind shmqd_kind_pipe = {
	.shm = &shmq__kind_pipe,
	.open_roles = SHMQ_OPEN_USE,
	.open_roles_all = true,
	.ends = true,
	.invalid = "its rings or closed ends fail validation",
	.create_check = pipe_create_check,
	.shape = pipe_shape,
	.describe = pipe_describe,
	.admit = pipe_admit,
	.log_repair = pipe_log_repair,
	.detached = pipe_detached,
	.check_cost = pipe_check_cost,
};
