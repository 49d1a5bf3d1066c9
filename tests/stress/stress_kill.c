/* SPDX-License-Identifier: MIT */
/*
 * Kill storm: SIGKILL producers and consumers at random moments while the
 * others keep exchanging messages through a real private shmqd, and prove
 * that every death is repaired.
 *
 * Workers are forked processes that use only the public API: each connects
 * its own client, opens the queue and an undo semaphore (SHMQ_SEM_ATTR_UNDO),
 * and holds one token of the semaphore around every send or receive.  The
 * test process is the storm: it waits a random while, SIGKILLs a random live
 * worker, reaps it, starts a replacement (a new incarnation with a new
 * producer id), and then requires traffic to flow again within a deadline:
 * a queue that stays wedged after a death fails the test at that kill.
 *
 * Accounting lives in a MAP_SHARED anonymous mapping made before any fork,
 * so a SIGKILL cannot lose it: a store a process made before it died is in
 * the mapping.  What a death can lose is only the step the victim was in,
 * and each worker publishes that step before it starts it:
 *
 *   producer   sending = seq + 1, send, sent = seq + 1, sending = 0
 *              killed with sending != 0: message seq may or may not be in
 *              the queue (tombstoned if it was half-written).
 *   consumer   op = RECEIVING, receive, [op = HOLDING, held = id], count it,
 *              [release], op = IDLE
 *              copy receivers (shmq_queue_recv_wait) killed in RECEIVING
 *              may have taken one message and died before counting it; zero-
 *              copy receivers (shmq_queue_peek) killed in RECEIVING lose
 *              nothing (the daemon re-delivers the slot they held), and killed
 *              in HOLDING may see the message they counted re-delivered.
 *   semaphore  sem = IN_CALL around shmq_sem_wait() and shmq_sem_post(),
 *              sem = HELD between: libshmq's undo count and the token are two
 *              words, and a death between them loses one token by design
 *              (libclient/sem.c); a death while HELD must get it back.
 *
 * The library cannot tell a receiver that a message is a re-delivery, so a
 * duplicate is accepted only for a message a HOLDING victim had counted (at
 * most once more per such victim); any other duplicate fails.  At the end the
 * producers stop, the daemon is seen to have reaped every dead session, the
 * consumers drain the queue, and every (producer, seq) is checked: received
 * exactly once; or missing as a dead producer's in-flight message; or missing
 * within the budget of copy receivers killed in RECEIVING.  Nothing may be
 * received that no producer got as far as sending.  Every payload carries a
 * checksum over the producer id, seq, length and bytes: a torn message fails
 * at once.  The semaphore must be back at exactly its initial value, however
 * many victims died inside a semaphore call (shm/sem.c journals each undo
 * operation in the word), and never above it during the storm.
 *
 * SHMQ_SEED makes the storm's choices (victims, delays, receive styles,
 * lengths) repeatable; the interleaving is the machine's.  SHMQ_STORM_KILLS
 * sets the number of kills of the MPMC storm (the MPSC and SPMC storms get a
 * quarter each); unset, it is max(1000, 50 * SHMQ_STRESS_SECONDS).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define KILLS_MIN	   1000 /* the long storm never kills fewer */
#define KILLS_PER_SECOND   50
#define KILLS_MAX	   (KILLS_PER_SECOND * 120)
#define STRESS_SECONDS_DFL 30
#define N_SLOTS		   64
#define SLOT_SIZE	   128
#define SEQ_CAP		   8192 /* per producer incarnation; then it exits and is replaced */
#define MAX_SIDE	   4
#define SEM_INITIAL	   64	 /* roomy: a token lost by design must not starve anyone */
#define WAIT_MS		   20000 /* a worker's send or token wait this long is a wedge */
#define RECV_POLL_MS	   100	 /* consumers look at the stop flag this often */
#define PROGRESS_MSGS	   8	 /* after each kill, this many more deliveries ... */
#define PROGRESS_MS	   20000 /* ... within this, or the queue is wedged */
#define DELAY_US_MAX	   3000	 /* between kills */
#define ERR_SIZE	   512
#define WORK_NS_MAX	   20000 /* zero-copy receivers' work per message */

enum role { ROLE_PRODUCER = 1, ROLE_CONSUMER = 2 };
enum op { OP_IDLE, OP_SENDING, OP_RECEIVING, OP_HOLDING };
enum sem_step { SEM_FREE, SEM_IN_CALL, SEM_HELD };

/* One worker incarnation.  The row index is also the producer id. */
struct worker {
	_Atomic uint32_t op;	  /* enum op: the step in progress */
	_Atomic uint32_t sem;	  /* enum sem_step */
	_Atomic uint32_t sending; /* producer: seq + 1 of the message being sent, 0 none */
	_Atomic uint32_t sent;	  /* producer: messages 0 .. sent - 1 were sent */
	_Atomic uint64_t held;	  /* consumer: producer << 32 | seq of the message counted */
	_Atomic uint32_t role;	  /* enum role; written before the fork */
	uint32_t peek;		  /* consumer: receives in place */
	uint64_t rng;
	pid_t pid;
	bool live, killed;
	uint32_t killed_op, killed_sem; /* the record as the victim left it */
};

struct storm_log {
	_Atomic uint64_t delivered; /* receive events, duplicates included */
	_Atomic uint32_t stop_producers;
	_Atomic uint32_t stop_consumers;
	_Atomic uint32_t failed;
	char err[ERR_SIZE];
	char sock[108];
	uint32_t max_rows;
	uint32_t mode;
	struct worker w[]; /* max_rows */
};

struct msg {
	uint32_t producer;
	uint32_t seq;
	uint32_t len; /* whole message, header included */
	uint32_t sum; /* t_checksum() of the message with sum = 0 */
	unsigned char body[SLOT_SIZE - 16];
};

static struct t_daemon d;
static struct storm_log *lg;
static _Atomic uint8_t *counts; /* max_rows * SEQ_CAP receive counts */
static size_t lg_size, counts_size;
static uint64_t seed;

static void teardown(void)
{
	t_daemon_cleanup_all();
}

TestSuite(kill_storm, .fini = teardown, .timeout = 900);

/* --- Workers: never cr_assert; record the first error and exit non-zero --- */

static int fail(struct worker *w, const char *what, int r)
{
	uint32_t zero = 0;

	if (atomic_compare_exchange_strong(&lg->failed, &zero, 1))
		snprintf(lg->err, sizeof(lg->err), "pid %d (row %td, %s): %s: %d (%s)",
			 (int)getpid(), w - lg->w,
			 atomic_load(&w->role) == ROLE_PRODUCER ? "producer" : "consumer", what, r,
			 r < 0 ? strerror(-r) : "");
	return 1;
}

static void msg_fill(struct msg *m, uint32_t producer, uint32_t seq, uint64_t *rng)
{
	uint32_t n = (uint32_t)(t_rand(rng) % (sizeof(m->body) + 1));
	uint64_t x = ((uint64_t)producer << 32) | seq;

	m->producer = producer;
	m->seq = seq;
	m->len = 16 + n;
	m->sum = 0;
	for (uint32_t i = 0; i < n; i++)
		m->body[i] = (unsigned char)t_rand(&x);
	m->sum = t_checksum(m, m->len);
}

/* A received message: whole (checksum), and from a producer the storm started. */
static bool msg_ok(const void *buf, int len, char *why, size_t why_size)
{
	struct msg m;
	uint32_t sum;

	if (len < 16 || len > SLOT_SIZE) {
		snprintf(why, why_size, "length %d", len);
		return false;
	}
	memcpy(&m, buf, (size_t)len);
	sum = m.sum;
	m.sum = 0;
	if (m.len != (uint32_t)len || t_checksum(&m, (size_t)len) != sum) {
		snprintf(why, why_size, "torn message (len %d, header %u, producer %u seq %u)", len,
			 m.len, m.producer, m.seq);
		return false;
	}
	if (m.producer >= lg->max_rows || atomic_load(&lg->w[m.producer].role) != ROLE_PRODUCER ||
	    m.seq >= SEQ_CAP) {
		snprintf(why, why_size, "no such producer %u seq %u", m.producer, m.seq);
		return false;
	}
	return true;
}

static int open_all(struct worker *w, unsigned int qflags, struct shmq_client **c,
		    struct shmq_queue **q, struct shmq_sem **s)
{
	uint64_t deadline = shmq_deadline_after((uint64_t)WAIT_MS * 1000000);
	int r;

	/*
	 * A replacement can arrive before the daemon has reaped its predecessor:
	 * the single receiver of an MPSC queue (or sender of SPMC) is then still
	 * attached (-EBUSY).  Retry until the daemon catches up.
	 */
	for (;;) {
		r = shmq_client_connect(lg->sock, c);
		if (r == 0) {
			r = shmq_queue_open(*c, "storm", qflags, NULL, q);
			if (r == 0) {
				r = shmq_sem_open(*c, "storm-tokens", 0, NULL, s);
				if (r == 0)
					return 0;
				shmq_queue_close(*q);
			}
			shmq_client_close(*c);
		}
		if ((r != -EBUSY && r != -ENOSPC) || t_now_ns() > deadline)
			return fail(w, "connect and open", r);
		t_sleep_ms(1);
	}
}

static int token_take(struct worker *w, struct shmq_sem *s)
{
	int r;

	atomic_store(&w->sem, SEM_IN_CALL);
	r = shmq_sem_wait(s, shmq_deadline_after((uint64_t)WAIT_MS * 1000000));
	if (r < 0)
		return fail(w, "shmq_sem_wait (tokens leaked?)", r);
	atomic_store(&w->sem, SEM_HELD);
	return 0;
}

static int token_give(struct worker *w, struct shmq_sem *s)
{
	int r;

	atomic_store(&w->sem, SEM_IN_CALL);
	r = shmq_sem_post(s, 1);
	if (r < 0)
		return fail(w, "shmq_sem_post", r);
	atomic_store(&w->sem, SEM_FREE);
	return 0;
}

static int producer(void *arg)
{
	struct worker *w = arg;
	uint32_t id = (uint32_t)(w - lg->w);
	struct shmq_client *c;
	struct shmq_queue *q;
	struct shmq_sem *s;
	struct msg m;
	int r;

	if (open_all(w, SHMQ_SEND, &c, &q, &s))
		return 1;
	for (uint32_t seq = 0; seq < SEQ_CAP && !atomic_load(&lg->stop_producers); seq++) {
		if (token_take(w, s))
			return 1;
		msg_fill(&m, id, seq, &w->rng);
		/*
		 * seq_cst stores: each is in the mapping, in this order, before the
		 * call that follows it starts; a SIGKILL cannot reorder the past.
		 */
		atomic_store(&w->sending, seq + 1);
		r = shmq_queue_send_wait(q, &m, m.len,
					 shmq_deadline_after((uint64_t)WAIT_MS * 1000000));
		if (r < 0)
			return fail(w, "shmq_queue_send_wait", r);
		atomic_store(&w->sent, seq + 1);
		atomic_store(&w->sending, 0);
		if (token_give(w, s))
			return 1;
	}
	shmq_sem_close(s);
	shmq_queue_close(q);
	shmq_client_close(c);
	return 0;
}

static int count(struct worker *w, const void *buf, int len)
{
	char why[160];
	struct msg m;

	if (!msg_ok(buf, len, why, sizeof(why)))
		return fail(w, why, len);
	memcpy(&m, buf, 16);
	if (w->peek) {
		atomic_store(&w->held, ((uint64_t)m.producer << 32) | m.seq);
		atomic_store(&w->op, OP_HOLDING);
	}
	atomic_fetch_add(&counts[(size_t)m.producer * SEQ_CAP + m.seq], 1);
	atomic_fetch_add(&lg->delivered, 1);
	return 0;
}

/*
 * A zero-copy receiver works on the message in place before it releases
 * it, for up to WORK_NS_MAX: kills land in HOLDING often enough that the
 * daemon's re-delivery of a held slot is exercised in every storm.
 */
static void work_in_place(struct worker *w)
{
	uint64_t until = t_now_ns() + t_rand(&w->rng) % WORK_NS_MAX;

	while (t_now_ns() < until)
		;
}

static int consumer(void *arg)
{
	struct worker *w = arg;
	struct shmq_client *c;
	struct shmq_queue *q;
	struct shmq_sem *s;
	unsigned char buf[SLOT_SIZE];
	const void *in_place;
	int r;

	if (open_all(w, SHMQ_RECV, &c, &q, &s))
		return 1;
	for (;;) {
		uint64_t deadline = shmq_deadline_after((uint64_t)RECV_POLL_MS * 1000000);

		if (token_take(w, s))
			return 1;
		atomic_store(&w->op, OP_RECEIVING);
		if (w->peek)
			r = shmq_queue_peek(q, deadline, &in_place);
		else
			r = shmq_queue_recv_wait(q, buf, sizeof(buf), deadline);
		if (r >= 0) {
			if (count(w, w->peek ? in_place : buf, r))
				return 1;
			if (w->peek)
				work_in_place(w);
			if (w->peek && (r = shmq_queue_release(q)) < 0)
				return fail(w, "shmq_queue_release", r);
		} else if (r != -ETIMEDOUT) {
			return fail(w, w->peek ? "shmq_queue_peek" : "shmq_queue_recv_wait", r);
		}
		atomic_store(&w->op, OP_IDLE);
		if (token_give(w, s))
			return 1;
		if (r == -ETIMEDOUT && atomic_load(&lg->stop_consumers))
			break;
	}
	shmq_sem_close(s);
	shmq_queue_close(q);
	shmq_client_close(c);
	return 0;
}

/* --- The storm (the test process) --- */

struct storm {
	uint32_t mode, n_prod, n_cons, kills;
	const char *what;
	uint64_t rng;
	uint32_t next_row;
	struct shmq_client *c;
	struct shmq_queue *view;
	struct shmq_sem *sem;
	/* tallies of the victims */
	uint32_t killed_prod, killed_cons, recv_victims, hold_victims, sem_victims;
	/* account()'s figures, for the queue's own counters */
	uint64_t distinct, received, lost_in_send, lost_unexplained;
};

static uint32_t spawn(struct storm *st, enum role role)
{
	uint32_t row = st->next_row++;
	struct worker *w;

	cr_assert(row < lg->max_rows, "SHMQ_SEED=%" PRIu64 " %s: out of worker rows", seed,
		  st->what);
	w = &lg->w[row];
	atomic_store(&w->role, role);
	w->rng = t_rand(&st->rng);
	w->peek = role == ROLE_CONSUMER && (t_rand(&st->rng) & 1);
	w->live = true;
	w->pid = t_fork_child(role == ROLE_PRODUCER ? producer : consumer, w);
	return row;
}

static void fail_storm(struct storm *st, const char *what, uint32_t kill_no)
{
	struct shmq_queue_stats qs = {.size = sizeof(qs)};

	shmq_queue_stats(st->view, &qs);
	cr_fail("SHMQ_SEED=%" PRIu64 " %s: %s at kill %u of %u (delivered %" PRIu64
		", depth %u, repairs %u, sem %d)%s%s",
		seed, st->what, what, kill_no, st->kills, atomic_load(&lg->delivered), qs.depth,
		qs.repairs, shmq_sem_value(st->sem), atomic_load(&lg->failed) ? ": " : "",
		atomic_load(&lg->failed) ? lg->err : "");
}

/* Workers that exited by themselves: a producer at SEQ_CAP (replaced), or an error. */
static void reap_exits(struct storm *st, uint32_t kill_no)
{
	for (uint32_t i = 0; i < st->next_row; i++) {
		struct worker *w = &lg->w[i];
		int status;

		if (!w->live || waitpid(w->pid, &status, WNOHANG) != w->pid)
			continue;
		w->live = false;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_storm(st, "a worker failed", kill_no);
		if (!atomic_load(&lg->stop_producers))
			spawn(st, atomic_load(&w->role));
	}
}

static uint32_t pick_live(struct storm *st)
{
	uint32_t n = 0, k;

	for (uint32_t i = 0; i < st->next_row; i++)
		n += lg->w[i].live;
	k = (uint32_t)(t_rand(&st->rng) % n);
	for (uint32_t i = 0;; i++)
		if (lg->w[i].live && k-- == 0)
			return i;
}

/* Return: whether the victim died of the kill (not of its own clean exit just before). */
static bool kill_one(struct storm *st, uint32_t kill_no)
{
	uint32_t row = pick_live(st);
	struct worker *w = &lg->w[row];
	int status;

	kill(w->pid, SIGKILL);
	cr_assert(eq(int, waitpid(w->pid, &status, 0), w->pid));
	w->live = false;
	if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) &&
	    !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		fail_storm(st, "a worker failed before its kill", kill_no);
	/* The victim is dead: its record is final, read it plainly. */
	w->killed = WIFSIGNALED(status);
	w->killed_op = atomic_load(&w->op);
	w->killed_sem = atomic_load(&w->sem);
	if (w->killed) {
		if (atomic_load(&w->role) == ROLE_PRODUCER) {
			st->killed_prod++;
		} else {
			st->killed_cons++;
			st->recv_victims += !w->peek && w->killed_op == OP_RECEIVING;
			st->hold_victims += w->peek && w->killed_op == OP_HOLDING;
		}
		st->sem_victims += w->killed_sem == SEM_IN_CALL;
	}
	spawn(st, atomic_load(&w->role));
	return w->killed;
}

static void wait_progress(struct storm *st, uint32_t kill_no)
{
	uint64_t want = atomic_load(&lg->delivered) + PROGRESS_MSGS;
	uint64_t deadline = t_now_ns() + (uint64_t)PROGRESS_MS * 1000000;

	while (atomic_load(&lg->delivered) < want) {
		if (atomic_load(&lg->failed))
			fail_storm(st, "a worker failed", kill_no);
		if (t_now_ns() > deadline)
			fail_storm(st, "wedged: no traffic after a kill", kill_no);
		reap_exits(st, kill_no);
		usleep(200);
	}
}

static void wait_live_exit(struct storm *st, enum role role)
{
	for (uint32_t i = 0; i < st->next_row; i++) {
		struct worker *w = &lg->w[i];
		int status;

		if (!w->live || atomic_load(&w->role) != role)
			continue;
		status = t_wait_peer_ms(w->pid, WAIT_MS + 5000);
		w->live = false;
		if (status != 0)
			fail_storm(st, "a worker did not stop cleanly", st->kills);
	}
}

static uint32_t n_live(void)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < lg->max_rows; i++)
		n += lg->w[i].live;
	return n;
}

/* The daemon has reaped (and so repaired) every dead session when only the living are attached. */
static void wait_reaped(struct storm *st)
{
	uint64_t deadline = t_now_ns() + (uint64_t)PROGRESS_MS * 1000000;
	struct shmq_object_info qi, si;

	for (;;) {
		qi = (struct shmq_object_info){.size = sizeof(qi)};
		si = (struct shmq_object_info){.size = sizeof(si)};
		cr_assert(eq(int, shmq_object_stat(st->c, "storm", &qi), 0));
		cr_assert(eq(int, shmq_object_stat(st->c, "storm-tokens", &si), 0));
		/* The test's own view of the queue and handle on the semaphore count too. */
		if (qi.n_attached == n_live() + 1 && si.n_attached == n_live() + 1)
			return;
		if (t_now_ns() > deadline)
			fail_storm(st, "dead sessions never reaped", st->kills);
		t_sleep_ms(5);
	}
}

/* Every (producer, seq) received once, or missing or repeated only as a death explains. */
static void account(struct storm *st)
{
	uint64_t sent = 0, received = 0, lost_in_send = 0, lost_unexplained = 0, dups = 0;
	uint64_t distinct = 0;

	for (uint32_t p = 0; p < st->next_row; p++) {
		struct worker *w = &lg->w[p];
		uint32_t n_sent = atomic_load(&w->sent), sending = atomic_load(&w->sending);
		_Atomic uint8_t *cnt = &counts[(size_t)p * SEQ_CAP];

		if (atomic_load(&w->role) != ROLE_PRODUCER) {
			continue;
		}
		/* In the send (sent + 1), or killed between recording it and clearing (sent). */
		cr_assert(sending == 0 ||
				  (w->killed && (sending == n_sent + 1 || sending == n_sent)),
			  "SHMQ_SEED=%" PRIu64 " %s: producer %u left sending=%u sent=%u", seed,
			  st->what, p, sending, n_sent);
		sent += n_sent;
		for (uint32_t s = 0; s < SEQ_CAP; s++) {
			uint32_t k = atomic_load(&cnt[s]);

			received += k;
			distinct += k != 0;
			if (s >= n_sent && !(sending && s == sending - 1)) {
				if (k)
					cr_fail("SHMQ_SEED=%" PRIu64 " %s: producer %u seq %u "
						"received %u times but never sent (sent %u)",
						seed, st->what, p, s, k, n_sent);
				continue;
			}
			if (k == 0) {
				if (sending == n_sent + 1 && s == n_sent)
					lost_in_send++; /* the dead producer's in-flight one */
				else
					lost_unexplained++;
			} else if (k > 1) {
				uint32_t holders = 0;
				uint64_t key = ((uint64_t)p << 32) | s;

				for (uint32_t v = 0; v < st->next_row; v++) {
					struct worker *x = &lg->w[v];

					holders += x->killed && x->peek &&
						   x->killed_op == OP_HOLDING &&
						   atomic_load(&x->held) == key;
				}
				cr_assert(k <= 1 + holders,
					  "SHMQ_SEED=%" PRIu64 " %s: producer %u seq %u "
					  "received %u times; %u receivers died holding it",
					  seed, st->what, p, s, k, holders);
				dups += k - 1;
			}
		}
	}
	cr_assert(lost_unexplained <= st->recv_victims,
		  "SHMQ_SEED=%" PRIu64 " %s: %" PRIu64 " sent messages never received; "
		  "only %u receivers died mid-receive",
		  seed, st->what, lost_unexplained, st->recv_victims);
	st->distinct = distinct;
	st->received = received;
	st->lost_in_send = lost_in_send;
	st->lost_unexplained = lost_unexplained;
	/* A consumer killed between its two increments leaves delivered one behind. */
	cr_assert(received >= atomic_load(&lg->delivered) &&
			  received - atomic_load(&lg->delivered) <= st->killed_cons,
		  "SHMQ_SEED=%" PRIu64 " %s: %" PRIu64 " counted, %" PRIu64 " delivered", seed,
		  st->what, received, atomic_load(&lg->delivered));
	fprintf(stderr,
		"kill_storm %s: %u kills (%u producers, %u consumers), %" PRIu64 " sent, %" PRIu64
		" received; lost %" PRIu64 " in a dead producer's send, %" PRIu64
		" taken by %u receivers killed mid-receive; %" PRIu64
		" re-delivered to others after %u deaths holding a peek\n",
		st->what, st->kills, st->killed_prod, st->killed_cons, sent, received, lost_in_send,
		lost_unexplained, st->recv_victims, dups, st->hold_victims);
}

static uint32_t storm_kills(uint32_t share_div)
{
	const char *s = getenv("SHMQ_STORM_KILLS");
	uint64_t k;

	if (s && *s)
		k = strtoull(s, NULL, 0);
	else
		k = t_stress_seconds(STRESS_SECONDS_DFL) * KILLS_PER_SECOND;
	if (!(s && *s) && k < KILLS_MIN)
		k = KILLS_MIN;
	if (k > KILLS_MAX)
		k = KILLS_MAX;
	k /= share_div;
	return k ? (uint32_t)k : 1;
}

static void run_storm(uint32_t mode, uint32_t n_prod, uint32_t n_cons, uint32_t share_div,
		      const char *what)
{
	struct storm st = {.mode = mode, .n_prod = n_prod, .n_cons = n_cons, .what = what};
	struct shmq_queue_attr qa = {.size = sizeof(qa),
				     .n_slots = N_SLOTS,
				     .slot_size = SLOT_SIZE,
				     .mode = mode,
				     .numa_node = -1};
	struct shmq_sem_attr sa = {
		.size = sizeof(sa), .initial = SEM_INITIAL, .flags = SHMQ_SEM_ATTR_UNDO};
	struct shmq_queue_stats qs = {.size = sizeof(qs)};
	struct shmq_queue *q;
	uint32_t rows;
	int r;

	seed = t_seed();
	st.rng = seed ^ mode;
	st.kills = storm_kills(share_div);
	rows = 2 * st.kills + 4096;
	lg_size = sizeof(*lg) + rows * sizeof(struct worker);
	counts_size = (size_t)rows * SEQ_CAP;
	lg = t_shared_alloc(lg_size);
	counts = t_shared_alloc(counts_size);
	lg->max_rows = rows;
	lg->mode = mode;

	t_daemon_start(&d, NULL, NULL);
	snprintf(lg->sock, sizeof(lg->sock), "%s", d.sock);
	st.c = t_connect(&d);
	/* Create the queue with the role the storm never starves: a view cannot create. */
	T_OK(shmq_queue_open(st.c, "storm", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND, &qa, &q));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_queue_open(st.c, "storm", SHMQ_VIEW, NULL, &st.view));
	T_OK(shmq_sem_open(st.c, "storm-tokens", SHMQ_CREATE | SHMQ_EXCL, &sa, &st.sem));

	for (uint32_t i = 0; i < n_prod; i++)
		spawn(&st, ROLE_PRODUCER);
	for (uint32_t i = 0; i < n_cons; i++)
		spawn(&st, ROLE_CONSUMER);
	wait_progress(&st, 0);

	for (uint32_t k = 1; k <= st.kills;) {
		usleep((useconds_t)(t_rand(&st.rng) % DELAY_US_MAX));
		reap_exits(&st, k);
		if (!kill_one(&st, k))
			continue; /* it had just exited by itself: not a kill */
		r = shmq_sem_value(st.sem);
		if (r > SEM_INITIAL)
			fail_storm(&st, "a dead process's token was posted back twice", k);
		wait_progress(&st, k);
		k++;
	}

	/* Drain: producers stop, the dead are reaped, consumers empty the queue. */
	atomic_store(&lg->stop_producers, 1);
	wait_live_exit(&st, ROLE_PRODUCER);
	wait_reaped(&st);
	for (uint64_t last = UINT64_MAX, deadline = t_now_ns() + (uint64_t)PROGRESS_MS * 1000000;
	     ;) {
		T_OK(shmq_queue_stats(st.view, &qs));
		if (qs.depth == 0 && last == atomic_load(&lg->delivered))
			break;
		if (t_now_ns() > deadline)
			fail_storm(&st, "the queue never drained", st.kills);
		last = atomic_load(&lg->delivered);
		t_sleep_ms(2 * RECV_POLL_MS);
	}
	atomic_store(&lg->stop_consumers, 1);
	wait_live_exit(&st, ROLE_CONSUMER);
	if (atomic_load(&lg->failed))
		fail_storm(&st, "a worker failed", st.kills);
	wait_reaped(&st);

	/*
	 * Everyone is gone and reaped.  A repair that finished after the
	 * consumers stopped may have re-delivered one more message: a new
	 * receiver takes what is left (checked and counted like any receipt),
	 * and then the queue must be empty, tombstones included.
	 */
	T_OK(shmq_queue_open(st.c, "storm", SHMQ_RECV, NULL, &q));
	for (unsigned int i = 0;; i++) {
		unsigned char buf[SLOT_SIZE];
		char why[160];
		struct msg m;

		r = shmq_queue_recv(q, buf, sizeof(buf));
		if (r == -EAGAIN)
			break;
		cr_assert(r >= 0 && i < N_SLOTS, "SHMQ_SEED=%" PRIu64 " %s: final drain: %d", seed,
			  what, r);
		cr_assert(msg_ok(buf, r, why, sizeof(why)), "SHMQ_SEED=%" PRIu64 " %s: %s", seed,
			  what, why);
		memcpy(&m, buf, 16);
		atomic_fetch_add(&counts[(size_t)m.producer * SEQ_CAP + m.seq], 1);
		atomic_fetch_add(&lg->delivered, 1);
	}
	T_OK(shmq_queue_close(q));

	account(&st);
	r = shmq_sem_value(st.sem);
	cr_assert(r == SEM_INITIAL,
		  "SHMQ_SEED=%" PRIu64 " %s: semaphore at %d of %d after the storm; %u victims "
		  "died inside a semaphore call",
		  seed, what, r, SEM_INITIAL, st.sem_victims);
	T_OK(shmq_queue_stats(st.view, &qs));
	/*
	 * The queue's counters (shmq.h, struct shmq_queue_stats): a counter is
	 * a store after the publish or consume it counts, so each death may
	 * leave it one short, never over.  Published messages number at least
	 * the distinct ones received, at most those plus the ones a dead
	 * receiver took or a dead producer was sending; consumed ones are the
	 * receipts plus what dead receivers took.
	 */
	cr_assert(qs.sent <= st.distinct + st.lost_unexplained + st.lost_in_send &&
			  qs.sent + st.killed_prod >= st.distinct,
		  "SHMQ_SEED=%" PRIu64 " %s: the queue counted %" PRIu64 " sent; %" PRIu64
		  " distinct messages arrived, %u producers died",
		  seed, what, qs.sent, st.distinct, st.killed_prod);
	cr_assert(qs.received <= st.received + st.lost_unexplained &&
			  qs.received + st.killed_cons >= st.received,
		  "SHMQ_SEED=%" PRIu64 " %s: the queue counted %" PRIu64 " received; %" PRIu64
		  " receipts, %u consumers died",
		  seed, what, qs.received, st.received, st.killed_cons);
	fprintf(stderr,
		"kill_storm %s: semaphore %d of %d (%u victims inside a semaphore call); queue "
		"repairs %u; its counters %" PRIu64 " sent, %" PRIu64 " received (%" PRIu64
		" distinct messages arrived, %" PRIu64 " receipts)\n",
		what, r, SEM_INITIAL, st.sem_victims, qs.repairs, qs.sent, qs.received, st.distinct,
		st.received);

	T_OK(shmq_sem_close(st.sem));
	T_OK(shmq_queue_close(st.view));
	T_OK(shmq_client_close(st.c));
	t_daemon_fini(&d);
	munmap(counts, counts_size);
	munmap(lg, lg_size);
}

Test(kill_storm, mpmc_survives_sigkill_of_random_producers_and_consumers)
{
	run_storm(SHMQ_MPMC, 3, 3, 1, "mpmc 3x3");
}

Test(kill_storm, mpsc_survives_sigkill_of_producers_and_its_one_consumer)
{
	run_storm(SHMQ_MPSC, 3, 1, 4, "mpsc 3x1");
}

Test(kill_storm, spmc_survives_sigkill_of_its_one_producer_and_consumers)
{
	run_storm(SHMQ_SPMC, 1, 3, 4, "spmc 1x3");
}
