/* SPDX-License-Identifier: MIT */
/* Shared test helpers; see helpers.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "shm/futex.h"
#include "shm/ring.h"

void t_seg_new(struct t_seg *t, const struct shmq_segment_params *p)
{
	int r;

	memset(t, 0, sizeof(*t));
	r = shmq__segment_size(p, &t->size);
	cr_assert(r == 0, "segment_size: %s", strerror(-r));
	t->fd = memfd_create("shmq-test", MFD_CLOEXEC);
	cr_assert(t->fd >= 0, "memfd_create: %s", strerror(errno));
	cr_assert(ftruncate(t->fd, (off_t)t->size) == 0, "ftruncate: %s", strerror(errno));
	t->base = mmap(NULL, t->size, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
	cr_assert(t->base != MAP_FAILED, "mmap: %s", strerror(errno));
	r = shmq__segment_format(t->base, t->size, p);
	cr_assert(r == 0, "segment_format: %s", strerror(-r));
	r = shmq__segment_attach(t->base, t->size, &t->seg);
	cr_assert(r == 0, "segment_attach: %s", strerror(-r));
}

void t_seg_new_queue(struct t_seg *t, uint32_t n_slots, uint32_t slot_size, uint32_t mode)
{
	t_seg_new_queue_flags(t, n_slots, slot_size, mode, 0);
}

void t_seg_new_queue_flags(struct t_seg *t, uint32_t n_slots, uint32_t slot_size, uint32_t mode,
			   uint32_t flags)
{
	struct shmq_segment_params p = {
		.kind = SHMQ_KIND_QUEUE,
		.n_sessions = 64,
		.geom.queue = {.n_slots = n_slots,
			       .slot_size = slot_size,
			       .mode = mode,
			       .numa_node = -1,
			       .flags = flags},
		.name = "test-queue",
		.owner_uid = (uint32_t)getuid(),
		.owner_gid = (uint32_t)getgid(),
		.mode = 0600,
		.object_id = 1,
	};

	t_seg_new(t, &p);
}

void t_seg_new_sem(struct t_seg *t, uint32_t initial, uint32_t max, uint32_t flags)
{
	struct shmq_segment_params p = {
		.kind = SHMQ_KIND_SEM,
		.n_sessions = 64,
		.geom.sem = {.initial = initial, .max = max, .flags = flags},
		.name = "test-sem",
		.owner_uid = (uint32_t)getuid(),
		.owner_gid = (uint32_t)getgid(),
		.mode = 0600,
		.object_id = 2,
	};

	t_seg_new(t, &p);
}

void t_seg_new_event(struct t_seg *t, uint32_t initial)
{
	struct shmq_segment_params p = {
		.kind = SHMQ_KIND_EVENT,
		.n_sessions = 64,
		.geom.event = {.initial = initial},
		.name = "test-event",
		.owner_uid = (uint32_t)getuid(),
		.owner_gid = (uint32_t)getgid(),
		.mode = 0600,
		.object_id = 3,
	};

	t_seg_new(t, &p);
}

void t_seg_new_lock(struct t_seg *t, uint32_t flags)
{
	struct shmq_segment_params p = {
		.kind = SHMQ_KIND_LOCK,
		.n_sessions = 64,
		.geom.lock = {.flags = flags},
		.name = "test-lock",
		.owner_uid = (uint32_t)getuid(),
		.owner_gid = (uint32_t)getgid(),
		.mode = 0600,
		.object_id = 4,
	};

	t_seg_new(t, &p);
}

void t_seg_new_cond(struct t_seg *t, uint64_t lock_id)
{
	struct shmq_segment_params p = {
		.kind = SHMQ_KIND_COND,
		.n_sessions = 64,
		.geom.cond = {.lock_id = lock_id},
		.name = "test-cond",
		.owner_uid = (uint32_t)getuid(),
		.owner_gid = (uint32_t)getgid(),
		.mode = 0600,
		.object_id = 5,
	};

	t_seg_new(t, &p);
}

void t_seg_new_pipe(struct t_seg *t, uint32_t n_slots, uint32_t slot_size, uint32_t flags)
{
	struct shmq_segment_params p = {
		.kind = SHMQ_KIND_PIPE,
		.n_sessions = 64,
		.geom.pipe = {.n_slots = n_slots, .slot_size = slot_size, .flags = flags},
		.name = "test-pipe",
		.owner_uid = (uint32_t)getuid(),
		.owner_gid = (uint32_t)getgid(),
		.mode = 0600,
		.object_id = 7,
	};

	t_seg_new(t, &p);
}

void t_seg_new_barrier(struct t_seg *t, uint32_t parties)
{
	struct shmq_segment_params p = {
		.kind = SHMQ_KIND_BARRIER,
		.n_sessions = 64,
		.geom.barrier = {.parties = parties},
		.name = "test-barrier",
		.owner_uid = (uint32_t)getuid(),
		.owner_gid = (uint32_t)getgid(),
		.mode = 0600,
		.object_id = 6,
	};

	t_seg_new(t, &p);
}

uint32_t t_ring_handle(struct t_seg *t, struct shmq_ring *r, uint32_t role)
{
	uint32_t idx;

	cr_assert(shmq__session_claim(&t->seg, role, getpid(), getuid(), &idx) == 0);
	cr_assert(shmq__ring_attach(r, &t->seg, idx) == 0);
	r->spin_ns = 0;
	return idx;
}

void t_seg_free(struct t_seg *t)
{
	if (t->base && t->base != MAP_FAILED)
		munmap(t->base, t->size);
	if (t->fd >= 0 && t->base)
		close(t->fd);
	memset(t, 0, sizeof(*t));
}

uint64_t t_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void t_sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

uint64_t t_deadline_ms(uint64_t ms)
{
	return shmq__deadline_after_ns(ms * UINT64_C(1000000));
}

pid_t t_fork_peer(int (*fn)(void *arg), void *arg)
{
	pid_t pid = fork();

	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

int t_wait_peer(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

uint64_t t_stress_seconds(uint64_t dflt)
{
	const char *s = getenv("SHMQ_STRESS_SECONDS");
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return dflt;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v == 0)
		return dflt;
	return v;
}

uint64_t t_seed(void)
{
	static uint64_t seed;
	const char *s;

	if (seed)
		return seed;
	s = getenv("SHMQ_SEED");
	if (s && *s)
		seed = strtoull(s, NULL, 0);
	if (!seed)
		seed = shmq__now_ns() ^ ((uint64_t)getpid() << 32);
	fprintf(stderr, "SHMQ_SEED=%" PRIu64 "\n", seed);
	return seed;
}

uint64_t t_rand(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

uint32_t t_checksum(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint32_t h = UINT32_C(2166136261);

	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * UINT32_C(16777619);
	return h;
}
