/* SPDX-License-Identifier: MIT */
/*
 * Integration: every shmqctl verb against a live daemon.
 *
 * shmqctl runs as a program ($SHMQCTL), with its exit status checked: 0
 * success, 1 failure, 2 usage.  Its --json output is parsed by a real JSON
 * parser, python3's json module, running a few assertions on the document
 * (py_check()).  `check` must catch objects corrupted on purpose: the test
 * runs as root, so it can open the daemon's own read-write memfd through
 * /proc/<daemon pid>/fd and scribble on the segment.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <shmq/shmq.h>
#include <shmq/version.h>

#include "shm/atomic.h"
#include "shm/layout.h"
#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define RUN_MS	 20000
#define CHILD_MS 20000
#define OUT_SIZE (256 * 1024)
#define ARGS_MAX 16

static struct t_daemon d;
static struct shmq_client *c;
static char out[OUT_SIZE];

static const char *const daemon_args[] = {"--max-clients=99", NULL};

static void setup(void)
{
	t_daemon_start(&d, daemon_args, NULL);
	c = t_connect(&d);
}

TestSuite(shmqctl, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 60);

static void finish(void)
{
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

/* This process's user name, as shmqctl prints it. */
static const char *me(void)
{
	struct passwd *pw = getpwuid(geteuid());

	return pw ? pw->pw_name : "?";
}

static const char *shmqctl_path(void)
{
	const char *p = getenv("SHMQCTL");

	cr_assert(p && *p, "SHMQCTL is not set: run `make test`, or set SHMQCTL=build/shmqctl");
	return p;
}

/* Run shmqctl --socket=<daemon> with up to ARGS_MAX arguments (NULL-terminated). */
static int ctl(const char *a0, ...)
{
	const char *argv[ARGS_MAX + 3];
	char sock[160];
	va_list ap;
	int n = 0;

	snprintf(sock, sizeof(sock), "--socket=%s", d.sock);
	argv[n++] = shmqctl_path();
	argv[n++] = sock;
	va_start(ap, a0);
	for (const char *a = a0; a && n < ARGS_MAX + 2; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return t_run(argv, out, sizeof(out), RUN_MS);
}

/*
 * Parse @json with python3's json module and run @asserts on it, as the
 * body of a function of `d` (the document) or, with @lines, of `docs` (one
 * document per line).  Fails the test with python's message on any error.
 */
static void py_check(const char *json, bool lines, const char *asserts)
{
	char script[4096], result[8192];
	int st;

	snprintf(script, sizeof(script),
		 "import json, sys\n"
		 "text = open(sys.argv[1], 'rb').read().decode('utf-8', 'strict')\n"
		 "%s\n"
		 "%s\n",
		 lines ? "docs = [json.loads(l) for l in text.splitlines() if l.strip()]"
		       : "d = json.loads(text)",
		 asserts);
	st = t_python(script, json, result, sizeof(result), RUN_MS);
	cr_assert(eq(int, st, 0), "python3 rejected the JSON or an assertion:\n%s\n--- JSON:\n%s",
		  result, json);
}

static struct shmq_queue *queue_new(const char *name, uint32_t mode, unsigned int flags)
{
	struct shmq_queue_attr a = {
		.size = sizeof(a), .n_slots = 16, .slot_size = 64, .mode = mode};
	struct shmq_queue *q = NULL;

	T_OK(shmq_queue_open(c, name, SHMQ_CREATE | SHMQ_EXCL | flags, &a, &q));
	return q;
}

/* --- Usage --- */

Test(shmqctl, help_and_version_exit_0_and_every_verb_has_its_own_help)
{
	static const char *const verbs[] = {"status", "config", "ls",	  "show",    "clients",
					    "top",    "check",	"create", "rm",	     "purge",
					    "sem",    "usage",	"peek",	  "metrics", "disconnect"};

	cr_assert(eq(int, ctl("--help", NULL), 0), "%s", out);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		cr_assert(strstr(out, verbs[i]) != NULL, "--help lacks %s:\n%s", verbs[i], out);
	cr_assert(eq(int, ctl("--version", NULL), 0), "%s", out);
	cr_assert(strstr(out, SHMQ_VERSION_STRING) != NULL, "%s", out);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		cr_assert(eq(int, ctl(verbs[i], "--help", NULL), 0), "%s --help: %s", verbs[i],
			  out);
		cr_assert(strstr(out, "Usage: shmqctl") && strstr(out, verbs[i]), "%s", out);
		cr_assert(eq(int, ctl("help", verbs[i], NULL), 0), "help %s: %s", verbs[i], out);
	}
	finish();
}

Test(shmqctl, usage_errors_exit_2)
{
	cr_assert(eq(int, ctl("frobnicate", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("ls", "extra", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("show", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("ls", "--slots", "4", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("top", "--interval", "0", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("create", "mailbox", "x", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("create", "pipe", "x", "--mode", "spsc", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("create", "queue", "x", "--oneway", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("create", "sem", "x", "--slots", "8", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("create", "queue", "x", "--mode", "fifo", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("--bogus", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("help", "nope", NULL), 2), "%s", out);
	finish();
}

Test(shmqctl, failures_exit_1)
{
	const char *argv[] = {shmqctl_path(), "--socket=/nonexistent/shmqd.sock", "status", NULL};

	cr_assert(eq(int, t_run(argv, out, sizeof(out), RUN_MS), 1), "%s", out);
	cr_assert(eq(int, ctl("show", "no.such", NULL), 1), "%s", out);
	cr_assert(eq(int, ctl("rm", "no.such", NULL), 1), "%s", out);
	cr_assert(eq(int, ctl("purge", "no.such", NULL), 1), "%s", out);
	cr_assert(eq(int, ctl("check", "no.such", NULL), 1), "%s", out);
	finish();
}

/* --- status, config, clients --- */

Test(shmqctl, status_shows_the_daemon_and_its_configuration)
{
	char asserts[512];

	cr_assert(eq(int, ctl("status", NULL), 0), "%s", out);
	cr_assert(strstr(out, SHMQ_VERSION_STRING) && strstr(out, d.sock) &&
			  strstr(out, "max-clients = 99"),
		  "%s", out);
	cr_assert(eq(int, ctl(NULL), 0), "no verb means status: %s", out);
	cr_assert(strstr(out, "max-clients = 99") != NULL, "%s", out);

	cr_assert(eq(int, ctl("status", "--json", NULL), 0), "%s", out);
	snprintf(asserts, sizeof(asserts),
		 "assert d['pid'] == %d\n"
		 "assert d['version'] == '%s'\n"
		 "assert d['socket'] == '%s'\n"
		 "assert d['clients'] >= 1 and d['max_clients'] == 99\n"
		 "assert d['objects'] == 0 and d['memory_bytes'] == 0\n"
		 "assert d['uptime_ns'] > 0\n"
		 "assert d['config']['max-clients'] == 99\n"
		 "assert d['config']['log-level'] == 'info'\n",
		 (int)d.pid, SHMQ_VERSION_STRING, d.sock);
	py_check(out, false, asserts);
	finish();
}

Test(shmqctl, config_prints_every_option_and_json_maps_names_to_typed_values)
{
	cr_assert(eq(int, ctl("config", NULL), 0), "%s", out);
	cr_assert(strstr(out, "max-clients = 99\n") && strstr(out, "sessions-per-object = "), "%s",
		  out);
	cr_assert(eq(int, ctl("config", "--json", NULL), 0), "%s", out);
	py_check(out, false,
		 "assert d['max-clients'] == 99\n"
		 "assert d['max-memory-per-uid'] == 1 << 30, 'a size in bytes, not 1G'\n"
		 "assert d['fd-store'] is False\n"
		 "assert d['socket-mode'] == '0666' and d['log-level'] == 'info'\n"
		 "assert d['state-directory'] == ''\n"
		 "assert len(d) == 18, len(d)\n");
	finish();
}

Test(shmqctl, clients_lists_connected_clients_with_pid_and_name)
{
	char asserts[512];

	cr_assert(eq(int, ctl("clients", NULL), 0), "%s", out);
	cr_assert(strstr(out, "SESSION") && strstr(out, "shmqctl"), "%s", out);
	cr_assert(eq(int, ctl("clients", "--json", NULL), 0), "%s", out);
	snprintf(asserts, sizeof(asserts),
		 "cl = d['clients']\n"
		 "assert len(cl) == 2, cl\n"
		 "assert any(x['pid'] == %d for x in cl)\n"
		 "assert any(x['name'] == 'shmqctl' for x in cl)\n"
		 "assert all(x['uid'] == %u and x['user'] == '%s' for x in cl)\n"
		 "assert all(x['connected_s'] >= 0 and x['handles'] == 0 for x in cl)\n",
		 (int)getpid(), (unsigned)geteuid(), me());
	py_check(out, false, asserts);
	finish();
}

/* --- create, ls, show --- */

Test(shmqctl, events_have_their_own_rows_in_create_ls_show_and_check)
{
	struct shmq_event *e;

	cr_assert(eq(int, ctl("create", "event", "ev", "--initial", "1", "--json", NULL), 0), "%s",
		  out);
	py_check(out, false,
		 "assert d['name'] == 'ev' and d['kind'] == 'event'\n"
		 "assert d['type'] == 'initially-set' and d['event_initial'] is True\n"
		 "assert d['value'] == 1 and d['waiters'] is None and d['sem_initial'] is None\n"
		 "assert d['sleepers_recv'] is False and d['capacity'] is None\n");
	cr_assert(eq(int, ctl("create", "event", "ev2", "--initial", "2", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("create", "event", "ev2", "--slots", "8", NULL), 2), "%s", out);
	T_OK(shmq_event_open(c, "ev", 0, NULL, &e));
	cr_assert(eq(int, shmq_event_clear(e), 1));
	cr_assert(eq(int, ctl("ls", NULL), 0), "%s", out);
	cr_assert(strstr(out, "ev    event  initially-set") != NULL, "%s", out);
	cr_assert(eq(int, ctl("show", "ev", NULL), 0), "%s", out);
	cr_assert(strstr(out, "event 'ev'") && strstr(out, "state:       clear"), "%s", out);
	cr_assert(eq(int, ctl("check", "ev", NULL), 0), "%s", out);
	T_OK(shmq_event_close(e));
	finish();
}

Test(shmqctl, locks_have_their_own_rows_in_create_ls_show_and_check)
{
	struct shmq_lock *l;

	cr_assert(eq(int, ctl("create", "rlock", "rl", "--json", NULL), 0), "%s", out);
	py_check(out, false,
		 "assert d['name'] == 'rl' and d['kind'] == 'lock'\n"
		 "assert d['type'] == 'recursive' and d['recursive'] is True\n"
		 "assert d['value'] == 0 and d['waiters'] == 0 and d['holder_pid'] is None\n"
		 "assert d['owner_died'] is False and d['event_initial'] is None\n");
	cr_assert(eq(int, ctl("create", "lock", "pl", "--perm", "0640", NULL), 0), "%s", out);
	cr_assert(strstr(out, "created lock 'pl': plain, perm 0640") != NULL, "%s", out);
	cr_assert(eq(int, ctl("create", "lock", "pl2", "--initial", "1", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("create", "rlock", "pl2", "--slots", "8", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("create", "mutex", "pl2", NULL), 2), "%s", out);
	T_OK(shmq_lock_open(c, "rl", 0, NULL, &l));
	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	T_OK(shmq_lock_acquire(l, SHMQ_FOREVER));
	cr_assert(eq(int, ctl("ls", NULL), 0), "%s", out);
	cr_assert(strstr(out, "rl    lock  recursive") != NULL, "%s", out);
	cr_assert(eq(int, ctl("show", "rl", NULL), 0), "%s", out);
	cr_assert(strstr(out, "lock 'rl'") && strstr(out, "2 acquisition(s)") != NULL, "%s", out);
	cr_assert(eq(int, ctl("--json", "show", "rl", NULL), 0), "%s", out);
	{
		char asserts[256];

		snprintf(asserts, sizeof(asserts),
			 "assert d['value'] == 1 and d['holder_pid'] == %d\n"
			 "assert d['holder_depth'] == 2 and d['producers'] == 1\n",
			 (int)getpid());
		py_check(out, false, asserts);
	}
	cr_assert(eq(int, ctl("check", "rl", NULL), 0), "%s", out);
	T_OK(shmq_lock_release(l));
	T_OK(shmq_lock_release(l));
	T_OK(shmq_lock_close(l));
	finish();
}

Test(shmqctl, conditions_and_barriers_have_their_own_rows)
{
	struct shmq_barrier *b;
	struct shmq_lock *l;
	struct shmq_cond *cv;

	cr_assert(eq(int, ctl("create", "lock", "m", NULL), 0), "%s", out);
	cr_assert(eq(int, ctl("create", "cond", "cv", NULL), 2), "%s", out); /* --lock required */
	cr_assert(eq(int, ctl("create", "cond", "cv", "--lock", "nolock", NULL), 1), "%s", out);
	cr_assert(eq(int, ctl("create", "cond", "cv", "--lock", "m", "--parties", "2", NULL), 2),
		  "%s", out);
	cr_assert(eq(int, ctl("create", "cond", "cv", "--lock", "m", "--json", NULL), 0), "%s",
		  out);
	py_check(out, false,
		 "assert d['name'] == 'cv' and d['kind'] == 'condition'\n"
		 "assert d['lock_id'] == 1 and d['waiters'] == 0 and d['pending'] == 0\n"
		 "assert d['parties'] is None and d['broken'] is None\n");
	cr_assert(eq(int, ctl("create", "barrier", "b", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("create", "barrier", "b", "--parties", "0", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("create", "barrier", "b", "--parties", "2", NULL), 0), "%s", out);
	cr_assert(strstr(out, "created barrier 'b': 2 parties, perm 0600") != NULL, "%s", out);
	T_OK(shmq_lock_open(c, "m", 0, NULL, &l));
	T_OK(shmq_cond_open(c, "cv", 0, l, NULL, &cv));
	T_OK(shmq_barrier_open(c, "b", 0, NULL, &b));
	T_ERR(shmq_barrier_wait(b, 0), -ETIMEDOUT); /* breaks it */
	cr_assert(eq(int, ctl("ls", NULL), 0), "%s", out);
	/* the kind as --json and create name it */
	cr_assert(strstr(out, "cv    condition  bound") != NULL, "%s", out);
	cr_assert(strstr(out, "b     barrier    parties") != NULL, "%s", out);
	cr_assert(strstr(out, "broken") != NULL, "%s", out);
	cr_assert(eq(int, ctl("show", "cv", NULL), 0), "%s", out);
	cr_assert(strstr(out, "bound to lock id 1") != NULL, "%s", out);
	cr_assert(eq(int, ctl("show", "b", NULL), 0), "%s", out);
	cr_assert(strstr(out, "state:       broken") != NULL, "%s", out);
	cr_assert(eq(int, ctl("--json", "show", "b", NULL), 0), "%s", out);
	py_check(out, false,
		 "assert d['kind'] == 'barrier' and d['parties'] == 2 and d['capacity'] == 2\n"
		 "assert d['broken'] is True and d['generation'] == 1 and d['waiters'] == 0\n");
	cr_assert(eq(int, ctl("check", "cv", NULL), 0), "%s", out);
	cr_assert(eq(int, ctl("check", "b", NULL), 0), "%s", out);
	T_OK(shmq_barrier_close(b));
	T_OK(shmq_cond_close(cv));
	T_OK(shmq_lock_close(l));
	finish();
}

Test(shmqctl, create_makes_queues_and_semaphores_with_the_given_geometry)
{
	struct shmq_object_info o = {.size = sizeof(o)};

	cr_assert(eq(int,
		     ctl("create", "queue", "cq", "--slots", "64", "--slot-size", "128", "--mode",
			 "spsc", "--perm", "0640", NULL),
		     0),
		  "%s", out);
	cr_assert(strstr(out, "created queue 'cq'") != NULL, "%s", out);
	T_OK(shmq_object_stat(c, "cq", &o));
	cr_assert(eq(u32, o.n_slots, 64));
	cr_assert(eq(u32, o.slot_size, 128));
	cr_assert(eq(u32, o.mode, SHMQ_SPSC));
	cr_assert(eq(u32, o.perm, 0640));
	cr_assert(eq(u32, o.n_attached, 0), "create leaves nothing attached");

	cr_assert(eq(int,
		     ctl("create", "sem", "cs", "--initial", "2", "--max", "4", "--undo", "--json",
			 NULL),
		     0),
		  "%s", out);
	py_check(out, false,
		 "assert d['name'] == 'cs' and d['kind'] == 'semaphore'\n"
		 "assert d['type'] == 'bounded+undo'\n"
		 "assert d['value'] == 2 and d['capacity'] == 4 and d['sem_initial'] == 2\n"
		 "assert d['depth'] is None and d['slot_size'] is None\n"
		 "import os, pwd\n"
		 "assert d['perm'] == '0600'\n"
		 "assert d['owner'] == pwd.getpwuid(os.geteuid()).pw_name\n");
	cr_assert(eq(int, ctl("create", "queue", "cq", NULL), 1), "exists: %s", out);
	cr_assert(eq(int, ctl("create", "queue", "cx", "--slots", "3", NULL), 1), "%s", out);
	finish();
}

Test(shmqctl, an_unlinked_object_still_attached_never_shows_its_successors_figures)
{
	struct shmq_queue *old = queue_new("dup", SHMQ_MPMC, SHMQ_SEND);
	struct shmq_queue *new;

	T_OK(shmq_queue_send(old, "a", 1));
	T_OK(shmq_queue_send(old, "b", 1));
	T_OK(shmq_unlink(c, "dup"));
	new = queue_new("dup", SHMQ_MPMC, SHMQ_SEND); /* the name again, empty */
	cr_assert(eq(int, ctl("ls", "--json", NULL), 0), "%s", out);
	py_check(out, false,
		 "o = sorted((x for x in d['objects'] if x['name'] == 'dup'), key=lambda x: "
		 "x['id'])\n"
		 "assert len(o) == 2, o\n"
		 "assert o[0]['unlinked'] is True and o[0]['viewable'] is False, o[0]\n"
		 "assert o[0]['depth'] is None and 'another object' in o[0]['view_error']\n"
		 "assert o[1]['unlinked'] is False and o[1]['depth'] == 0\n");
	cr_assert(eq(int, ctl("ls", NULL), 0), "%s", out);
	cr_assert(strstr(out, "mpmc,unlinked") != NULL, "no unlinked marker: %s", out);
	T_OK(shmq_queue_close(old));
	T_OK(shmq_queue_close(new));
	finish();
}

Test(shmqctl, ls_shows_every_object_with_live_depth_and_attachments)
{
	struct shmq_queue *q = queue_new("lq", SHMQ_MPMC, SHMQ_SEND);
	struct shmq_sem_attr sa = {.size = sizeof(sa), .initial = 5};
	struct shmq_sem *s;

	T_OK(shmq_sem_open(c, "ls.sem", SHMQ_CREATE | SHMQ_EXCL, &sa, &s));
	for (int i = 0; i < 3; i++)
		T_OK(shmq_queue_send(q, "abc", 3));

	cr_assert(eq(int, ctl("ls", NULL), 0), "%s", out);
	cr_assert(strstr(out, "NAME") && strstr(out, "lq") && strstr(out, "ls.sem"), "%s", out);
	cr_assert(eq(int, ctl("ls", "--no-legend", NULL), 0), "%s", out);
	cr_assert(strstr(out, "NAME") == NULL, "%s", out);

	cr_assert(eq(int, ctl("ls", "--json", NULL), 0), "%s", out);
	py_check(out, false,
		 "o = {x['name']: x for x in d['objects']}\n"
		 "assert set(o) == {'lq', 'ls.sem'}, o.keys()\n"
		 "q = o['lq']\n"
		 "assert q['kind'] == 'queue' and q['type'] == 'mpmc'\n"
		 "assert q['depth'] == 3 and 1 <= q['high_water'] <= 3 and q['capacity'] == 16\n"
		 "assert q['slot_size'] == 64 and q['producers'] == 1 and q['consumers'] == 0\n"
		 "assert q['counters']['sent'] == 3 and q['attached'] == 1\n"
		 "assert q['viewable'] and q['view_error'] is None\n"
		 "assert q['numa_node'] is None and q['unlinked'] is False\n"
		 "assert q['sleepers_recv'] is False and q['value'] is None\n"
		 "s = o['ls.sem']\n"
		 "assert s['value'] == 5 and s['waiters'] == 0 and s['producers'] == 1\n"
		 "assert s['capacity'] is None and s['type'] == 'plain'\n");
	shmq_sem_close(s);
	shmq_queue_close(q);
	finish();
}

Test(shmqctl, show_lists_each_handle_with_pid_role_and_counters)
{
	struct shmq_queue *tx = queue_new("sq", SHMQ_MPMC, SHMQ_SEND);
	struct shmq_queue *rx = NULL;
	char asserts[1024], buf[8];

	T_OK(shmq_queue_open(c, "sq", SHMQ_RECV, NULL, &rx));
	for (int i = 0; i < 4; i++)
		T_OK(shmq_queue_send(tx, "m", 1));
	cr_assert(eq(int, shmq_queue_recv(rx, buf, sizeof(buf)), 1));

	cr_assert(eq(int, ctl("show", "sq", NULL), 0), "%s", out);
	cr_assert(strstr(out, "queue 'sq'") && strstr(out, "depth:       3 of 16") &&
			  strstr(out, "send") && strstr(out, "recv"),
		  "%s", out);

	cr_assert(eq(int, ctl("show", "sq", "--json", NULL), 0), "%s", out);
	snprintf(asserts, sizeof(asserts),
		 "assert d['name'] == 'sq' and d['depth'] == 3 and d['attached'] == 2\n"
		 "assert d['counters']['sent'] == 4 and d['counters']['received'] == 1\n"
		 "a = {x['role']: x for x in d['attachments']}\n"
		 "assert set(a) == {'send', 'recv'}, a\n"
		 "assert all(x['pid'] == %d and x['uid'] == %u for x in a.values())\n"
		 "assert a['send']['counters']['sent'] == 4 and a['send']['record_state'] == "
		 "'active'\n"
		 "assert a['recv']['counters']['received'] == 1 and a['recv']['record'] is not "
		 "None\n",
		 (int)getpid(), (unsigned)geteuid());
	py_check(out, false, asserts);
	shmq_queue_close(rx);
	shmq_queue_close(tx);
	finish();
}

/* --- top --- */

Test(shmqctl, top_prints_one_json_document_per_iteration_with_rates)
{
	struct shmq_queue *q = queue_new("tq", SHMQ_MPMC, SHMQ_SEND | SHMQ_RECV);
	const char *argv[] = {shmqctl_path(), NULL,   "top", "--json", "--iterations", "4",
			      "--interval",   "0.25", NULL};
	uint64_t deadline = t_now_ns() + (uint64_t)RUN_MS * 1000000;
	char sock[160], first[64];
	struct t_proc p;

	snprintf(sock, sizeof(sock), "--socket=%s", d.sock);
	argv[1] = sock;
	t_spawn(&p, argv);
	/* Send only after the first refresh: the rate of a later one must show it. */
	while (pread(p.out_fd, first, 1, 0) != 1 && t_now_ns() < deadline)
		t_sleep_ms(5);
	for (int i = 0; i < 10; i++)
		T_OK(shmq_queue_send(q, "x", 1));
	cr_assert(eq(int, t_finish(&p, out, sizeof(out), RUN_MS), 0), "%s", out);
	py_check(out, true,
		 "assert len(docs) == 4, len(docs)\n"
		 "assert [x['iteration'] for x in docs] == [1, 2, 3, 4]\n"
		 "assert all(x['interval_s'] == 0.25 for x in docs)\n"
		 "rows = [o for x in docs for o in x['objects'] if o['name'] == 'tq']\n"
		 "assert len(rows) == 4\n"
		 "assert rows[-1]['sent'] == 10 and rows[-1]['depth'] == 10\n"
		 "assert any(r['send_rate'] > 0 for r in rows), rows\n");

	cr_assert(eq(int,
		     ctl("top", "--iterations", "1", "--interval", "0.05", "--sort", "depth", NULL),
		     0),
		  "%s", out);
	cr_assert(strstr(out, "SEND/S") && strstr(out, "tq"), "%s", out);
	shmq_queue_close(q);
	finish();
}

/* --- check --- */

/* Map the daemon's read-write memfd of @name (root only): /proc/<pid>/fd. */
static void *daemon_segment(const char *name, size_t *ret_size)
{
	char dir[64], link[256], want[128], path[320];
	struct dirent *e;
	struct stat st;
	void *base = NULL;
	DIR *dp;

	t_need_root("to open the daemon's descriptors through /proc");
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)d.pid);
	snprintf(want, sizeof(want), "/memfd:shmq:%s (deleted)", name);
	dp = opendir(dir);
	cr_assert(dp != NULL, "opendir %s: %s", dir, strerror(errno));
	while ((e = readdir(dp))) {
		ssize_t n;
		int fd;

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, want))
			continue;
		fd = open(path, O_RDWR | O_CLOEXEC);
		cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
		cr_assert(fstat(fd, &st) == 0);
		base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		cr_assert(base != MAP_FAILED, "mmap: %s", strerror(errno));
		close(fd);
		*ret_size = (size_t)st.st_size;
		break;
	}
	closedir(dp);
	cr_assert(base != NULL, "no memfd %s in %s", want, dir);
	return base;
}

Test(shmqctl, check_passes_healthy_objects_and_catches_corrupted_ones)
{
	struct shmq_queue *q = queue_new("good.q", SHMQ_MPMC, SHMQ_SEND | SHMQ_RECV);
	struct shmq_queue *bad = queue_new("bad.ring", SHMQ_MPMC, SHMQ_SEND);
	struct shmq_sem_attr sa = {
		.size = sizeof(sa), .initial = 1, .max = 2, .flags = SHMQ_SEM_ATTR_BOUNDED};
	struct shmq_segment seg;
	struct shmq_sem *s;
	size_t size;
	void *base;

	T_OK(shmq_sem_open(c, "good.s", SHMQ_CREATE | SHMQ_EXCL, &sa, &s));
	T_OK(shmq_queue_send(q, "ok", 2));
	cr_assert(eq(int, ctl("check", NULL), 0), "%s", out);
	cr_assert(strstr(out, "3 ok, 0 corrupt") != NULL, "%s", out);

	/* A producer "moves" the tail past a whole lap: more queued than slots. */
	base = daemon_segment("bad.ring", &size);
	T_OK(shmq__segment_attach(base, size, &seg));
	store_relaxed(&((struct shmq_queue_shm *)seg.object)->tail, 16 + 5);
	munmap(base, size);

	cr_assert(eq(int, ctl("check", NULL), 1), "%s", out);
	cr_assert(strstr(out, "corrupt") && strstr(out, "bad.ring") &&
			  strstr(out, "2 ok, 1 corrupt"),
		  "%s", out);
	cr_assert(eq(int, ctl("check", "good.q", NULL), 0), "%s", out);
	cr_assert(eq(int, ctl("check", "bad.ring", NULL), 1), "%s", out);

	/* A semaphore over its bound, and a header whose magic is gone. */
	base = daemon_segment("good.s", &size);
	T_OK(shmq__segment_attach(base, size, &seg));
	store_relaxed(&((struct shmq_sem_shm *)seg.object)->value, 7);
	munmap(base, size);
	cr_assert(eq(int, ctl("check", "good.s", NULL), 1), "%s", out);

	cr_assert(eq(int, ctl("create", "queue", "bad.hdr", NULL), 0), "%s", out);
	base = daemon_segment("bad.hdr", &size);
	((struct shmq_segment_hdr *)base)->magic ^= 1;
	munmap(base, size);

	cr_assert(eq(int, ctl("check", "--json", NULL), 1), "%s", out);
	py_check(out, false,
		 "r = {x['name']: x['result'] for x in d['objects']}\n"
		 "assert r == {'good.q': 'ok', 'bad.ring': 'corrupt', 'good.s': 'corrupt',\n"
		 "             'bad.hdr': 'corrupt'}, r\n"
		 "assert d['ok'] == 1 and d['corrupt'] == 3 and d['skipped'] == 0\n"
		 "assert all(x['detail'] for x in d['objects'] if x['result'] == 'corrupt')\n");
	shmq_sem_close(s);
	shmq_queue_close(bad);
	shmq_queue_close(q);
	finish();
}

/* --- rm, purge --- */

Test(shmqctl, purge_drops_messages_and_rm_removes_names)
{
	struct shmq_queue *q = queue_new("pq", SHMQ_MPMC, SHMQ_SEND);

	for (int i = 0; i < 5; i++)
		T_OK(shmq_queue_send(q, "m", 1));
	cr_assert(eq(int, ctl("purge", "pq", NULL), 0), "%s", out);
	cr_assert(strstr(out, "purged 5 messages") != NULL, "%s", out);
	T_OK(shmq_queue_send(q, "m", 1));
	cr_assert(eq(int, ctl("purge", "pq", "--json", NULL), 0), "%s", out);
	py_check(out, false, "assert d == {'name': 'pq', 'dropped': 1}, d\n");

	cr_assert(eq(int, ctl("create", "sem", "ps", NULL), 0), "%s", out);
	cr_assert(eq(int, ctl("purge", "ps", NULL), 1), "a semaphore: %s", out);

	cr_assert(eq(int, ctl("rm", "pq", "ps", "--json", NULL), 0), "%s", out);
	py_check(out, false, "assert d == {'removed': ['pq', 'ps'], 'failed': 0}, d\n");
	cr_assert(eq(int, ctl("rm", "pq", NULL), 1), "%s", out);
	shmq_queue_close(q);
	finish();
}

/* --- Another user --- */

struct as_user {
	const char *ctl;
	char sock[160];
	const char *verb;
	const char *arg;
	int fd;
};

static int run_as_user(void *arg)
{
	struct as_user *u = arg;
	const char *argv[] = {u->ctl, u->sock, "--json", u->verb, u->arg, NULL};

	dup2(u->fd, STDOUT_FILENO);
	execv(u->ctl, (char *const *)argv);
	return 127;
}

static int ctl_as_nobody(const char *verb, const char *arg)
{
	char path[] = "/tmp/shmqctl-out-XXXXXX";
	struct as_user u = {.ctl = t_stage_for_others(shmqctl_path()), .verb = verb, .arg = arg};
	int st;
	ssize_t n;

	u.fd = mkstemp(path);
	cr_assert(u.fd >= 0);
	unlink(path);
	snprintf(u.sock, sizeof(u.sock), "--socket=%s", d.sock);
	st = t_wait_peer_ms(t_fork_as(T_UNPRIVILEGED_ID, T_UNPRIVILEGED_ID, run_as_user, &u),
			    CHILD_MS);
	n = pread(u.fd, out, sizeof(out) - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(u.fd);
	return st;
}

Test(shmqctl, objects_another_user_may_not_read_are_hidden_and_cannot_be_looked_at)
{
	struct shmq_queue *q = queue_new("private", SHMQ_MPMC, SHMQ_SEND);

	cr_assert(eq(int, ctl("create", "queue", "public", "--perm", "0644", NULL), 0), "%s", out);
	cr_assert(eq(int, ctl_as_nobody("ls", NULL), 0), "%s", out);
	py_check(out, false,
		 "o = {x['name']: x for x in d['objects']}\n"
		 "assert list(o) == ['public'], list(o)\n"
		 "assert o['public']['viewable'] is True and o['public']['depth'] == 0\n");
	cr_assert(eq(int, ctl_as_nobody("check", NULL), 0), "%s", out);
	py_check(out, false,
		 "r = {x['name']: x['result'] for x in d['objects']}\n"
		 "assert r == {'public': 'ok'}, r\n");
	cr_assert(eq(int, ctl_as_nobody("check", "private"), 1), "%s", out);
	cr_assert(eq(int, ctl_as_nobody("show", "private"), 1), "%s", out);
	cr_assert(eq(int, ctl_as_nobody("clients", NULL), 0), "%s", out);
	py_check(out, false, "assert all(c['uid'] == 65534 for c in d['clients']), d\n");
	cr_assert(eq(int, ctl_as_nobody("purge", "public"), 1), "not the owner: %s", out);
	shmq_queue_close(q);
	finish();
}

struct blocked_recv {
	const char *sock;
	_Atomic int state; /* 1: about to block */
	int result;
};

/* Child: block in a receive on the empty queue until the shutdown ends it. */
static int child_recv_forever(void *arg)
{
	struct blocked_recv *b = arg;
	struct shmq_client *cc;
	struct shmq_queue *q;
	char buf[64];

	if (shmq_client_connect(b->sock, &cc) || shmq_queue_open(cc, "jobs", SHMQ_RECV, NULL, &q))
		return 1;
	atomic_store(&b->state, 1);
	b->result = shmq_queue_recv_wait(q, buf, sizeof(buf), SHMQ_FOREVER);
	return b->result == -EPIPE && shmq_queue_is_shut_down(q) == 1 ? 0 : 2;
}

Test(shmqctl, shutdown_ends_a_queue_for_every_process_and_shows_it)
{
	struct blocked_recv *b = t_shared_alloc(sizeof(*b));
	struct shmq_queue *q;
	pid_t pid;

	cr_assert(eq(int, ctl("create", "queue", "jobs", "--mode", "spmc", NULL), 0), "%s", out);
	cr_assert(eq(int, ctl("create", "lock", "m", NULL), 0), "%s", out);
	T_OK(shmq_queue_open(c, "jobs", SHMQ_SEND, NULL, &q));
	cr_assert(eq(int, shmq_queue_is_shut_down(q), 0));
	*b = (struct blocked_recv){.sock = d.sock, .result = 99};
	pid = t_fork_child(child_recv_forever, b);
	while (!atomic_load(&b->state))
		t_sleep_ms(1);
	t_sleep_ms(50);						      /* asleep in the kernel */
	cr_assert(eq(int, ctl("shutdown", "m", NULL), 1), "%s", out); /* not a queue */
	cr_assert(eq(int, ctl("shutdown", "nope", NULL), 1), "%s", out);
	cr_assert(eq(int, ctl("shutdown", "jobs", "--slots", "4", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("shutdown", "jobs", NULL), 0), "%s", out);
	cr_assert(strstr(out, "shut down 'jobs'") != NULL, "%s", out);
	cr_assert(eq(int, t_wait_peer_ms(pid, 10000), 0), "child: %d", b->result);
	T_ERR(shmq_queue_send(q, "x", 1), -EPIPE);
	cr_assert(eq(int, ctl("ls", NULL), 0), "%s", out);
	cr_assert(strstr(out, "spmc,shutdown") != NULL, "%s", out);
	cr_assert(eq(int, ctl("show", "jobs", NULL), 0), "%s", out);
	cr_assert(strstr(out, "shut down:   sends fail") != NULL, "%s", out);
	cr_assert(eq(int, ctl("shutdown", "jobs", "--immediate", "--json", NULL), 0), "%s", out);
	py_check(out, false, "assert d['name'] == 'jobs' and d['immediate'] is True\n");
	cr_assert(eq(int, ctl("--json", "show", "jobs", NULL), 0), "%s", out);
	py_check(out, false, "assert d['shutdown'] == 'immediate'\n");
	cr_assert(eq(int, shmq_queue_is_shut_down(q), 2));
	T_OK(shmq_queue_close(q));
	finish();
}

/* Child: a moment later, shut the queue down through the daemon. */
static int child_shut_down(void *arg)
{
	struct blocked_recv *b = arg;
	struct shmq_client *cc;

	if (shmq_client_connect(b->sock, &cc))
		return 1;
	t_sleep_ms(50); /* the parent's poller is asleep by now */
	b->result = shmq_queue_shutdown_name(cc, "jobs", 0);
	return b->result == 0 && !shmq_client_close(cc) ? 0 : 2;
}

static int on_recv_ready(struct shmq_watch *w, int events, void *arg)
{
	int *seen = arg;

	(void)w;
	*seen = events;
	return -ECANCELED;
}

Test(shmqctl, a_shutdown_wakes_an_asynchronous_waiter_too)
{
	struct blocked_recv *b = t_shared_alloc(sizeof(*b));
	struct shmq_poller *pl;
	struct shmq_watch *wt;
	struct shmq_queue *q;
	char buf[64];
	int seen = 0;
	pid_t pid;

	cr_assert(eq(int, ctl("create", "queue", "jobs", NULL), 0), "%s", out);
	T_OK(shmq_queue_open(c, "jobs", SHMQ_RECV, NULL, &q));
	*b = (struct blocked_recv){.sock = d.sock, .result = 99};
	pid = t_fork_child(child_shut_down, b);
	T_OK(shmq_poller_new(0, &pl));
	T_OK(shmq_poller_add(pl, shmq_queue_object(q), SHMQ_POLL_RECV, on_recv_ready, &seen, &wt));
	T_ERR(shmq_poller_run(pl), -ECANCELED);
	cr_assert(eq(int, seen, SHMQ_POLL_RECV));
	T_ERR(shmq_queue_recv(q, buf, sizeof(buf)), -EPIPE); /* the attempt says why */
	cr_assert(eq(int, t_wait_peer_ms(pid, 10000), 0), "child: %d", b->result);
	shmq_watch_free(wt);
	shmq_poller_free(pl);
	T_OK(shmq_queue_close(q));
	finish();
}

/* --- Errors carry the daemon's reason --- */

Test(shmqctl, a_refused_verb_prints_the_daemons_reason)
{
	cr_assert(eq(int, ctl("create", "sem", "why-s1", NULL), 0), "%s", out);
	cr_assert(eq(int, ctl("purge", "why-s1", NULL), 1), "%s", out);
	cr_assert(strstr(out, "Invalid argument: ") != NULL && strstr(out, "semaphore") != NULL,
		  "no reason after the errno: %s", out);
	cr_assert(eq(int, ctl("create", "queue", "why-q", "--slots", "1000", NULL), 1), "%s", out);
	cr_assert(strstr(out, "power of two") != NULL, "no reason for --slots 1000: %s", out);
	cr_assert(eq(int, ctl("create", "sem", "why-s2", "--initial", "5", "--max", "2", NULL), 1),
		  "%s", out);
	cr_assert(strstr(out, "Invalid argument: initial value 5 is above the bound 2") != NULL,
		  "%s", out);
	cr_assert(eq(int, ctl("create", "queue", "bad/name", NULL), 1), "%s", out);
	cr_assert(strstr(out, "invalid name: 1-63 bytes of [A-Za-z0-9._-]") != NULL, "%s", out);
	cr_assert(eq(int, ctl("rm", "why-s1", NULL), 0), "%s", out);
}

Test(shmqctl, sem_post_adds_tokens_and_says_why_when_it_cannot)
{
	cr_assert(eq(int, ctl("create", "sem", "leaky", "--initial", "0", "--max", "3", NULL), 0),
		  "%s", out);
	cr_assert(eq(int, ctl("sem", "post", "leaky", NULL), 0), "%s", out);
	cr_assert(strstr(out, "posted 1 to 'leaky': value now 1") != NULL, "%s", out);
	cr_assert(eq(int, ctl("--json", "sem", "post", "leaky", "2", NULL), 0), "%s", out);
	py_check(out, false, "assert d == {'name': 'leaky', 'posted': 2, 'value': 3}, d\n");
	cr_assert(eq(int, ctl("sem", "post", "leaky", NULL), 1), "%s", out);
	cr_assert(strstr(out, "its bound would be passed (value 3); nothing posted") != NULL, "%s",
		  out);
	cr_assert(eq(int, ctl("sem", "post", "leaky", "0", NULL), 2), "%s", out);
	cr_assert(strstr(out, "'0' is not a count of tokens") != NULL, "%s", out);
	cr_assert(eq(int, ctl("sem", "post", "leaky", "-1", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("sem", "take", "leaky", NULL), 2), "%s", out);
	cr_assert(strstr(out, "'take' is not a sem verb (post)") != NULL, "%s", out);
	cr_assert(eq(int, ctl("create", "queue", "notsem", NULL), 0), "%s", out);
	cr_assert(eq(int, ctl("sem", "post", "notsem", NULL), 1), "%s", out);
	cr_assert(strstr(out, "'notsem' is of kind queue") != NULL, "%s", out);
	cr_assert(eq(int, ctl("sem", "post", "nosuch", NULL), 1), "%s", out);
	cr_assert(strstr(out, "opening semaphore 'nosuch'") != NULL, "%s", out);
	finish();
}

Test(shmqctl, usage_shows_each_users_objects_memory_and_clients_against_the_limits)
{
	struct shmq_queue *q = queue_new("mine", SHMQ_MPMC, SHMQ_SEND);
	char check[768];

	/* the test's own uid: root in CI's first run, nobody in its second */
	cr_assert(eq(int, ctl("--json", "usage", NULL), 0), "%s", out);
	snprintf(check, sizeof(check),
		 "rows = {r['uid']: r for r in d['usage']}\n"
		 "r = rows[%u]\n"
		 "assert r['user'] == '%s' and r['objects'] == 1, r\n"
		 "assert r['memory_bytes'] > 0 and r['max_memory_bytes'] == 1 << 30, r\n"
		 "assert r['max_objects'] == 1024 and r['clients'] >= 1, r\n"
		 "assert r['max_clients'] == %s, 'root is not limited, others are'\n",
		 (unsigned int)geteuid(), me(), geteuid() == 0 ? "None" : "512");
	py_check(out, false, check);
	cr_assert(eq(int, ctl("usage", NULL), 0), "%s", out);
	cr_assert(strstr(out, "OBJECTS") && strstr(out, "MEMORY") && strstr(out, me()), "%s", out);
	/* another user gets their own row, with nothing in it, and nobody else's */
	cr_assert(eq(int, ctl_as_nobody("usage", NULL), 0), "%s", out);
	py_check(out, false,
		 "assert len(d['usage']) == 1, d\n"
		 "r = d['usage'][0]\n"
		 "assert r['uid'] == 65534 and r['objects'] == 0 and r['memory_bytes'] == 0, r\n"
		 "assert r['clients'] == 1 and r['max_clients'] == 512, r\n");
	shmq_queue_close(q);
	finish();
}

static int child_sends_three(void *arg)
{
	struct shmq_client *cc;
	struct shmq_queue *q;
	int r = 0;

	if (shmq_client_connect(arg, &cc) || shmq_queue_open(cc, "lastq", SHMQ_SEND, NULL, &q))
		return 1;
	for (int i = 0; i < 3; i++)
		r |= shmq_queue_send(q, "m", 1);
	return r || shmq_queue_close(q) || shmq_client_close(cc) ? 2 : 0;
}

Test(shmqctl, show_names_the_last_sender_and_receiver_with_a_time)
{
	struct shmq_queue *rx = queue_new("lastq", SHMQ_MPMC, SHMQ_RECV);
	char buf[8], check[512];
	pid_t pid;

	cr_assert(eq(int, ctl("--json", "show", "lastq", NULL), 0), "%s", out);
	py_check(out, false, "assert d['last_send'] is None and d['last_recv'] is None, d\n");
	pid = t_fork_child(child_sends_three, (void *)d.sock);
	cr_assert(eq(int, t_wait_peer_ms(pid, CHILD_MS), 0));
	/* the sender's handle went: its last sends were noted then, no tick needed */
	cr_assert(eq(int, ctl("--json", "show", "lastq", NULL), 0), "%s", out);
	snprintf(check, sizeof(check),
		 "import time\n"
		 "s = d['last_send']\n"
		 "assert s['pid'] == %d, d\n"
		 "assert abs(s['realtime_ns'] / 1e9 - time.time()) < 60, s\n"
		 "assert d['last_recv'] is None, d\n",
		 (int)pid);
	py_check(out, false, check);
	cr_assert(eq(int, shmq_queue_recv(rx, buf, sizeof(buf)), 1));
	T_OK(shmq_queue_close(rx)); /* the receive is noted as the handle goes */
	cr_assert(eq(int, ctl("show", "lastq", NULL), 0), "%s", out);
	snprintf(check, sizeof(check), "last send:   pid %d at ", (int)pid);
	cr_assert(strstr(out, check) != NULL, "%s", out);
	snprintf(check, sizeof(check), "last recv:   pid %d at ", (int)getpid());
	cr_assert(strstr(out, check) != NULL, "%s", out);
	finish();
}

Test(shmqctl, peek_dumps_queued_messages_in_place_and_takes_none)
{
	struct shmq_queue_attr a = {.size = sizeof(a),
				    .n_slots = 16,
				    .slot_size = 512,
				    .mode = SHMQ_MPMC,
				    .numa_node = -1,
				    .max_msg = 65536};
	static char big[40000];
	struct shmq_queue *q;
	char buf[64];

	T_OK(shmq_queue_open(c, "peeked", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND | SHMQ_RECV, &a, &q));
	cr_assert(eq(int, ctl("peek", "peeked", NULL), 0), "%s", out);
	cr_assert(strstr(out, "'peeked' is empty") != NULL, "%s", out);
	memset(big, 'B', sizeof(big));
	T_OK(shmq_queue_send(q, "hello, peek", 11));
	T_OK(shmq_queue_send(q, big, 300));
	T_OK(shmq_queue_send(q, big, sizeof(big))); /* through the arena */
	cr_assert(eq(int, ctl("peek", "peeked", NULL), 0), "%s", out);
	cr_assert(strstr(out, "#0: 11 bytes (position 0)") != NULL, "%s", out);
	cr_assert(strstr(out, "|hello, peek|") != NULL, "%s", out);
	cr_assert(strstr(out, "68 65 6c 6c 6f") != NULL, "hex of 'hello': %s", out);
	cr_assert(strstr(out, "#1: 300 bytes") && strstr(out, "... 44 more bytes"), "%s", out);
	cr_assert(strstr(out, "#2: 40000 bytes (position 2), in the arena") != NULL, "%s", out);
	cr_assert(eq(int, ctl("--json", "peek", "peeked", "2", NULL), 0), "%s", out);
	py_check(out, false,
		 "m = d['messages']\n"
		 "assert d['name'] == 'peeked' and len(m) == 2, d\n"
		 "assert m[0]['length'] == 11 and m[0]['text'] == 'hello, peek', m[0]\n"
		 "assert bytes.fromhex(m[0]['hex']) == b'hello, peek' and not m[0]['truncated']\n"
		 "assert m[1]['length'] == 300 and m[1]['truncated'] and len(m[1]['hex']) == 512\n"
		 "assert m[0]['flags'] == [] and m[0]['position'] == 0\n");
	/* nothing was taken */
	cr_assert(eq(int, shmq_queue_recv(q, buf, sizeof(buf)), 11));
	cr_assert(memcmp(buf, "hello, peek", 11) == 0);
	cr_assert(eq(int, ctl("--json", "peek", "peeked", NULL), 0), "%s", out);
	py_check(out, false,
		 "m = d['messages']\n"
		 "assert [x['length'] for x in m] == [300, 40000], m\n"
		 "assert m[1]['flags'] == ['large'], m\n");
	/* the refusals */
	cr_assert(eq(int, ctl("create", "sem", "notq", NULL), 0), "%s", out);
	cr_assert(eq(int, ctl("peek", "notq", NULL), 1), "%s", out);
	cr_assert(strstr(out, "'notq' is a semaphore; peek shows a queue's messages") != NULL, "%s",
		  out);
	cr_assert(eq(int, ctl("peek", "peeked", "0", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("peek", "nosuch", NULL), 1), "%s", out);
	cr_assert(strstr(out, "no object 'nosuch'") != NULL, "%s", out);
	cr_assert(eq(int, ctl_as_nobody("peek", "peeked"), 1), "a 0600 queue is not nobody's: %s",
		  out);
	T_OK(shmq_queue_close(q));
	finish();
}

Test(shmqctl, every_json_output_is_strict_utf8_json_and_utf8_text_survives)
{
	static char dir[64], arg[96];
	static const char *const args[] = {arg, "--max-clients=99", NULL};
	static const char *const verbs[][6] = {
		{"status"},
		{"config"},
		{"ls"},
		{"show", "q"},
		{"clients"},
		{"top", "--iterations", "2", "--interval", "0.1"},
		{"check"},
		{"usage"},
		{"peek", "q"},
		{"sem", "post", "s"},
		{"create", "queue", "q2"},
		{"purge", "q2"},
		{"shutdown", "q2"},
		{"rm", "q2"},
	};
	struct shmq_queue *q;
	char check[512], cmd[128];

	finish(); /* the suite's daemon: this one keeps its state in a UTF-8 path */
	snprintf(dir, sizeof(dir), "/dev/shm/shmq-w\xc3\xabird-XXXXXX");
	cr_assert(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(arg, sizeof(arg), "--state-directory=%s", dir);
	t_daemon_start(&d, args, NULL);
	c = t_connect(&d);
	q = queue_new("q", SHMQ_MPMC, SHMQ_SEND);
	T_OK(shmq_queue_send(q, "caf\xc3\xa9 \xff", 7)); /* peek's text is ASCII: '.' for these */
	cr_assert(eq(int, ctl("create", "sem", "s", NULL), 0), "%s", out);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		const char *const *v = verbs[i];
		bool lines = !strcmp(v[0], "top");

		cr_assert(eq(int, ctl("--json", v[0], v[1], v[2], v[3], v[4], NULL), 0), "%s: %s",
			  v[0], out);
		py_check(out, lines, lines ? "assert len(docs) == 2" : "assert d is not None");
	}
	cr_assert(eq(int, ctl("--json", "config", NULL), 0), "%s", out);
	snprintf(check, sizeof(check),
		 "o = {x['name']: x['value'] for x in d['options']} if 'options' in d else d\n"
		 "v = o.get('state-directory')\n"
		 "assert v == %s, repr(v)\n",
		 "'/dev/shm/shmq-w\u00ebird-' + v[-6:]");
	py_check(out, false, check);
	T_OK(shmq_queue_close(q));
	finish();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert(system(cmd) == 0);
}

Test(shmqctl, metrics_are_well_formed_openmetrics_with_every_object)
{
	struct shmq_queue *q = queue_new("mq", SHMQ_MPMC, SHMQ_SEND);
	static const char script[] =
		"import re, sys\n"
		"lines = open(sys.argv[1], 'rb').read().decode('utf-8').split('\\n')\n"
		"assert lines[-1] == '' and lines[-2] == '# EOF', lines[-3:]\n"
		"types, helps, samples = {}, set(), {}\n"
		"sample = "
		"re.compile(r'^([a-z_]+)(\\{[a-z_]+=\"[^\"\\\\]*\"(,[a-z_]+=\"[^\"\\\\]*\")*\\})? "
		"(-?[0-9.]+)$')\n"
		"for l in lines[:-2]:\n"
		"    if l.startswith('# TYPE '):\n"
		"        _, _, name, t = l.split(' ')\n"
		"        assert name not in types and t in ('gauge', 'counter'), l\n"
		"        types[name] = t\n"
		"    elif l.startswith('# HELP '):\n"
		"        helps.add(l.split(' ')[2])\n"
		"    else:\n"
		"        m = sample.match(l)\n"
		"        assert m, 'not a sample: %r' % l\n"
		"        name = m.group(1)\n"
		"        fam = name[:-6] if name.endswith('_total') else name\n"
		"        assert fam in types, 'no family for %r' % l\n"
		"        assert (types[fam] == 'counter') == name.endswith('_total'), l\n"
		"        samples[name + (m.group(2) or '')] = float(m.group(4))\n"
		"assert set(types) == helps\n"
		"k = '{name=\"mq\",kind=\"queue\"}'\n"
		"assert samples['shmq_object_sent_total' + k] == 3, samples\n"
		"assert samples['shmq_object_depth' + k] == 3\n"
		"assert samples['shmq_object_capacity' + k] == 16\n"
		"assert samples['shmq_object_handles' + k] == 1\n"
		"assert samples['shmq_daemon_up'] == 1 and samples['shmq_daemon_objects'] >= 1\n"
		"import os\n"
		"assert samples['shmq_user_objects{uid=\"%d\"}' % os.geteuid()] >= 1\n";
	char res[8192];

	for (int i = 0; i < 3; i++)
		T_OK(shmq_queue_send(q, "m", 1));
	cr_assert(eq(int, ctl("metrics", NULL), 0), "%s", out);
	cr_assert(eq(int, t_python(script, out, res, sizeof(res), RUN_MS), 0),
		  "%s\n--- metrics:\n%s", res, out);
	shmq_queue_close(q);
	finish();
}

Test(shmqctl, top_on_a_terminal_quits_on_q_and_cuts_its_lines_at_the_width)
{
	char script[2048], res[8192];
	const char *argv[] = {"/usr/bin/env", "python3", "-c", script, NULL};
	struct shmq_queue *q = queue_new("topq", SHMQ_MPMC, SHMQ_SEND);
	int st;

	/* a pty 40 columns wide: top must cut its lines there and quit on q */
	snprintf(script, sizeof(script),
		 "import fcntl, os, select, struct, subprocess, sys, termios, time\n"
		 "m, s = os.openpty()\n"
		 "fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 40, 0, 0))\n"
		 "p = subprocess.Popen(['%s', '--socket=%s', 'top', '--interval', '0.2'],\n"
		 "                     stdin=s, stdout=s, stderr=s, close_fds=True)\n"
		 "os.close(s)\n"
		 "out = b''\n"
		 "end = time.time() + 10\n"
		 "while b'topq' not in out and time.time() < end:\n"
		 "    if select.select([m], [], [], 0.2)[0]:\n"
		 "        out += os.read(m, 65536)\n"
		 "assert b'topq' in out, out\n"
		 "os.write(m, b'q')\n"
		 "assert p.wait(5) == 0, 'top did not quit on q'\n"
		 "text = out.replace(b'\\x1b[H\\x1b[2J', b'').decode()\n"
		 "long = [l for l in text.split('\\r\\n') if len(l) > 40]\n"
		 "assert not long, long\n",
		 shmqctl_path(), d.sock);
	st = t_run(argv, res, sizeof(res), RUN_MS);
	cr_assert(eq(int, st, 0), "%s", res);
	shmq_queue_close(q);
	finish();
}

struct holder {
	const char *sock;
	_Atomic int state; /* 1: holds the lock */
};

static int child_holds_and_hangs(void *arg)
{
	struct holder *h = arg;
	struct shmq_client *cc;
	struct shmq_lock *l;

	if (shmq_client_connect(h->sock, &cc) || shmq_lock_open(cc, "stuck", 0, NULL, &l) ||
	    shmq_lock_acquire(l, SHMQ_FOREVER) < 0)
		return 1;
	atomic_store(&h->state, 1);
	for (;;)
		pause(); /* stuck, holding it */
}

static int find_pid(void *arg, const struct shmq_client_info *ci)
{
	uint64_t *want = arg; /* in: the pid; out: its session */

	if ((uint64_t)ci->pid == want[0])
		want[1] = ci->session_id;
	return 0;
}

Test(shmqctl, disconnect_kills_a_stuck_holder_and_its_lock_is_free_at_once)
{
	struct holder *h = t_shared_alloc(sizeof(*h));
	struct shmq_lock *l;
	uint64_t want[2] = {0, 0};
	char id[24];
	pid_t pid;

	cr_assert(eq(int, ctl("create", "lock", "stuck", "--perm", "0666", NULL), 0), "%s", out);
	h->sock = d.sock;
	pid = t_fork_child(child_holds_and_hangs, h);
	for (int i = 0; i < 500 && !atomic_load(&h->state); i++)
		t_sleep_ms(10);
	cr_assert(eq(int, atomic_load(&h->state), 1), "the child never took the lock");
	T_OK(shmq_lock_open(c, "stuck", 0, NULL, &l));
	T_ERR(shmq_lock_try_acquire(l), -EAGAIN);
	want[0] = (uint64_t)pid;
	cr_assert(ge(int, shmq_daemon_clients(c, find_pid, want), 2));
	cr_assert(ne(u64, want[1], 0), "no session of pid %d", (int)pid);
	snprintf(id, sizeof(id), "%" PRIu64, want[1]);

	cr_assert(eq(int, ctl("disconnect", "not-a-number", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("disconnect", "987654321", NULL), 1), "%s", out);
	cr_assert(strstr(out, "no session 987654321") != NULL, "%s", out);
	if (geteuid() == 0) /* another uid is root's to become */
		cr_assert(eq(int, ctl_as_nobody("disconnect", id), 1), "another user's session: %s",
			  out);
	cr_assert(eq(int, ctl("disconnect", id, NULL), 0), "%s", out);
	cr_assert(strstr(out, "disconnected: its process was killed and its holds repaired") !=
			  NULL,
		  "%s", out);
	cr_assert(eq(int, t_wait_peer_ms(pid, CHILD_MS), 128 + SIGKILL), "the holder was killed");
	T_ERR(shmq_lock_acquire(l, t_deadline_ms(5000)), -EOWNERDEAD);
	T_OK(shmq_lock_consistent(l));
	T_OK(shmq_lock_release(l));
	T_OK(shmq_lock_close(l));
	finish();
}

Test(shmqctl, tables_take_columns_raw_and_export_as_lsipc_does)
{
	struct shmq_queue *q = queue_new("colq", SHMQ_MPMC, SHMQ_SEND);
	char want[96];

	T_OK(shmq_queue_send(q, "m", 1));
	cr_assert(eq(int, ctl("ls", "-o", "name,DEPTH,kind", NULL), 0), "%s", out);
	cr_assert(strstr(out, "NAME  DEPTH  KIND\ncolq      1  queue\n") != NULL, "%s", out);
	cr_assert(eq(int, ctl("ls", "--raw", "-o", "NAME,CAP,DEPTH", NULL), 0), "%s", out);
	cr_assert(strstr(out, "NAME CAP DEPTH\ncolq 16 1\n") != NULL, "%s", out);
	cr_assert(eq(int, ctl("ls", "--export", "-o", "NAME,DEPTH", NULL), 0), "%s", out);
	cr_assert(strstr(out, "NAME=\"colq\" DEPTH=\"1\"\n") != NULL, "%s", out);
	cr_assert(eq(int,
		     ctl("top", "--iterations", "1", "--interval", "0.1", "--export", "-o",
			 "NAME,SEND/S", NULL),
		     0),
		  "%s", out);
	cr_assert(strstr(out, "NAME=\"colq\" SEND_S=\"") != NULL, "a shell name: %s", out);
	cr_assert(eq(int, ctl("usage", "--raw", "--no-legend", "-o", "USER,OBJECTS", NULL), 0),
		  "%s", out);
	snprintf(want, sizeof(want), "%s 1\n", me());
	cr_assert(strstr(out, want) != NULL, "%s", out);
	/* the refusals */
	cr_assert(eq(int, ctl("ls", "-o", "NAME,NOPE", NULL), 2), "%s", out);
	cr_assert(strstr(out, "-o: no column 'NOPE'; this table's columns: NAME,KIND,TYPE") != NULL,
		  "%s", out);
	cr_assert(eq(int, ctl("--json", "ls", "-o", "NAME", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("ls", "--raw", "--export", NULL), 2), "%s", out);
	cr_assert(eq(int, ctl("status", "--raw", NULL), 2), "not a table: %s", out);
	shmq_queue_close(q);
	finish();
}
