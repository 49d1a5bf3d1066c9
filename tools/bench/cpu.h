/* SPDX-License-Identifier: MIT */
/* shmq-bench: pin the calling process to one CPU, for every group that measures. */
#ifndef SHMQ_BENCH_CPU_H
#define SHMQ_BENCH_CPU_H

#include <sched.h>

/* @cpu < 0: leave it.  Best effort: an unpinned run is still a valid (noisier) measurement. */
static inline void bench_pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

#endif /* SHMQ_BENCH_CPU_H */
