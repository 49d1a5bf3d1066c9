/* SPDX-License-Identifier: MIT */
/*
 * Named C11 atomics for words shared between processes.  The ordering is the
 * first word at every call site, so a reader never has to guess what an
 * unadorned atomic_load() meant.  Internal header: never installed.
 *
 * Every shared word is _Atomic and is touched only through these helpers;
 * `volatile` is never used for synchronization.
 */
#ifndef SHMQ_SHM_ATOMIC_H
#define SHMQ_SHM_ATOMIC_H

#include <assert.h>
#include <stdatomic.h>
#include <stdint.h>

static_assert(ATOMIC_INT_LOCK_FREE == 2, "shm atomics must be lock-free");
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit shm atomics must be lock-free");

#define load_relaxed(p)	    atomic_load_explicit((p), memory_order_relaxed)
#define load_acquire(p)	    atomic_load_explicit((p), memory_order_acquire)
#define load_seq_cst(p)	    atomic_load_explicit((p), memory_order_seq_cst)
#define store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define store_seq_cst(p, v) atomic_store_explicit((p), (v), memory_order_seq_cst)

#define fetch_add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define fetch_add_seq_cst(p, v) atomic_fetch_add_explicit((p), (v), memory_order_seq_cst)
#define fetch_sub_seq_cst(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_seq_cst)
#define fetch_sub_relaxed(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_relaxed)
#define fetch_or_seq_cst(p, v)	atomic_fetch_or_explicit((p), (v), memory_order_seq_cst)
#define fetch_or_relaxed(p, v)	atomic_fetch_or_explicit((p), (v), memory_order_relaxed)
#define fetch_and_release(p, v) atomic_fetch_and_explicit((p), (v), memory_order_release)

/* Strong CAS; *expected is updated with the current value on failure. */
#define cas_acq_rel(p, expected, desired)                                                         \
	atomic_compare_exchange_strong_explicit((p), (expected), (desired), memory_order_acq_rel, \
						memory_order_acquire)
#define cas_acquire(p, expected, desired)                                                         \
	atomic_compare_exchange_strong_explicit((p), (expected), (desired), memory_order_acquire, \
						memory_order_relaxed)
#define cas_relaxed(p, expected, desired)                                                         \
	atomic_compare_exchange_strong_explicit((p), (expected), (desired), memory_order_relaxed, \
						memory_order_relaxed)
#define cas_seq_cst(p, expected, desired)                                                         \
	atomic_compare_exchange_strong_explicit((p), (expected), (desired), memory_order_seq_cst, \
						memory_order_seq_cst)

#define fence_seq_cst() atomic_thread_fence(memory_order_seq_cst)

/*
 * Single-writer counter bump: the word has exactly one writer (the owning
 * session), so a plain load + store is enough and avoids a locked RMW.
 * Readers (shmqctl) tolerate a stale value.
 */
#define counter_inc(p, n) store_relaxed((p), load_relaxed(p) + (n))

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

#endif /* SHMQ_SHM_ATOMIC_H */
