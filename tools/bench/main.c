/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench: measures the shmq ring against baselines in the same run on
 * the same machine, and checks the performance targets of shmq-bench(1).
 *
 * DESIGN
 *
 * What runs.  For each message size, every transport runs two scenarios
 * between two processes pinned to two CPUs (the parent on the first, the
 * child on the second):
 *   rtt   ping-pong: the parent sends, the child echoes the whole message
 *         back on a second channel.  One CLOCK_MONOTONIC read per round
 *         trip; its cost is printed and is included once in every sample.
 *   tput  one-way stream: the parent sends as fast as the transport takes
 *         messages for --seconds.  Throughput counts from the producer's
 *         first measured send to the consumer's receipt of the end marker,
 *         so messages still sitting in a full ring never count.
 * MPMC runs two producers and two consumers (one of each per CPU) on one
 * blocking queue, throughput only.  The idle check parks a receiver in
 * recv_wait with nothing arriving and reads the receiver's CPU clock.
 *
 * Fairness.  Every transport is driven through the same function-pointer
 * loops, so each pays the same call overhead, and the spin loops around the
 * try functions are identical for shmq and for the minimal ring.  Both
 * rings get the same slot count and message size.  Repetitions are
 * interleaved (rep 1 of every transport, then rep 2, ...) so that a noisy
 * moment on the host smears across transports instead of sinking one.
 * Each figure is the median of its per-repetition values; every ratio
 * divides medians of this run.
 *
 * Trust.  Each message carries its sequence number at both ends and a kind
 * (warm-up, data, stop); receivers check every message, so a broken ring
 * fails its scenario instead of producing fast nonsense.  Every wait has an
 * absolute deadline, renewed while messages flow, so a peer that makes no
 * progress for STALL_NS ends its scenario with an error however slow the
 * transport is; blocking pipe and socket calls are interrupted by a SIGALRM
 * watchdog armed at the same deadline.  The first failure kills the other
 * processes of its scenario, and children die with the parent
 * (PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "shm/atomic.h"
#include "shm/futex.h"
#include "shm/layout.h"
#include "shm/pipe.h"
#include "shm/ring.h"
#include "shmq/version.h"
#include "tools/bench/cpu.h"
#include "tools/bench/async.h"
#include "tools/bench/baselines.h"
#include "tools/bench/repair.h"
#include "tools/bench/sync.h"

#define SIZE_MIN	 32    /* room for the header and the trailing sequence number */
#define SIZE_MAX_BYTES	 65536 /* a SOCK_SEQPACKET record must fit the default sndbuf */
#define SIZES_MAX	 8
#define REPS_MAX	 50
#define ITERS_MIN	 100
#define ITERS_MAX	 10000000
#define RING_PAYLOAD_MAX (UINT32_C(4) << 20) /* caps slots for big messages */
#define SPIN_CLOCK_EVERY 4096		     /* spin iterations between deadline checks */
#define SEND_CLOCK_EVERY 64		     /* sends between end-of-phase checks */
#define NS_PER_S	 1e9

/*
 * A peer that makes no progress for STALL_NS is stuck: every wait's deadline
 * is refreshed every PROGRESS_EVERY messages, so a slow transport on a busy
 * machine is never cut off, and a stuck one ends its scenario, not the run.
 */
#define STALL_NS       (UINT64_C(10) * 1000000000)
#define PROGRESS_EVERY 4096
/* Children time out first, so that they can say where they were stuck. */
#define KILL_GRACE_NS (UINT64_C(2) * 1000000000)

#define IDLE_LIMIT_MS_PER_S 1.0 /* "~0": a thousandth of a CPU */
/* Other processes' share of the CPUs above which the figures are flagged. */
#define NOISY_LOAD 0.05

enum msg_kind {
	MSG_WARM = 1,
	MSG_DATA,
	MSG_STOP,
};

struct msg_hdr { /* first bytes of every message; the last 8 repeat seq */
	uint64_t seq;
	uint32_t kind; /* enum msg_kind */
	uint32_t producer;
};

#define GROUP_BASELINES (1u << 0)
#define GROUP_SPIN	(1u << 1)
#define GROUP_BLOCKING	(1u << 2)
#define GROUP_FUTEX	(1u << 3)
#define GROUP_MPMC	(1u << 4)
#define GROUP_API	(1u << 5)
#define GROUP_ASYNC	(1u << 6)
#define GROUP_REPAIR	(1u << 7) /* only when asked for: --only repair */
#define GROUP_SYNC	(1u << 8) /* locks against pthread (sync.h) */
#define GROUP_ALL                                                                               \
	(GROUP_BASELINES | GROUP_SPIN | GROUP_BLOCKING | GROUP_FUTEX | GROUP_MPMC | GROUP_API | \
	 GROUP_ASYNC | GROUP_SYNC)
/* The groups measured per message size; the others run once. */
#define GROUP_PER_SIZE (GROUP_ALL & ~GROUP_SYNC)

enum transport {
	TRANSPORT_MINRING,
	TRANSPORT_MINRING_FUTEX,
	TRANSPORT_PIPE,
	TRANSPORT_SOCKPAIR,
	TRANSPORT_SPIN,
	TRANSPORT_BLOCKING,
	TRANSPORT_FUTEX,
	TRANSPORT_BATCH,
	TRANSPORT_PIPE_SHMQ,
	TRANSPORT_MPMC,
	TRANSPORT_API,
	TRANSPORT_ASYNC,
	TRANSPORT_ASYNC_HELPER,
	TRANSPORT_POLLER,
	TRANSPORT_POLLER_HELPER,
	TRANSPORT_POLLER_STREAM,
	TRANSPORT_COUNT,
};

static const struct transport_info {
	const char *name;
	unsigned int group;
	bool rtt; /* has a ping-pong scenario */
	const char *about;
} transports[TRANSPORT_COUNT] = {
	[TRANSPORT_MINRING] = {"minring", GROUP_BASELINES, true,
			       "minimal SPSC ring (baselines.c), try_* in a spin loop"},
	[TRANSPORT_MINRING_FUTEX] = {"minring-futex", GROUP_BASELINES, true,
				     "minimal SPSC ring, spin 20 us then futex"},
	[TRANSPORT_PIPE] = {"pipe", GROUP_BASELINES, true,
			    "one pipe per direction, blocking read/write"},
	[TRANSPORT_SOCKPAIR] = {"socketpair", GROUP_BASELINES, true,
				"AF_UNIX SOCK_SEQPACKET pair, blocking read/write"},
	[TRANSPORT_SPIN] = {"shmq-spin", GROUP_SPIN, true,
			    "SPSC, try_send/try_recv in a spin loop"},
	[TRANSPORT_BLOCKING] = {"shmq-blocking", GROUP_BLOCKING, true,
				"SPSC, send_wait/recv_wait, spin_ns = SHMQ_SPIN_NS_DEFAULT"},
	[TRANSPORT_FUTEX] = {"shmq-futex", GROUP_FUTEX, true,
			     "SPSC, send_wait/recv_wait, spin_ns = 0 (always sleeps)"},
	[TRANSPORT_BATCH] = {"shmq-batch", GROUP_BLOCKING, false,
			     "SPSC, send_batch_wait/recv_batch_wait, up to 32 per call"},
	[TRANSPORT_PIPE_SHMQ] = {"shmq-pipe", GROUP_BLOCKING, true,
				 "a duplex pipe (one segment, two SPSC rings), send_wait/recv_wait "
				 "as shmq-blocking"},
	[TRANSPORT_MPMC] = {"shmq-mpmc-2p2c", GROUP_MPMC, false,
			    "MPMC, 2 producers + 2 consumers, blocking"},
	[TRANSPORT_API] = {"shmq-api", GROUP_API, true,
			   "SPSC created by shmqd, opened through libshmq in each process: "
			   "shmq_queue_send_wait/recv_wait"},
	[TRANSPORT_ASYNC] = {"async-uring", GROUP_ASYNC, true,
			     "SPSC, every wait an io_uring FUTEX_WAIT (waiter API), no spin"},
	[TRANSPORT_ASYNC_HELPER] = {"async-helper", GROUP_ASYNC, true,
				    "SPSC, waiter API on the helper-thread fallback, no spin"},
	[TRANSPORT_POLLER] = {"poller-uring", GROUP_ASYNC, true,
			      "SPSC, the poller: a recv future per message, io_uring FUTEX_WAIT"},
	[TRANSPORT_POLLER_HELPER] = {"poller-helper", GROUP_ASYNC, true,
				     "SPSC, the poller on the helper-thread fallback"},
	[TRANSPORT_POLLER_STREAM] = {"poller-stream", GROUP_ASYNC, false,
				     "SPSC, a blocking producer ahead of a consumer that awaits "
				     "one poller recv future per message"},
};

static const struct {
	const char *name;
	unsigned int group;
} groups[] = {
	{"baselines", GROUP_BASELINES}, {"spin", GROUP_SPIN},	  {"blocking", GROUP_BLOCKING},
	{"futex", GROUP_FUTEX},		{"mpmc", GROUP_MPMC},	  {"api", GROUP_API},
	{"async", GROUP_ASYNC},		{"repair", GROUP_REPAIR}, {"sync", GROUP_SYNC},
};

struct opts {
	uint32_t sizes[SIZES_MAX];
	unsigned int n_sizes;
	unsigned int reps;
	double seconds;	   /* measured part of each throughput run */
	uint32_t iters;	   /* measured round trips per rtt run */
	unsigned int only; /* GROUP_* */
	bool json;
	bool strict;
	double idle_seconds;
	const char *shmqd; /* api: the daemon to start; NULL: next to this program */
};

/* One child's report, in memory shared with the parent. */
struct proc_result {
	int err; /* 0, or the -errno the child failed with */
	char what[200];
	uint64_t count;	     /* data messages sent (producer) / received (consumer) */
	uint64_t t_start_ns; /* producer: first measured send */
	uint64_t t_end_ns;   /* consumer: end marker received */
	uint64_t cpu_ns;     /* idle check; rtt: the measured round trips */
	int backend;	     /* rtt, async transports: SHMQ__BACKEND_* */
	uint64_t wall_ns;
	uint64_t sleeps;
};

#define PROCS_MAX 4

struct shared_page {
	struct proc_result res[PROCS_MAX];
	_Atomic uint32_t producers_done; /* MPMC: the last one sends the end markers */
};

/* Everything one scenario's processes share; children inherit a copy at fork. */
struct chan {
	void *map[2]; /* rings: [0] parent -> child, [1] child -> parent */
	size_t map_size[2];
	int fd_parent[2]; /* pipes/sockets: [0] receive, [1] send; -1 unused */
	int fd_child[2];
};

struct run {
	enum transport t;
	uint32_t size;
	uint32_t n_slots;
	struct chan ch;
	uint64_t warm_end_ns; /* tput: first measured send */
	uint64_t stop_ns;     /* tput: producers stop; idle: the wait ends */
	uint32_t warm_iters;  /* rtt */
	uint32_t iters;
	uint64_t idle_ns;
	unsigned int n_producers;
	unsigned int n_consumers;
};

/* The batch transport's side of an endpoint: messages gathered, or received, per call. */
#define BATCH_MAX 128
struct batch {
	struct iovec iov[BATCH_MAX];
	unsigned int n, at; /* gathered (send) or received (recv); next to hand out */
	size_t size;	    /* bytes per buffer */
	unsigned char *buf; /* BATCH_MAX buffers */
};

struct endpoint {
	int (*send)(struct endpoint *e, const void *msg, size_t len, uint64_t deadline_ns);
	int (*recv)(struct endpoint *e, void *buf, size_t len, uint64_t deadline_ns);
	struct shmq_ring ring;
	struct batch *batch;
	struct shmq_minring mr;
	int fd;
	struct shmq_client *client; /* api: this process's own connection */
	struct shmq_queue *q;
	struct bench_async async; /* async transports */
};

struct cell {			 /* one transport at one size */
	double rtt[3][REPS_MAX]; /* p50, p99, p99.9 in ns, per rep */
	double mps[REPS_MAX];	 /* messages per second, per rep */
	unsigned int n_rtt, n_mps;
	double rtt_med[3]; /* medians; NAN when not measured */
	double mps_med;
	bool failed;
	double cpu[REPS_MAX]; /* rtt: CPU ns of both processes per round trip */
	unsigned int n_cpu;
	double cpu_med;
	int backend; /* async transports: the SHMQ__BACKEND_* they got */
};

/*
 * CPU time spent by everyone else while we measured: the figures, throughput
 * above all, are only as good as the machine was quiet.
 */
struct load_snap {
	uint64_t busy_ticks; /* /proc/stat: user, nice, system, irq, softirq */
	uint64_t steal_ticks;
	uint64_t total_ticks;
	uint64_t ours_us; /* getrusage: this process and its reaped children */
};

struct load {
	double other; /* fraction of all CPUs used by other processes; NAN: unknown */
	double steal; /* fraction taken by the hypervisor */
};

struct geometry {
	uint32_t n_slots;
	uint32_t shmq_stride;
	uint64_t shmq_bytes;
	uint64_t minring_bytes;
	struct load load; /* while this size was measured */
};

struct target {
	const char *what;
	double value; /* NAN: not measured (SKIP) */
	double limit;
	bool at_most;
	char detail[96];
};

#define TARGETS_MAX 24

static struct bench {
	struct opts o;
	uint64_t start_ns;
	int cpus[2];
	bool pinned;
	double clock_ns;
	struct shared_page *sp;
	uint64_t *samples;
	unsigned char *buf_out;
	unsigned char *buf_in;
	struct cell cells[SIZES_MAX][TRANSPORT_COUNT];
	struct geometry geo[SIZES_MAX];
	bool idle_done;
	double idle_cpu_ms_per_s;
	double idle_wall_s;
	uint64_t idle_sleeps;
	struct target targets[TARGETS_MAX];
	unsigned int n_targets;
	unsigned int target_size;
	unsigned int errors;
	struct load_snap run_start;
	struct load load; /* whole run */
	/* api: a private shmqd on a temporary socket, and the parent's client. */
	pid_t shmqd_pid;
	char api_dir[64];
	char api_socket[108];
	struct shmq_client *api_client;
	unsigned int api_seq;
	char api_name[2][SHMQ_NAME_MAX + 1];
	cpu_set_t all_cpus; /* before pinning: the daemon runs unpinned */
	/* repair: per kind, medians over reps of p50 and p99, max of all deaths */
	double repair_p50[BENCH_REPAIR_COUNT];
	double repair_p99[BENCH_REPAIR_COUNT];
	double repair_max[BENCH_REPAIR_COUNT];
	bool repair_failed[BENCH_REPAIR_COUNT];
	unsigned int repair_deaths; /* per kind and rep */
	/* sync: per case and implementation, medians over reps */
	double sync_ns[BENCH_SYNC_COUNT][BENCH_SYNC_IMPLS];
	double sync_handoff[BENCH_SYNC_COUNT][BENCH_SYNC_IMPLS];
	uint32_t sync_iters[BENCH_SYNC_COUNT];
} bench;

/* --- Small helpers --- */

static __attribute__((format(printf, 3, 4))) int fail(struct proc_result *res, int r,
						      const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(res->what, sizeof(res->what), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(res->what))
		snprintf(res->what + n, sizeof(res->what) - (size_t)n, ": %s", strerror(-r));
	res->err = r;
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank on sorted samples: the smallest value with >= q of them at or below. */
static double percentile(const uint64_t *sorted, uint32_t n, double q)
{
	uint32_t rank = (uint32_t)ceil(q * n);

	return (double)sorted[rank > 0 ? rank - 1 : 0];
}

static double median(const double *v, unsigned int n)
{
	double tmp[REPS_MAX];

	if (n == 0)
		return NAN;
	memcpy(tmp, v, n * sizeof(*v));
	qsort(tmp, n, sizeof(*tmp), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static uint32_t slots_for(uint32_t size)
{
	uint32_t n = 1024;

	while (n > 8 && (uint64_t)n * size > RING_PAYLOAD_MAX)
		n /= 2;
	return n;
}

static size_t page_round(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (n + page - 1) / page * page;
}

static void close_pair(int fd[2])
{
	if (fd[0] >= 0)
		close(fd[0]);
	if (fd[1] >= 0 && fd[1] != fd[0])
		close(fd[1]);
	fd[0] = fd[1] = -1;
}

static void load_snap(struct load_snap *ret)
{
	unsigned long long v[8] = {0};
	struct rusage self, children;
	FILE *f = fopen("/proc/stat", "re");

	*ret = (struct load_snap){0};
	if (f) {
		/* cpu user nice system idle iowait irq softirq steal */
		if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			   &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
			ret->busy_ticks = v[0] + v[1] + v[2] + v[5] + v[6];
			ret->steal_ticks = v[7];
			ret->total_ticks = ret->busy_ticks + v[3] + v[4] + v[7];
		}
		fclose(f);
	}
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &children);
	ret->ours_us = (uint64_t)(self.ru_utime.tv_sec + self.ru_stime.tv_sec +
				  children.ru_utime.tv_sec + children.ru_stime.tv_sec) *
			       1000000 +
		       (uint64_t)(self.ru_utime.tv_usec + self.ru_stime.tv_usec +
				  children.ru_utime.tv_usec + children.ru_stime.tv_usec);
}

static struct load load_between(const struct load_snap *a, const struct load_snap *b)
{
	double hz = (double)sysconf(_SC_CLK_TCK), total = (double)(b->total_ticks - a->total_ticks);
	double busy = (double)(b->busy_ticks - a->busy_ticks) / hz;
	double ours = (double)(b->ours_us - a->ours_us) / 1e6;
	struct load l = {NAN, NAN};

	if (total <= 0 || hz <= 0)
		return l;
	/* Tick accounting is coarse: clamp the small negative our own share can leave. */
	l.other = busy > ours ? (busy - ours) / (total / hz) : 0;
	l.steal = (double)(b->steal_ticks - a->steal_ticks) / total;
	return l;
}

static bool load_noisy(const struct load *l)
{
	return !isnan(l->other) && (l->other > NOISY_LOAD || l->steal > NOISY_LOAD);
}

/* --- Watchdog --- */

/* Only interrupts a blocking call; the interrupted loop checks its deadline. */
static void on_alarm(int sig)
{
	(void)sig;
}

static void watchdog_arm(uint64_t deadline_ns)
{
	uint64_t now = shmq__now_ns();
	/* Rounded up, and never 0 (which would disarm the timer). */
	uint64_t left_us = (deadline_ns > now ? deadline_ns - now : 0) / 1000 + 1;
	struct itimerval it = {
		.it_value = {.tv_sec = (time_t)(left_us / 1000000),
			     .tv_usec = (suseconds_t)(left_us % 1000000)},
		/* Repeats, in case the first signal lands just before a call blocks. */
		.it_interval = {.tv_sec = 0, .tv_usec = 20000},
	};

	(void)setitimer(ITIMER_REAL, &it, NULL);
}

static void watchdog_disarm(void)
{
	struct itimerval it = {0};

	(void)setitimer(ITIMER_REAL, &it, NULL);
}

/* The deadline for the next PROGRESS_EVERY messages' waits. */
static uint64_t stall_deadline(void)
{
	uint64_t deadline_ns = shmq__now_ns() + STALL_NS;

	watchdog_arm(deadline_ns);
	return deadline_ns;
}

/* --- Messages --- */

static void msg_stamp(unsigned char *m, uint32_t size, uint64_t seq, uint32_t kind,
		      uint32_t producer)
{
	struct msg_hdr h = {.seq = seq, .kind = kind, .producer = producer};

	memcpy(m, &h, sizeof(h));
	memcpy(m + size - sizeof(seq), &seq, sizeof(seq));
}

/* Return: 0 and *@ret for a well-formed message of @size bytes, else -EBADMSG. */
static int msg_read(const unsigned char *m, int len, uint32_t size, struct msg_hdr *ret)
{
	uint64_t trailer;

	if (len != (int)size)
		return -EBADMSG;
	memcpy(ret, m, sizeof(*ret));
	memcpy(&trailer, m + size - sizeof(trailer), sizeof(trailer));
	if (trailer != ret->seq || ret->kind < MSG_WARM || ret->kind > MSG_STOP)
		return -EBADMSG;
	return 0;
}

/* --- Transports: one send and one receive function each --- */

static int ring_spin_send(struct endpoint *e, const void *msg, size_t len, uint64_t deadline_ns)
{
	unsigned int n = 0;
	int r;

	while ((r = shmq__ring_try_send(&e->ring, msg, len)) == -EAGAIN) {
		if (++n % SPIN_CLOCK_EVERY == 0 && shmq__now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		cpu_relax();
	}
	return r;
}

static int ring_spin_recv(struct endpoint *e, void *buf, size_t len, uint64_t deadline_ns)
{
	unsigned int n = 0;
	int r;

	while ((r = shmq__ring_try_recv(&e->ring, buf, len)) == -EAGAIN) {
		if (++n % SPIN_CLOCK_EVERY == 0 && shmq__now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		cpu_relax();
	}
	return r;
}

static int async_send(struct endpoint *e, const void *msg, size_t len, uint64_t deadline_ns)
{
	return bench_async_send(&e->async, msg, len, deadline_ns);
}

static int async_recv(struct endpoint *e, void *buf, size_t len, uint64_t deadline_ns)
{
	return bench_async_recv(&e->async, buf, len, deadline_ns);
}

static uint64_t cpu_now_ns(void)
{
	struct timespec ts;

	/* The whole process: the helper-thread fallback's thread counts too. */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int api_send(struct endpoint *e, const void *msg, size_t len, uint64_t deadline_ns)
{
	return shmq_queue_send_wait(e->q, msg, len, deadline_ns);
}

static int api_recv(struct endpoint *e, void *buf, size_t len, uint64_t deadline_ns)
{
	return shmq_queue_recv_wait(e->q, buf, len, deadline_ns);
}

static int ring_wait_send(struct endpoint *e, const void *msg, size_t len, uint64_t deadline_ns)
{
	return shmq__ring_send_wait(&e->ring, msg, len, deadline_ns);
}

static int ring_wait_recv(struct endpoint *e, void *buf, size_t len, uint64_t deadline_ns)
{
	return shmq__ring_recv_wait(&e->ring, buf, len, deadline_ns);
}

static int batch_flush(struct endpoint *e, uint64_t deadline_ns)
{
	struct batch *b = e->batch;

	for (unsigned int done = 0; done < b->n;) {
		int r = shmq__ring_send_batch_wait(&e->ring, b->iov + done, b->n - done,
						   deadline_ns);

		if (r < 0)
			return r;
		done += (unsigned int)r;
	}
	b->n = 0;
	return 0;
}

/* Gather; send the lot when full, and at an end marker (it must not wait behind nothing). */
static int batch_send(struct endpoint *e, const void *msg, size_t len, uint64_t deadline_ns)
{
	struct batch *b = e->batch;
	struct msg_hdr h;

	memcpy(b->buf + b->n * b->size, msg, len);
	b->iov[b->n] = (struct iovec){b->buf + b->n * b->size, len};
	b->n++;
	if (b->n == BATCH_MAX ||
	    (msg_read(msg, (int)len, (uint32_t)b->size, &h) == 0 && h.kind == MSG_STOP))
		return batch_flush(e, deadline_ns);
	return 0;
}

static int batch_recv(struct endpoint *e, void *buf, size_t len, uint64_t deadline_ns)
{
	struct batch *b = e->batch;
	size_t n;

	if (b->at == b->n) {
		int r;

		for (unsigned int i = 0; i < BATCH_MAX; i++)
			b->iov[i] = (struct iovec){b->buf + i * b->size, b->size};
		r = shmq__ring_recv_batch_wait(&e->ring, b->iov, BATCH_MAX, deadline_ns);
		if (r < 0)
			return r;
		b->n = (unsigned int)r;
		b->at = 0;
	}
	n = b->iov[b->at].iov_len < len ? b->iov[b->at].iov_len : len;
	memcpy(buf, b->iov[b->at].iov_base, n);
	b->at++;
	return (int)n;
}

static int mr_spin_send(struct endpoint *e, const void *msg, size_t len, uint64_t deadline_ns)
{
	unsigned int n = 0;
	int r;

	(void)len; /* fixed-size ring */
	while ((r = shmq__minring_try_send(&e->mr, msg)) == -EAGAIN) {
		if (++n % SPIN_CLOCK_EVERY == 0 && shmq__now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		cpu_relax();
	}
	return r;
}

static int mr_spin_recv(struct endpoint *e, void *buf, size_t len, uint64_t deadline_ns)
{
	unsigned int n = 0;
	int r;

	while ((r = shmq__minring_try_recv(&e->mr, buf)) == -EAGAIN) {
		if (++n % SPIN_CLOCK_EVERY == 0 && shmq__now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		cpu_relax();
	}
	return r < 0 ? r : (int)len;
}

static int mr_wait_send(struct endpoint *e, const void *msg, size_t len, uint64_t deadline_ns)
{
	(void)len;
	return shmq__minring_send_wait(&e->mr, msg, deadline_ns);
}

static int mr_wait_recv(struct endpoint *e, void *buf, size_t len, uint64_t deadline_ns)
{
	int r = shmq__minring_recv_wait(&e->mr, buf, deadline_ns);

	return r < 0 ? r : (int)len;
}

static int fd_send(struct endpoint *e, const void *msg, size_t len, uint64_t deadline_ns)
{
	return shmq__fdmsg_send(e->fd, msg, len, deadline_ns);
}

static int fd_recv(struct endpoint *e, void *buf, size_t len, uint64_t deadline_ns)
{
	return shmq__fdmsg_recv(e->fd, buf, len, deadline_ns);
}

/* --- Channels (before fork) and endpoints (after) --- */

static int shm_create(size_t size, void **ret_map)
{
	void *p;
	int fd, r = 0;

	fd = memfd_create("shmq-bench", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		r = -errno;
	p = r < 0 ? MAP_FAILED
		  : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (r == 0 && p == MAP_FAILED)
		r = -errno;
	close(fd); /* the mapping keeps the memory alive */
	if (r == 0)
		*ret_map = p;
	return r;
}

static void queue_params(struct shmq_segment_params *p, uint32_t size, uint32_t n_slots,
			 uint32_t mode)
{
	*p = (struct shmq_segment_params){
		.kind = SHMQ_KIND_QUEUE,
		.n_sessions = PROCS_MAX,
		.geom.queue = {.n_slots = n_slots,
			       .slot_size = size,
			       .mode = mode,
			       .numa_node = -1},
		.name = "shmq-bench",
		.owner_uid = (uint32_t)getuid(),
		.owner_gid = (uint32_t)getgid(),
		.mode = 0600,
		.object_id = 1,
	};
}

static void chan_close(struct chan *ch)
{
	for (unsigned int d = 0; d < 2; d++) {
		if (ch->map[d])
			munmap(ch->map[d], ch->map_size[d]);
		ch->map[d] = NULL;
	}
	close_pair(ch->fd_parent);
	close_pair(ch->fd_child);
	for (unsigned int d = 0; d < 2; d++) {
		if (bench.api_name[d][0] && getpid() != bench.shmqd_pid && bench.api_client)
			(void)shmq_unlink(bench.api_client, bench.api_name[d]);
		bench.api_name[d][0] = '\0';
	}
}

static int chan_open(struct run *run, unsigned int n_dirs)
{
	struct chan *ch = &run->ch;
	struct shmq_segment_params p;
	uint64_t size;
	int fds[2], r = 0;

	memset(ch, 0, sizeof(*ch));
	ch->fd_parent[0] = ch->fd_parent[1] = ch->fd_child[0] = ch->fd_child[1] = -1;

	switch (run->t) {
	case TRANSPORT_PIPE:
		if (pipe2(fds, O_CLOEXEC) < 0)
			return -errno;
		ch->fd_child[0] = fds[0];
		ch->fd_parent[1] = fds[1];
		if (n_dirs == 2) {
			if (pipe2(fds, O_CLOEXEC) < 0) {
				r = -errno;
				chan_close(ch);
				return r;
			}
			ch->fd_parent[0] = fds[0];
			ch->fd_child[1] = fds[1];
		}
		return 0;
	case TRANSPORT_SOCKPAIR:
		/* One bidirectional pair, as a real request/reply user would have. */
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
			return -errno;
		ch->fd_parent[0] = ch->fd_parent[1] = fds[0];
		ch->fd_child[0] = ch->fd_child[1] = fds[1];
		return 0;
	case TRANSPORT_MINRING:
	case TRANSPORT_MINRING_FUTEX:
		for (unsigned int d = 0; d < n_dirs && r == 0; d++) {
			ch->map_size[d] = page_round(shmq__minring_size(run->n_slots, run->size));
			r = shm_create(ch->map_size[d], &ch->map[d]);
			if (r == 0)
				shmq__minring_format(ch->map[d]);
		}
		break;
	case TRANSPORT_API:
		/* The daemon creates the queues; each process opens its own end. */
		for (unsigned int d = 0; d < n_dirs && r == 0; d++) {
			struct shmq_queue_attr a = {.size = sizeof(a),
						    .n_slots = run->n_slots,
						    .slot_size = run->size,
						    .mode = SHMQ_SPSC};
			struct shmq_queue *q;

			snprintf(bench.api_name[d], sizeof(bench.api_name[d]), "bench-%d-%u-%u",
				 (int)getpid(), bench.api_seq, d);
			r = shmq_queue_open(bench.api_client, bench.api_name[d],
					    SHMQ_CREATE | SHMQ_EXCL | SHMQ_VIEW, &a, &q);
			if (r == 0)
				shmq_queue_close(q);
		}
		bench.api_seq++;
		break;
	case TRANSPORT_PIPE_SHMQ:
		/* One segment for both directions, whatever n_dirs: the parent is end 0. */
		p = (struct shmq_segment_params){
			.kind = SHMQ_KIND_PIPE,
			.n_sessions = PROCS_MAX,
			.geom.pipe = {.n_slots = run->n_slots, .slot_size = run->size},
			.name = "shmq-bench",
			.owner_uid = (uint32_t)getuid(),
			.owner_gid = (uint32_t)getgid(),
			.mode = 0600,
			.object_id = 1,
		};
		r = shmq__segment_size(&p, &size);
		if (r == 0) {
			ch->map_size[0] = size;
			r = shm_create(size, &ch->map[0]);
		}
		if (r == 0)
			r = shmq__segment_format(ch->map[0], size, &p);
		break;
	default:
		queue_params(&p, run->size, run->n_slots,
			     run->t == TRANSPORT_MPMC ? SHMQ_QMODE_MPMC : SHMQ_QMODE_SPSC);
		r = shmq__segment_size(&p, &size);
		for (unsigned int d = 0; d < n_dirs && r == 0; d++) {
			ch->map_size[d] = size;
			r = shm_create(size, &ch->map[d]);
			if (r == 0)
				r = shmq__segment_format(ch->map[d], size, &p);
		}
		break;
	}
	if (r < 0)
		chan_close(ch);
	return r;
}

static int endpoint_open(struct endpoint *e, const struct run *run, unsigned int dir, bool sending,
			 bool in_child)
{
	const struct chan *ch = &run->ch;
	struct shmq_segment seg;
	bool futex;
	int r;

	memset(e, 0, sizeof(*e));
	e->fd = -1;
	switch (run->t) {
	case TRANSPORT_MINRING:
	case TRANSPORT_MINRING_FUTEX:
		futex = run->t == TRANSPORT_MINRING_FUTEX;
		shmq__minring_attach(&e->mr, ch->map[dir], run->n_slots, run->size,
				     futex ? SHMQ_SPIN_NS_DEFAULT : 0);
		e->send = futex ? mr_wait_send : mr_spin_send;
		e->recv = futex ? mr_wait_recv : mr_spin_recv;
		return 0;
	case TRANSPORT_PIPE:
	case TRANSPORT_SOCKPAIR:
		e->fd = in_child ? ch->fd_child[sending] : ch->fd_parent[sending];
		e->send = fd_send;
		e->recv = fd_recv;
		return e->fd >= 0 ? 0 : -EBADF;
	case TRANSPORT_API:
		/* A client is never shared across fork: every process connects. */
		r = shmq_client_connect(bench.api_socket, &e->client);
		if (r == 0)
			r = shmq_queue_open(e->client, bench.api_name[dir],
					    sending ? SHMQ_SEND : SHMQ_RECV, NULL, &e->q);
		e->send = api_send;
		e->recv = api_recv;
		return r;
	case TRANSPORT_PIPE_SHMQ:
		/*
		 * The parent is end 0, the child end 1: the ring an end sends on is
		 * the one the other end receives from, so dir needs no mapping.
		 */
		r = shmq__segment_attach(ch->map[0], ch->map_size[0], &seg);
		if (r == 0)
			r = shmq__pipe_attach_ring(&e->ring, &seg, UINT32_MAX, in_child, sending);
		e->ring.spin_ns = SHMQ_SPIN_NS_DEFAULT;
		e->send = ring_wait_send;
		e->recv = ring_wait_recv;
		return r;
	default:
		r = shmq__segment_attach(ch->map[dir], ch->map_size[dir], &seg);
		if (r < 0)
			return r;
		r = shmq__ring_attach(&e->ring, &seg, UINT32_MAX);
		if (r < 0)
			return r;
		/* The stream's producer is shmq-blocking's: only its consumer awaits futures. */
		if (transports[run->t].group == GROUP_ASYNC &&
		    !(run->t == TRANSPORT_POLLER_STREAM && sending)) {
			bool poller = run->t == TRANSPORT_POLLER ||
				      run->t == TRANSPORT_POLLER_HELPER ||
				      run->t == TRANSPORT_POLLER_STREAM;

			e->send = async_send;
			e->recv = async_recv;
			return bench_async_open(&e->async,
						poller ? BENCH_ASYNC_POLLER : BENCH_ASYNC_WAITER,
						&e->ring, &seg, sending,
						run->t == TRANSPORT_ASYNC_HELPER ||
							run->t == TRANSPORT_POLLER_HELPER);
		}
		e->ring.spin_ns = run->t == TRANSPORT_FUTEX ? 0 : SHMQ_SPIN_NS_DEFAULT;
		if (run->t == TRANSPORT_POLLER_STREAM) {
			e->send = ring_wait_send;
			return 0;
		}
		e->send = run->t == TRANSPORT_SPIN ? ring_spin_send : ring_wait_send;
		e->recv = run->t == TRANSPORT_SPIN ? ring_spin_recv : ring_wait_recv;
		if (run->t == TRANSPORT_BATCH) {
			e->batch = calloc(1, sizeof(*e->batch));
			if (e->batch)
				e->batch->buf = malloc((size_t)BATCH_MAX * run->size);
			if (!e->batch || !e->batch->buf)
				return -ENOMEM;
			e->batch->size = run->size;
			e->send = batch_send;
			e->recv = batch_recv;
		}
		return 0;
	}
}

/* Release what endpoint_open() acquired beyond the mapping (api, async). */
static void endpoint_close(struct endpoint *e)
{
	if (e->send == async_send)
		bench_async_close(&e->async);
	e->send = NULL;
	if (e->batch)
		free(e->batch->buf);
	free(e->batch);
	e->batch = NULL;
	shmq_queue_close(e->q);
	shmq_client_close(e->client);
	e->q = NULL;
	e->client = NULL;
}

/* --- The measured loops --- */

static int rtt_ping(const struct run *run, struct endpoint *tx, struct endpoint *rx,
		    uint64_t *samples, struct proc_result *res)
{
	uint32_t total = run->warm_iters + run->iters;
	uint64_t prev = 0, deadline_ns = 0;
	struct msg_hdr h;
	int r;

	for (uint32_t i = 0; i < total; i++) {
		uint64_t now;

		if (i % PROGRESS_EVERY == 0)
			deadline_ns = stall_deadline();
		msg_stamp(bench.buf_out, run->size, i, MSG_DATA, 0);
		r = tx->send(tx, bench.buf_out, run->size, deadline_ns);
		if (r < 0)
			return fail(res, r, "parent: sending round trip %" PRIu32, i);
		r = rx->recv(rx, bench.buf_in, run->size, deadline_ns);
		if (r < 0)
			return fail(res, r, "parent: receiving round trip %" PRIu32, i);
		if (msg_read(bench.buf_in, r, run->size, &h) < 0 || h.kind != MSG_DATA ||
		    h.seq != i)
			return fail(res, -EBADMSG, "parent: bad echo of round trip %" PRIu32, i);
		/* One clock read per round trip: sample i is the time since sample i - 1. */
		now = shmq__now_ns();
		if (i >= run->warm_iters)
			samples[i - run->warm_iters] = now - prev;
		if (i == run->warm_iters)
			res->cpu_ns = cpu_now_ns();
		prev = now;
	}
	res->cpu_ns = cpu_now_ns() - res->cpu_ns;
	msg_stamp(bench.buf_out, run->size, total, MSG_STOP, 0);
	r = tx->send(tx, bench.buf_out, run->size, stall_deadline());
	return r < 0 ? fail(res, r, "parent: sending the end marker") : 0;
}

static int rtt_echo(const struct run *run, struct proc_result *res)
{
	struct endpoint rx, tx;
	uint64_t deadline_ns = 0;
	struct msg_hdr h;
	int r;

	r = endpoint_open(&rx, run, 0, false, true);
	if (r == 0)
		r = endpoint_open(&tx, run, 1, true, true);
	if (r < 0)
		return fail(res, r, "child: attaching");

	for (uint64_t expect = 0;; expect++) {
		if (expect % PROGRESS_EVERY == 0)
			deadline_ns = stall_deadline();
		/* The same window as the parent's: from the first measured ping to the marker. */
		if (expect == run->warm_iters)
			res->cpu_ns = cpu_now_ns();
		r = rx.recv(&rx, bench.buf_in, run->size, deadline_ns);
		if (r < 0)
			return fail(res, r, "child: receiving message %" PRIu64, expect);
		if (msg_read(bench.buf_in, r, run->size, &h) < 0)
			return fail(res, -EBADMSG,
				    "child: corrupt message where seq %" PRIu64 " was due", expect);
		if (h.kind == MSG_STOP && h.seq == expect) {
			res->cpu_ns = cpu_now_ns() - res->cpu_ns;
			if (rx.send == async_send)
				res->backend = bench_async_backend(&rx.async);
			endpoint_close(&rx);
			endpoint_close(&tx);
			return 0;
		}
		if (h.kind != MSG_DATA || h.seq != expect)
			return fail(res, -EBADMSG,
				    "child: got kind %" PRIu32 " seq %" PRIu64
				    ", expected data seq %" PRIu64,
				    h.kind, h.seq, expect);
		r = tx.send(&tx, bench.buf_in, (size_t)r, deadline_ns);
		if (r < 0)
			return fail(res, r, "child: echoing message %" PRIu64, expect);
	}
}

/* Warm up until warm_end_ns, then send data until stop_ns; count what was sent. */
static int produce(const struct run *run, struct endpoint *tx, uint32_t producer,
		   unsigned char *out, struct proc_result *res)
{
	uint64_t seq, deadline_ns = 0;
	int r;

	for (seq = 0;; seq++) {
		if (seq % PROGRESS_EVERY == 0)
			deadline_ns = stall_deadline();
		if (seq % SEND_CLOCK_EVERY == 0 && shmq__now_ns() >= run->warm_end_ns)
			break;
		msg_stamp(out, run->size, seq, MSG_WARM, producer);
		r = tx->send(tx, out, run->size, deadline_ns);
		if (r < 0)
			return fail(res, r, "producer %" PRIu32 ": warm-up send %" PRIu64, producer,
				    seq);
	}

	res->t_start_ns = shmq__now_ns();
	for (seq = 0;; seq++) {
		if (seq % PROGRESS_EVERY == 0)
			deadline_ns = stall_deadline();
		if (seq % SEND_CLOCK_EVERY == 0 && shmq__now_ns() >= run->stop_ns)
			break;
		msg_stamp(out, run->size, seq, MSG_DATA, producer);
		r = tx->send(tx, out, run->size, deadline_ns);
		if (r < 0)
			return fail(res, r, "producer %" PRIu32 ": send %" PRIu64, producer, seq);
	}
	res->count = seq;
	return 0;
}

static int send_stops(const struct run *run, struct endpoint *tx, unsigned int n, uint64_t seq,
		      unsigned char *out, struct proc_result *res)
{
	uint64_t deadline_ns = stall_deadline();

	for (unsigned int i = 0; i < n; i++) {
		int r;

		msg_stamp(out, run->size, seq, MSG_STOP, 0);
		r = tx->send(tx, out, run->size, deadline_ns);
		if (r < 0)
			return fail(res, r, "sending end marker %u", i);
	}
	return 0;
}

/*
 * Receive until an end marker.  With one producer every sequence number is
 * checked exactly; with several, each consumer sees a subsequence of each
 * producer's messages, which must still be strictly increasing (FIFO per
 * producer), and the parent checks that the totals add up.
 */
static int consume(const struct run *run, struct endpoint *rx, struct proc_result *res)
{
	uint64_t next_warm[PROCS_MAX] = {0}, next[PROCS_MAX] = {0}, count = 0, deadline_ns = 0;
	bool exact = run->n_producers == 1, data_seen[PROCS_MAX] = {false};
	struct msg_hdr h;
	int r;

	for (uint64_t n = 0;; n++) {
		uint64_t *want;

		if (n % PROGRESS_EVERY == 0)
			deadline_ns = stall_deadline();
		r = rx->recv(rx, bench.buf_in, run->size, deadline_ns);
		if (r < 0)
			return fail(res, r, "consumer: receiving after %" PRIu64 " data messages",
				    count);
		if (msg_read(bench.buf_in, r, run->size, &h) < 0 || h.producer >= run->n_producers)
			return fail(res, -EBADMSG,
				    "consumer: corrupt message after %" PRIu64 " data messages",
				    count);
		if (h.kind == MSG_STOP) {
			res->t_end_ns = shmq__now_ns();
			res->count = count;
			if (exact && h.seq != next[0])
				return fail(res, -EBADMSG,
					    "consumer: end marker says %" PRIu64 " sent, %" PRIu64
					    " received",
					    h.seq, next[0]);
			return 0;
		}
		if (h.kind == MSG_WARM && data_seen[h.producer])
			return fail(res, -EBADMSG, "consumer: warm-up message after data");
		want = h.kind == MSG_WARM ? &next_warm[h.producer] : &next[h.producer];
		if (exact ? h.seq != *want : h.seq < *want)
			return fail(res, -EBADMSG,
				    "consumer: producer %" PRIu32 " seq %" PRIu64
				    ", expected %s%" PRIu64,
				    h.producer, h.seq, exact ? "" : ">= ", *want);
		*want = h.seq + 1;
		if (h.kind == MSG_DATA) {
			data_seen[h.producer] = true;
			count++;
		}
	}
}

/* --- Processes --- */

static int spawn(const struct run *run, unsigned int idx, int cpu,
		 int (*fn)(const struct run *run, unsigned int idx), pid_t *ret_pid)
{
	pid_t parent = getpid();
	pid_t pid;

	fflush(NULL); /* nothing buffered may be written twice */
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		struct chan ch = run->ch;
		int r;

		/* A benchmark must never leave spinning processes behind. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(1);
		if (bench.pinned)
			bench_pin(cpu);
		close_pair(ch.fd_parent);
		r = fn(run, idx);
		_exit(r < 0 ? 1 : 0);
	}
	*ret_pid = pid;
	return 0;
}

static void report(const struct run *run, const char *scenario, const struct proc_result *res)
{
	fprintf(stderr, "shmq-bench: %s, %" PRIu32 " B, %s: %s\n", transports[run->t].name,
		run->size, scenario, res->what);
}

/* A failure the parent finds after finish(): one report, one counted error. */
static int failed(const struct run *run, const char *scenario, const struct proc_result *mine)
{
	report(run, scenario, mine);
	bench.errors++;
	return mine->err;
}

static void run_init(struct run *run, enum transport t, uint32_t size)
{
	memset(run, 0, sizeof(*run));
	run->t = t;
	run->size = size;
	run->n_slots = slots_for(size);
	run->n_producers = 1;
	run->n_consumers = 1;
	memset(bench.sp, 0, sizeof(*bench.sp));
}

/*
 * Create the channel and fork @n children.  A single
 * child runs on the peer CPU; MPMC children alternate, so each CPU holds a
 * producer and a consumer and both ends contend across cores.
 * Return: 0, or a negative errno described in @mine (*@ret_started says how
 * many children finish() must still reap).
 */
static int start(struct run *run, unsigned int n_dirs, unsigned int n,
		 int (*fn)(const struct run *run, unsigned int idx), pid_t *pids,
		 unsigned int *ret_started, struct proc_result *mine)
{
	int r;

	*ret_started = 0;
	r = chan_open(run, n_dirs);
	if (r < 0)
		return fail(mine, r, "creating the channel");
	for (unsigned int i = 0; i < n; i++) {
		r = spawn(run, i, bench.cpus[n == 1 ? 1 : i % 2], fn, &pids[i]);
		if (r < 0)
			return fail(mine, r, "fork");
		(*ret_started)++;
	}
	/* Only the children may hold their ends: a dead child then reads as EOF. */
	close_pair(run->ch.fd_child);
	return 0;
}

/*
 * What a reaped child's status means.  A child we killed ourselves is only
 * news if it had already failed on its own or if the deadline killed it.
 * Return: 0 or a negative errno, described in @res.
 */
static int child_outcome(int status, bool culled, bool deadline_hit, struct proc_result *res)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (res->err)
		return res->err;
	if (WIFEXITED(status))
		return fail(res, -ECHILD, "child exited with status %d", WEXITSTATUS(status));
	if (WTERMSIG(status) == SIGKILL && deadline_hit)
		return fail(res, -ETIMEDOUT, "child still running at the deadline; killed");
	if (WTERMSIG(status) == SIGKILL && culled)
		return 0;
	return fail(res, -ECHILD, "child killed by signal %d (%s)", WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
}

static void kill_all(const pid_t *pids, const bool *reaped, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (!reaped[i])
			kill(pids[i], SIGKILL);
}

/*
 * Finish a scenario: reap the children in the order they exit.  The first
 * failure (the parent's @r, or a child's) kills the rest at once, since they
 * could only wait for their deadline.  Children stop by themselves once
 * their last phase ends (run->stop_ns, or now) plus a stall; one still alive
 * KILL_GRACE_NS after that is killed (the watchdog's SIGALRM interrupts
 * waitpid).
 * A child's own report, being the nearer cause, wins over the parent's.
 * Counts one error per failed scenario.
 */
static int finish(struct run *run, const char *scenario, const pid_t *pids, unsigned int n_pids,
		  const struct proc_result *mine, int r)
{
	bool reaped[PROCS_MAX] = {false}, culled = r < 0, deadline_hit = false;
	uint64_t now = shmq__now_ns();
	uint64_t kill_ns = (run->stop_ns > now ? run->stop_ns : now) + STALL_NS + KILL_GRACE_NS;
	unsigned int left = n_pids;
	int first = 0;

	if (culled)
		kill_all(pids, reaped, n_pids);
	watchdog_arm(kill_ns);
	while (left > 0) {
		int status, rc;
		unsigned int i;
		pid_t w = waitpid(-1, &status, 0);

		if (w < 0) {
			if (errno != EINTR)
				break; /* ECHILD: nothing left to wait for */
			if (!deadline_hit && shmq__now_ns() >= kill_ns) {
				kill_all(pids, reaped, n_pids);
				deadline_hit = true;
			}
			continue;
		}
		for (i = 0; i < n_pids && pids[i] != w; i++)
			;
		if (i == n_pids)
			continue;
		reaped[i] = true;
		left--;
		rc = child_outcome(status, culled, deadline_hit, &bench.sp->res[i]);
		if (rc < 0) {
			report(run, scenario, &bench.sp->res[i]);
			first = first ? first : rc;
			if (!culled)
				kill_all(pids, reaped, n_pids);
			culled = true;
		}
	}
	watchdog_disarm();
	chan_close(&run->ch);
	if (first == 0 && r < 0) {
		report(run, scenario, mine);
		first = r;
	}
	bench.errors += first < 0;
	return first;
}

static int rtt_child(const struct run *run, unsigned int idx)
{
	return rtt_echo(run, &bench.sp->res[idx]);
}

static int run_rtt(enum transport t, uint32_t size, double ret_p[3], double *ret_cpu,
		   int *ret_backend)
{
	struct proc_result mine = {0};
	struct endpoint tx = {0}, rx = {0};
	unsigned int n;
	struct run run;
	pid_t pid;
	int r;

	run_init(&run, t, size);
	run.iters = bench.o.iters;
	run.warm_iters = run.iters / 10 > 100 ? run.iters / 10 : 100;

	r = start(&run, 2, 1, rtt_child, &pid, &n, &mine);
	if (r == 0)
		r = endpoint_open(&tx, &run, 0, true, false);
	if (r == 0)
		r = endpoint_open(&rx, &run, 1, false, false);
	if (r < 0 && !mine.err)
		fail(&mine, r, "parent: attaching");
	if (r == 0)
		r = rtt_ping(&run, &tx, &rx, bench.samples, &mine);
	r = finish(&run, "rtt", &pid, n, &mine, r);
	endpoint_close(&tx);
	endpoint_close(&rx);
	if (r < 0)
		return r;

	qsort(bench.samples, run.iters, sizeof(*bench.samples), cmp_u64);
	ret_p[0] = percentile(bench.samples, run.iters, 0.50);
	ret_p[1] = percentile(bench.samples, run.iters, 0.99);
	ret_p[2] = percentile(bench.samples, run.iters, 0.999);
	*ret_cpu = (double)(mine.cpu_ns + bench.sp->res[0].cpu_ns) / run.iters;
	*ret_backend = bench.sp->res[0].backend;
	return 0;
}

static void tput_times(struct run *run)
{
	uint64_t warm_ns = (uint64_t)(bench.o.seconds * NS_PER_S / 5);

	/* The warm-up also absorbs the child's start: fork, pinning, first faults. */
	if (warm_ns < 20000000)
		warm_ns = 20000000;
	run->warm_end_ns = shmq__now_ns() + warm_ns;
	run->stop_ns = run->warm_end_ns + (uint64_t)(bench.o.seconds * NS_PER_S);
}

static int tput_child(const struct run *run, unsigned int idx)
{
	struct proc_result *res = &bench.sp->res[idx];
	struct endpoint rx;
	int r;

	r = endpoint_open(&rx, run, 0, false, true);
	if (r < 0)
		return fail(res, r, "child: attaching");
	return consume(run, &rx, res);
}

static int run_tput(enum transport t, uint32_t size, double *ret_mps)
{
	struct proc_result mine = {0};
	const struct proc_result *theirs = &bench.sp->res[0];
	struct endpoint tx = {0};
	unsigned int n;
	struct run run;
	pid_t pid;
	int r;

	run_init(&run, t, size);
	tput_times(&run);
	r = start(&run, 1, 1, tput_child, &pid, &n, &mine);
	if (r == 0) {
		r = endpoint_open(&tx, &run, 0, true, false);
		if (r < 0)
			fail(&mine, r, "parent: attaching");
	}
	if (r == 0)
		r = produce(&run, &tx, 0, bench.buf_out, &mine);
	if (r == 0)
		r = send_stops(&run, &tx, 1, mine.count, bench.buf_out, &mine);
	r = finish(&run, "tput", &pid, n, &mine, r);
	endpoint_close(&tx);
	if (r < 0)
		return r;

	if (theirs->count != mine.count || theirs->t_end_ns <= mine.t_start_ns) {
		fail(&mine, -EBADMSG, "sent %" PRIu64 " but received %" PRIu64, mine.count,
		     theirs->count);
		return failed(&run, "tput", &mine);
	}
	*ret_mps = (double)mine.count * NS_PER_S / (double)(theirs->t_end_ns - mine.t_start_ns);
	return 0;
}

/* MPMC children: 0..n_producers-1 produce, the rest consume. */
static int mpmc_child(const struct run *run, unsigned int idx)
{
	struct proc_result *res = &bench.sp->res[idx];
	struct endpoint e;
	int r;

	r = endpoint_open(&e, run, 0, idx < run->n_producers, true);
	if (r < 0)
		return fail(res, r, "child %u: attaching", idx);
	if (idx >= run->n_producers)
		return consume(run, &e, res);

	r = produce(run, &e, idx, bench.buf_out, res);
	if (r < 0)
		return r;
	/*
	 * Only the last producer to finish sends the end markers, one per
	 * consumer: every data message of every producer is then queued ahead
	 * of them, and a consumer stops taking messages after its first marker.
	 */
	if (fetch_add_seq_cst(&bench.sp->producers_done, 1) + 1 == run->n_producers)
		return send_stops(run, &e, run->n_consumers, 0, bench.buf_out, res);
	return 0;
}

static int run_mpmc(uint32_t size, double *ret_mps)
{
	struct proc_result mine = {0};
	uint64_t sent = 0, received = 0, t0 = UINT64_MAX, t1 = 0;
	pid_t pids[PROCS_MAX];
	unsigned int n;
	struct run run;
	int r;

	run_init(&run, TRANSPORT_MPMC, size);
	run.n_producers = 2;
	run.n_consumers = 2;
	tput_times(&run);
	r = start(&run, 1, run.n_producers + run.n_consumers, mpmc_child, pids, &n, &mine);
	r = finish(&run, "tput", pids, n, &mine, r);
	if (r < 0)
		return r;

	for (unsigned int i = 0; i < run.n_producers + run.n_consumers; i++) {
		const struct proc_result *res = &bench.sp->res[i];

		if (i < run.n_producers) {
			sent += res->count;
			t0 = res->t_start_ns < t0 ? res->t_start_ns : t0;
		} else {
			received += res->count;
			t1 = res->t_end_ns > t1 ? res->t_end_ns : t1;
		}
	}
	if (sent != received || t1 <= t0) {
		fail(&mine, -EBADMSG, "producers sent %" PRIu64 ", consumers received %" PRIu64,
		     sent, received);
		return failed(&run, "tput", &mine);
	}
	*ret_mps = (double)sent * NS_PER_S / (double)(t1 - t0);
	return 0;
}

static int idle_child(const struct run *run, unsigned int idx)
{
	struct proc_result *res = &bench.sp->res[idx];
	struct timespec c0, c1;
	struct endpoint rx;
	uint64_t w0, w1;
	int r;

	r = endpoint_open(&rx, run, 0, false, true);
	if (r < 0)
		return fail(res, r, "child: attaching");

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	w0 = shmq__now_ns();
	r = shmq__ring_recv_wait(&rx.ring, bench.buf_in, run->size, w0 + run->idle_ns);
	w1 = shmq__now_ns();
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);

	if (r != -ETIMEDOUT)
		return fail(res, r < 0 ? r : -EBADMSG,
			    "child: recv_wait on an idle queue returned %d", r);
	if (w1 - w0 < run->idle_ns)
		return fail(res, -EPROTO, "child: recv_wait timed out %" PRIu64 " ns early",
			    run->idle_ns - (w1 - w0));
	res->cpu_ns = (uint64_t)((c1.tv_sec - c0.tv_sec) * 1000000000L + (c1.tv_nsec - c0.tv_nsec));
	res->wall_ns = w1 - w0;
	res->sleeps = load_relaxed(&rx.ring.c->sleeps); /* our own counter */
	return 0;
}

static int run_idle(void)
{
	struct proc_result mine = {0};
	const struct proc_result *theirs = &bench.sp->res[0];
	unsigned int n;
	struct run run;
	pid_t pid;
	int r;

	run_init(&run, TRANSPORT_BLOCKING, bench.o.sizes[0]);
	run.idle_ns = (uint64_t)(bench.o.idle_seconds * NS_PER_S);
	run.stop_ns = shmq__now_ns() + run.idle_ns;
	r = start(&run, 1, 1, idle_child, &pid, &n, &mine);
	r = finish(&run, "idle", &pid, n, &mine, r);
	if (r < 0)
		return r;
	bench.idle_done = true;
	bench.idle_wall_s = (double)theirs->wall_ns / NS_PER_S;
	bench.idle_cpu_ms_per_s = (double)theirs->cpu_ns / 1e6 / bench.idle_wall_s;
	bench.idle_sleeps = theirs->sleeps;
	return 0;
}

/* --- Suite --- */

static bool enabled(enum transport t)
{
	return bench.o.only & transports[t].group;
}

static void geometry_note(unsigned int si)
{
	struct geometry *g = &bench.geo[si];
	struct shmq_segment_params p;
	struct shmq_segment seg;
	uint32_t size = bench.o.sizes[si];
	void *mem;

	g->n_slots = slots_for(size);
	g->minring_bytes = shmq__minring_size(g->n_slots, size);
	queue_params(&p, size, g->n_slots, SHMQ_QMODE_SPSC);
	if (shmq__segment_size(&p, &g->shmq_bytes) < 0)
		return;
	/* Read the stride back from a formatted segment rather than restate layout.c's rule. */
	mem = aligned_alloc(4096, g->shmq_bytes);
	if (mem && shmq__segment_format(mem, g->shmq_bytes, &p) == 0 &&
	    shmq__segment_attach(mem, g->shmq_bytes, &seg) == 0)
		g->shmq_stride = seg.geom.queue.slot_stride;
	free(mem);
}

static void progress(unsigned int si, unsigned int rep, enum transport t)
{
	if (bench.o.json || !isatty(STDERR_FILENO))
		return;
	fprintf(stderr, "\r  %6" PRIu32 " B  rep %u/%u  %-16s", bench.o.sizes[si], rep + 1,
		bench.o.reps, transports[t].name);
	fflush(stderr);
}

static void progress_clear(void)
{
	if (!bench.o.json && isatty(STDERR_FILENO))
		fprintf(stderr, "\r%60s\r", "");
}

static void measure_size(unsigned int si)
{
	uint32_t size = bench.o.sizes[si];
	struct load_snap a, b;

	load_snap(&a);
	for (unsigned int rep = 0; rep < bench.o.reps; rep++) {
		for (enum transport t = 0; t < TRANSPORT_COUNT; t++) {
			struct cell *c = &bench.cells[si][t];
			double p[3], mps = 0, cpu;
			int r;

			/* A failed transport is not retried: it would only fail slowly again. */
			if (!enabled(t) || c->failed)
				continue;
			progress(si, rep, t);
			if (transports[t].rtt) {
				if (run_rtt(t, size, p, &cpu, &c->backend) < 0) {
					c->failed = true;
					continue;
				}
				for (unsigned int k = 0; k < 3; k++)
					c->rtt[k][c->n_rtt] = p[k];
				c->n_rtt++;
				c->cpu[c->n_cpu++] = cpu;
			}
			r = t == TRANSPORT_MPMC ? run_mpmc(size, &mps) : run_tput(t, size, &mps);
			if (r < 0) {
				c->failed = true;
				continue;
			}
			c->mps[c->n_mps++] = mps;
		}
	}
	progress_clear();
	load_snap(&b);
	bench.geo[si].load = load_between(&a, &b);

	for (enum transport t = 0; t < TRANSPORT_COUNT; t++) {
		struct cell *c = &bench.cells[si][t];

		for (unsigned int k = 0; k < 3; k++)
			c->rtt_med[k] = median(c->rtt[k], c->n_rtt);
		c->mps_med = median(c->mps, c->n_mps);
		c->cpu_med = median(c->cpu, c->n_cpu);
	}
}

static double ratio(double a, double b)
{
	return isnan(a) || isnan(b) || b <= 0 ? NAN : a / b;
}

/* --- Output --- */

static void print_num(double v, int width, int prec)
{
	if (isnan(v))
		printf(" %*s", width, "-");
	else
		printf(" %*.*f", width, prec, v);
}

static void print_size(unsigned int si)
{
	const struct geometry *g = &bench.geo[si];
	uint32_t size = bench.o.sizes[si];
	static const char *const ratio_hdr[] = {"p50/minring",	 "p50/mr-futex", "tput/minring",
						"tput/mr-futex", "rate/pipe",	 "rate/sockpair"};

	printf("\n== %" PRIu32 " B messages ==\n", size);
	printf("ring: %" PRIu32 " slots x %" PRIu32 " B; shmq slot stride %" PRIu32
	       " B, segment %" PRIu64 " KiB; minring %" PRIu64 " KiB\n\n",
	       g->n_slots, size, g->shmq_stride, g->shmq_bytes / 1024,
	       (g->minring_bytes + 1023) / 1024);
	if (load_noisy(&g->load))
		printf("NOISY: other processes used %.0f%% of the CPUs (steal %.0f%%) while this "
		       "size ran\n\n",
		       g->load.other * 100, g->load.steal * 100);
	printf("%-16s %10s %10s %10s %10s %9s\n", "transport", "rtt p50", "rtt p99", "rtt p99.9",
	       "Mmsg/s", "GB/s");
	printf("%-16s %10s %10s %10s\n", "", "(ns)", "(ns)", "(ns)");
	for (enum transport t = 0; t < TRANSPORT_COUNT; t++) {
		const struct cell *c = &bench.cells[si][t];

		if (!enabled(t))
			continue;
		printf("%-16s", transports[t].name);
		if (c->failed) {
			printf(" %10s\n", "error");
			continue;
		}
		for (unsigned int k = 0; k < 3; k++)
			print_num(c->rtt_med[k], 10, 0);
		print_num(c->mps_med / 1e6, 10, 3);
		print_num(c->mps_med * size / 1e9, 9, 3);
		printf("\n");
	}

	printf("\n%-16s", "ratios");
	for (unsigned int k = 0; k < 6; k++)
		printf(" %13s", ratio_hdr[k]);
	printf("\n");
	for (enum transport t = 0; t < TRANSPORT_COUNT; t++) {
		const struct cell *c = &bench.cells[si][t], *b = bench.cells[si];

		if (!enabled(t) || c->failed)
			continue;
		printf("%-16s", transports[t].name);
		print_num(ratio(c->rtt_med[0], b[TRANSPORT_MINRING].rtt_med[0]), 13, 2);
		print_num(ratio(c->rtt_med[0], b[TRANSPORT_MINRING_FUTEX].rtt_med[0]), 13, 2);
		print_num(ratio(c->mps_med, b[TRANSPORT_MINRING].mps_med), 13, 2);
		print_num(ratio(c->mps_med, b[TRANSPORT_MINRING_FUTEX].mps_med), 13, 2);
		print_num(ratio(c->mps_med, b[TRANSPORT_PIPE].mps_med), 13, 1);
		print_num(ratio(c->mps_med, b[TRANSPORT_SOCKPAIR].mps_med), 13, 1);
		printf("\n");
	}
	fflush(stdout);
}

/*
 * The async group against the synchronous waits it replaces, same run, same
 * size: every wait through io_uring versus FUTEX_WAIT in the thread
 * (shmq-futex, no spin either) and versus never sleeping (shmq-spin).
 */
static void print_async(unsigned int si)
{
	static const enum transport rows[] = {
		TRANSPORT_SPIN,		TRANSPORT_BLOCKING, TRANSPORT_FUTEX,	    TRANSPORT_ASYNC,
		TRANSPORT_ASYNC_HELPER, TRANSPORT_POLLER,   TRANSPORT_POLLER_HELPER};
	const struct cell *b = bench.cells[si];

	if (!(bench.o.only & GROUP_ASYNC))
		return;
	printf("\nasync waits, %" PRIu32 " B round trips (CPU: both processes, per round trip)\n",
	       bench.o.sizes[si]);
	printf("%-16s %10s %10s %10s %10s %11s %11s %11s  %s\n", "transport", "rtt p50", "rtt p99",
	       "rtt p99.9", "CPU/rtt", "p50/futex", "p50/spin", "CPU/futex", "backend");
	printf("%-16s %10s %10s %10s %10s\n", "", "(ns)", "(ns)", "(ns)", "(ns)");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum transport t = rows[i];
		const struct cell *c = &b[t];

		if (!enabled(t))
			continue;
		printf("%-16s", transports[t].name);
		if (c->failed) {
			printf(" %10s\n", "error");
			continue;
		}
		for (unsigned int k = 0; k < 3; k++)
			print_num(c->rtt_med[k], 10, 0);
		print_num(c->cpu_med, 10, 0);
		print_num(ratio(c->rtt_med[0], b[TRANSPORT_FUTEX].rtt_med[0]), 11, 2);
		print_num(ratio(c->rtt_med[0], b[TRANSPORT_SPIN].rtt_med[0]), 11, 2);
		print_num(ratio(c->cpu_med, b[TRANSPORT_FUTEX].cpu_med), 11, 2);
		printf("  %s\n", transports[t].group != GROUP_ASYNC	     ? "-"
				 : c->backend == SHMQ__BACKEND_URING_FUTEX   ? "io_uring futex"
				 : c->backend == SHMQ__BACKEND_HELPER_THREAD ? "helper thread"
									     : "?");
	}
	fflush(stdout);
}

static void target_add(const char *what, double value, double limit, bool at_most, double a,
		       double b, const char *unit)
{
	struct target *tg = &bench.targets[bench.n_targets++];

	tg->what = what;
	tg->value = value;
	tg->limit = limit;
	tg->at_most = at_most;
	if (!isnan(a) && !isnan(b))
		snprintf(tg->detail, sizeof(tg->detail), "(%.4g vs %.4g %s)", a, b, unit);
}

static bool target_pass(const struct target *tg)
{
	return tg->at_most ? tg->value <= tg->limit : tg->value >= tg->limit;
}

static void evaluate_targets(void)
{
	unsigned int ts = 0;
	const struct cell *c;

	/* The ring targets are stated at 64 B; else use the smallest size run. */
	for (unsigned int si = 0; si < bench.o.n_sizes; si++) {
		if (bench.o.sizes[si] == 64) {
			ts = si;
			break;
		}
		if (bench.o.sizes[si] < bench.o.sizes[ts])
			ts = si;
	}
	bench.target_size = ts;
	c = bench.cells[ts];

#define RTT(t) (c[t].failed ? NAN : c[t].rtt_med[0])
#define MPS(t) (c[t].failed ? NAN : c[t].mps_med)
	target_add("spin rtt p50 <= 1.30x minring",
		   ratio(RTT(TRANSPORT_SPIN), RTT(TRANSPORT_MINRING)), 1.30, true,
		   RTT(TRANSPORT_SPIN), RTT(TRANSPORT_MINRING), "ns");
	target_add("spin throughput >= 0.80x minring",
		   ratio(MPS(TRANSPORT_SPIN), MPS(TRANSPORT_MINRING)), 0.80, false,
		   MPS(TRANSPORT_SPIN) / 1e6, MPS(TRANSPORT_MINRING) / 1e6, "Mmsg/s");
	target_add("blocking msg rate >= 30x pipe",
		   ratio(MPS(TRANSPORT_BLOCKING), MPS(TRANSPORT_PIPE)), 30, false,
		   MPS(TRANSPORT_BLOCKING) / 1e6, MPS(TRANSPORT_PIPE) / 1e6, "Mmsg/s");
	target_add("blocking msg rate >= 30x socketpair",
		   ratio(MPS(TRANSPORT_BLOCKING), MPS(TRANSPORT_SOCKPAIR)), 30, false,
		   MPS(TRANSPORT_BLOCKING) / 1e6, MPS(TRANSPORT_SOCKPAIR) / 1e6, "Mmsg/s");
	target_add("poller stream rate >= 0.80x blocking",
		   ratio(MPS(TRANSPORT_POLLER_STREAM), MPS(TRANSPORT_BLOCKING)), 0.80, false,
		   MPS(TRANSPORT_POLLER_STREAM) / 1e6, MPS(TRANSPORT_BLOCKING) / 1e6, "Mmsg/s");
	target_add("blocking batch msg rate >= 30x pipe",
		   ratio(MPS(TRANSPORT_BATCH), MPS(TRANSPORT_PIPE)), 30, false,
		   MPS(TRANSPORT_BATCH) / 1e6, MPS(TRANSPORT_PIPE) / 1e6, "Mmsg/s");
	target_add("pipe rtt p50 <= 1.10x two SPSC queues",
		   ratio(RTT(TRANSPORT_PIPE_SHMQ), RTT(TRANSPORT_BLOCKING)), 1.10, true,
		   RTT(TRANSPORT_PIPE_SHMQ), RTT(TRANSPORT_BLOCKING), "ns");
	target_add("pipe rtt p50 < socketpair",
		   ratio(RTT(TRANSPORT_PIPE_SHMQ), RTT(TRANSPORT_SOCKPAIR)), 1.0, true,
		   RTT(TRANSPORT_PIPE_SHMQ), RTT(TRANSPORT_SOCKPAIR), "ns");
	target_add("blocking rtt p50 <= 1.30x spin",
		   ratio(RTT(TRANSPORT_BLOCKING), RTT(TRANSPORT_SPIN)), 1.30, true,
		   RTT(TRANSPORT_BLOCKING), RTT(TRANSPORT_SPIN), "ns");
	target_add("api rtt p50 <= 1.10x blocking (daemon off path)",
		   ratio(RTT(TRANSPORT_API), RTT(TRANSPORT_BLOCKING)), 1.10, true,
		   RTT(TRANSPORT_API), RTT(TRANSPORT_BLOCKING), "ns");
	target_add("api throughput >= 0.90x blocking",
		   ratio(MPS(TRANSPORT_API), MPS(TRANSPORT_BLOCKING)), 0.90, false,
		   MPS(TRANSPORT_API) / 1e6, MPS(TRANSPORT_BLOCKING) / 1e6, "Mmsg/s");
	target_add("blocking rtt p50 <= 1.20x minring-futex",
		   ratio(RTT(TRANSPORT_BLOCKING), RTT(TRANSPORT_MINRING_FUTEX)), 1.20, true,
		   RTT(TRANSPORT_BLOCKING), RTT(TRANSPORT_MINRING_FUTEX), "ns");
#undef RTT
#undef MPS
#define SYNC(c, i) bench.sync_ns[BENCH_SYNC_LOCK_##c][BENCH_SYNC_##i]
	target_add("lock+unlock <= 1.20x robust pthread mutex",
		   ratio(SYNC(UNCONTENDED, SHMQ), SYNC(UNCONTENDED, PTHREAD)), 1.20, true,
		   SYNC(UNCONTENDED, SHMQ), SYNC(UNCONTENDED, PTHREAD), "ns");
	target_add("contended lock <= 1.50x robust pthread mutex",
		   ratio(SYNC(CONTENDED, SHMQ), SYNC(CONTENDED, PTHREAD)), 1.50, true,
		   SYNC(CONTENDED, SHMQ), SYNC(CONTENDED, PTHREAD), "ns");
#undef SYNC
	target_add("idle recv_wait CPU <= 1 ms per idle s",
		   bench.idle_done ? bench.idle_cpu_ms_per_s : NAN, IDLE_LIMIT_MS_PER_S, true, NAN,
		   NAN, "");
	if (bench.idle_done)
		snprintf(bench.targets[bench.n_targets - 1].detail, sizeof(bench.targets[0].detail),
			 "(%.3f s idle, %" PRIu64 " futex sleep%s)", bench.idle_wall_s,
			 bench.idle_sleeps, bench.idle_sleeps == 1 ? "" : "s");
}

static unsigned int targets_missed(void)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < bench.n_targets; i++)
		n += !isnan(bench.targets[i].value) && !target_pass(&bench.targets[i]);
	return n;
}

static void print_targets(void)
{
	printf("\n== targets (%" PRIu32 " B; medians of %u reps, this run) ==\n",
	       bench.o.sizes[bench.target_size], bench.o.reps);
	for (unsigned int i = 0; i < bench.n_targets; i++) {
		const struct target *tg = &bench.targets[i];
		bool idle = i == bench.n_targets - 1;

		if (isnan(tg->value)) {
			printf("  SKIP  %-40s not measured\n", tg->what);
			continue;
		}
		printf("  %s  %-40s %8.2f%s  %s\n", target_pass(tg) ? "PASS" : "MISS", tg->what,
		       tg->value, idle ? " ms" : "x ", tg->detail);
	}
	if (bench.errors)
		printf("\n%u scenario%s failed (see stderr)\n", bench.errors,
		       bench.errors == 1 ? "" : "s");
	printf("\nsuite time %.1f s", (double)(shmq__now_ns() - bench.start_ns) / NS_PER_S);
	if (!isnan(bench.load.other))
		printf("; other processes used %.0f%% of the CPUs meanwhile, steal %.0f%%",
		       bench.load.other * 100, bench.load.steal * 100);
	printf("\n");
	if (load_noisy(&bench.load))
		printf("NOISY: the machine was not quiet; throughput figures above all are "
		       "unreliable (rtt p50 suffers least); rerun on a quiet machine\n");
}

static void print_header(void)
{
	printf("shmq-bench %s: ", SHMQ_VERSION_STRING);
	if (bench.pinned)
		printf("parent pinned to CPU %d, peers to CPU %d\n", bench.cpus[0], bench.cpus[1]);
	else
		printf("NOT pinned (fewer than 2 usable CPUs, or sched_setaffinity failed)\n");
	printf("reps %u (figures are medians); rtt: %" PRIu32 " round trips after %" PRIu32
	       " warm-up; tput: %.2f s after %.2f s warm-up\n",
	       bench.o.reps, bench.o.iters, bench.o.iters / 10 > 100 ? bench.o.iters / 10 : 100,
	       bench.o.seconds, bench.o.seconds / 5 > 0.02 ? bench.o.seconds / 5 : 0.02);
	printf("clock: a CLOCK_MONOTONIC read costs %.1f ns, included once in every rtt sample\n",
	       bench.clock_ns);
	if (bench.o.only & ~GROUP_REPAIR) {
		printf("transports:\n");
		for (enum transport t = 0; t < TRANSPORT_COUNT; t++)
			if (enabled(t))
				printf("  %-16s %s\n", transports[t].name, transports[t].about);
		printf("mpmc: 4 processes on 2 CPUs (a producer and a consumer per CPU), so it "
		       "time-shares\n");
	}
	fflush(stdout);
}

static void json_num(const char *key, double v, bool comma)
{
	if (isnan(v))
		printf("\"%s\":null%s", key, comma ? "," : "");
	else
		printf("\"%s\":%.6g%s", key, v, comma ? "," : "");
}

/* --- Death to repair --- */

/*
 * Repetitions are interleaved like the other scenarios (rep 1 of every kind,
 * then rep 2, ...), so a noisy moment smears across the baseline and the
 * repairs alike.  The figures are medians over reps of each rep's p50 and
 * p99; max is the worst single death of the run.
 */
static void run_repair(void)
{
	unsigned int n = bench.o.iters / 50;
	double p50[BENCH_REPAIR_COUNT][REPS_MAX], p99[BENCH_REPAIR_COUNT][REPS_MAX];
	unsigned int n_ok[BENCH_REPAIR_COUNT] = {0};
	uint64_t *ns;
	char what[200];

	n = n < 20 ? 20 : n > 2000 ? 2000 : n;
	bench.repair_deaths = n;
	ns = calloc(n, sizeof(*ns));
	if (!ns) {
		fprintf(stderr, "shmq-bench: repair: %s\n", strerror(ENOMEM));
		bench.errors++;
		return;
	}
	for (unsigned int k = 0; k < BENCH_REPAIR_COUNT; k++)
		bench.repair_max[k] = NAN;
	for (unsigned int rep = 0; rep < bench.o.reps; rep++) {
		for (unsigned int k = 0; k < BENCH_REPAIR_COUNT; k++) {
			int r;

			if (bench.repair_failed[k])
				continue;
			if (!bench.o.json && isatty(STDERR_FILENO)) {
				fprintf(stderr, "\r  repair: rep %u/%u %-12s", rep + 1,
					bench.o.reps, bench_repair_names[k]);
				fflush(stderr);
			}
			r = bench_repair_batch(k, bench.api_socket, n, ns, what, sizeof(what));
			if (r < 0) {
				fprintf(stderr, "\nshmq-bench: %s\n", what);
				bench.repair_failed[k] = true;
				bench.errors++;
				continue;
			}
			qsort(ns, n, sizeof(*ns), cmp_u64);
			p50[k][n_ok[k]] = percentile(ns, n, 0.50);
			p99[k][n_ok[k]] = percentile(ns, n, 0.99);
			n_ok[k]++;
			if (isnan(bench.repair_max[k]) || (double)ns[n - 1] > bench.repair_max[k])
				bench.repair_max[k] = (double)ns[n - 1];
		}
	}
	if (!bench.o.json)
		progress_clear();
	for (unsigned int k = 0; k < BENCH_REPAIR_COUNT; k++) {
		bench.repair_p50[k] = n_ok[k] ? median(p50[k], n_ok[k]) : NAN;
		bench.repair_p99[k] = n_ok[k] ? median(p99[k], n_ok[k]) : NAN;
	}
	free(ns);
}

/* --- Synchronisation kinds against pthread --- */

/*
 * Each case alternates shmq and pthread rep by rep, so drift in the
 * machine's state falls on both alike; medians over reps.
 */
static void run_sync(void)
{
	double ns[BENCH_SYNC_COUNT][BENCH_SYNC_IMPLS][REPS_MAX];
	double ho[BENCH_SYNC_COUNT][BENCH_SYNC_IMPLS][REPS_MAX];
	unsigned int n_ok[BENCH_SYNC_COUNT][BENCH_SYNC_IMPLS] = {{0}};
	char what[200];

	bench.sync_iters[BENCH_SYNC_LOCK_UNCONTENDED] = bench.o.iters * 100;
	bench.sync_iters[BENCH_SYNC_LOCK_CONTENDED] = bench.o.iters * 20;
	/* each of these sleeps or hands off per step: microseconds, not nanoseconds */
	bench.sync_iters[BENCH_SYNC_EVENT_WAKE] = bench.o.iters;
	bench.sync_iters[BENCH_SYNC_COND_HANDOFF] = bench.o.iters;
	bench.sync_iters[BENCH_SYNC_BARRIER_CYCLE] = bench.o.iters;
	for (unsigned int rep = 0; rep < bench.o.reps; rep++)
		for (unsigned int c = 0; c < BENCH_SYNC_COUNT; c++)
			for (unsigned int i = 0; i < BENCH_SYNC_IMPLS; i++) {
				struct bench_sync_sample smp;
				int r;

				if (!bench.o.json)
					fprintf(stderr, "\r  sync: rep %u/%u %-18s", rep + 1,
						bench.o.reps, bench_sync_names[c]);
				r = bench_sync_sample(c, i, bench.api_socket, bench.sync_iters[c],
						      bench.cpus, &smp, what, sizeof(what));
				if (r < 0) {
					fprintf(stderr, "\nshmq-bench: sync: %s\n", what);
					bench.errors++;
					continue;
				}
				ns[c][i][n_ok[c][i]] = smp.ns;
				ho[c][i][n_ok[c][i]++] = smp.handoff;
			}
	if (!bench.o.json)
		progress_clear();
	for (unsigned int c = 0; c < BENCH_SYNC_COUNT; c++)
		for (unsigned int i = 0; i < BENCH_SYNC_IMPLS; i++) {
			bench.sync_ns[c][i] = n_ok[c][i] ? median(ns[c][i], n_ok[c][i]) : NAN;
			bench.sync_handoff[c][i] = n_ok[c][i] ? median(ho[c][i], n_ok[c][i]) : NAN;
		}
}

static void print_sync(void)
{
	printf("\nsync: shmq's locks, events, conditions and barriers against robust "
	       "process-shared pthread ones\n");
	printf("%-18s %10s %10s %8s %9s %9s  %s\n", "scenario", "shmq", "pthread", "ratio",
	       "handoff", "(pthread)", "what is timed");
	printf("%-18s %10s %10s\n", "", "(ns/op)", "(ns/op)");
	for (unsigned int c = 0; c < BENCH_SYNC_COUNT; c++) {
		printf("%-18s", bench_sync_names[c]);
		print_num(bench.sync_ns[c][BENCH_SYNC_SHMQ], 10, 1);
		print_num(bench.sync_ns[c][BENCH_SYNC_PTHREAD], 10, 1);
		print_num(ratio(bench.sync_ns[c][BENCH_SYNC_SHMQ],
				bench.sync_ns[c][BENCH_SYNC_PTHREAD]),
			  8, 3);
		print_num(bench.sync_handoff[c][BENCH_SYNC_SHMQ] * 100, 8, 1);
		printf("%s", isnan(bench.sync_handoff[c][BENCH_SYNC_SHMQ]) ? " " : "%");
		print_num(bench.sync_handoff[c][BENCH_SYNC_PTHREAD] * 100, 8, 1);
		printf("%s  %s\n", isnan(bench.sync_handoff[c][BENCH_SYNC_PTHREAD]) ? " " : "%",
		       bench_sync_about[c]);
	}
	fflush(stdout);
}

static void print_repair(void)
{
	const double base50 = bench.repair_p50[BENCH_REPAIR_PIDFD];
	const double base99 = bench.repair_p99[BENCH_REPAIR_PIDFD];

	printf("\ndeath to repair: SIGKILL of a holder until its hold is back (%u deaths per kind "
	       "and rep)\n",
	       bench.repair_deaths);
	printf("%-16s %10s %10s %10s %11s %11s  %s\n", "scenario", "p50", "p99", "max", "p50/pidfd",
	       "p99/pidfd", "what is timed");
	printf("%-16s %10s %10s %10s\n", "", "(us)", "(us)", "(us)");
	for (unsigned int k = 0; k < BENCH_REPAIR_COUNT; k++) {
		printf("%-16s", bench_repair_names[k]);
		if (bench.repair_failed[k]) {
			printf(" %10s\n", "error");
			continue;
		}
		print_num(bench.repair_p50[k] / 1e3, 10, 1);
		print_num(bench.repair_p99[k] / 1e3, 10, 1);
		print_num(bench.repair_max[k] / 1e3, 10, 1);
		print_num(ratio(bench.repair_p50[k], base50), 11, 2);
		print_num(ratio(bench.repair_p99[k], base99), 11, 2);
		printf("  %s\n", bench_repair_about[k]);
	}
	fflush(stdout);
}

static void print_json(void)
{
	printf("{\"tool\":\"shmq-bench\",\"version\":\"%s\",\"pinned\":%s,\"cpus\":[%d,%d],",
	       SHMQ_VERSION_STRING, bench.pinned ? "true" : "false", bench.cpus[0], bench.cpus[1]);
	printf("\"reps\":%u,\"iters\":%" PRIu32 ",\"seconds\":%g,", bench.o.reps, bench.o.iters,
	       bench.o.seconds);
	json_num("clock_read_ns", bench.clock_ns, true);
	printf("\"socketpair\":\"AF_UNIX SOCK_SEQPACKET\",\"sizes\":[");
	for (unsigned int si = 0; si < bench.o.n_sizes; si++) {
		const struct geometry *g = &bench.geo[si];
		const struct cell *b = bench.cells[si];
		uint32_t size = bench.o.sizes[si];
		bool first = true;

		printf("%s{\"size\":%" PRIu32 ",\"noisy\":%s,", si ? "," : "", size,
		       load_noisy(&g->load) ? "true" : "false");
		json_num("other_load", g->load.other, true);
		json_num("steal", g->load.steal, true);
		printf("\"n_slots\":%" PRIu32 ",\"shmq_slot_stride\":%" PRIu32
		       ",\"shmq_segment_bytes\":%" PRIu64 ",\"minring_bytes\":%" PRIu64
		       ",\"transports\":{",
		       g->n_slots, g->shmq_stride, g->shmq_bytes, (uint64_t)g->minring_bytes);
		for (enum transport t = 0; t < TRANSPORT_COUNT; t++) {
			const struct cell *c = &b[t];

			if (!enabled(t))
				continue;
			printf("%s\"%s\":{\"ok\":%s,", first ? "" : ",", transports[t].name,
			       c->failed ? "false" : "true");
			first = false;
			json_num("rtt_p50_ns", c->rtt_med[0], true);
			json_num("rtt_p99_ns", c->rtt_med[1], true);
			json_num("rtt_p999_ns", c->rtt_med[2], true);
			json_num("msgs_per_s", c->mps_med, true);
			json_num("cpu_per_rtt_ns", c->cpu_med, true);
			json_num("gb_per_s", c->mps_med * size / 1e9, true);
			json_num("p50_vs_minring",
				 ratio(c->rtt_med[0], b[TRANSPORT_MINRING].rtt_med[0]), true);
			json_num("p50_vs_minring_futex",
				 ratio(c->rtt_med[0], b[TRANSPORT_MINRING_FUTEX].rtt_med[0]), true);
			json_num("tput_vs_minring", ratio(c->mps_med, b[TRANSPORT_MINRING].mps_med),
				 true);
			json_num("tput_vs_minring_futex",
				 ratio(c->mps_med, b[TRANSPORT_MINRING_FUTEX].mps_med), true);
			json_num("rate_vs_pipe", ratio(c->mps_med, b[TRANSPORT_PIPE].mps_med),
				 true);
			json_num("rate_vs_socketpair",
				 ratio(c->mps_med, b[TRANSPORT_SOCKPAIR].mps_med), false);
			printf("}");
		}
		printf("}}");
	}
	printf("],\"idle\":{");
	json_num("cpu_ms_per_idle_s", bench.idle_done ? bench.idle_cpu_ms_per_s : NAN, true);
	json_num("wall_s", bench.idle_done ? bench.idle_wall_s : NAN, true);
	json_num("futex_sleeps", bench.idle_done ? (double)bench.idle_sleeps : NAN, false);
	printf("},\"target_size\":%" PRIu32 ",\"targets\":[", bench.o.sizes[bench.target_size]);
	for (unsigned int i = 0; i < bench.n_targets; i++) {
		const struct target *tg = &bench.targets[i];

		printf("%s{\"name\":\"%s\",", i ? "," : "", tg->what);
		json_num("value", tg->value, true);
		json_num("limit", tg->limit, true);
		printf("\"result\":\"%s\"}", isnan(tg->value)  ? "SKIP"
					     : target_pass(tg) ? "PASS"
							       : "MISS");
	}
	printf("],");
	if (bench.o.only & GROUP_REPAIR) {
		printf("\"repair\":{\"deaths_per_rep\":%u", bench.repair_deaths);
		for (unsigned int k = 0; k < BENCH_REPAIR_COUNT; k++) {
			printf(",\"%s\":{\"ok\":%s,", bench_repair_names[k],
			       bench.repair_failed[k] ? "false" : "true");
			json_num("p50_ns", bench.repair_p50[k], true);
			json_num("p99_ns", bench.repair_p99[k], true);
			json_num("max_ns", bench.repair_max[k], true);
			json_num("p50_vs_pidfd",
				 ratio(bench.repair_p50[k], bench.repair_p50[BENCH_REPAIR_PIDFD]),
				 true);
			json_num("p99_vs_pidfd",
				 ratio(bench.repair_p99[k], bench.repair_p99[BENCH_REPAIR_PIDFD]),
				 false);
			printf("}");
		}
		printf("},");
	}
	if (bench.o.only & GROUP_SYNC) {
		printf("\"sync\":{");
		for (unsigned int c = 0; c < BENCH_SYNC_COUNT; c++) {
			printf("%s\"%s\":{\"iters\":%" PRIu32 ",", c ? "," : "",
			       bench_sync_names[c], bench.sync_iters[c]);
			json_num("shmq_ns", bench.sync_ns[c][BENCH_SYNC_SHMQ], true);
			json_num("pthread_ns", bench.sync_ns[c][BENCH_SYNC_PTHREAD], true);
			json_num("ratio",
				 ratio(bench.sync_ns[c][BENCH_SYNC_SHMQ],
				       bench.sync_ns[c][BENCH_SYNC_PTHREAD]),
				 true);
			json_num("shmq_handoff", bench.sync_handoff[c][BENCH_SYNC_SHMQ], true);
			json_num("pthread_handoff", bench.sync_handoff[c][BENCH_SYNC_PTHREAD],
				 false);
			printf("}");
		}
		printf("},");
	}
	printf("\"noisy\":%s,", load_noisy(&bench.load) ? "true" : "false");
	json_num("other_load", bench.load.other, true);
	json_num("steal", bench.load.steal, true);
	printf("\"errors\":%u,\"suite_seconds\":%.1f}\n", bench.errors,
	       (double)(shmq__now_ns() - bench.start_ns) / NS_PER_S);
}

/* --- Setup and options --- */

static void choose_cpus(void)
{
	cpu_set_t set;
	int n = 0;

	bench.cpus[0] = bench.cpus[1] = -1;
	CPU_ZERO(&bench.all_cpus);
	if (sched_getaffinity(0, sizeof(bench.all_cpus), &bench.all_cpus) < 0)
		CPU_ZERO(&bench.all_cpus);
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++)
			if (CPU_ISSET(cpu, &set))
				bench.cpus[n++] = cpu;
	bench.pinned = n == 2;
	if (bench.pinned) {
		CPU_ZERO(&set);
		CPU_SET(bench.cpus[0], &set);
		bench.pinned = sched_setaffinity(0, sizeof(set), &set) == 0;
	}
}

static void measure_clock(void)
{
	uint64_t t0 = shmq__now_ns(), sink = 0;
	const unsigned int n = 200000;

	for (unsigned int i = 0; i < n; i++)
		sink += shmq__now_ns();
	bench.clock_ns = (double)(shmq__now_ns() - t0) / n;
	(void)sink;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: shmq-bench [OPTION]...\n"
		"Measure shmq rings against a minimal shared-memory ring, pipes and a\n"
		"socketpair, in one run, and check the performance targets listed in\n"
		"shmq-bench(1).\n"
		"\n"
		"  -h, --help            show this help and exit\n"
		"  -q, --quick           short run for CI smoke tests (3 reps, 1000 round\n"
		"                        trips, 0.05 s per throughput run; < 20 s)\n"
		"  -s, --sizes LIST      message sizes in bytes, %d..%d, comma-separated\n"
		"                        (default 64,1024,65536)\n"
		"  -r, --reps N          repetitions per scenario, medians reported (default 5)\n"
		"  -t, --seconds S       measured seconds per throughput run (default 0.25)\n"
		"  -n, --iters N         measured round trips per rtt run (default 10000)\n"
		"  -o, --only LIST       run only these groups, comma-separated:\n"
		"                        spin, blocking, futex, mpmc, api, async, baselines,\n"
		"                        sync, repair (default all but repair; async is\n"
		"                        compared with spin and futex)\n"
		"                        sync: shmq locks, events, conditions and barriers\n"
		"                        against robust process-shared pthread ones: a lock\n"
		"                        uncontended (--iters x 100), two processes contending\n"
		"                        (--iters x 20 each); event wake, condition turn and\n"
		"                        barrier cycle between two processes (--iters each)\n"
		"                        repair: death-to-repair latency through a private\n"
		"                        shmqd, --iters/50 (20..2000) SIGKILLed holders per\n"
		"                        scenario and rep: a peek re-delivered, an undo\n"
		"                        token returned, against the pidfd wake-up of a kill\n"
		"  -j, --json            print one JSON object instead of tables\n"
		"      --strict          exit 1 when a target is missed\n"
		"      --shmqd PATH      api, sync, repair: the shmqd to start on a temporary "
		"socket\n"
		"                        (default: shmqd beside this program, else\n"
		"                        ../sbin/shmqd from its directory, as installed)\n"
		"  -V, --version         print the version and exit\n"
		"\n"
		"Exit status: 0 every scenario ran (targets are reported, not enforced\n"
		"unless --strict); 1 a scenario failed; 2 usage error.\n",
		SIZE_MIN, SIZE_MAX_BYTES);
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_sizes(char *list, struct opts *o)
{
	char *save = NULL;
	unsigned long v;

	o->n_sizes = 0;
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->n_sizes == SIZES_MAX || parse_uint(tok, SIZE_MIN, SIZE_MAX_BYTES, &v) < 0)
			return -EINVAL;
		o->sizes[o->n_sizes++] = (uint32_t)v;
	}
	return o->n_sizes ? 0 : -EINVAL;
}

static int parse_only(char *list, struct opts *o)
{
	char *save = NULL;

	o->only = 0;
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned int g = 0;

		for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
			if (strcmp(tok, groups[i].name) == 0)
				g = groups[i].group;
		if (!g)
			return -EINVAL;
		o->only |= g;
	}
	return o->only ? 0 : -EINVAL;
}

/* Return: 1 run the suite, 0 --help/--version printed, -EINVAL usage error (printed). */
static int parse_argv(int argc, char *argv[], struct opts *o)
{
	enum { OPT_STRICT = 0x100, OPT_SHMQD };
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"quick", no_argument, NULL, 'q'},
		{"sizes", required_argument, NULL, 's'},
		{"reps", required_argument, NULL, 'r'},
		{"seconds", required_argument, NULL, 't'},
		{"iters", required_argument, NULL, 'n'},
		{"only", required_argument, NULL, 'o'},
		{"json", no_argument, NULL, 'j'},
		{"strict", no_argument, NULL, OPT_STRICT},
		{"shmqd", required_argument, NULL, OPT_SHMQD},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	bool quick = false, set_reps = false, set_seconds = false, set_iters = false;
	unsigned long v;
	char *end;
	int c;

	*o = (struct opts){
		.sizes = {64, 1024, 65536},
		.n_sizes = 3,
		.reps = 5,
		.seconds = 0.25,
		.iters = 10000,
		.only = GROUP_ALL,
		.idle_seconds = 1.0,
	};

	while ((c = getopt_long(argc, argv, "hqs:r:t:n:o:jV", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("shmq-bench %s\n", SHMQ_VERSION_STRING);
			return 0;
		case 'q':
			quick = true;
			break;
		case 's':
			if (parse_sizes(optarg, o) < 0) {
				fprintf(stderr,
					"shmq-bench: --sizes wants up to %d sizes in %d..%d\n",
					SIZES_MAX, SIZE_MIN, SIZE_MAX_BYTES);
				return -EINVAL;
			}
			break;
		case 'r':
			if (parse_uint(optarg, 1, REPS_MAX, &v) < 0) {
				fprintf(stderr, "shmq-bench: --reps wants 1..%d\n", REPS_MAX);
				return -EINVAL;
			}
			o->reps = (unsigned int)v;
			set_reps = true;
			break;
		case 't':
			errno = 0;
			o->seconds = strtod(optarg, &end);
			if (errno || end == optarg || *end ||
			    !(o->seconds >= 0.01 && o->seconds <= 60)) {
				fprintf(stderr, "shmq-bench: --seconds wants 0.01..60\n");
				return -EINVAL;
			}
			set_seconds = true;
			break;
		case 'n':
			if (parse_uint(optarg, ITERS_MIN, ITERS_MAX, &v) < 0) {
				fprintf(stderr, "shmq-bench: --iters wants %d..%d\n", ITERS_MIN,
					ITERS_MAX);
				return -EINVAL;
			}
			o->iters = (uint32_t)v;
			set_iters = true;
			break;
		case 'o':
			if (parse_only(optarg, o) < 0) {
				fprintf(stderr,
					"shmq-bench: --only wants a comma list of "
					"spin, blocking, futex, mpmc, api, async, baselines, "
					"repair\n");
				return -EINVAL;
			}
			break;
		case 'j':
			o->json = true;
			break;
		case OPT_STRICT:
			o->strict = true;
			break;
		case OPT_SHMQD:
			o->shmqd = optarg;
			break;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shmq-bench: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	/* --quick shortens whatever was not set explicitly. */
	if (quick) {
		o->reps = set_reps ? o->reps : 3;
		o->seconds = set_seconds ? o->seconds : 0.05;
		o->iters = set_iters ? o->iters : 1000;
		o->idle_seconds = 0.3;
	}
	return 1;
}

/*
 * The shmqd that came with this program: beside it in a build tree
 * (build/shmqd), else in the sbin next to its bin when installed
 * ($(prefix)/bin/shmq-bench, $(prefix)/sbin/shmqd).  The program's own path
 * comes from /proc/self/exe: argv[0] has no directory when found on $PATH.
 * Writes the first candidate that exists, else the first.
 */
static void shmqd_beside(const char *argv0, char *buf, size_t size)
{
	static const char *const rel[] = {"shmqd", "../sbin/shmqd"};
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *slash;
	int len;

	if (n > 0)
		self[n] = '\0';
	else
		snprintf(self, sizeof(self), "%s", argv0);
	slash = strrchr(self, '/');
	len = slash ? (int)(slash - self + 1) : 0;
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		snprintf(buf, size, "%.*s%s", len, self, rel[i]);
		if (access(buf, X_OK) == 0)
			return;
	}
	snprintf(buf, size, "%.*s%s", len, self, rel[0]);
}

/*
 * api: start a private shmqd on a temporary socket and connect the parent.
 * Without a daemon binary the api group is dropped with a note, so the
 * rest of the suite still runs.
 */
static int api_start(const char *argv0)
{
	char path[4096];
	uint64_t give_up;
	pid_t pid;
	int r;

	if (bench.o.shmqd)
		snprintf(path, sizeof(path), "%s", bench.o.shmqd);
	else
		shmqd_beside(argv0, path, sizeof(path));
	if (access(path, X_OK) < 0) {
		fprintf(stderr,
			"shmq-bench: no shmqd at %s (--shmqd PATH): skipping api and repair\n",
			path);
		bench.o.only &= ~(GROUP_API | GROUP_REPAIR | GROUP_SYNC);
		return 0;
	}
	snprintf(bench.api_dir, sizeof(bench.api_dir), "/tmp/shmq-bench-XXXXXX");
	if (!mkdtemp(bench.api_dir))
		return -errno;
	snprintf(bench.api_socket, sizeof(bench.api_socket), "%s/shmqd.sock", bench.api_dir);

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char sock[160];

		snprintf(sock, sizeof(sock), "--socket=%s", bench.api_socket);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* The daemon is no peer of the pinned pair: let it run on any CPU. */
		if (CPU_COUNT(&bench.all_cpus))
			sched_setaffinity(0, sizeof(bench.all_cpus), &bench.all_cpus);
		execl(path, path, "--config=/dev/null", sock, "--log-level=warning", (char *)NULL);
		_exit(127);
	}
	bench.shmqd_pid = pid;
	give_up = shmq__now_ns() + 5 * NS_PER_S;
	do {
		r = shmq_client_connect(bench.api_socket, &bench.api_client);
		if (r == 0)
			return 0;
		usleep(10000);
	} while (shmq__now_ns() < give_up);
	fprintf(stderr, "shmq-bench: shmqd at %s did not answer: %s\n", path, strerror(-r));
	return r;
}

static void api_stop(void)
{
	int st;

	shmq_client_close(bench.api_client);
	bench.api_client = NULL;
	if (bench.shmqd_pid > 0) {
		kill(bench.shmqd_pid, SIGTERM); /* our own child, by pid */
		while (waitpid(bench.shmqd_pid, &st, 0) < 0 && errno == EINTR)
			;
		bench.shmqd_pid = 0;
	}
	if (bench.api_dir[0]) {
		unlink(bench.api_socket);
		rmdir(bench.api_dir);
	}
}

static int setup(void)
{
	struct sigaction sa = {.sa_handler = on_alarm};
	size_t buf = page_round(SIZE_MAX_BYTES);

	/* No SA_RESTART: the watchdog exists to interrupt blocking calls. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		return -errno;
	/* A dead reader must surface as EPIPE from write(), not kill the writer. */
	signal(SIGPIPE, SIG_IGN);

	bench.sp = mmap(NULL, page_round(sizeof(*bench.sp)), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (bench.sp == MAP_FAILED)
		return -errno;
	bench.samples = malloc((size_t)bench.o.iters * sizeof(*bench.samples));
	bench.buf_out = aligned_alloc(4096, buf);
	bench.buf_in = aligned_alloc(4096, buf);
	if (!bench.samples || !bench.buf_out || !bench.buf_in)
		return -ENOMEM;
	/* Payload bytes other than the stamps are a fixed pattern, touched once here. */
	memset(bench.buf_out, 0xa5, buf);
	memset(bench.buf_in, 0, buf);
	choose_cpus();
	measure_clock();
	bench.start_ns = shmq__now_ns();
	load_snap(&bench.run_start);
	return 0;
}

int main(int argc, char *argv[])
{
	struct load_snap now;
	int r;

	r = parse_argv(argc, argv, &bench.o);
	if (r <= 0)
		return r < 0 ? 2 : 0;
	r = setup();
	if (r == 0 && (bench.o.only & (GROUP_API | GROUP_REPAIR | GROUP_SYNC)))
		r = api_start(argv[0]);
	if (r < 0) {
		fprintf(stderr, "shmq-bench: setup: %s\n", strerror(-r));
		api_stop();
		return 1;
	}

	if (!bench.o.json)
		print_header();
	for (unsigned int si = 0; si < bench.o.n_sizes && (bench.o.only & GROUP_PER_SIZE); si++) {
		geometry_note(si);
		measure_size(si);
		if (!bench.o.json) {
			print_size(si);
			print_async(si);
		}
	}
	if (bench.o.only & GROUP_BLOCKING)
		(void)run_idle();
	if (bench.o.only & GROUP_SYNC) {
		run_sync();
		if (!bench.o.json)
			print_sync();
	}
	if (bench.o.only & GROUP_REPAIR) {
		run_repair();
		if (!bench.o.json)
			print_repair();
	}

	load_snap(&now);
	bench.load = load_between(&bench.run_start, &now);
	evaluate_targets();
	if (bench.o.json)
		print_json();
	else if (bench.o.only & (GROUP_PER_SIZE | GROUP_SYNC))
		print_targets();

	api_stop();
	free(bench.samples);
	free(bench.buf_out);
	free(bench.buf_in);
	if (bench.errors)
		return 1;
	return bench.o.strict && targets_missed() ? 1 : 0;
}
