/* SPDX-License-Identifier: MIT */
/*
 * Integration: a client with write access scribbles on a segment.
 *
 * One process maps a queue (or semaphore) it opened for sending and writes
 * random bytes over every part of it -- header, session records, control
 * block, slots -- while other processes keep sending, receiving and waiting
 * on it.  They must get -EBADMSG where the bytes are bad and keep working
 * where they are harmless; never crash, never read out of bounds (this runs
 * under AddressSanitizer in `make test SAN=address,undefined`), never block
 * past their deadlines.  The daemon must notice, quarantine the object
 * (refusing new opens with -EBADMSG), say so in its log and in shmqctl, and
 * let an administrator clear it by removing the name.  A busy queue that
 * nobody scribbles on must never be quarantined.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "shm/layout.h"
#include "tests/helpers.h"
#include "tests/integration/daemon.h"
#include "tests/integration/raw.h"

#define WORKERS	      3
#define WORK_MS	      3000 /* each worker's run */
#define SCRIBBLE_MS   2000
#define OP_TIMEOUT_MS 50
/*
 * A call returning this long after its deadline is a hang.  A post has no
 * deadline, but may wait SHMQ_SEM_OWNER_WAIT_NS (2 s) for the undo of an
 * operation whose tag a scribbler forged: 2 s past the op's deadline and
 * 1 s of slack for sanitizer builds.
 */
#define LATE_MS	      3000
#define CHILD_MS      30000
#define QUARANTINE_MS 5000 /* the daemon ticks every second */
#define RUN_MS	      10000
#define SLOT_SIZE     64

static struct t_daemon d;
static char out[65536];

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(quarantine, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 90);

/* What each worker saw, in memory shared with the test. */
struct tally {
	unsigned long ok, badmsg, timedout, other, late;
	int last_other;
	_Atomic int opened; /* the worker holds its handle: scribbling may start */
};

struct work {
	const char *name;
	bool sem;
	struct tally *t;
};

static void count(struct tally *t, int r, uint64_t deadline_ns)
{
	if (t_now_ns() > deadline_ns + (uint64_t)LATE_MS * 1000000)
		t->late++;
	if (r >= 0)
		t->ok++;
	else if (r == -EBADMSG)
		t->badmsg++;
	else if (r == -ETIMEDOUT || r == -EAGAIN || r == -EBUSY)
		t->timedout++; /* -EBUSY: a post gave up on a (forged) dead owner's tag */
	else if (r == -EMSGSIZE || r == -EOVERFLOW || r == -EPIPE)
		t->ok++; /* a scribbled length, count or shutdown word, reported as such: fine */
	else {
		t->other++;
		t->last_other = r;
	}
}

static int queue_worker(struct work *w)
{
	struct shmq_client *c;
	struct shmq_queue *q;
	uint64_t end = t_now_ns() + (uint64_t)WORK_MS * 1000000;
	char buf[SLOT_SIZE];
	int r;

	if (shmq_client_connect(getenv("SHMQ_SOCKET"), &c) < 0)
		return 2;
	if (shmq_queue_open(c, w->name, SHMQ_SEND | SHMQ_RECV, NULL, &q) < 0)
		return 3;
	w->t->opened = 1;
	for (unsigned int i = 0; t_now_ns() < end; i++) {
		uint64_t dl = shmq_deadline_after((uint64_t)OP_TIMEOUT_MS * 1000000);
		const void *m;

		switch (i % 4) {
		case 0:
			r = shmq_queue_send_wait(q, "scribble", 8, dl);
			break;
		case 1:
			r = shmq_queue_recv_wait(q, buf, sizeof(buf), dl);
			break;
		case 2:
			r = shmq_queue_peek(q, dl, &m);
			if (r >= 0) {
				/* The message must lie inside the mapping: read all of it. */
				unsigned int sum = 0;

				for (int k = 0; k < r; k++)
					sum += ((const volatile unsigned char *)m)[k];
				(void)sum;
				(void)shmq_queue_release(q);
			}
			break;
		default:
			r = shmq_queue_send(q, "x", 1);
			if (r == -EAGAIN)
				r = 0;
			break;
		}
		count(w->t, r, dl);
	}
	shmq_queue_close(q);
	shmq_client_close(c);
	return 0;
}

static int sem_worker(struct work *w)
{
	struct shmq_client *c;
	struct shmq_sem *s;
	uint64_t end = t_now_ns() + (uint64_t)WORK_MS * 1000000;
	int r;

	if (shmq_client_connect(getenv("SHMQ_SOCKET"), &c) < 0)
		return 2;
	if (shmq_sem_open(c, w->name, 0, NULL, &s) < 0)
		return 3;
	w->t->opened = 1;
	for (unsigned int i = 0; t_now_ns() < end; i++) {
		uint64_t dl = shmq_deadline_after((uint64_t)OP_TIMEOUT_MS * 1000000);

		r = i % 2 ? shmq_sem_post(s, 1) : shmq_sem_wait(s, dl);
		count(w->t, r, dl);
	}
	shmq_sem_close(s);
	shmq_client_close(c);
	return 0;
}

static int worker(void *arg)
{
	struct work *w = arg;

	return w->sem ? sem_worker(w) : queue_worker(w);
}

/* A raw session that opened @name with write access: its memfd, mapped read-write. */
struct scribbler {
	int fd;
	unsigned char *base;
	size_t size;
	uint64_t object_off; /* read before anything is scribbled */
};

static void scribbler_open(struct scribbler *s, const char *name, bool sem)
{
	struct shmq_req_open req;
	struct shmq_rep_open ro;
	struct t_reply *rep = malloc(sizeof(*rep));

	cr_assert(rep != NULL);
	s->fd = t_raw_session(d.sock);
	cr_assert(s->fd >= 0, "raw session: %s", strerror(-s->fd));
	if (sem) {
		memset(&req, 0, sizeof(req));
		req.flags = SHMQ_OPEN_SEM;
		req.kind = SHMQ_KIND_SEM;
		strcpy(req.name, name);
	} else {
		t_raw_queue_req(&req, name, SHMQ_OPEN_SEND, 0, 0, 0, 0);
	}
	T_OK(t_raw_call(s->fd, SHMQ_OP_OPEN, &req, sizeof(req), rep));
	cr_assert(rep->fd >= 0, "OPEN passed no descriptor");
	memcpy(&ro, rep->body, sizeof(ro));
	s->size = ro.size;
	s->base = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, rep->fd, 0);
	cr_assert(s->base != MAP_FAILED, "mmap: %s", strerror(errno));
	s->object_off = ((const struct shmq_segment_hdr *)s->base)->object_off;
	cr_assert(s->object_off < s->size);
	close(rep->fd);
	free(rep);
}

static void scribbler_close(struct scribbler *s)
{
	munmap(s->base, s->size);
	close(s->fd); /* the daemon detaches the session */
}

/* Random bytes over each part in turn, for @ms; returns how many bytes were written. */
static unsigned long scribble(struct scribbler *s, uint64_t *rng, unsigned int ms)
{
	const struct shmq_segment_hdr *h = (const void *)s->base;
	uint64_t parts[4][2] = {
		{0, sizeof(*h)},
		{h->sessions_off, h->object_off},
		{h->object_off, h->slots_off ? h->slots_off : s->size},
		{h->slots_off ? h->slots_off : h->object_off, s->size},
	};
	uint64_t end = t_now_ns() + (uint64_t)ms * 1000000;
	unsigned long n = 0;

	/* The bounds were read once, before anything was scribbled. */
	for (int p = 0; p < 4; p++)
		cr_assert(parts[p][0] < parts[p][1] && parts[p][1] <= s->size);
	for (unsigned int round = 0; t_now_ns() < end; round++) {
		uint64_t *part = parts[round % 4];
		uint64_t r = t_rand(rng);
		size_t off = part[0] + r % (part[1] - part[0]);

		((volatile unsigned char *)s->base)[off] = (unsigned char)(r >> 40);
		n++;
		if (round % 64 == 0)
			t_sleep_ms(1);
	}
	return n;
}

static uint32_t stat_flags(const char *name)
{
	struct shmq_obj_info info;
	int fd = t_raw_session(d.sock), r;

	cr_assert(fd >= 0);
	r = t_raw_stat(fd, name, &info);
	close(fd);
	T_OK(r);
	return info.flags;
}

static bool wait_quarantined(const char *name)
{
	uint64_t end = t_now_ns() + (uint64_t)QUARANTINE_MS * 1000000;

	while (t_now_ns() < end) {
		if (stat_flags(name) & SHMQ_OBJ_QUARANTINED)
			return true;
		t_sleep_ms(50);
	}
	return false;
}

static int ctl(const char *a0, ...)
{
	const char *argv[12];
	const char *path = getenv("SHMQCTL");
	char sock[160];
	va_list ap;
	int n = 0;

	cr_assert(path && *path, "SHMQCTL is not set: run `make test`");
	snprintf(sock, sizeof(sock), "--socket=%s", d.sock);
	argv[n++] = path;
	argv[n++] = sock;
	va_start(ap, a0);
	for (const char *a = a0; a && n < 11; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return t_run(argv, out, sizeof(out), RUN_MS);
}

static void run_workers(struct tally *t, struct work *w, pid_t *pids)
{
	setenv("SHMQ_SOCKET", d.sock, 1);
	for (int i = 0; i < WORKERS; i++) {
		w[i].t = &t[i];
		pids[i] = t_fork_child(worker, &w[i]);
	}
	/* Opens after a quarantine are refused: let every worker in first. */
	for (int i = 0; i < WORKERS; i++) {
		uint64_t end = t_now_ns() + (uint64_t)CHILD_MS * 1000000;

		while (!t[i].opened && t_now_ns() < end)
			t_sleep_ms(5);
		cr_assert(eq(int, t[i].opened, 1), "worker %d did not open the object", i);
	}
}

static void reap_workers(struct tally *t, const pid_t *pids)
{
	for (int i = 0; i < WORKERS; i++) {
		int st = t_wait_peer_ms(pids[i], CHILD_MS);

		cr_assert(eq(int, st, 0), "worker %d: exit status %d (a crash is 128 + signal)", i,
			  st);
		fprintf(stderr, "worker %d: %lu ok, %lu -EBADMSG, %lu timed out, %lu other\n", i,
			t[i].ok, t[i].badmsg, t[i].timedout, t[i].other);
		cr_assert(eq(ulong, t[i].late, 0), "worker %d: %lu calls returned past deadline", i,
			  t[i].late);
		cr_assert(eq(ulong, t[i].other, 0), "worker %d: unexpected %d (%s)", i,
			  t[i].last_other, strerror(-t[i].last_other));
		cr_assert(t[i].ok + t[i].badmsg + t[i].timedout > 0, "worker %d did nothing", i);
	}
}

/* Quarantined: visible in STAT, shmqctl ls/show/check (text and JSON), the log. */
static void assert_quarantine_visible(const char *name)
{
	char log[65536];

	cr_assert(eq(int, ctl("ls", NULL), 0), "shmqctl ls: %s", out);
	cr_assert(strstr(out, "quarantined") != NULL, "ls does not show the quarantine:\n%s", out);
	cr_assert(eq(int, ctl("--json", "ls", NULL), 0), "shmqctl --json ls: %s", out);
	cr_assert(strstr(out, "\"quarantined\":true") || strstr(out, "\"quarantined\": true"),
		  "ls --json does not show the quarantine:\n%s", out);
	cr_assert(eq(int, ctl("show", name, NULL), 0), "shmqctl show: %s", out);
	cr_assert(strstr(out, "QUARANTINED") != NULL, "show does not show the quarantine:\n%s",
		  out);
	cr_assert(ne(int, ctl("check", name, NULL), 0), "check passes a quarantined object");
	cr_assert(strstr(out, "corrupt") != NULL, "check output:\n%s", out);
	t_daemon_read_log(&d, log, sizeof(log));
	cr_assert(strstr(log, "quarantined") != NULL, "the daemon did not log the quarantine");
}

/* Removing the name clears it: the name is free for a healthy object again. */
static void assert_rm_clears(const char *name, bool sem)
{
	struct shmq_client *c = t_connect(&d);

	cr_assert(eq(int, ctl("rm", name, NULL), 0), "shmqctl rm: %s", out);
	if (sem) {
		struct shmq_sem_attr a = {.size = sizeof(a), .initial = 1};
		struct shmq_sem *s;

		T_OK(shmq_sem_open(c, name, SHMQ_CREATE | SHMQ_EXCL, &a, &s));
		T_OK(shmq_sem_close(s));
	} else {
		struct shmq_queue_attr a = {
			.size = sizeof(a), .n_slots = 16, .slot_size = SLOT_SIZE, .numa_node = -1};
		struct shmq_queue *q;

		T_OK(shmq_queue_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND | SHMQ_RECV, &a,
				     &q));
		T_OK(shmq_queue_send(q, "fresh", 5));
		T_OK(shmq_queue_close(q));
	}
	cr_assert(eq(u32, stat_flags(name) & SHMQ_OBJ_QUARANTINED, 0),
		  "the new object is quarantined");
	shmq_client_close(c);
}

Test(quarantine, scribbled_queue_is_quarantined)
{
	struct shmq_queue_attr a = {.size = sizeof(a),
				    .n_slots = 16,
				    .slot_size = SLOT_SIZE,
				    .numa_node = -1,
				    .perm = 0600};
	struct tally *t = t_shared_alloc(WORKERS * sizeof(*t));
	struct work w[WORKERS];
	pid_t pids[WORKERS];
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q;
	struct scribbler s;
	uint64_t rng = t_seed();
	unsigned long n;

	T_OK(shmq_queue_open(c, "victim", SHMQ_CREATE | SHMQ_SEND, &a, &q));
	for (int i = 0; i < WORKERS; i++)
		w[i] = (struct work){.name = "victim"};
	run_workers(t, w, pids);
	scribbler_open(&s, "victim", false);
	n = scribble(&s, &rng, SCRIBBLE_MS);
	/* The geometry, scribbled for certain: the header never changes honestly. */
	((volatile struct shmq_segment_hdr *)s.base)->geom.queue.n_slots ^= 0x5a5a;
	fprintf(stderr, "scribbled %lu bytes\n", n);
	reap_workers(t, pids);

	cr_assert(wait_quarantined("victim"), "the daemon did not quarantine the queue");
	/* The handle open before keeps working or reports -EBADMSG; new opens are refused. */
	{
		int r = shmq_queue_send(q, "old", 3);

		cr_assert(r == 0 || r == -EAGAIN || r == -EBADMSG || r == -EPIPE, "old handle: %d",
			  r);
	}
	{
		struct shmq_client *c2 = t_connect(&d);
		struct shmq_queue *q2;

		T_ERR(shmq_queue_open(c2, "victim", SHMQ_RECV, NULL, &q2), -EBADMSG);
		shmq_client_close(c2);
	}
	assert_quarantine_visible("victim");
	scribbler_close(&s);
	T_OK(shmq_queue_close(q));
	shmq_client_close(c);
	assert_rm_clears("victim", false);
	t_daemon_fini(&d);
}

Test(quarantine, scribbled_semaphore_is_quarantined_while_in_use)
{
	struct shmq_sem_attr a = {.size = sizeof(a),
				  .initial = 2,
				  .max = 4,
				  .flags = SHMQ_SEM_ATTR_BOUNDED | SHMQ_SEM_ATTR_UNDO};
	struct tally *t = t_shared_alloc(WORKERS * sizeof(*t));
	struct work w[WORKERS];
	pid_t pids[WORKERS];
	struct shmq_client *c = t_connect(&d);
	struct shmq_sem *sem;
	struct scribbler s;
	uint64_t rng = t_seed();
	struct shmq_sem_shm *ss;

	T_OK(shmq_sem_open(c, "vsem", SHMQ_CREATE, &a, &sem));
	for (int i = 0; i < WORKERS; i++)
		w[i] = (struct work){.name = "vsem", .sem = true};
	run_workers(t, w, pids);
	scribbler_open(&s, "vsem", true);
	(void)scribble(&s, &rng, SCRIBBLE_MS / 2);
	/* A value above the bound breaks an invariant that holds at every instant. */
	ss = (struct shmq_sem_shm *)(s.base + s.object_off);
	__atomic_store_n((uint32_t *)&ss->value, 1000, __ATOMIC_RELAXED);
	/* Detected while the workers are still attached and busy. */
	cr_assert(wait_quarantined("vsem"), "the daemon did not quarantine the semaphore");
	reap_workers(t, pids);
	{
		struct shmq_sem *s2;

		T_ERR(shmq_sem_open(c, "vsem", 0, NULL, &s2), -EBADMSG);
	}
	assert_quarantine_visible("vsem");
	scribbler_close(&s);
	T_OK(shmq_sem_close(sem));
	shmq_client_close(c);
	assert_rm_clears("vsem", true);
	t_daemon_fini(&d);
}

/* No false positive: a busy queue, then the same queue quiescent, stays healthy. */
Test(quarantine, busy_queue_is_not_quarantined)
{
	struct shmq_queue_attr a = {.size = sizeof(a),
				    .n_slots = 8,
				    .slot_size = SLOT_SIZE,
				    .numa_node = -1,
				    .perm = 0600};
	struct tally *t = t_shared_alloc(WORKERS * sizeof(*t));
	struct work w[WORKERS];
	pid_t pids[WORKERS];
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q;

	T_OK(shmq_queue_open(c, "busy", SHMQ_CREATE | SHMQ_VIEW, &a, &q));
	for (int i = 0; i < WORKERS; i++)
		w[i] = (struct work){.name = "busy"};
	run_workers(t, w, pids);
	reap_workers(t, pids);
	for (int i = 0; i < WORKERS; i++)
		cr_assert(eq(ulong, t[i].badmsg, 0), "worker %d saw -EBADMSG", i);
	/* Nobody attached to send or receive: the next ticks run the full ring check. */
	t_sleep_ms(2500);
	cr_assert(eq(u32, stat_flags("busy") & SHMQ_OBJ_QUARANTINED, 0),
		  "a healthy queue was quarantined");
	cr_assert(eq(int, ctl("check", "busy", NULL), 0), "shmqctl check: %s", out);
	T_OK(shmq_queue_close(q));
	shmq_client_close(c);
	t_daemon_fini(&d);
}

/* --- A quarantine outlives the daemon --- */

static char state_dir[64];

static void restart_setup(void)
{
	static char state_arg[96];
	const char *args[] = {state_arg, NULL};

	snprintf(state_dir, sizeof(state_dir), "/dev/shm/shmq-state-XXXXXX");
	cr_assert(mkdtemp(state_dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(state_arg, sizeof(state_arg), "--state-directory=%s", state_dir);
	t_daemon_start(&d, args, NULL);
}

static void restart_teardown(void)
{
	char cmd[128];

	t_daemon_cleanup_all();
	if (state_dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", state_dir);
	}
}

TestSuite(quarantine_restart, .init = restart_setup, .fini = restart_teardown, .timeout = 60);

Test(quarantine_restart, a_quarantined_object_stays_quarantined_after_a_daemon_restart)
{
	struct shmq_sem_attr a = {
		.size = sizeof(a), .initial = 1, .max = 2, .flags = SHMQ_SEM_ATTR_BOUNDED};
	struct shmq_client *c = t_connect(&d);
	struct shmq_sem *sem;
	struct scribbler s;
	_Atomic uint32_t *value;

	T_OK(shmq_sem_open(c, "kept", SHMQ_CREATE, &a, &sem));
	T_OK(shmq_sem_close(sem));
	shmq_client_close(c);
	scribbler_open(&s, "kept", true);
	value = &((struct shmq_sem_shm *)(s.base + s.object_off))->value;
	__atomic_store_n((uint32_t *)value, 1000, __ATOMIC_RELAXED);
	cr_assert(wait_quarantined("kept"), "the daemon did not quarantine the semaphore");
	/* Put right again: only the quarantine bit remembers. */
	__atomic_store_n((uint32_t *)value, 1, __ATOMIC_RELAXED);
	scribbler_close(&s);

	t_daemon_kill(&d);
	t_daemon_restart(&d);
	cr_assert(ne(u32, stat_flags("kept") & SHMQ_OBJ_QUARANTINED, 0),
		  "the quarantine was forgotten by the restart");
	c = t_connect(&d);
	T_ERR(shmq_sem_open(c, "kept", 0, NULL, &sem), -EBADMSG);
	shmq_client_close(c);
	assert_rm_clears("kept", true);
	t_daemon_fini(&d);
}

/*
 * A forged owner tag in an undo semaphore's word (shm/sem.c) would make
 * every post wait out SHMQ_SEM_OWNER_WAIT_NS.  The daemon clears a tag
 * whose record nobody holds on its next tick, and quarantines the object.
 */
Test(quarantine, a_forged_owner_tag_is_cleared_and_the_semaphore_quarantined)
{
	struct shmq_sem_attr sa = {.size = sizeof(sa), .initial = 2, .flags = SHMQ_SEM_ATTR_UNDO};
	struct shmq_client *c = t_connect(&d);
	struct scribbler s;
	struct shmq_sem *h;
	_Atomic uint32_t *word;
	uint64_t t0;

	T_OK(shmq_sem_open(c, "forged", SHMQ_CREATE, &sa, &h));
	scribbler_open(&s, "forged", true);
	word = (_Atomic uint32_t *)(s.base + s.object_off);
	/* Record 9 is nobody's: two sessions hold records 0 and 1. */
	atomic_store(word, 2u | (10u << SHMQ_SEM_UNDO_OWNER_SHIFT));
	cr_assert(wait_quarantined("forged"), "the forged tag was not noticed");
	cr_assert(eq(u32, atomic_load(word), 2u), "the tag was not cleared, or the value changed");
	t0 = t_now_ns();
	T_OK(shmq_sem_post(h, 1));
	cr_assert(lt(u64, t_now_ns() - t0, UINT64_C(1000000000)), "the post waited on the tag");
	cr_assert(eq(int, shmq_sem_value(h), 3));
	scribbler_close(&s);
	T_OK(shmq_sem_close(h));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}
