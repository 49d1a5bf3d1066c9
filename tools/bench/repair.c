/* SPDX-License-Identifier: MIT */
/* shmq-bench's repair mode: death-to-repair latency.  See repair.h. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "shm/futex.h"
#include "tools/bench/repair.h"

#define DEADLINE_NS   (UINT64_C(5) * 1000000000) /* any one step; a longer one is a failure */
#define READY_POLL_US 50

const char *const bench_repair_names[BENCH_REPAIR_COUNT] = {
	[BENCH_REPAIR_PIDFD] = "pidfd-wake",
	[BENCH_REPAIR_PEEK] = "repair-peek",
	[BENCH_REPAIR_UNDO] = "repair-undo",
};

const char *const bench_repair_about[BENCH_REPAIR_COUNT] = {
	[BENCH_REPAIR_PIDFD] = "baseline: SIGKILL -> the child's pidfd polls readable",
	[BENCH_REPAIR_PEEK] = "SIGKILL of a peek holder -> recv_wait gets the message re-delivered",
	[BENCH_REPAIR_UNDO] = "SIGKILL of an undo-token holder -> sem_wait gets the token back",
};

enum child_state { CHILD_STARTING, CHILD_HOLDING, CHILD_FAILED };

struct batch {
	enum bench_repair_kind kind;
	const char *socket;
	char qname[64];
	char sname[64];
	struct shmq_client *c;
	struct shmq_queue *q;
	struct shmq_sem *s;
	_Atomic uint32_t *state; /* MAP_SHARED: enum child_state */
	char *what;
	size_t what_size;
};

static int fail(struct batch *b, int r, const char *step)
{
	snprintf(b->what, b->what_size, "%s: %s: %s", bench_repair_names[b->kind], step,
		 strerror(r < 0 ? -r : EPROTO));
	return r < 0 ? r : -EPROTO;
}

/* The child: take what the scenario holds, say so, and wait to be killed. */
static void child_hold(struct batch *b)
{
	struct shmq_client *c;
	struct shmq_queue *q;
	struct shmq_sem *s;
	const void *msg;
	int r = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* The parent's client and handles are copies here: a child connects its own. */
	if (b->kind == BENCH_REPAIR_PEEK) {
		r = shmq_client_connect(b->socket, &c);
		if (r == 0)
			r = shmq_queue_open(c, b->qname, SHMQ_RECV, NULL, &q);
		if (r == 0)
			r = shmq_queue_peek(q, shmq_deadline_after(DEADLINE_NS), &msg);
	} else if (b->kind == BENCH_REPAIR_UNDO) {
		r = shmq_client_connect(b->socket, &c);
		if (r == 0)
			r = shmq_sem_open(c, b->sname, 0, NULL, &s);
		if (r == 0)
			r = shmq_sem_wait(s, shmq_deadline_after(DEADLINE_NS));
	}
	/* seq_cst: the hold is taken before the parent can see HOLDING and kill us. */
	atomic_store(b->state, r < 0 ? CHILD_FAILED : CHILD_HOLDING);
	for (;;)
		pause();
}

static int wait_holding(struct batch *b)
{
	uint64_t give_up = shmq__now_ns() + DEADLINE_NS;

	for (;;) {
		uint32_t st = atomic_load(b->state);

		if (st == CHILD_HOLDING)
			return 0;
		if (st == CHILD_FAILED || shmq__now_ns() > give_up)
			return fail(b, st == CHILD_FAILED ? -EIO : -ETIMEDOUT,
				    "the child could not take its hold");
		usleep(READY_POLL_US);
	}
}

static int reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* One death: kill the holder at t0, return when its hold is observed back. */
static int one_death(struct batch *b, uint64_t *ret_ns)
{
	uint64_t t0, t1;
	int pidfd = -1, r;
	char buf[16];
	pid_t pid;

	atomic_store(b->state, CHILD_STARTING);
	if (b->kind == BENCH_REPAIR_PEEK && (r = shmq_queue_send(b->q, "held", 4)) < 0)
		return fail(b, r, "send");
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return fail(b, -errno, "fork");
	if (pid == 0)
		child_hold(b);

	r = wait_holding(b);
	if (r == 0 && b->kind == BENCH_REPAIR_PIDFD) {
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0)
			r = fail(b, -errno, "pidfd_open");
	}
	if (r < 0) {
		kill(pid, SIGKILL); /* our own child, by pid */
		reap(pid);
		return r;
	}

	t0 = shmq__now_ns();
	kill(pid, SIGKILL);
	switch (b->kind) {
	case BENCH_REPAIR_PIDFD: {
		struct pollfd p = {.fd = pidfd, .events = POLLIN};

		do
			r = poll(&p, 1, (int)(DEADLINE_NS / 1000000));
		while (r < 0 && errno == EINTR);
		r = r == 1 ? 0 : r == 0 ? -ETIMEDOUT : -errno;
		break;
	}
	case BENCH_REPAIR_PEEK:
		r = shmq_queue_recv_wait(b->q, buf, sizeof(buf), shmq_deadline_after(DEADLINE_NS));
		r = r == 4 && memcmp(buf, "held", 4) == 0 ? 0 : r < 0 ? r : -EBADMSG;
		break;
	case BENCH_REPAIR_UNDO:
		r = shmq_sem_wait(b->s, shmq_deadline_after(DEADLINE_NS));
		break;
	default:
		r = -EINVAL;
	}
	t1 = shmq__now_ns();
	if (pidfd >= 0)
		close(pidfd);
	reap(pid);
	if (r < 0)
		return fail(b, r, "waiting for the repair");
	if (b->kind == BENCH_REPAIR_UNDO && (r = shmq_sem_post(b->s, 1)) < 0)
		return fail(b, r, "posting the token back");
	*ret_ns = t1 - t0;
	return 0;
}

static int batch_open(struct batch *b)
{
	struct shmq_queue_attr qa = {.size = sizeof(qa),
				     .n_slots = 4,
				     .slot_size = 64,
				     .mode = SHMQ_MPMC,
				     .numa_node = -1};
	struct shmq_sem_attr sa = {.size = sizeof(sa), .initial = 1, .flags = SHMQ_SEM_ATTR_UNDO};
	int r;

	if (b->kind == BENCH_REPAIR_PIDFD)
		return 0;
	snprintf(b->qname, sizeof(b->qname), "bench-repair-q-%d", (int)getpid());
	snprintf(b->sname, sizeof(b->sname), "bench-repair-s-%d", (int)getpid());
	r = shmq_client_connect(b->socket, &b->c);
	if (r < 0)
		return fail(b, r, "connect");
	if (b->kind == BENCH_REPAIR_PEEK)
		r = shmq_queue_open(b->c, b->qname, SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND | SHMQ_RECV,
				    &qa, &b->q);
	else
		r = shmq_sem_open(b->c, b->sname, SHMQ_CREATE | SHMQ_EXCL, &sa, &b->s);
	return r < 0 ? fail(b, r, "create") : 0;
}

static void batch_close(struct batch *b)
{
	if (b->q) {
		shmq_queue_close(b->q);
		shmq_unlink(b->c, b->qname);
	}
	if (b->s) {
		shmq_sem_close(b->s);
		shmq_unlink(b->c, b->sname);
	}
	shmq_client_close(b->c);
}

int bench_repair_batch(enum bench_repair_kind kind, const char *socket, unsigned int n,
		       uint64_t *ret_ns, char *what, size_t what_size)
{
	struct batch b = {.kind = kind, .socket = socket, .what = what, .what_size = what_size};
	int r;

	if (kind >= BENCH_REPAIR_COUNT)
		return -EINVAL;
	b.state = mmap(NULL, sizeof(*b.state), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);
	if (b.state == MAP_FAILED)
		return fail(&b, -errno, "mmap");
	r = batch_open(&b);
	for (unsigned int i = 0; r == 0 && i < n; i++)
		r = one_death(&b, &ret_ns[i]);
	batch_close(&b);
	munmap((void *)b.state, sizeof(*b.state));
	return r;
}
