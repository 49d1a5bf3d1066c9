/* SPDX-License-Identifier: MIT */
/*
 * shmqctl: look at and manage what lives in shmqd.
 *
 * The command line is one option table and one verb table.  Options may
 * come anywhere on the line (getopt permutes); each one names the verbs it
 * applies to, and using it with another verb is a usage error.  The first
 * argument that is not an option is the verb, the rest are its arguments;
 * `--` ends the options (for names that start with '-').
 *
 * Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmq/shmq.h>
#include <shmq/version.h>

#include "tools/shmqctl/shmqctl.h"

struct verb {
	const char *name;
	int min_args;
	int max_args;
	int (*fn)(struct ctl *ctl);
	const char *synopsis;
	const char *summary; /* one line for --help */
	const char *help;
};

enum verb_id {
	V_STATUS,
	V_CONFIG,
	V_LS,
	V_SHOW,
	V_CLIENTS,
	V_TOP,
	V_CHECK,
	V_CREATE,
	V_RM,
	V_PURGE,
	V_SHUTDOWN,
	V_SEM,
	V_PEEK,
	V_USAGE,
	V_METRICS,
	V_DISCONNECT,
	V_HELP,
	V_COUNT,
};

static const struct verb verbs[V_COUNT] = {
	[V_STATUS] = {"status", 0, 0, verb_status, "status",
		      "the daemon and its configuration (default)",
		      "Show the daemon: version, pid, uptime, socket, counts of clients, objects\n"
		      "and memory, and the configuration in force.  The default verb.\n"},
	[V_CONFIG] = {"config", 0, 0, verb_config, "config", "the configuration in force",
		      "Show the daemon's configuration in force, one `name = value` per option.\n"},
	[V_LS] = {"ls", 0, 0, verb_ls, "ls", "every object you may read, with its live depth",
		  "List every object you may read (root: every object): name, kind, type,\n"
		  "owner, permissions, capacity, slot size, depth (a semaphore's value),\n"
		  "high-water mark, producers, consumers, sleepers and NUMA node.\n"},
	[V_SHOW] = {"show", 1, 1, verb_show, "show NAME", "one object, and every handle on it",
		    "Show everything about one object: its record in the daemon, its live\n"
		    "state and counters, and every handle open on it with the pid, uid, role\n"
		    "and counters of its session record.\n"},
	[V_CLIENTS] = {"clients", 0, 0, verb_clients, "clients", "your connected clients",
		       "List the connected clients of your user (root: every client): session,\n"
		       "pid, user, handles open, age and program name.\n"},
	[V_TOP] = {"top", 0, 0, verb_top, "top [--interval S] [--iterations N] [--sort KEY]",
		   "live per-object rates, until interrupted",
		   "Refresh per-object send and receive rates, depth and sleepers every\n"
		   "--interval seconds (default 1), sorted by --sort: rate (default), depth or\n"
		   "name; until interrupted (q on a terminal), or --iterations times.  Rates\n"
		   "from 10000 up take SI units (12.3K, 4.5M); lines are cut at the\n"
		   "terminal's width.  With --json, one JSON document per line and per\n"
		   "refresh.\n"},
	[V_CHECK] = {"check", 0, 1, verb_check, "check [NAME]",
		     "validate segments; 1 if one is corrupt",
		     "Run the validators on one object, or on every object: the segment\n"
		     "header and session records, then the ring's indices and slot turns or\n"
		     "the semaphore's words, on a read-only mapping.  An inconsistency must\n"
		     "persist for about 0.1 s to count.  Exits 1 if an object is corrupt (or,\n"
		     "with NAME, cannot be checked); objects you may not read are skipped.\n"},
	[V_CREATE] = {"create", 2, 2, verb_create,
		      "create queue|sem|event|lock|rlock|cond|barrier|pipe NAME [OPTIONS]",
		      "create a queue, a semaphore, an event, a lock, a condition, a barrier or "
		      "a pipe",
		      "Create a queue, a semaphore, an event, a lock, a condition, a barrier or\n"
		      "a pipe owned by you.\n"
		      "Queues: --slots N (a power of two), --slot-size BYTES, --mode\n"
		      "mpmc|spsc|mpsc|spmc, --numa NODE, --hugepages, --joinable (task_done and\n"
		      "join, as a JoinableQueue), --max-msg BYTES (messages above the slot size,\n"
		      "up to 256 MiB, through an arena).  Semaphores: --initial N,\n"
		      "--max N (bounded), --undo.  Events: --initial 0|1 (clear or set).\n"
		      "Locks: rlock (or lock --recursive) is recursive.  Conditions: --lock\n"
		      "NAME (required: the lock it is bound to).  Barriers: --parties N\n"
		      "(required, 1..32767).  Pipes: --slots N and --slot-size BYTES per\n"
		      "direction, --oneway (end 1 sends, end 0 receives).\n"
		      "All: --perm MODE (octal, default 0600).\n"
		      "Unset geometry takes the daemon's defaults.\n"},
	[V_RM] = {"rm", 1, 64, verb_rm, "rm NAME...", "remove names",
		  "Remove names (owner or root).  The memory lives on while handles are open.\n"},
	[V_PURGE] = {"purge", 1, 1, verb_purge, "purge NAME",
		     "drop every message queued in a queue",
		     "Drop every message queued in a queue (owner or root).  The daemon\n"
		     "receives them as one more consumer; an SPSC or MPSC queue whose receiver\n"
		     "is attached is refused (busy): its receiver owns the read index.\n"},
	[V_SHUTDOWN] =
		{"shutdown", 1, 1, verb_shutdown, "shutdown NAME [--immediate]",
		 "shut a queue down: sends fail, receivers drain, then see the end",
		 "Shut a queue down (owner or root), as Python's Queue.shutdown(): from now\n"
		 "on every send fails (EPIPE); receivers take what is queued and then get\n"
		 "EPIPE, the end of the queue; --immediate: they get nothing more.  Every\n"
		 "blocked sender and receiver is woken.  Irreversible: remove the queue and\n"
		 "create it again.\n"},
	[V_SEM] = {"sem", 2, 3, verb_sem, "sem post NAME [N]",
		   "add N tokens (default 1) to a semaphore",
		   "Add N tokens (1 by default) to a semaphore, as shmq_sem_post(): for a\n"
		   "token a process leaked (it posts nothing if a bound would be passed).\n"
		   "Needs write permission on the semaphore, as any poster.  Prints the value\n"
		   "after the post.\n"},
	[V_PEEK] = {"peek", 1, 2, verb_peek, "peek NAME [N]",
		    "dump the first N queued messages (default 10), taking none",
		    "Dump the first N messages (10 by default) still queued in a queue, oldest\n"
		    "first, in hex and text (the first 256 bytes of each), read in place on a\n"
		    "read-only view: nothing is taken or changed.  Needs read permission.  A\n"
		    "message being received, a redelivered one and a tombstone say so.\n"},
	[V_USAGE] = {"usage", 0, 0, verb_quota, "usage", "each user's use of the per-user limits",
		     "Show what each user has of the daemon's per-user limits: objects owned\n"
		     "(max-objects-per-uid), bytes of segment memory owned (max-memory-per-uid)\n"
		     "and connected clients (max-clients-per-uid; '-' for root, who is not\n"
		     "limited).  Root sees every user that owns an object or has a client;\n"
		     "anyone else their own row.\n"},
	[V_METRICS] = {"metrics", 0, 0, verb_metrics, "metrics",
		       "every counter and gauge as OpenMetrics text",
		       "Print the daemon's gauges, each user's use of the per-user limits, and\n"
		       "every object's counters and gauges (the objects you may read) as\n"
		       "OpenMetrics text, for Prometheus (a textfile collector, or a wrapper\n"
		       "that serves it).  Families and labels: shmqctl(1).\n"},
	[V_DISCONNECT] =
		{"disconnect", 1, 1, verb_disconnect, "disconnect SESSION",
		 "end a stuck client's session: its process is killed",
		 "End a client's session (one of yours; root: any): shmqd sends SIGKILL\n"
		 "to exactly the process that connected (its pidfd), and repairs what it\n"
		 "held as after any death: a lock it held is free, its undo tokens are\n"
		 "back, a message it was reading goes to another receiver.  Killing is\n"
		 "the only safe end: a process that ran on would keep using records the\n"
		 "daemon hands to others.  Waits until the session is gone (5 s at most).\n"
		 "SESSION is the number `shmqctl clients` shows.\n"},
	[V_HELP] = {"help", 0, 1, NULL, "help [VERB]", "this help, or a verb's",
		    "Show the help, or a verb's help.\n"},
};

#define ALL_VERBS  ((1u << V_COUNT) - 1)
#define VERB(v)	   (1u << (v))
#define CREATE_OPT VERB(V_CREATE)
/* The verbs that print a table: -o, --raw, --export and --no-legend shape it. */
#define TABLE_VERBS \
	(VERB(V_LS) | VERB(V_SHOW) | VERB(V_CLIENTS) | VERB(V_TOP) | VERB(V_CHECK) | VERB(V_USAGE))

enum {
	OPT_SOCKET = 's',
	OPT_JSON = 'j',
	OPT_HELP = 'h',
	OPT_OUTPUT = 'o',
	OPT_VERSION = 0x100,
	OPT_NO_LEGEND,
	OPT_RAW,
	OPT_EXPORT,
	OPT_INTERVAL,
	OPT_ITERATIONS,
	OPT_SORT,
	OPT_SLOTS,
	OPT_SLOT_SIZE,
	OPT_MODE,
	OPT_NUMA,
	OPT_HUGEPAGES,
	OPT_PERM,
	OPT_INITIAL,
	OPT_MAX,
	OPT_UNDO,
	OPT_RECURSIVE,
	OPT_LOCK,
	OPT_PARTIES,
	OPT_IMMEDIATE,
	OPT_ONEWAY,
	OPT_JOINABLE,
	OPT_MAX_MSG,
};

struct option_rule {
	int id;
	unsigned int verbs;
};

static const struct option long_options[] = {
	{"socket", required_argument, NULL, OPT_SOCKET},
	{"json", no_argument, NULL, OPT_JSON},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{"no-legend", no_argument, NULL, OPT_NO_LEGEND},
	{"output", required_argument, NULL, OPT_OUTPUT},
	{"raw", no_argument, NULL, OPT_RAW},
	{"export", no_argument, NULL, OPT_EXPORT},
	{"interval", required_argument, NULL, OPT_INTERVAL},
	{"iterations", required_argument, NULL, OPT_ITERATIONS},
	{"sort", required_argument, NULL, OPT_SORT},
	{"slots", required_argument, NULL, OPT_SLOTS},
	{"slot-size", required_argument, NULL, OPT_SLOT_SIZE},
	{"mode", required_argument, NULL, OPT_MODE},
	{"numa", required_argument, NULL, OPT_NUMA},
	{"hugepages", no_argument, NULL, OPT_HUGEPAGES},
	{"perm", required_argument, NULL, OPT_PERM},
	{"initial", required_argument, NULL, OPT_INITIAL},
	{"max", required_argument, NULL, OPT_MAX},
	{"undo", no_argument, NULL, OPT_UNDO},
	{"recursive", no_argument, NULL, OPT_RECURSIVE},
	{"lock", required_argument, NULL, OPT_LOCK},
	{"parties", required_argument, NULL, OPT_PARTIES},
	{"immediate", no_argument, NULL, OPT_IMMEDIATE},
	{"oneway", no_argument, NULL, OPT_ONEWAY},
	{"joinable", no_argument, NULL, OPT_JOINABLE},
	{"max-msg", required_argument, NULL, OPT_MAX_MSG},
	{NULL, 0, NULL, 0},
};

static const struct option_rule rules[] = {
	{OPT_INTERVAL, VERB(V_TOP)},
	{OPT_ITERATIONS, VERB(V_TOP)},
	{OPT_SORT, VERB(V_TOP)},
	{OPT_SLOTS, CREATE_OPT},
	{OPT_SLOT_SIZE, CREATE_OPT},
	{OPT_MODE, CREATE_OPT},
	{OPT_NUMA, CREATE_OPT},
	{OPT_HUGEPAGES, CREATE_OPT},
	{OPT_PERM, CREATE_OPT},
	{OPT_INITIAL, CREATE_OPT},
	{OPT_MAX, CREATE_OPT},
	{OPT_UNDO, CREATE_OPT},
	{OPT_RECURSIVE, CREATE_OPT},
	{OPT_LOCK, CREATE_OPT},
	{OPT_PARTIES, CREATE_OPT},
	{OPT_ONEWAY, CREATE_OPT},
	{OPT_JOINABLE, CREATE_OPT},
	{OPT_MAX_MSG, CREATE_OPT},
	{OPT_IMMEDIATE, VERB(V_SHUTDOWN)},
	{OPT_NO_LEGEND, TABLE_VERBS},
	{OPT_OUTPUT, TABLE_VERBS},
	{OPT_RAW, TABLE_VERBS},
	{OPT_EXPORT, TABLE_VERBS},
};

int ctl_error(int r, const char *what, ...)
{
	va_list ap;

	fputs("shmqctl: ", stderr);
	va_start(ap, what);
	vfprintf(stderr, what, ap);
	va_end(ap);
	/* The daemon's reason, when it gave one (shmq_last_error()). */
	if (shmq_last_error()[0])
		fprintf(stderr, ": %s: %s\n", shmq_strerror(r), shmq_last_error());
	else
		fprintf(stderr, ": %s\n", shmq_strerror(r));
	return r;
}

int ctl_connect(const struct ctl *ctl, struct shmq_client **ret)
{
	char path[128];
	int r = shmq_client_connect(ctl->socket, ret);

	if (r >= 0)
		return 0;
	/* libshmq's reason names the socket it tried and the likely fix */
	if (shmq_last_error()[0])
		return ctl_error(r, "connecting");
	if (shmq_client_socket_path(ctl->socket, path, sizeof(path)) < 0)
		snprintf(path, sizeof(path), "%s", ctl->socket ? ctl->socket : "(default)");
	return ctl_error(r, "connecting to shmqd at %s", path);
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: shmqctl [OPTIONS] [VERB [ARGS]]\n"
		   "Look at and manage what lives in shmqd, the shmq shared-memory IPC daemon.\n"
		   "\n"
		   "Verbs:\n");
	for (int i = 0; i < V_COUNT; i++) {
		const char *syn = i == V_TOP ? "top [OPTIONS]" : verbs[i].synopsis;

		fprintf(f, "  %-32s %s\n", syn, verbs[i].summary);
	}
	fprintf(f, "\n"
		   "Options:\n"
		   "  -s, --socket PATH  the daemon's control socket (default: $SHMQ_SOCKET, else\n"
		   "                     /run/shmq/shmqd.sock for root, else the per-user one,\n"
		   "                     else /run/shmq/shmqd.sock: see shmqctl(1))\n"
		   "  -j, --json         machine-readable output (fields: shmqctl(1))\n"
		   "      --no-legend    tables without their header line\n"
		   "  -o, --output LIST  a table's columns, by header (e.g. NAME,DEPTH)\n"
		   "      --raw          tables unaligned, one blank between columns\n"
		   "      --export       tables as NAME=\"value\" pairs, a line per row\n"
		   "  -h, --help         this help; with a verb, the verb's help\n"
		   "      --version      print the version and exit\n"
		   "\n"
		   "Exit status: 0 success, 1 failure (or a corrupt object), 2 usage error.\n"
		   "See shmqctl(1).\n");
}

static void verb_usage(FILE *f, const struct verb *v)
{
	fprintf(f, "Usage: shmqctl [OPTIONS] %s\n\n%s", v->synopsis, v->help);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("shmqctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("; see shmqctl --help\n", stderr);
	return EXIT_USAGE;
}

static const struct verb *verb_find(const char *name)
{
	for (int i = 0; i < V_COUNT; i++)
		if (!strcmp(verbs[i].name, name))
			return &verbs[i];
	return NULL;
}

static int parse_u32(const char *s, int base, uint32_t max, uint32_t *ret)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || *end || v > max)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int parse_mode(const char *s, uint32_t *ret)
{
	for (uint32_t m = 0; m < 4; m++) {
		if (!strcmp(s, queue_mode_name(m))) {
			*ret = m;
			return 0;
		}
	}
	return -EINVAL;
}

/* Apply one verb-specific option to @ctl.  Return: 0, or EXIT_USAGE (reported). */
static int option_apply(struct ctl *ctl, int opt, const char *arg, const char *name)
{
	uint32_t v;
	double sec;
	char *end;

	switch (opt) {
	case OPT_NO_LEGEND:
		ctl->legend = false;
		return 0;
	case OPT_OUTPUT:
		if (!*arg)
			return usage_error("%s needs a list of columns", name);
		ctl->columns = arg;
		return 0;
	case OPT_RAW:
		ctl->raw = true;
		return 0;
	case OPT_EXPORT:
		ctl->export = true;
		return 0;
	case OPT_INTERVAL:
		errno = 0;
		sec = strtod(arg, &end);
		if (errno || *end || !(sec >= 0.01 && sec <= 3600))
			return usage_error("--interval: '%s' is not 0.01..3600 seconds", arg);
		ctl->interval_ns = (uint64_t)llround(sec * 1e9);
		return 0;
	case OPT_ITERATIONS:
		if (parse_u32(arg, 10, INT32_MAX, &v) < 0 || v == 0)
			return usage_error("--iterations: '%s' is not a positive count", arg);
		ctl->iterations = v;
		return 0;
	case OPT_SORT:
		if (strcmp(arg, "rate") && strcmp(arg, "depth") && strcmp(arg, "name"))
			return usage_error("--sort: '%s' is not rate, depth or name", arg);
		ctl->sort = arg;
		return 0;
	case OPT_SLOTS:
		if (parse_u32(arg, 10, UINT32_MAX, &ctl->qattr.n_slots) < 0)
			return usage_error("--slots: '%s' is not a number", arg);
		return 0;
	case OPT_SLOT_SIZE:
		if (parse_u32(arg, 10, UINT32_MAX, &ctl->qattr.slot_size) < 0)
			return usage_error("--slot-size: '%s' is not a number", arg);
		return 0;
	case OPT_MODE:
		if (parse_mode(arg, &ctl->qattr.mode) < 0)
			return usage_error("--mode: '%s' is not mpmc, spsc, mpsc or spmc", arg);
		return 0;
	case OPT_NUMA:
		if (parse_u32(arg, 10, INT32_MAX, &v) < 0)
			return usage_error("--numa: '%s' is not a node number", arg);
		ctl->qattr.numa_node = (int32_t)v;
		ctl->qattr.flags |= SHMQ_QUEUE_NUMA;
		return 0;
	case OPT_HUGEPAGES:
		ctl->hugepages = true;
		return 0;
	case OPT_PERM:
		if (parse_u32(arg, 8, 0777, &v) < 0)
			return usage_error("--perm: '%s' is not an octal mode up to 0777", arg);
		ctl->qattr.perm = ctl->sattr.perm = v;
		return 0;
	case OPT_INITIAL:
		if (parse_u32(arg, 10, INT32_MAX, &ctl->sattr.initial) < 0)
			return usage_error("--initial: '%s' is not 0..2147483647", arg);
		return 0;
	case OPT_MAX:
		if (parse_u32(arg, 10, INT32_MAX, &ctl->sattr.max) < 0 || ctl->sattr.max == 0)
			return usage_error("--max: '%s' is not 1..2147483647", arg);
		ctl->sattr.flags |= SHMQ_SEM_ATTR_BOUNDED;
		return 0;
	case OPT_UNDO:
		ctl->sattr.flags |= SHMQ_SEM_ATTR_UNDO;
		return 0;
	case OPT_RECURSIVE:
		ctl->recursive = true;
		return 0;
	case OPT_LOCK:
		if (!*arg)
			return usage_error("--lock: a lock's name");
		ctl->lock_name = arg;
		return 0;
	case OPT_IMMEDIATE:
		ctl->immediate = true;
		return 0;
	case OPT_ONEWAY:
		ctl->oneway = true;
		return 0;
	case OPT_MAX_MSG:
		if (parse_u32(arg, 10, SHMQ_MSG_SIZE_LIMIT, &ctl->qattr.max_msg) < 0)
			return usage_error("--max-msg: '%s' is not 0..%u bytes", arg,
					   SHMQ_MSG_SIZE_LIMIT);
		return 0;
	case OPT_JOINABLE:
		ctl->qattr.flags |= SHMQ_QUEUE_JOINABLE;
		return 0;
	case OPT_PARTIES:
		if (parse_u32(arg, 10, SHMQ_BARRIER_PARTIES_LIMIT, &ctl->parties) < 0 ||
		    !ctl->parties)
			return usage_error("--parties: '%s' is not 1..%u", arg,
					   SHMQ_BARRIER_PARTIES_LIMIT);
		return 0;
	default:
		return usage_error("unexpected option %s", name);
	}
}

struct pending {
	int opt;
	const char *arg;
	const char *name;
};

int main(int argc, char *argv[])
{
	struct pending pend[64];
	struct ctl ctl = {
		.legend = true,
		.interval_ns = 1000000000,
		.sort = "rate",
		.qattr = {.size = sizeof(struct shmq_queue_attr)},
		.sattr = {.size = sizeof(struct shmq_sem_attr)},
	};
	const struct verb *v;
	bool help = false, verb_given;
	int n_pend = 0, opt, idx;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "s:jho:", long_options, &idx)) != -1) {
		switch (opt) {
		case OPT_SOCKET:
			if (!*optarg)
				return usage_error("--socket needs a path");
			ctl.socket = optarg;
			break;
		case OPT_JSON:
			ctl.json = true;
			break;
		case OPT_HELP:
			help = true;
			break;
		case OPT_VERSION:
			printf("shmqctl %s (libshmq %s)\n", SHMQ_VERSION_STRING, shmq_version());
			return 0;
		case '?':
			if (optopt)
				return usage_error("option -%c is unknown or needs a value",
						   optopt);
			return usage_error("option '%s' is unknown or needs a value",
					   argv[optind - 1]);
		default:
			/* Verb options wait until the verb is known. */
			if (n_pend == (int)(sizeof(pend) / sizeof(pend[0])))
				return usage_error("too many options");
			pend[n_pend++] = (struct pending){opt, optarg, argv[optind - 1]};
			break;
		}
	}

	verb_given = optind < argc;
	v = verb_given ? verb_find(argv[optind]) : &verbs[V_STATUS];
	if (!v)
		return usage_error("unknown verb '%s'", argv[optind]);
	if (verb_given)
		optind++;
	ctl.args = argv + optind;
	ctl.n_args = argc - optind;

	if (v == &verbs[V_HELP]) {
		const struct verb *about = ctl.n_args ? verb_find(ctl.args[0]) : NULL;

		if (ctl.n_args > 1)
			return usage_error("help takes at most one verb");
		if (ctl.n_args && !about)
			return usage_error("unknown verb '%s'", ctl.args[0]);
		if (about)
			verb_usage(stdout, about);
		else
			usage(stdout);
		return 0;
	}
	if (help) {
		if (verb_given)
			verb_usage(stdout, v);
		else
			usage(stdout);
		return 0;
	}

	for (int i = 0; i < n_pend; i++) {
		unsigned int allowed = 0;
		int r;

		for (size_t k = 0; k < sizeof(rules) / sizeof(rules[0]); k++)
			if (rules[k].id == pend[i].opt)
				allowed = rules[k].verbs;
		if (!(allowed & VERB(v - verbs)))
			return usage_error("option '%s' does not apply to '%s'", pend[i].name,
					   v->name);
		r = option_apply(&ctl, pend[i].opt, pend[i].arg, pend[i].name);
		if (r)
			return r;
	}
	if (ctl.json && (ctl.columns || ctl.raw || ctl.export))
		return usage_error("-o, --raw and --export shape tables; --json has none");
	if (ctl.raw && ctl.export)
		return usage_error("--raw and --export exclude each other");
	table_style_set(&(struct table_style){.columns = ctl.columns,
					      .raw = ctl.raw,
					      .export = ctl.export,
					      .legend = ctl.legend});
	if (ctl.n_args < v->min_args || ctl.n_args > v->max_args) {
		fprintf(stderr, "shmqctl: '%s' takes ", v->name);
		if (v->min_args == v->max_args)
			fprintf(stderr, "%d argument%s", v->min_args, v->min_args == 1 ? "" : "s");
		else
			fprintf(stderr, "%d to %d arguments", v->min_args, v->max_args);
		fprintf(stderr, "\n");
		verb_usage(stderr, v);
		return EXIT_USAGE;
	}
	return v->fn(&ctl);
}
