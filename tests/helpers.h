/* SPDX-License-Identifier: MIT */
/* Shared test helpers (t_ prefix): segments in memfds, deadlines, forked peers, seeds. */
#ifndef SHMQ_TESTS_HELPERS_H
#define SHMQ_TESTS_HELPERS_H

#include <stdint.h>
#include <sys/types.h>

#include "shm/layout.h"

/*
 * How many times slower a sanitizer build may be, for limits that tell a
 * wedge from a slow run: 4 under ASan or TSan, else 1.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T_SANITIZER_SLOWDOWN 4
#else
#define T_SANITIZER_SLOWDOWN 1
#endif

/* A formatted, attached segment in a memfd mapped MAP_SHARED: survives fork(). */
struct t_seg {
	struct shmq_segment seg;
	void *base;
	uint64_t size;
	int fd;
};

void t_seg_new(struct t_seg *t, const struct shmq_segment_params *p);
void t_seg_new_queue(struct t_seg *t, uint32_t n_slots, uint32_t slot_size, uint32_t mode);
/* @flags: SHMQ_QUEUE_F_* (a joinable queue) */
void t_seg_new_queue_flags(struct t_seg *t, uint32_t n_slots, uint32_t slot_size, uint32_t mode,
			   uint32_t flags);
void t_seg_new_sem(struct t_seg *t, uint32_t initial, uint32_t max, uint32_t flags);
void t_seg_new_event(struct t_seg *t, uint32_t initial);
void t_seg_new_lock(struct t_seg *t, uint32_t flags); /* SHMQ_LOCK_* */
void t_seg_new_cond(struct t_seg *t, uint64_t lock_id);
void t_seg_new_barrier(struct t_seg *t, uint32_t parties);
void t_seg_new_pipe(struct t_seg *t, uint32_t n_slots, uint32_t slot_size, uint32_t flags);
void t_seg_free(struct t_seg *t);

struct shmq_ring;
/* A ring handle on a new session record of role @role, spin 0.  Return: the record index. */
uint32_t t_ring_handle(struct t_seg *t, struct shmq_ring *r, uint32_t role);

/* Sleep @ms milliseconds (EINTR-safe). */
void t_sleep_ms(unsigned int ms);

/* CLOCK_MONOTONIC now in ns. */
uint64_t t_now_ns(void);

/* Absolute CLOCK_MONOTONIC deadline @ms from now, in ns. */
uint64_t t_deadline_ms(uint64_t ms);

/* fork(); the child runs _exit(fn(arg)).  Returns the child's pid. */
pid_t t_fork_peer(int (*fn)(void *arg), void *arg);

/* Reap @pid: its exit status 0..255, or 128 + signal number. */
int t_wait_peer(pid_t pid);

/* SHMQ_STRESS_SECONDS, else @dflt. */
uint64_t t_stress_seconds(uint64_t dflt);

/* SHMQ_SEED, else derived from the clock; printed once so a failure can be replayed. */
uint64_t t_seed(void);

/* splitmix64 step. */
uint64_t t_rand(uint64_t *state);

/* Cheap checksum of a message body (FNV-1a, 32 bits). */
uint32_t t_checksum(const void *p, size_t len);

#endif /* SHMQ_TESTS_HELPERS_H */
