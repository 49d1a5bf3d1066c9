/* SPDX-License-Identifier: MIT */
/*
 * The queue kind in the daemon: creation limits, the single side of
 * SPSC/MPSC/SPMC queues, repair logging and PURGE.  The ring algorithm and
 * its repair are shm/ring.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "daemon/kind.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"
#include "shm/atomic.h"
#include "shm/ring.h"

static const char *const mode_names[SHMQ_QMODE_COUNT] = {"mpmc", "spsc", "mpsc", "spmc"};

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

int shmqd_ring_geom_check(const struct shmqd_config *cfg, const struct shmqd_session *s,
			  uint32_t *n_slots, uint32_t *slot_size)
{
	if (!*n_slots)
		*n_slots = cfg->default_slots;
	if (!*slot_size)
		*slot_size = cfg->default_slot_size;
	if (!is_pow2(*n_slots) || *n_slots < 2 || *n_slots > cfg->max_slots)
		return shmqd_bad(s,
				 "n_slots %" PRIu32 " is not a power of two in [2, %" PRIu32
				 "] (max-slots)",
				 *n_slots, cfg->max_slots);
	if (*slot_size > cfg->max_slot_size)
		return shmqd_bad(s, "slot_size %" PRIu32 " > %" PRIu32 " (max-slot-size)",
				 *slot_size, cfg->max_slot_size);
	return 0;
}

static int queue_create_check(const struct shmqd_config *cfg, const struct shmqd_session *s,
			      union shmq_geom *u)
{
	struct shmq_queue_geom *g = &u->queue;
	int r;

	if (g->slot_stride || g->arena_pages)
		return shmqd_bad(
			s, "queue slot_stride/arena_pages not zero (the daemon derives them)");
	if (g->flags & ~SHMQ_QUEUE_F_JOINABLE)
		return shmqd_bad(s, "unknown queue flags 0x%" PRIx32,
				 g->flags & ~SHMQ_QUEUE_F_JOINABLE);
	r = shmqd_ring_geom_check(cfg, s, &g->n_slots, &g->slot_size);
	if (r < 0)
		return r;
	if (g->mode >= SHMQ_QMODE_COUNT)
		return shmqd_bad(s, "unknown queue mode %" PRIu32, g->mode);
	if (g->numa_node < -1)
		return shmqd_bad(s, "numa_node %" PRId32, g->numa_node);
	if (g->max_msg && g->max_msg <= g->slot_size)
		g->max_msg = 0; /* every message fits a slot: no arena */
	if (g->max_msg > SHMQ_MSG_SIZE_MAX)
		return shmqd_bad(s, "max_msg %" PRIu32 " > %" PRIu32, g->max_msg,
				 SHMQ_MSG_SIZE_MAX);
	if (g->max_msg && g->slot_size < sizeof(struct shmq_slot_large))
		return shmqd_bad(s, "a queue with max_msg needs slot_size >= %zu",
				 sizeof(struct shmq_slot_large));
	return 0;
}

static void queue_shape(union shmq_geom *g)
{
	g->queue.slot_stride = 0;
	g->queue.numa_node = 0;
	g->queue.arena_pages = 0;
}

static int32_t queue_numa_node(const union shmq_geom *g)
{
	return g->queue.numa_node;
}

static void queue_describe(const struct shmqd_object *o, char *buf, size_t size)
{
	char large[48] = "";

	if (o->geom.queue.max_msg)
		snprintf(large, sizeof(large), ", messages up to %" PRIu32 " B",
			 o->geom.queue.max_msg);
	snprintf(buf, size, "%" PRIu32 " slots of %" PRIu32 " B%s, %s%s%s", o->geom.queue.n_slots,
		 o->geom.queue.slot_size, large, mode_names[o->geom.queue.mode],
		 (o->geom.queue.flags & SHMQ_QUEUE_F_JOINABLE) ? ", joinable" : "",
		 o->hugetlb ? ", huge pages" : "");
}

/* The single side of SPSC/MPSC/SPMC keeps its index privately: one at a time. */
static int queue_admit(const struct shmqd_object *o, const struct shmqd_session *s, uint32_t flags)
{
	uint32_t qmode = o->geom.queue.mode;

	if ((flags & SHMQ_OPEN_SEND) && o->n_senders &&
	    (qmode == SHMQ_QMODE_SPSC || qmode == SHMQ_QMODE_SPMC))
		return log_client_errno(LOG_DEBUG, -EBUSY,
					"pid %" PRId32 ": '%s' already has its one sender", s->pid,
					o->name);
	if ((flags & SHMQ_OPEN_RECV) && o->n_receivers &&
	    (qmode == SHMQ_QMODE_SPSC || qmode == SHMQ_QMODE_MPSC))
		return log_client_errno(LOG_DEBUG, -EBUSY,
					"pid %" PRId32 ": '%s' already has its one receiver",
					s->pid, o->name);
	return 0;
}

static void queue_log_repair(const struct shmqd_object *o, int32_t pid, const char *death,
			     uint32_t index, int r, const struct shmq_kind_repair *rep)
{
	if (r < 0)
		log_warning_errno(
			r, "queue '%s': repairing after pid %" PRId32 " (record %" PRIu32 ")",
			o->name, pid, index);
	else if (rep->tombstoned || rep->redelivered)
		log_notice("queue '%s': pid %" PRId32 " (record %" PRIu32 ") %s: %" PRIu32
			   " half-written slots tombstoned, %" PRIu32
			   " half-read messages redelivered",
			   o->name, pid, index, death ? death : "went away", rep->tombstoned,
			   rep->redelivered);
	else if (rep->regions && !rep->settled)
		log_info("queue '%s': pid %" PRId32 " (record %" PRIu32 ") %s holding %" PRIu32
			 " large-message regions; gave them back",
			 o->name, pid, index, death ? death : "went away", rep->regions);
	else if (rep->settled)
		log_info("queue '%s': pid %" PRId32 " (record %" PRIu32 ") %s holding %" PRIu32
			 " unfinished tasks; counted them done",
			 o->name, pid, index, death ? death : "went away", rep->settled);
	else if (rep->woken)
		log_debug("queue '%s': pid %" PRId32 " (record %" PRIu32 ") died asleep; cleared "
			  "its sleeper bit",
			  o->name, pid, index);
	else
		log_debug("queue '%s': pid %" PRId32 " (record %" PRIu32 ") held no slots", o->name,
			  pid, index);
}

/*
 * PURGE: take the messages out of the ring as one more consumer would, so
 * every ordering the ring documents still holds and concurrent receivers of
 * a multi-consumer queue simply race us for the same messages.  The single
 * consumer of an SPSC or MPSC queue keeps its index privately, so those are
 * refused while a receiver is attached.  At most one lap of the ring is
 * taken: what a live producer sends during the purge may stay.
 */
static int queue_purge(const struct shmqd_session *s, struct shmqd_object *o, uint64_t *ret_dropped)
{
	struct shmq_queue_shm *qs = o->seg.object;
	uint32_t n = o->geom.queue.n_slots, corrupt = 0, qmode = o->geom.queue.mode;
	uint64_t dropped = 0;
	struct shmq_ring ring;
	int r;

	if (o->n_receivers && (qmode == SHMQ_QMODE_SPSC || qmode == SHMQ_QMODE_MPSC))
		return shmqd_reject(s, LOG_INFO, -EBUSY,
				    "PURGE '%s': its one receiver is attached and owns the read "
				    "index",
				    o->name);
	r = shmq__ring_attach(&ring, &o->seg, UINT32_MAX);
	if (r < 0)
		return log_client_errno(LOG_WARNING, r, "queue '%s': attaching to purge", o->name);
	for (uint32_t i = 0; i < n; i++) {
		const void *msg;

		r = shmq__ring_peek(&ring, &msg);
		if (r == -EBADMSG) {
			corrupt++; /* take() consumed the corrupt slot */
			continue;
		}
		if (r < 0)
			break; /* -EAGAIN: empty, or the next slot is still being written */
		shmq__ring_release(&ring);
		/* A dropped task is done: join() must not wait for it (a private ring: no journal). */
		if (shmq__ring_is_joinable(&ring))
			(void)shmq__ring_task_done(&ring);
		dropped++;
	}
	/*
	 * Purged messages count as received, so sent - received still equals
	 * the depth for a viewer.  The daemon is the only writer of retired.
	 */
	counter_inc(&qs->retired.received, load_relaxed(&ring.private_counters.received));
	if (corrupt)
		log_client(LOG_WARNING, "queue '%s': purge consumed %" PRIu32 " corrupt slots",
			   o->name, corrupt);
	*ret_dropped = dropped;
	return 0;
}

/* SHUTDOWN: as any handle would (shm/ring.c); the daemon's mapping is writable. */
static int queue_shutdown(struct shmqd_object *o, bool immediate)
{
	struct shmq_ring ring;
	int r = shmq__ring_attach(&ring, &o->seg, UINT32_MAX);

	if (r < 0)
		return log_errno(r, "queue '%s': attaching to shut it down", o->name);
	return shmq__ring_shutdown(&ring, immediate);
}

/* A joinable queue's session that goes alive leaves its unfinished tasks counted done. */
static void queue_detached(struct shmqd_object *o, const struct shmqd_attach *a)
{
	uint32_t n = shmq__ring_join_settle(&o->seg, a->session_index);

	if (n)
		log_debug("queue '%s': attach %" PRIu64 " closed holding %" PRIu32
			  " unfinished tasks; counted them done",
			  o->name, a->attach_id, n);
}

/*
 * Each tick: arena regions held by a session that no record names any
 * more (a forgery, or a death whose repair could not reach them) go back,
 * so large sends never wait on them for good.
 */
static const char *queue_heartbeat(struct shmqd_object *o)
{
	struct shmq_ring ring;

	if (o->geom.queue.arena_pages && shmq__ring_attach(&ring, &o->seg, UINT32_MAX) == 0 &&
	    shmq__ring_arena_repair(&ring, &o->seg, 0))
		log_notice("queue '%s': gave back arena regions of sessions that are gone",
			   o->name);
	return NULL;
}

static uint32_t queue_check_cost(const union shmq_geom *g)
{
	return g->queue.n_slots;
}

const struct shmqd_kind shmqd_kind_queue = {
	.shm = &shmq__kind_queue,
	.open_roles = SHMQ_OPEN_SEND | SHMQ_OPEN_RECV,
	.hugepages = true,
	.invalid = "its ring indices or slot turns fail validation",
	.create_check = queue_create_check,
	.shape = queue_shape,
	.numa_node = queue_numa_node,
	.describe = queue_describe,
	.admit = queue_admit,
	.log_repair = queue_log_repair,
	.detached = queue_detached,
	.heartbeat = queue_heartbeat,
	.check_cost = queue_check_cost,
	.purge = queue_purge,
	.shutdown = queue_shutdown,
};
