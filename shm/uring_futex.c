/* SPDX-License-Identifier: MIT */
/*
 * Runtime probe for io_uring futex operations.
 *
 * Being able to build the SQE proves nothing about the machine we run on:
 * the kernel may predate 6.7, be built without CONFIG_FUTEX, have io_uring
 * switched off (kernel.io_uring_disabled), or sit under a seccomp filter that
 * refuses io_uring_setup(2), as container runtimes commonly do.  The opcode
 * probe answers the first two, and only a real round trip answers the rest, so
 * the probe does both on a throw-away ring: it submits a FUTEX_WAIT whose
 * expected value cannot match, which a supporting kernel completes at once
 * with -EAGAIN without ever sleeping.
 *
 * A refusal is an answer (0), not an error: the caller falls back to a
 * helper thread in futex_waitv(2).  Only failures that say nothing about
 * support, such as running out of memory or file descriptors, come back as
 * -errno, and those are not cached.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "shm/atomic.h"
#include "shm/uring_futex.h"

#define PROBE_UNKNOWN (-1)
/* A FUTEX_WAIT that cannot match completes inside submit; this only bounds a broken kernel. */
#define PROBE_CQE_TIMEOUT_S 1

/* Process-local, not shared memory: holds 0, 1 or PROBE_UNKNOWN. */
static _Atomic int probe_cache = PROBE_UNKNOWN;

/*
 * One prober at a time.  Not for correctness (every prober gets the same
 * answer) but because liburing maps and unmaps the probe ring with raw
 * system calls: two threads probing one after the other on the same
 * recycled address look like a data race to ThreadSanitizer, and N threads
 * starting together need not build N rings.
 */
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;

/* Never written: FUTEX_WAIT expecting 1 on it must fail with -EAGAIN at once. */
static _Atomic uint32_t probe_word;

/* Errors by which a kernel, sysctl, LSM or seccomp filter says "not here". */
static bool is_refusal(int r)
{
	return r == -EINVAL || r == -EOPNOTSUPP || r == -EPERM || r == -EACCES || r == -ENOSYS;
}

static int probe_opcode(struct io_uring *ring)
{
	/*
	 * The kernel refuses a probe buffer that is not zeroed, and opcodes are
	 * a __u8, so 256 entries cover every kernel.  On the stack, because
	 * io_uring_get_probe_ring() would malloc and hide the errno.
	 */
	union {
		unsigned char bytes[sizeof(struct io_uring_probe) +
				    256 * sizeof(struct io_uring_probe_op)];
		struct io_uring_probe probe;
	} buf = {{0}};
	int r;

	r = io_uring_register_probe(ring, &buf.probe, 256);
	if (r < 0)
		return is_refusal(r) ? 0 : r; /* -EINVAL: kernel older than 5.6 */
	return io_uring_opcode_supported(&buf.probe, SHMQ_IORING_OP_FUTEX_WAIT);
}

static int probe_round_trip(struct io_uring *ring)
{
	struct __kernel_timespec ts = {.tv_sec = PROBE_CQE_TIMEOUT_S};
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	int r, res;

	sqe = io_uring_get_sqe(ring);
	if (!sqe)
		return -EBUSY; /* cannot happen on a fresh ring */
	shmq__uring_prep_futex_wait(sqe, &probe_word, 1, FUTEX_BITSET_MATCH_ANY, FUTEX2_SIZE_U32,
				    0);

	r = io_uring_submit(ring);
	if (r < 0)
		return is_refusal(r) ? 0 : r;

	r = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
	if (r == -ETIME)
		return -ETIMEDOUT; /* kernel parked a wait that must fail */
	if (r < 0)
		return r;
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);

	if (res == -EAGAIN)
		return 1;
	if (res < 0 && !is_refusal(res))
		return res;
	/*
	 * A refusal, or a "wake-up" on a word that never matched: either way
	 * the opcode does not mean FUTEX_WAIT here, and the fallback is safe.
	 */
	return 0;
}

int shmq__uring_futex_probe_uncached(void)
{
	struct io_uring ring;
	int r;

	r = io_uring_queue_init(2, &ring, 0);
	if (r < 0)
		return is_refusal(r) ? 0 : r;

	r = probe_opcode(&ring);
	if (r == 1)
		r = probe_round_trip(&ring);

	io_uring_queue_exit(&ring);
	return r;
}

int shmq__uring_futex_probe(void)
{
	const char *env = getenv("SHMQ_URING_FUTEX");
	int r;

	if (env && strcmp(env, "0") == 0)
		return 0;

	/* Relaxed: the cached answer publishes no other data. */
	r = load_relaxed(&probe_cache);
	if (r != PROBE_UNKNOWN)
		return r;

	pthread_mutex_lock(&probe_lock);
	r = load_relaxed(&probe_cache); /* a racing first caller may have answered */
	if (r == PROBE_UNKNOWN) {
		r = shmq__uring_futex_probe_uncached();
		if (r >= 0)
			store_relaxed(&probe_cache, r);
	}
	pthread_mutex_unlock(&probe_lock);
	return r;
}
