/* SPDX-License-Identifier: MIT */
/*
 * The verbs of an administrator's own looks and fixes: `sem post` (a token
 * back where a process leaked one), `usage` (what each user has of the
 * daemon's per-user limits) and `peek` (a queue's messages, read in place
 * on a read-only view, taken from nobody).  Each goes through the same
 * permission checks as any client: a post needs write permission on the
 * semaphore, a peek read permission (a view), and a user sees only their
 * own usage (root everyone's); `disconnect` ends a session of one's own
 * (root: any) by its process's death, the only end that is safe.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shmq/shmq.h>

#include "shm/layout.h"
#include "shm/ring.h"
#include "tools/shmqctl/shmqctl.h"

/* A decimal number in 1..@max, nothing else.  Return: 0; -EINVAL. */
static int parse_positive(const char *s, uint64_t max, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v == 0 || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* A count of tokens or messages: 1..UINT_MAX.  Return: 0; -EINVAL. */
static int parse_count(const char *s, unsigned int *ret)
{
	uint64_t v;
	int r = parse_positive(s, UINT_MAX, &v);

	if (r == 0)
		*ret = (unsigned int)v;
	return r;
}

int verb_sem(struct ctl *ctl)
{
	const char *name = ctl->args[1];
	struct shmq_client *c;
	struct shmq_sem *s;
	unsigned int n = 1;
	struct json j;
	int r, value;

	if (strcmp(ctl->args[0], "post") != 0) {
		fprintf(stderr, "shmqctl: sem: '%s' is not a sem verb (post)\n", ctl->args[0]);
		return EXIT_USAGE;
	}
	if (ctl->n_args > 2 && parse_count(ctl->args[2], &n) < 0) {
		fprintf(stderr, "shmqctl: sem post: '%s' is not a count of tokens (1..%u)\n",
			ctl->args[2], UINT_MAX);
		return EXIT_USAGE;
	}
	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	r = shmq_sem_open(c, name, 0, NULL, &s);
	if (r < 0) {
		ctl_error(r, "opening semaphore '%s'", name);
		shmq_client_close(c);
		return EXIT_FAILURE;
	}
	r = shmq_sem_post(s, n);
	value = shmq_sem_value(s);
	shmq_sem_close(s);
	shmq_client_close(c);
	if (r == -EOVERFLOW) {
		fprintf(stderr,
			"shmqctl: posting %u to '%s': %s: its bound would be passed (value %d); "
			"nothing posted\n",
			n, name, shmq_strerror(r), value);
		return EXIT_FAILURE;
	}
	if (r < 0) {
		ctl_error(r, "posting %u to '%s'", n, name);
		return EXIT_FAILURE;
	}
	if (ctl->json) {
		json_init(&j, stdout, false);
		json_begin_object(&j);
		json_kv_string(&j, "name", name);
		json_kv_u64(&j, "posted", n);
		json_kv_i64(&j, "value", value);
		json_end_object(&j);
		json_finish(&j);
	} else {
		printf("posted %u to '%s': value now %d\n", n, name, value);
	}
	return 0;
}

/* --- usage --- */

struct usage_out {
	const struct ctl *ctl;
	struct json j;
	struct table t;
};

static void fmt_limit_u32(char *buf, size_t size, uint32_t max)
{
	if (max)
		snprintf(buf, size, "%" PRIu32, max);
	else
		snprintf(buf, size, "-");
}

static int usage_row(void *arg, const struct shmq_uid_usage *u)
{
	struct usage_out *o = arg;
	char uid[16], user[64], objs[16], maxo[16], mem[32], maxm[32], cl[16], maxc[16];

	if (o->ctl->json) {
		json_begin_object(&o->j);
		json_kv_u64(&o->j, "uid", u->uid);
		json_kv_string(&o->j, "user", user_name(u->uid, user, sizeof(user)) ? user : NULL);
		json_kv_u64(&o->j, "objects", u->n_objects);
		json_kv_u64(&o->j, "max_objects", u->max_objects);
		json_kv_u64(&o->j, "memory_bytes", u->memory);
		json_kv_u64(&o->j, "max_memory_bytes", u->max_memory);
		json_kv_u64(&o->j, "clients", u->n_clients);
		if (u->max_clients)
			json_kv_u64(&o->j, "max_clients", u->max_clients);
		else
			json_kv_null(&o->j, "max_clients"); /* not limited */
		json_end_object(&o->j);
		return 0;
	}
	snprintf(uid, sizeof(uid), "%" PRIu32, u->uid);
	fmt_user(user, sizeof(user), u->uid);
	snprintf(objs, sizeof(objs), "%" PRIu32, u->n_objects);
	fmt_limit_u32(maxo, sizeof(maxo), u->max_objects);
	fmt_bytes(mem, sizeof(mem), u->memory);
	fmt_bytes(maxm, sizeof(maxm), u->max_memory);
	snprintf(cl, sizeof(cl), "%" PRIu32, u->n_clients);
	fmt_limit_u32(maxc, sizeof(maxc), u->max_clients);
	return table_add(&o->t, uid, user, objs, maxo, mem, maxm, cl, maxc);
}

int verb_quota(struct ctl *ctl)
{
	static const char *const headers[] = {"UID",	"USER",	   "OBJECTS", "OBJ-MAX",
					      "MEMORY", "MEM-MAX", "CLIENTS", "CLI-MAX"};
	struct usage_out o = {.ctl = ctl};
	struct shmq_client *c;
	int r;

	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	if (ctl->json) {
		json_init(&o.j, stdout, false);
		json_begin_object(&o.j);
		json_key(&o.j, "usage");
		json_begin_array(&o.j);
	}
	/* every column but USER is a number */
	table_init(&o.t, 8, headers, 0xffu & ~(1u << 1));
	r = shmq_daemon_usage(c, usage_row, &o);
	shmq_client_close(c);
	if (ctl->json) {
		json_end_array(&o.j);
		json_end_object(&o.j);
		if (r >= 0)
			json_finish(&o.j);
	} else if (r >= 0) {
		table_print(&o.t, stdout, ctl->legend);
	}
	table_fini(&o.t);
	if (r < 0) {
		ctl_error(r, "listing usage");
		return EXIT_FAILURE;
	}
	return 0;
}

/* --- peek --- */

#define PEEK_DEFAULT 10	 /* messages shown without N */
#define PEEK_BYTES   256 /* bytes of each message dumped */
#define PEEK_TRIES   100 /* looks at a message that keeps moving */
#define PEEK_LINE    16	 /* bytes per dump line */

static void dump_text(char *out, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
	out[n] = '\0';
}

/* hexdump -C's lines: offset, 16 bytes in hex, the same as text. */
static void dump_hex(const unsigned char *p, size_t n)
{
	for (size_t off = 0; off < n; off += PEEK_LINE) {
		size_t k = n - off < PEEK_LINE ? n - off : PEEK_LINE;
		char text[PEEK_LINE + 1];

		printf("    %08zx ", off);
		for (size_t i = 0; i < PEEK_LINE; i++) {
			if (i == PEEK_LINE / 2)
				putchar(' ');
			if (i < k)
				printf(" %02x", p[off + i]);
			else
				printf("   ");
		}
		dump_text(text, p + off, k);
		printf("  |%s|\n", text);
	}
}

static void look_flags_json(struct json *j, uint32_t flags)
{
	json_key(j, "flags");
	json_begin_array(j);
	if (flags & SHMQ_LOOK_LARGE)
		json_string(j, "large");
	if (flags & SHMQ_LOOK_BEING_READ)
		json_string(j, "being-read");
	if (flags & SHMQ_LOOK_TOMBSTONE)
		json_string(j, "tombstone");
	if (flags & SHMQ_LOOK_REDELIVERED)
		json_string(j, "redelivered");
	json_end_array(j);
}

static void look_flags_text(char *buf, size_t size, uint32_t flags)
{
	snprintf(buf, size, "%s%s%s%s", (flags & SHMQ_LOOK_LARGE) ? ", in the arena" : "",
		 (flags & SHMQ_LOOK_BEING_READ) ? ", being received" : "",
		 (flags & SHMQ_LOOK_TOMBSTONE) ? ", tombstone (its writer died)" : "",
		 (flags & SHMQ_LOOK_REDELIVERED) ? ", redelivered" : "");
}

/* One message, as text or JSON.  Return: 0 shown; -ENOENT no such message; < 0 it failed. */
static int peek_one(const struct ctl *ctl, struct json *j, const struct shmq_ring *ring, uint32_t i)
{
	unsigned char buf[PEEK_BYTES];
	struct shmq_ring_look look;
	char text[PEEK_BYTES + 1], flags[96], hex[2 * PEEK_BYTES + 1];
	int r = -EAGAIN;

	for (int tries = 0; tries < PEEK_TRIES && r == -EAGAIN; tries++)
		r = shmq__ring_look(ring, i, buf, sizeof(buf), &look);
	if (r < 0)
		return r;
	if (ctl->json) {
		json_begin_object(j);
		json_kv_u64(j, "index", i);
		json_kv_u64(j, "position", look.pos);
		json_kv_u64(j, "length", look.len);
		look_flags_json(j, look.flags);
		for (uint32_t k = 0; k < look.copied; k++)
			snprintf(hex + 2 * k, 3, "%02x", buf[k]);
		hex[2 * look.copied] = '\0';
		dump_text(text, buf, look.copied);
		json_kv_string(j, "hex", hex); /* the first PEEK_BYTES bytes */
		json_kv_string(j, "text", text);
		json_kv_bool(j, "truncated", look.copied < look.len);
		json_end_object(j);
		return 0;
	}
	look_flags_text(flags, sizeof(flags), look.flags);
	printf("#%" PRIu32 ": %" PRIu32 " bytes (position %" PRIu32 ")%s\n", i, look.len, look.pos,
	       flags);
	dump_hex(buf, look.copied);
	if (look.copied < look.len)
		printf("    ... %" PRIu32 " more bytes\n", look.len - look.copied);
	return 0;
}

int verb_peek(struct ctl *ctl)
{
	const char *name = ctl->args[0];
	struct shmq_view *v = NULL;
	struct shmq_client *c;
	struct shmq_segment seg;
	struct shmq_ring ring;
	unsigned int n = PEEK_DEFAULT;
	const void *base;
	struct json j;
	uint32_t shown = 0;
	size_t size;
	int r;

	if (ctl->n_args > 1 && parse_count(ctl->args[1], &n) < 0) {
		fprintf(stderr, "shmqctl: peek: '%s' is not a count of messages (1..%u)\n",
			ctl->args[1], UINT_MAX);
		return EXIT_USAGE;
	}
	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	r = shmq_view_open(c, name, &v);
	if (r == 0)
		r = shmq_view_memory(v, &base, &size);
	/* PROT_READ: attach and the look only read, whatever their prototypes say */
	if (r == 0)
		r = shmq__segment_attach((void *)base, size, &seg);
	if (r < 0) {
		ctl_error(r, "viewing '%s'", name);
		goto out;
	}
	if (seg.kind != SHMQ_KIND_QUEUE) {
		fprintf(stderr, "shmqctl: peek: '%s' is a %s; peek shows a queue's messages\n",
			name, kind_name(seg.kind));
		r = -EINVAL;
		goto out;
	}
	r = shmq__ring_attach(&ring, &seg, UINT32_MAX);
	if (r < 0) {
		ctl_error(r, "'%s': its ring", name);
		goto out;
	}
	if (ctl->json) {
		json_init(&j, stdout, false);
		json_begin_object(&j);
		json_kv_string(&j, "name", name);
		json_key(&j, "messages");
		json_begin_array(&j);
	}
	for (; shown < n; shown++) {
		r = peek_one(ctl, &j, &ring, shown);
		if (r < 0)
			break;
	}
	if (ctl->json) {
		json_end_array(&j);
		json_end_object(&j);
		json_finish(&j);
	} else if (shown == 0 && r == -ENOENT) {
		printf("'%s' is empty\n", name);
	}
	if (r == -ENOENT)
		r = 0; /* the end of the queue */
	else if (r == -EAGAIN)
		fprintf(stderr, "shmqctl: peek '%s': message %" PRIu32 " kept moving; stopped\n",
			name, shown);
	else if (r < 0)
		fprintf(stderr, "shmqctl: peek '%s': message %" PRIu32 " is corrupt (%s)\n", name,
			shown, shmq_strerror(r));
out:
	shmq_view_close(v);
	shmq_client_close(c);
	return r < 0 ? EXIT_FAILURE : 0;
}

/* --- disconnect --- */

#define DISCONNECT_WAIT_MS 5000 /* for the daemon to see the death and repair it */

struct find_session {
	uint64_t id;
	struct shmq_client_info info;
	bool found;
};

static int find_session(void *arg, const struct shmq_client_info *ci)
{
	struct find_session *f = arg;

	if (ci->session_id == f->id) {
		f->info = *ci;
		f->found = true;
	}
	return 0;
}

int verb_disconnect(struct ctl *ctl)
{
	struct find_session f = {0};
	struct shmq_client *c;
	struct json j;
	int r, waited = 0;

	if (parse_positive(ctl->args[0], UINT64_MAX, &f.id) < 0) {
		fprintf(stderr,
			"shmqctl: disconnect: '%s' is not a session id (see shmqctl clients)\n",
			ctl->args[0]);
		return EXIT_USAGE;
	}
	if (ctl_connect(ctl, &c) < 0)
		return EXIT_FAILURE;
	(void)shmq_daemon_clients(c, find_session, &f); /* its pid and name, for the report */
	r = shmq_daemon_disconnect(c, f.id);
	if (r < 0) {
		ctl_error(r, "disconnecting session %" PRIu64, f.id);
		shmq_client_close(c);
		return EXIT_FAILURE;
	}
	/* Done when the daemon has seen the death and repaired the session's holds. */
	for (;;) {
		struct find_session again = {.id = f.id};

		r = shmq_daemon_clients(c, find_session, &again);
		if (r < 0 || !again.found || waited >= DISCONNECT_WAIT_MS)
			break;
		(void)poll(NULL, 0, 20);
		waited += 20;
	}
	shmq_client_close(c);
	if (r < 0) {
		ctl_error(r, "listing clients");
		return EXIT_FAILURE;
	}
	if (waited >= DISCONNECT_WAIT_MS) {
		fprintf(stderr,
			"shmqctl: session %" PRIu64 ": SIGKILL sent, but it was still there after "
			"%d ms\n",
			f.id, DISCONNECT_WAIT_MS);
		return EXIT_FAILURE;
	}
	if (ctl->json) {
		json_init(&j, stdout, false);
		json_begin_object(&j);
		json_kv_u64(&j, "session_id", f.id);
		if (f.found)
			json_kv_i64(&j, "pid", f.info.pid);
		else
			json_kv_null(&j, "pid");
		json_kv_string(&j, "name", f.found ? f.info.client_name : NULL);
		json_kv_bool(&j, "ended", true);
		json_end_object(&j);
		json_finish(&j);
	} else {
		printf("session %" PRIu64 " (pid %" PRId32 "%s%s%s) disconnected: its process was "
		       "killed and its holds repaired\n",
		       f.id, f.found ? f.info.pid : 0,
		       f.found && f.info.client_name[0] ? ", '" : "",
		       f.found ? f.info.client_name : "",
		       f.found && f.info.client_name[0] ? "'" : "");
	}
	return 0;
}
