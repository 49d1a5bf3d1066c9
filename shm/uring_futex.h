/* SPDX-License-Identifier: MIT */
/*
 * io_uring futex operations on shared futex words, whatever liburing we build
 * against.
 *
 * IORING_OP_FUTEX_WAIT, _WAKE and _WAITV arrived in Linux 6.7 and liburing
 * 2.5.  Debian 12 ships liburing 2.3, whose opcode enum stops at
 * IORING_OP_SENDMSG_ZC and has no io_uring_prep_futex_*() helpers, yet the
 * kernels we run on accept the opcodes.  This header lets shm/ and libclient/
 * say shmq__uring_prep_futex_wait() and get liburing's own helper when it
 * exists, or an SQE filled by hand exactly as that helper fills it when it does
 * not.  Delete the hand-filled branch (and, eventually, the header) once the
 * oldest supported distribution ships liburing >= 2.5.
 *
 * An SQE that the header can build is not one the running kernel accepts:
 * check shmq__uring_futex_probe() before relying on these operations.
 *
 * The futex words live in memory shared with other processes, so the flags
 * never carry FUTEX2_PRIVATE: a private futex is keyed on the mm and a waker
 * in another process would never find the waiter.
 */
#ifndef SHMQ_SHM_URING_FUTEX_H
#define SHMQ_SHM_URING_FUTEX_H

#include <assert.h>
#include <liburing.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/*
 * liburing 2.4 added io_uring_version.h; 2.3 has no version macro at all, and
 * IORING_OP_FUTEX_WAIT is an enum constant, which the preprocessor cannot see.
 */
#if defined(IO_URING_VERSION_MAJOR) && defined(IO_URING_VERSION_MINOR)
#if IO_URING_VERSION_MAJOR > 2 || (IO_URING_VERSION_MAJOR == 2 && IO_URING_VERSION_MINOR >= 5)
#define SHMQ_HAVE_LIBURING_FUTEX 1
#endif
#endif

/* Kernel uapi opcode numbers (include/uapi/linux/io_uring.h, 6.7+): stable ABI. */
#define SHMQ_IORING_OP_FUTEX_WAIT  51
#define SHMQ_IORING_OP_FUTEX_WAKE  52
#define SHMQ_IORING_OP_FUTEX_WAITV 53

/* futex2 flags (include/uapi/linux/futex.h, 6.7+); Debian 12's headers predate them. */
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
#ifndef FUTEX2_PRIVATE
#define FUTEX2_PRIVATE FUTEX_PRIVATE_FLAG /* only to refuse it */
#endif

#ifdef SHMQ_HAVE_LIBURING_FUTEX
static_assert(IORING_OP_FUTEX_WAIT == SHMQ_IORING_OP_FUTEX_WAIT, "io_uring opcode moved");
static_assert(IORING_OP_FUTEX_WAKE == SHMQ_IORING_OP_FUTEX_WAKE, "io_uring opcode moved");
static_assert(IORING_OP_FUTEX_WAITV == SHMQ_IORING_OP_FUTEX_WAITV, "io_uring opcode moved");
#else
/*
 * The hand-filled SQEs rely on the 64-byte SQE layout: the 6.7 uapi's
 * futex_flags shares the op-flags union with rw_flags at offset 28, and the
 * futex value travels in off (alias addr2).  The enum's last entry anchors the
 * opcode numbering: READ_MULTISHOT (49) and WAITID (50) sit between it and
 * FUTEX_WAIT.
 */
static_assert(IORING_OP_SENDMSG_ZC == 48, "liburing opcode numbering changed");
static_assert(offsetof(struct io_uring_sqe, fd) == 4, "io_uring SQE layout changed");
static_assert(offsetof(struct io_uring_sqe, off) == 8, "io_uring SQE layout changed");
static_assert(offsetof(struct io_uring_sqe, addr) == 16, "io_uring SQE layout changed");
static_assert(offsetof(struct io_uring_sqe, len) == 24, "io_uring SQE layout changed");
static_assert(offsetof(struct io_uring_sqe, rw_flags) == 28, "io_uring SQE layout changed");
static_assert(offsetof(struct io_uring_sqe, addr3) == 48, "io_uring SQE layout changed");
#endif

/**
 * shmq__uring_prep_futex_wait() - prepare an asynchronous FUTEX_WAIT on a shared word.
 * @sqe:	SQE from io_uring_get_sqe()
 * @word:	32-bit futex word, possibly in memory shared with other processes
 * @expected:	sleep only while *@word == @expected
 * @mask:	wake bitset, 1..UINT32_MAX; FUTEX_BITSET_MATCH_ANY to accept any waker
 * @futex_flags: FUTEX2_SIZE_U32; never FUTEX2_PRIVATE
 * @op_flags:	sqe->futex_flags, reserved by the kernel: pass 0.  These are not
 *		the IOSQE_* flags; set sqe->flags after this call for those.
 *
 * The kernel compares *@word with @expected when it issues the request:
 * inside io_uring_submit(), unless the SQE waits behind a link or carries
 * IOSQE_ASYNC.  A plain FUTEX_WAKE from any process that maps the word
 * completes the request.
 *
 * Context: any thread; never blocks.  Leaves user_data and sqe->flags to the caller.
 * Return: nothing.  The CQE carries 0 when woken (re-check the word),
 *	   -EAGAIN when *@word != @expected at issue, -ECANCELED when cancelled
 *	   or timed out by a linked timeout, -EINVAL for a bad mask or flags.
 */
static inline void shmq__uring_prep_futex_wait(struct io_uring_sqe *sqe, _Atomic uint32_t *word,
					       uint32_t expected, uint64_t mask,
					       uint32_t futex_flags, unsigned int op_flags)
{
	assert(!(futex_flags & FUTEX2_PRIVATE));
#ifdef SHMQ_HAVE_LIBURING_FUTEX
	io_uring_prep_futex_wait(sqe, (uint32_t *)word, expected, mask, futex_flags, op_flags);
#else
	io_uring_prep_rw(SHMQ_IORING_OP_FUTEX_WAIT, sqe, (int)futex_flags, (const void *)word, 0,
			 expected);
	sqe->rw_flags = (int)op_flags; /* uapi 6.7: sqe->futex_flags */
	sqe->addr3 = mask;
#endif
}

/**
 * shmq__uring_prep_futex_wake() - prepare an asynchronous FUTEX_WAKE on a shared word.
 * @sqe:	SQE from io_uring_get_sqe()
 * @word:	32-bit futex word, possibly in memory shared with other processes
 * @nr_wake:	wake at most this many sleepers, 1..INT_MAX
 * @mask:	wake only sleepers whose bitset intersects this; FUTEX_BITSET_MATCH_ANY
 * @futex_flags: FUTEX2_SIZE_U32; never FUTEX2_PRIVATE
 * @op_flags:	sqe->futex_flags, reserved by the kernel: pass 0
 *
 * Wakes sleepers in shmq__futex_wait(), futex_waitv(2) and io_uring
 * FUTEX_WAIT/WAITV alike, in this process or any other.
 *
 * Context: any thread; never blocks.  Leaves user_data and sqe->flags to the caller.
 * Return: nothing.  The CQE carries the number of sleepers woken (0 when
 *	   none slept), or -EINVAL for a bad mask or flags.
 */
static inline void shmq__uring_prep_futex_wake(struct io_uring_sqe *sqe, _Atomic uint32_t *word,
					       uint32_t nr_wake, uint64_t mask,
					       uint32_t futex_flags, unsigned int op_flags)
{
	assert(!(futex_flags & FUTEX2_PRIVATE));
#ifdef SHMQ_HAVE_LIBURING_FUTEX
	io_uring_prep_futex_wake(sqe, (uint32_t *)word, nr_wake, mask, futex_flags, op_flags);
#else
	io_uring_prep_rw(SHMQ_IORING_OP_FUTEX_WAKE, sqe, (int)futex_flags, (const void *)word, 0,
			 nr_wake);
	sqe->rw_flags = (int)op_flags; /* uapi 6.7: sqe->futex_flags */
	sqe->addr3 = mask;
#endif
}

/**
 * shmq__uring_prep_futex_waitv() - prepare an asynchronous wait on several shared words.
 * @sqe:	SQE from io_uring_get_sqe()
 * @futexv:	entries built with shmq__uring_futex_waitv_entry(); the kernel copies
 *		them at submission, so they need to live only until io_uring_submit()
 *		returns (the words themselves must stay mapped until the CQE)
 * @nr_futex:	number of entries, 1..FUTEX_WAITV_MAX
 * @op_flags:	sqe->futex_flags, reserved by the kernel: pass 0
 *
 * Context: any thread; never blocks.  Leaves user_data and sqe->flags to the caller.
 * Return: nothing.  The CQE carries the index of the woken entry (re-check
 *	   all words), -EAGAIN when some word differed from its expected value
 *	   at issue, -ECANCELED when cancelled, -EINVAL for bad entries.
 */
static inline void shmq__uring_prep_futex_waitv(struct io_uring_sqe *sqe,
						struct futex_waitv *futexv, uint32_t nr_futex,
						unsigned int op_flags)
{
#ifdef SHMQ_HAVE_LIBURING_FUTEX
	io_uring_prep_futex_waitv(sqe, futexv, nr_futex, op_flags);
#else
	io_uring_prep_rw(SHMQ_IORING_OP_FUTEX_WAITV, sqe, 0, futexv, nr_futex, 0);
	sqe->rw_flags = (int)op_flags; /* uapi 6.7: sqe->futex_flags */
#endif
}

/**
 * shmq__uring_futex_waitv_entry() - one shared 32-bit entry for shmq__uring_prep_futex_waitv().
 * @word:	32-bit futex word, possibly in memory shared with other processes
 * @expected:	sleep only while *@word == @expected
 *
 * The one place a struct futex_waitv gets its flags, so no caller can ask
 * for a private futex by accident.
 *
 * Context: any thread.
 * Return: the entry.
 */
static inline struct futex_waitv shmq__uring_futex_waitv_entry(_Atomic uint32_t *word,
							       uint32_t expected)
{
	return (struct futex_waitv){
		.val = expected,
		.uaddr = (uint64_t)(uintptr_t)word,
		.flags = FUTEX2_SIZE_U32,
	};
}

/**
 * shmq__uring_futex_probe() - can this process use io_uring futex operations?
 *
 * Checks that io_uring rings can be created (neither a seccomp filter nor the
 * kernel.io_uring_disabled sysctl refuses them), that the kernel's opcode
 * probe lists IORING_OP_FUTEX_WAIT, and that a FUTEX_WAIT actually round-trips
 * on a private ring.  The kernel's answer is computed on first use and cached
 * for the life of the process; concurrent first calls wait for one prober.
 *
 * Setting the environment variable SHMQ_URING_FUTEX to "0" forces the answer
 * to 0 so that the futex_waitv helper-thread fallback can be exercised on a
 * kernel that supports the opcodes.  It is read on every call, before the
 * cache, so it takes effect even after an earlier probe.  Any other value, or
 * none, means "ask the kernel".
 *
 * Context: any thread; may block briefly (creates and destroys a ring).
 * Return: 1 supported; 0 refused by the kernel, a policy, or the environment;
 *	   -errno for an unexpected failure (-ENOMEM, -EMFILE, ...), which is
 *	   not cached, so a later call retries.
 */
int shmq__uring_futex_probe(void);

/**
 * shmq__uring_futex_probe_uncached() - ask the kernel, ignoring cache and environment.
 *
 * Context: any thread; may block briefly (creates and destroys a ring).
 * Return: as shmq__uring_futex_probe(), except that SHMQ_URING_FUTEX is ignored.
 */
int shmq__uring_futex_probe_uncached(void);

#endif /* SHMQ_SHM_URING_FUTEX_H */
