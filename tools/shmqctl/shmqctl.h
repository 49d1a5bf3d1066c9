/* SPDX-License-Identifier: MIT */
/*
 * shmqctl internals: the verb table's contract, the JSON and table writers,
 * and read-only snapshots of objects.
 *
 * DESIGN
 *
 * shmqctl is a verb table (main.c), as systemctl is.  Names, owners and
 * permissions come from the daemon through libshmq's administration calls;
 * live figures (depth, counters, attached processes, validators) come from
 * read-only mappings of the objects (snapshot.c), summed the way
 * shmq_queue_stats() sums them.  A mapping is PROT_READ over a read-only
 * descriptor, so shmqctl cannot corrupt a live object even by mistake, and
 * everything read from it is range-checked as any other peer's writes are.
 *
 * Output is a human table by default, printed with libsmartcols (lsipc's
 * own: -o columns, --raw, --export), and JSON with --json (output.c).  JSON
 * field names are part of the interface (shmqctl(1) lists them): add
 * fields, never rename or retype one.
 *
 * Exit status: 0 success, 1 failure (the daemon refused, an object is
 * corrupt), 2 usage error.
 */
#ifndef SHMQ_TOOLS_SHMQCTL_H
#define SHMQ_TOOLS_SHMQCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <shmq/shmq.h>

#include "shm/layout.h" /* struct shmq_counter_totals: counters summed as libshmq sums them */

#define EXIT_USAGE 2

/* --- Command line, filled by main.c, read by the verbs --- */

struct ctl {
	const char *socket;	      /* --socket, or NULL */
	bool json;		      /* --json */
	bool legend;		      /* table headers (--no-legend clears it) */
	const char *columns;	      /* -o/--output */
	bool raw;		      /* --raw */
	bool export;		      /* --export */
	uint64_t interval_ns;	      /* top --interval */
	long iterations;	      /* top --iterations; 0: until interrupted */
	const char *sort;	      /* top --sort: rate, depth or name */
	struct shmq_queue_attr qattr; /* create queue */
	struct shmq_sem_attr sattr;   /* create sem */
	bool hugepages;		      /* create queue --hugepages */
	bool recursive;		      /* create rlock (--recursive is the same) */
	bool oneway;		      /* create pipe --oneway */
	const char *lock_name;	      /* create cond --lock NAME */
	uint32_t parties;	      /* create barrier --parties N */
	bool immediate;		      /* shutdown --immediate */
	char *const *args;	      /* the verb's positional arguments */
	int n_args;
};

/* Connect as --socket or the library default says (see main.c); prints the error. */
int ctl_connect(const struct ctl *ctl, struct shmq_client **ret);

/* Print "shmqctl: @what: <strerror>" to stderr; returns @r. */
int ctl_error(int r, const char *what, ...) __attribute__((format(printf, 2, 3)));

/* Verbs (verbs.c); each returns an exit status. */
int verb_status(struct ctl *ctl);
int verb_config(struct ctl *ctl);
int verb_ls(struct ctl *ctl);
int verb_show(struct ctl *ctl);
int verb_clients(struct ctl *ctl);
int verb_top(struct ctl *ctl);
int verb_check(struct ctl *ctl);
int verb_create(struct ctl *ctl);
int verb_rm(struct ctl *ctl);
int verb_purge(struct ctl *ctl);
int verb_shutdown(struct ctl *ctl);

/* The objects of shmq_object_list() (or the one of shmq_object_stat()), kept. */
struct objects {
	struct shmq_object_info *v;
	size_t n;
	size_t cap;
};

/* Every object one may read, or just @name, into @ret (free ret->v); prints the error. */
int objects_get(struct shmq_client *c, const char *name, struct objects *ret);

/* Verbs (manage.c). */
int verb_sem(struct ctl *ctl);
int verb_peek(struct ctl *ctl);
int verb_disconnect(struct ctl *ctl);
int verb_metrics(struct ctl *ctl); /* metrics.c */
int verb_quota(struct ctl *ctl);

/* --- JSON writer (output.c) --- */

#define JSON_DEPTH_MAX 16

struct json {
	FILE *f;
	bool compact; /* one line (top) instead of indented */
	int depth;
	bool first[JSON_DEPTH_MAX]; /* nothing written yet at this level */
	bool after_key;
};

void json_init(struct json *j, FILE *f, bool compact);
void json_finish(struct json *j); /* newline after the top-level value */
void json_begin_object(struct json *j);
void json_end_object(struct json *j);
void json_begin_array(struct json *j);
void json_end_array(struct json *j);
void json_key(struct json *j, const char *key);
void json_string(struct json *j, const char *s); /* NULL: null */
void json_u64(struct json *j, uint64_t v);
void json_i64(struct json *j, int64_t v);
void json_double(struct json *j, double v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);

/* key + value in one call */
void json_kv_string(struct json *j, const char *key, const char *s);
void json_kv_u64(struct json *j, const char *key, uint64_t v);
void json_kv_i64(struct json *j, const char *key, int64_t v);
void json_kv_double(struct json *j, const char *key, double v);
void json_kv_bool(struct json *j, const char *key, bool v);
void json_kv_null(struct json *j, const char *key);

/* --- Tables (output.c) --- */

#define TABLE_CELL_MAX 80

struct table {
	unsigned int n_cols;
	const char *const *headers;
	unsigned int right; /* bit i: right-align column i (numbers) */
	size_t n_rows;
	size_t cap;
	char (*cells)[TABLE_CELL_MAX]; /* n_rows * n_cols */
	size_t max_cols;	       /* 0: lines as long as they are; else cut there */
};

void table_init(struct table *t, unsigned int n_cols, const char *const *headers,
		unsigned int right);
/* Add a row; @... are n_cols strings (copied, cut at TABLE_CELL_MAX - 1 bytes). */
int table_add(struct table *t, ...);
/* @legend false: no header line (nor with --no-legend); the style below applies too. */
void table_print(const struct table *t, FILE *f, bool legend);

/* How every table prints: -o/--output, --raw, --export, --no-legend. */
struct table_style {
	const char *columns; /* comma-separated headers, any case; NULL: all */
	bool raw;	     /* columns separated by one blank, nothing aligned */
	bool export;	     /* NAME="value" pairs, one line per row */
	bool legend;	     /* the header line */
};

void table_style_set(const struct table_style *s);
void table_fini(struct table *t);

/* --- Formatting (output.c) --- */

void fmt_bytes(char *buf, size_t size, uint64_t bytes); /* "12.0 KiB" */
void fmt_count(char *buf, size_t size, double v);	/* "987", "12.3K", "4.5M" (SI) */
void fmt_duration(char *buf, size_t size, uint64_t ns); /* "3d 2h 5m 7s" */
void fmt_user(char *buf, size_t size, uint32_t uid);	/* name, else the number */
void fmt_group(char *buf, size_t size, uint32_t gid);	/* name, else the number */
bool user_name(uint32_t uid, char *buf, size_t size);	/* false: no such user */
bool group_name(uint32_t gid, char *buf, size_t size);	/* false: no such group */
const char *queue_mode_name(uint32_t mode);		/* "mpmc", ..., "?" */
const char *kind_name(uint32_t kind);			/* "queue", "semaphore" */
void fmt_role(char *buf, size_t size, uint32_t role);	/* "send+recv", "view", ... */
uint64_t mono_now_ns(void);

/* --- Read-only snapshots (snapshot.c) --- */

/* One session record of the segment, as read. */
struct record_snap {
	uint32_t state; /* SHMQ_SESSION_*, or UINT32_MAX: out of range (corrupt) */
	uint32_t role;	/* SHMQ_ROLE_* bits */
	int32_t pid;
	uint32_t uid;
	uint32_t sem_holds;
	struct shmq_counter_totals c;
};

#define SNAP_RECORDS (1u << 0) /* copy every session record */
#define SNAP_CHECK   (1u << 1) /* run the validators */

struct snapshot {
	int view_error; /* 0, or the -errno of opening or attaching the view */
	uint32_t kind;	/* SHMQ_OBJECT_*, from the segment */
	/* queues */
	uint32_t capacity;
	uint32_t slot_size;
	uint32_t depth;
	uint32_t high_water;
	uint32_t repairs;
	uint64_t tombstones;
	bool sleepers_recv;
	bool sleepers_send;
	/* semaphores */
	uint32_t value;
	uint32_t waiters;
	/* locks (value: 1 held) */
	int32_t holder_pid; /* the holder's process, 0 if free or unknown */
	int32_t holder_tid;
	uint32_t holder_depth;
	bool owner_died; /* a holder died; not yet declared consistent */
	/* conditions (waiters: not yet notified; repairs: waiters that died) */
	uint32_t pending; /* notifications not yet taken */
	/* queues: 0 open, SHMQ_QUEUE_SHUTDOWN_* */
	uint32_t shutdown;
	uint32_t max_msg;    /* a queue with an arena: its largest message, */
	uint32_t arena_size; /* the arena's bytes */
	uint64_t arena_used; /* and those in use */
	bool joinable;	     /* a joinable queue: */
	uint32_t unfinished; /* tasks sent and not yet done */
	/* pipes (depth: both directions; sleepers: either) */
	uint32_t pipe_depth[2]; /* messages on their way to end 0, to end 1 */
	bool end_closed[2];
	/* barriers (waiters: arrived this cycle; repairs: breaks by a death) */
	bool broken;
	uint32_t generation;
	/* both */
	uint32_t producers; /* active records with the producer role (sems: every user) */
	uint32_t consumers; /* active records with the consumer role (sems: every user) */
	uint32_t dead;	    /* records of dead processes awaiting repair */
	/* who last sent and received (took, posted), as shmqd saw it; pid 0: nobody yet */
	int32_t last_send_pid;
	int32_t last_recv_pid;
	uint64_t last_send_realtime_ns;
	uint64_t last_recv_realtime_ns;
	struct shmq_counter_totals total;
	uint64_t taken_ns; /* CLOCK_MONOTONIC when the counters were read */
	/* SNAP_RECORDS */
	uint32_t n_records;
	struct record_snap *records;
	/* SNAP_CHECK */
	int check;		/* 0 consistent, -EBADMSG corrupt */
	const char *check_what; /* which validator failed */
};

/*
 * Map @name read-only through the daemon and read its live state.  A view
 * that cannot be had (-EACCES, -EBADMSG...) is not an error of this call:
 * it is reported in @ret->view_error, with every live figure zero.
 * @object_id: the object the caller listed, or 0 for whatever the name is
 * now; a name that leads to another object (the listed one was unlinked
 * and the name reused) is view_error -ESTALE.
 * Return: 0; -ENOMEM.
 */
int snapshot_take(struct shmq_client *c, const char *name, uint64_t object_id, unsigned int flags,
		  struct snapshot *ret);
void snapshot_fini(struct snapshot *s);

#endif /* SHMQ_TOOLS_SHMQCTL_H */
