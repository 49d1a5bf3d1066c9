/* SPDX-License-Identifier: MIT */
/*
 * The verbs that change an object's state on an administrator's word:
 * `sem post` (a token back where a process leaked one), and `usage`, what
 * each user has of the daemon's per-user limits.  Each goes through the
 * same permission checks as any client: a post needs write permission on
 * the semaphore, and a user sees only their own usage (root everyone's).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shmq/shmq.h>

#include "tools/shmqctl/shmqctl.h"

/* A count of tokens: 1..UINT_MAX, decimal.  Return: 0; -EINVAL. */
static int parse_count(const char *s, unsigned int *ret)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v == 0 || v > UINT_MAX)
		return -EINVAL;
	*ret = (unsigned int)v;
	return 0;
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
	static const char *const headers[] = {"UID",	"USER", "OBJECTS", "MAX",
					      "MEMORY", "MAX",	"CLIENTS", "MAX"};
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
