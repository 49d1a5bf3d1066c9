/* SPDX-License-Identifier: MIT */
/*
 * worker_pool: a pool of forked worker processes whose concurrency is
 * limited by a semaphore, like a multiprocessing.Pool whose workers guard a
 * scarce resource with a multiprocessing.BoundedSemaphore(K).
 *
 * The parent puts --jobs tasks into a "tasks" queue; each of --workers
 * workers takes a task, waits on the semaphore, stamps the time it entered
 * and left its critical section (a short job), posts, and sends the result
 * and both stamps to a "results" queue.  CLOCK_MONOTONIC is one clock for
 * every process on the machine, so the parent can replay the stamps and
 * find the largest number of workers that were ever inside at once: it must
 * never exceed K.  The parent also checks that every job ran exactly once
 * with the right result, and that the semaphore is back at K.
 *
 * Workers are forked before the parent connects, so no process ever shares
 * a client or a handle with another: each connects and opens on its own.
 *
 * Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "connect.h"

#define STOP UINT32_MAX /* task id that tells a worker to exit */

static const char *prog = "worker_pool";

struct options {
	const char *socket_path;
	char prefix[40];
	uint32_t workers;
	uint32_t limit;
	uint32_t jobs;
	uint32_t job_ms;
	uint64_t timeout_ns;
};

struct task {
	uint32_t id;
	uint32_t reserved;
};

struct result {
	uint32_t id;
	uint32_t worker;
	uint64_t value;
	uint64_t enter_ns; /* CLOCK_MONOTONIC, after the semaphore was taken */
	uint64_t leave_ns; /* CLOCK_MONOTONIC, before it was posted */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [options]\n"
		"Run jobs on forked workers, at most K at a time (a shmq semaphore), and check\n"
		"that the limit held and every job ran once.\n"
		"  -w, --workers N      worker processes, 1..64 (default 4)\n"
		"  -k, --limit K        semaphore value: concurrent jobs allowed (default 2)\n"
		"  -j, --jobs J         jobs, 1..65536 (default 32)\n"
		"  -m, --job-ms MS      how long each job holds the semaphore (default 5)\n"
		"  -n, --name PREFIX    object names PREFIX.sem/.tasks/.results (default "
		"pool-PID)\n"
		"  -t, --timeout SEC    give up on any single wait after SEC (default 30)\n"
		"  -s, --socket PATH    shmqd control socket (default: $SHMQ_SOCKET, else the\n"
		"                       library's default path)\n"
		"  -h, --help           this text\n",
		prog);
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -1;
	*ret = (uint32_t)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{"workers", required_argument, NULL, 'w'},
		{"limit", required_argument, NULL, 'k'},
		{"jobs", required_argument, NULL, 'j'},
		{"job-ms", required_argument, NULL, 'm'},
		{"name", required_argument, NULL, 'n'},
		{"timeout", required_argument, NULL, 't'},
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint32_t v;
	int opt;

	while ((opt = getopt_long(argc, argv, "w:k:j:m:n:t:s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'w':
			if (parse_u32(optarg, 1, 64, &o->workers) < 0)
				goto bad;
			break;
		case 'k':
			if (parse_u32(optarg, 1, 1 << 20, &o->limit) < 0)
				goto bad;
			break;
		case 'j':
			if (parse_u32(optarg, 1, 1 << 16, &o->jobs) < 0)
				goto bad;
			break;
		case 'm':
			if (parse_u32(optarg, 0, 10000, &o->job_ms) < 0)
				goto bad;
			break;
		case 'n':
			if (strlen(optarg) >= sizeof(o->prefix))
				goto bad;
			snprintf(o->prefix, sizeof(o->prefix), "%s", optarg);
			break;
		case 't':
			if (parse_u32(optarg, 1, 86400, &v) < 0)
				goto bad;
			o->timeout_ns = (uint64_t)v * 1000000000;
			break;
		case 's':
			o->socket_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return -1;
	}
	return 1;

bad:
	fprintf(stderr, "%s: bad value '%s'\n", prog, optarg);
	usage(stderr);
	return -1;
}

static uint64_t now_ns(void)
{
	return shmq_deadline_after(0);
}

/* The "work": something checkable, plus a nap that makes the workers overlap. */
static uint64_t job(uint32_t id, uint32_t job_ms)
{
	struct timespec ts = {.tv_sec = job_ms / 1000, .tv_nsec = (long)(job_ms % 1000) * 1000000};
	uint64_t sum = 0;

	for (uint64_t i = 0; i <= id; i++)
		sum += i * i;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return sum;
}

static uint64_t job_expected(uint32_t id)
{
	uint64_t n = id;

	return n * (n + 1) * (2 * n + 1) / 6;
}

static void object_name(char *buf, size_t size, const struct options *o, const char *what)
{
	snprintf(buf, size, "%s.%s", o->prefix, what);
}

/* --- Worker --- */

/* The parent creates the objects after forking us: wait for them to appear. */
static int open_queue(struct shmq_client *c, const struct options *o, const char *what,
		      unsigned int flags, struct shmq_queue **ret)
{
	uint64_t deadline_ns = shmq_deadline_after(o->timeout_ns);
	char name[64];
	int r;

	object_name(name, sizeof(name), o, what);
	while ((r = shmq_queue_open(c, name, flags, NULL, ret)) == -ENOENT &&
	       now_ns() < deadline_ns)
		usleep(2000);
	return r;
}

static int open_sem(struct shmq_client *c, const struct options *o, struct shmq_sem **ret)
{
	uint64_t deadline_ns = shmq_deadline_after(o->timeout_ns);
	char name[64];
	int r;

	object_name(name, sizeof(name), o, "sem");
	while ((r = shmq_sem_open(c, name, 0, NULL, ret)) == -ENOENT && now_ns() < deadline_ns)
		usleep(2000);
	return r;
}

static int work(struct shmq_sem *sem, struct shmq_queue *tasks, struct shmq_queue *results,
		const struct options *o, uint32_t idx)
{
	for (;;) {
		struct task t;
		struct result res = {.worker = idx};
		int r;

		r = shmq_queue_recv_wait(tasks, &t, sizeof(t), shmq_deadline_after(o->timeout_ns));
		if (r < 0)
			return r;
		if (r != (int)sizeof(t))
			return -EBADMSG;
		if (t.id == STOP)
			return 0;

		r = shmq_sem_wait(sem, shmq_deadline_after(o->timeout_ns));
		if (r < 0)
			return r;
		res.enter_ns = now_ns();
		res.id = t.id;
		res.value = job(t.id, o->job_ms);
		res.leave_ns = now_ns();
		r = shmq_sem_post(sem, 1);
		if (r < 0)
			return r;

		r = shmq_queue_send_wait(results, &res, sizeof(res),
					 shmq_deadline_after(o->timeout_ns));
		if (r < 0)
			return r;
	}
}

static int worker_main(const struct options *o, uint32_t idx)
{
	struct shmq_queue *tasks = NULL, *results = NULL;
	struct shmq_client *c;
	struct shmq_sem *sem = NULL;
	const char *step = "connecting to shmqd";
	int r;

	r = shmq_client_connect(o->socket_path, &c);
	if (r < 0)
		goto out;
	step = "opening the semaphore";
	r = open_sem(c, o, &sem);
	if (r < 0)
		goto out_client;
	step = "opening the tasks queue";
	r = open_queue(c, o, "tasks", SHMQ_RECV, &tasks);
	if (r < 0)
		goto out_objects;
	step = "opening the results queue";
	r = open_queue(c, o, "results", SHMQ_SEND, &results);
	if (r < 0)
		goto out_objects;
	step = "working";
	r = work(sem, tasks, results, o, idx);

out_objects:
	shmq_queue_close(results);
	shmq_queue_close(tasks);
	shmq_sem_close(sem);
out_client:
	shmq_client_close(c);
out:
	if (r < 0)
		fprintf(stderr, "%s: worker %" PRIu32 ": %s: %s\n", prog, idx, step,
			shmq_strerror(r));
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* --- Parent --- */

struct pool {
	struct shmq_client *c;
	struct shmq_sem *sem;
	struct shmq_queue *tasks;
	struct shmq_queue *results;
	pid_t *pids;
	struct result *res;
	uint32_t n_forked;
	int n_created; /* objects created, in the order sem, tasks, results */
};

static uint32_t pow2_at_least(uint32_t n)
{
	uint32_t p = 2;

	while (p < n)
		p <<= 1;
	return p;
}

static int create_objects(struct pool *p, const struct options *o)
{
	/* BoundedSemaphore(K): a post above K would be a bug, and fails loudly. */
	struct shmq_sem_attr sa = {
		.size = sizeof(sa),
		.initial = o->limit,
		.max = o->limit,
		.flags = SHMQ_SEM_ATTR_BOUNDED,
	};
	/*
	 * Both queues hold everything that will ever be in them: the parent
	 * sends every task before it reads any result, so a full results queue
	 * could otherwise stall the workers and, through them, the parent.
	 */
	struct shmq_queue_attr ta = {
		.size = sizeof(ta),
		.n_slots = pow2_at_least(o->jobs + o->workers),
		.slot_size = sizeof(struct task),
		.numa_node = -1,
	};
	struct shmq_queue_attr ra = {
		.size = sizeof(ra),
		.n_slots = pow2_at_least(o->jobs),
		.slot_size = sizeof(struct result),
		.numa_node = -1,
	};
	char name[64];
	int r;

	object_name(name, sizeof(name), o, "sem");
	r = shmq_sem_open(p->c, name, SHMQ_CREATE | SHMQ_EXCL, &sa, &p->sem);
	if (r < 0)
		return r;
	p->n_created++;
	object_name(name, sizeof(name), o, "tasks");
	r = shmq_queue_open(p->c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &ta, &p->tasks);
	if (r < 0)
		return r;
	p->n_created++;
	object_name(name, sizeof(name), o, "results");
	r = shmq_queue_open(p->c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_RECV, &ra, &p->results);
	if (r < 0)
		return r;
	p->n_created++;
	return 0;
}

static void destroy_objects(struct pool *p, const struct options *o)
{
	static const char *const what[] = {"sem", "tasks", "results"};
	char name[64];

	for (int i = 0; i < p->n_created; i++) {
		int r;

		object_name(name, sizeof(name), o, what[i]);
		r = shmq_unlink(p->c, name);
		if (r < 0)
			fprintf(stderr, "%s: unlinking %s: %s\n", prog, name, shmq_strerror(r));
	}
	shmq_queue_close(p->results);
	shmq_queue_close(p->tasks);
	shmq_sem_close(p->sem);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Largest number of overlapping [enter, leave] intervals.  Events are
 * encoded as time * 2 + (0 leave, 1 enter), so at the same nanosecond a
 * leave sorts first: a worker that takes the token just posted is not
 * counted as overlapping the one that posted it.
 */
static uint32_t max_concurrency(const struct result *res, uint32_t n)
{
	uint64_t *ev = malloc(2 * (size_t)n * sizeof(*ev));
	uint32_t cur = 0, max = 0;

	if (!ev)
		return UINT32_MAX;
	for (uint32_t i = 0; i < n; i++) {
		ev[2 * i] = res[i].enter_ns * 2 + 1;
		ev[2 * i + 1] = res[i].leave_ns * 2;
	}
	qsort(ev, 2 * (size_t)n, sizeof(*ev), cmp_u64);
	for (size_t i = 0; i < 2 * (size_t)n; i++) {
		if (ev[i] & 1) {
			if (++cur > max)
				max = cur;
		} else {
			cur--;
		}
	}
	free(ev);
	return max;
}

static int run_jobs(struct pool *p, const struct options *o)
{
	uint8_t *seen;
	int r;

	for (uint32_t i = 0; i < o->jobs + o->workers; i++) {
		struct task t = {.id = i < o->jobs ? i : STOP};

		r = shmq_queue_send_wait(p->tasks, &t, sizeof(t),
					 shmq_deadline_after(o->timeout_ns));
		if (r < 0) {
			fprintf(stderr, "%s: sending task %" PRIu32 ": %s\n", prog, i,
				shmq_strerror(r));
			return r;
		}
	}

	seen = calloc(o->jobs, 1);
	if (!seen)
		return -ENOMEM;
	r = 0;
	for (uint32_t i = 0; i < o->jobs; i++) {
		struct result *res = &p->res[i];
		int n = shmq_queue_recv_wait(p->results, res, sizeof(*res),
					     shmq_deadline_after(o->timeout_ns));

		if (n < 0) {
			fprintf(stderr, "%s: waiting for result %" PRIu32 " of %" PRIu32 ": %s\n",
				prog, i + 1, o->jobs, shmq_strerror(n));
			r = n;
			break;
		}
		if (n != (int)sizeof(*res) || res->id >= o->jobs || seen[res->id] ||
		    res->value != job_expected(res->id) || res->leave_ns < res->enter_ns) {
			fprintf(stderr, "%s: bad result for job %" PRIu32 "\n", prog, res->id);
			r = -EBADMSG;
			break;
		}
		seen[res->id] = 1;
	}
	free(seen);
	return r;
}

static int reap(struct pool *p)
{
	int bad = 0;

	for (uint32_t i = 0; i < p->n_forked; i++) {
		pid_t w;
		int st = 0;

		while ((w = waitpid(p->pids[i], &st, 0)) < 0 && errno == EINTR)
			;
		if (w < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "%s: worker %" PRIu32 " (pid %d) failed\n", prog, i,
				(int)p->pids[i]);
			bad = 1;
		}
	}
	p->n_forked = 0;
	return bad ? -ECHILD : 0;
}

int main(int argc, char **argv)
{
	struct options o = {
		.workers = 4,
		.limit = 2,
		.jobs = 32,
		.job_ms = 5,
		.timeout_ns = UINT64_C(30) * 1000000000,
	};
	struct pool p = {.c = NULL};
	uint32_t max = 0;
	int r, value, ok = 0;

	snprintf(o.prefix, sizeof(o.prefix), "pool-%d", (int)getpid());
	r = parse_args(argc, argv, &o);
	if (r <= 0)
		return r == 0 ? EXIT_SUCCESS : 2;

	p.pids = calloc(o.workers, sizeof(*p.pids));
	p.res = calloc(o.jobs, sizeof(*p.res));
	if (!p.pids || !p.res) {
		fprintf(stderr, "%s: out of memory\n", prog);
		goto out;
	}

	fflush(NULL); /* a child must not print the parent's buffered output again */
	for (; p.n_forked < o.workers; p.n_forked++) {
		pid_t pid = fork();

		if (pid < 0) {
			fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
			goto out_kill;
		}
		if (pid == 0) {
			uint32_t idx = p.n_forked;

			free(p.pids);
			free(p.res);
			exit(worker_main(&o, idx));
		}
		p.pids[p.n_forked] = pid;
	}

	r = example_connect(prog, o.socket_path, &p.c);
	if (r < 0)
		goto out_kill;
	r = create_objects(&p, &o);
	if (r < 0) {
		fprintf(stderr, "%s: creating %s.*: %s%s%s\n", prog, o.prefix, shmq_strerror(r),
			shmq_last_error()[0] ? ": " : "", shmq_last_error());
		goto out_kill;
	}

	r = run_jobs(&p, &o);
	if (r < 0)
		goto out_kill;
	if (reap(&p) < 0)
		goto out_objects;

	max = max_concurrency(p.res, o.jobs);
	value = shmq_sem_value(p.sem);
	printf("%s: %" PRIu32 " jobs on %" PRIu32 " workers, limit %" PRIu32
	       ": max concurrency %" PRIu32 ", semaphore back at %d\n",
	       prog, o.jobs, o.workers, o.limit, max, value);
	if (max > o.limit)
		fprintf(stderr, "%s: the semaphore let %" PRIu32 " workers in at once\n", prog,
			max);
	else if (value != (int)o.limit)
		fprintf(stderr, "%s: semaphore value %d, expected %" PRIu32 "\n", prog, value,
			o.limit);
	else
		ok = 1;
	goto out_objects;

out_kill:
	for (uint32_t i = 0; i < p.n_forked; i++)
		kill(p.pids[i], SIGTERM);
	reap(&p);
out_objects:
	if (p.c)
		destroy_objects(&p, &o);
	shmq_client_close(p.c);
out:
	free(p.pids);
	free(p.res);
	printf("%s: %s\n", prog, ok ? "OK" : "FAILED");
	return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
