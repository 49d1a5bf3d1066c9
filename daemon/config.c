/* SPDX-License-Identifier: MIT */
/*
 * The option table and everything generated from it.
 *
 * Every option has a type, a default and bounds here and nowhere else: the
 * parser for the file and for `--name=value` flags, `--help`,
 * `--dump-config` and the reload change log all walk this one table.  Every
 * option that lets a client consume a resource has an upper bound.
 *
 * File format: `name = value` per line; `#` starts a comment, at the start
 * of a line or after a blank (so `max-clients = 8  # for tests` is 8, and a
 * value cannot hold " #"); blank lines are ignored.  After the file, the
 * drop-ins of its directory PATH.d/ (/etc/shmq/shmqd.conf.d/), every
 * `*.conf` in it in byte order of their names, each overriding what came
 * before, as systemd's drop-ins do; a missing directory is no error.  An
 * unknown name or a value out of bounds is an error reported as file:line;
 * at startup it stops the daemon, on reload the old configuration stays.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <shmq/version.h>

#include "daemon/config.h"
#include "daemon/log.h"
#include "shm/layout.h"
#include "shm/protocol.h"

#define KIB UINT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define TIB (GIB * 1024)

#define CONFIG_LINE_MAX 4096

enum opt_type {
	OPT_U32,   /* decimal */
	OPT_SIZE,  /* uint64_t bytes; K, M, G, T suffixes (powers of 1024) */
	OPT_MODE,  /* octal permission bits */
	OPT_LEVEL, /* log level name */
	OPT_PATH,  /* absolute path or empty */
	OPT_BOOL,  /* yes/no, true/false, on/off, 1/0; uint32_t 0 or 1 */
	OPT_GROUP, /* a group that exists, by name or gid, or empty */
};

struct config_option {
	const char *name;
	enum opt_type type;
	size_t offset;
	uint64_t def;
	uint64_t min;
	uint64_t max;
	bool restart; /* a reload cannot change it: the socket is already bound */
	const char *help;
};

#define CFG_FIELD(f) offsetof(struct shmqd_config, f)

static const struct config_option options[] = {
	/* name, type, field, default, min, max, needs restart; help */
	{"socket", OPT_PATH, CFG_FIELD(socket), 0, 0, SHMQD_SOCKET_PATH_MAX - 1, true,
	 "control socket path (absolute); $SHMQ_SOCKET overrides the file, --socket overrides "
	 "both; "
	 "empty: /run/shmq/shmqd.sock as root, else $XDG_RUNTIME_DIR/shmq/shmqd.sock "
	 "(/tmp/shmq-$UID/shmqd.sock without XDG_RUNTIME_DIR)"},
	{"socket-mode", OPT_MODE, CFG_FIELD(socket_mode), 0666, 0, 0777, true,
	 "permission bits of the control socket; access to each object is checked by the daemon "
	 "against the object's own owner and mode, like SysV IPC"},
	{"socket-group", OPT_GROUP, CFG_FIELD(socket_group), 0, 0, SHMQD_GROUP_MAX - 1, true,
	 "group of the control socket the daemon binds itself, by name or gid (members may "
	 "connect when socket-mode gives the group rw); empty: the daemon's own group. `make run` "
	 "as root uses 0660 and group shmq, as shmqd.socket does"},
	{"log-level", OPT_LEVEL, CFG_FIELD(log_level), LOG_INFO, LOG_ERR, LOG_DEBUG, false,
	 "err, warning, notice, info or debug"},
	{"max-clients", OPT_U32, CFG_FIELD(max_clients), 1024, 1, 65536, false,
	 "connected clients, all users together"},
	{"max-clients-per-uid", OPT_U32, CFG_FIELD(max_clients_per_uid), 512, 1, 65536, false,
	 "connected clients of one user, so that no user can take every connection (root is "
	 "not limited)"},
	{"max-objects", OPT_U32, CFG_FIELD(max_objects), 16384, 1, 1u << 20, false,
	 "objects (queues and semaphores, unlinked ones still attached included), all users "
	 "together"},
	{"max-objects-per-uid", OPT_U32, CFG_FIELD(max_objects_per_uid), 1024, 1, 1u << 20, false,
	 "objects owned by one user"},
	{"max-memory-per-uid", OPT_SIZE, CFG_FIELD(max_memory_per_uid), GIB, 4 * KIB, TIB, false,
	 "bytes of segment memory owned by one user (K, M, G, T suffixes)"},
	{"max-attach-per-session", OPT_U32, CFG_FIELD(max_attach_per_session), 256, 1, 65536, false,
	 "open handles (attachments) of one client connection"},
	{"sessions-per-object", OPT_U32, CFG_FIELD(sessions_per_object), 64, 1, SHMQ_SESSIONS_MAX,
	 false,
	 "session records in each new segment: how many senders, receivers and semaphore users "
	 "can be attached at once"},
	{"default-slots", OPT_U32, CFG_FIELD(default_slots), 1024, 2, SHMQ_SLOTS_MAX, false,
	 "queue capacity when a create asks for 0 (a power of two)"},
	{"default-slot-size", OPT_U32, CFG_FIELD(default_slot_size), 256, 1, SHMQ_SLOT_SIZE_MAX,
	 false, "largest message in bytes when a create asks for 0"},
	{"max-slots", OPT_U32, CFG_FIELD(max_slots), 1u << 20, 2, SHMQ_SLOTS_MAX, false,
	 "largest queue capacity a client may ask for"},
	{"max-slot-size", OPT_U32, CFG_FIELD(max_slot_size), 1u << 20, 1, SHMQ_SLOT_SIZE_MAX, false,
	 "largest slot size in bytes a client may ask for"},
	{"state-directory", OPT_PATH, CFG_FIELD(state_directory), 0, 0, SHMQD_STATE_DIR_MAX - 1,
	 true,
	 "directory on a tmpfs where every object's memory and the daemon's registry live as "
	 "files, so that a restarted daemon re-adopts them (docs/reliability.md); empty: objects "
	 "live in memfds and die with the daemon unless fd-store is on"},
	{"fd-store", OPT_BOOL, CFG_FIELD(fd_store), 0, 0, 1, true,
	 "keep every object's memfd and the registry in systemd's file descriptor store "
	 "(FileDescriptorStoreMax= in the unit), so that a restarted daemon re-adopts them; "
	 "needs $NOTIFY_SOCKET; excludes state-directory"},
	{"metrics-socket", OPT_PATH, CFG_FIELD(metrics_socket), 0, 0, SHMQD_SOCKET_PATH_MAX - 1,
	 true,
	 "a Unix stream socket where shmqd answers HTTP GET /metrics with OpenMetrics text (its "
	 "clients, objects, memory, and each object's handles and counters), with the control "
	 "socket's mode, for a local scraper or proxy; empty: none"},
};

/* SHMQD_N_OPTIONS sizes struct shmqd_args; the table is its truth. */
static_assert(sizeof(options) / sizeof(options[0]) == SHMQD_N_OPTIONS, "fix SHMQD_N_OPTIONS");

#define N_OPTIONS	 SHMQD_N_OPTIONS
#define OPT_SOCKET_INDEX 0

static void *field(struct shmqd_config *c, const struct config_option *o)
{
	return (char *)c + o->offset;
}

static const void *field_const(const struct shmqd_config *c, const struct config_option *o)
{
	return (const char *)c + o->offset;
}

static const struct config_option *option_find(const char *name, size_t len)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (strlen(options[i].name) == len && !strncmp(options[i].name, name, len))
			return &options[i];
	return NULL;
}

static void set_defaults(struct shmqd_config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct config_option *o = &options[i];

		switch (o->type) {
		case OPT_U32:
		case OPT_MODE:
		case OPT_LEVEL:
		case OPT_BOOL:
			*(uint32_t *)field(c, o) = (uint32_t)o->def;
			break;
		case OPT_SIZE:
			*(uint64_t *)field(c, o) = o->def;
			break;
		case OPT_PATH:
		case OPT_GROUP:
			break; /* "" */
		}
	}
}

/* Parse an unsigned decimal number with nothing after it but an optional suffix. */
static int parse_u64(const char *s, int base, uint64_t *ret, const char **ret_end)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL; /* no sign, no space, no empty string */
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno == ERANGE)
		return -ERANGE;
	*ret = v;
	*ret_end = end;
	return 0;
}

static int parse_size(const char *s, uint64_t *ret)
{
	const char *end;
	uint64_t v, mult = 1;
	int r = parse_u64(s, 10, &v, &end);

	if (r < 0)
		return r;
	switch (*end) {
	case '\0':
		break;
	case 'K':
	case 'k':
		mult = KIB;
		break;
	case 'M':
	case 'm':
		mult = MIB;
		break;
	case 'G':
	case 'g':
		mult = GIB;
		break;
	case 'T':
	case 't':
		mult = TIB;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1])
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*ret = v * mult;
	return 0;
}

/*
 * Parse @value for @o into @c.  On failure, @why says what was wrong for
 * the caller's message (which adds where the value came from).
 */
static int option_set(struct shmqd_config *c, const struct config_option *o, const char *value,
		      char *why, size_t why_size)
{
	const char *end;
	uint64_t v = 0;
	int r = 0;

	switch (o->type) {
	case OPT_U32:
		r = parse_u64(value, 10, &v, &end);
		if (r == 0 && *end)
			r = -EINVAL;
		break;
	case OPT_SIZE:
		r = parse_size(value, &v);
		break;
	case OPT_MODE:
		r = parse_u64(value, 8, &v, &end);
		if (r == 0 && *end)
			r = -EINVAL;
		break;
	case OPT_LEVEL:
		r = shmqd_log_level_from_name(value);
		if (r < 0) {
			snprintf(why, why_size,
				 "'%s' is not a log level (err, warning, notice, info, debug)",
				 value);
			return -EINVAL;
		}
		v = (uint64_t)r;
		r = 0;
		break;
	case OPT_BOOL:
		if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "on") ||
		    !strcmp(value, "1")) {
			v = 1;
		} else if (!strcmp(value, "no") || !strcmp(value, "false") ||
			   !strcmp(value, "off") || !strcmp(value, "0")) {
			v = 0;
		} else {
			snprintf(why, why_size, "'%s' is not yes or no", value);
			return -EINVAL;
		}
		break;
	case OPT_PATH:
		if (*value && *value != '/') {
			snprintf(why, why_size, "'%s' is not an absolute path", value);
			return -EINVAL;
		}
		if (strlen(value) > o->max) {
			snprintf(why, why_size, "path longer than %" PRIu64 " bytes", o->max);
			return -EINVAL;
		}
		strcpy(field(c, o), value); /* length checked against the field above */
		return 0;
	case OPT_GROUP:
		if (strlen(value) > o->max) {
			snprintf(why, why_size, "group longer than %" PRIu64 " bytes", o->max);
			return -EINVAL;
		}
		r = *value ? shmqd_config_group_id(value, NULL) : 0;
		if (r < 0) {
			snprintf(why, why_size, "'%s' is not a group on this system", value);
			return r;
		}
		strcpy(field(c, o), value);
		return 0;
	}
	if (r < 0) {
		snprintf(why, why_size, "'%s' is not a valid %s", value,
			 o->type == OPT_MODE   ? "octal mode"
			 : o->type == OPT_SIZE ? "size (bytes, or a number with K, M, G or T)"
					       : "number");
		return -EINVAL;
	}
	if (v < o->min || v > o->max) {
		snprintf(why, why_size, "%s is out of range [%" PRIu64 ", %" PRIu64 "]", value,
			 o->min, o->max);
		return -ERANGE;
	}
	if (o->type == OPT_SIZE)
		*(uint64_t *)field(c, o) = v;
	else
		*(uint32_t *)field(c, o) = (uint32_t)v;
	return 0;
}

int shmqd_config_group_id(const char *group, uint32_t *ret_gid)
{
	struct group gr, *found = NULL;
	char buf[4096];
	uint64_t v;
	const char *end;

	if (parse_u64(group, 10, &v, &end) == 0 && !*end) {
		if (v >= UINT32_MAX)
			return -ERANGE; /* (gid_t)-1 means "no change" to chown() */
		if (ret_gid)
			*ret_gid = (uint32_t)v;
		return 0;
	}
	if (getgrnam_r(group, &gr, buf, sizeof(buf), &found) != 0 || !found)
		return -ENOENT;
	if (ret_gid)
		*ret_gid = (uint32_t)gr.gr_gid;
	return 0;
}

static void format_value(const struct shmqd_config *c, const struct config_option *o, char *buf,
			 size_t size)
{
	const uint32_t *u = field_const(c, o);

	switch (o->type) {
	case OPT_U32:
		snprintf(buf, size, "%" PRIu32, *u);
		break;
	case OPT_MODE:
		snprintf(buf, size, "%04" PRIo32, *u);
		break;
	case OPT_LEVEL:
		snprintf(buf, size, "%s", shmqd_log_level_name((int)*u));
		break;
	case OPT_BOOL:
		snprintf(buf, size, "%s", *u ? "yes" : "no");
		break;
	case OPT_PATH:
	case OPT_GROUP:
		snprintf(buf, size, "%s", (const char *)field_const(c, o));
		break;
	case OPT_SIZE: {
		uint64_t v = *(const uint64_t *)field_const(c, o);
		static const char suffix[] = "TGMK";
		static const uint64_t mult[] = {TIB, GIB, MIB, KIB};

		/* Print the largest exact unit, so the dump reads as it was written. */
		for (int i = 0; i < 4; i++) {
			if (v && v % mult[i] == 0) {
				snprintf(buf, size, "%" PRIu64 "%c", v / mult[i], suffix[i]);
				return;
			}
		}
		snprintf(buf, size, "%" PRIu64, v);
		break;
	}
	}
}

/* Print @text word-wrapped to 79 columns, each line starting with @prefix. */
static void print_wrapped(FILE *f, const char *prefix, const char *text)
{
	const size_t width = 79 - strlen(prefix);

	while (*text) {
		size_t n = strlen(text);

		if (n > width) {
			n = width;
			while (n > 0 && text[n] != ' ')
				n--;
			if (n == 0)
				n = strcspn(text, " ");
		}
		fprintf(f, "%s%.*s\n", prefix, (int)n, text);
		text += n;
		while (*text == ' ')
			text++;
	}
}

static void print_help(const char *argv0)
{
	printf("Usage: %s [OPTION]...\n"
	       "shmq shared-memory IPC daemon: creates and guards named queues, semaphores,\n"
	       "events, locks, conditions and barriers.\n"
	       "\n"
	       "  --config=PATH        configuration file (default %s;\n"
	       "                       a missing default file is fine, a missing explicit one is "
	       "not)\n"
	       "  --dump-config        print every option with its value in file format, and exit\n"
	       "  --json               with --dump-config: as one JSON object, typed\n"
	       "  --help               print this help and exit\n"
	       "  --version            print the version and exit\n"
	       "\n"
	       "Options (in the file as `name = value`; a flag overrides the file):\n",
	       argv0, SHMQD_CONFIG_PATH_DEFAULT);
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct config_option *o = &options[i];
		struct shmqd_config d;
		char def[64];

		set_defaults(&d);
		format_value(&d, o, def, sizeof(def));
		printf("  --%s=%s\n", o->name,
		       o->type == OPT_PATH    ? "PATH"
		       : o->type == OPT_GROUP ? "GROUP"
		       : o->type == OPT_SIZE  ? "BYTES"
		       : o->type == OPT_MODE  ? "MODE"
		       : o->type == OPT_LEVEL ? "LEVEL"
		       : o->type == OPT_BOOL  ? "yes|no"
					      : "N");
		print_wrapped(stdout, "      ", o->help);
		if (o->type == OPT_U32 || o->type == OPT_SIZE)
			printf("      Default %s; %" PRIu64 "..%" PRIu64 ".%s\n", def, o->min,
			       o->max, o->restart ? " Needs a restart to change." : "");
		else if (o->type == OPT_PATH || o->type == OPT_GROUP)
			printf("      Default: empty.%s\n",
			       o->restart ? " Needs a restart to change." : "");
		else
			printf("      Default %s.%s\n", def,
			       o->restart ? " Needs a restart to change." : "");
	}
	printf("\nSIGHUP reloads the configuration file; SIGTERM and SIGINT stop the daemon.\n");
}

int shmqd_config_parse_argv(struct shmqd_args *a, int argc, char *argv[])
{
	memset(a, 0, sizeof(*a));

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *name, *eq, *value;
		const struct config_option *o;
		struct shmqd_config scratch;
		char why[160];
		bool is_config;
		size_t len;

		if (strncmp(arg, "--", 2) || !arg[2]) {
			log_error("unexpected argument '%s'; see --help", arg);
			return -EINVAL;
		}
		name = arg + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);

		if (!eq && !strcmp(name, "help")) {
			print_help(argv[0]);
			return 0;
		}
		if (!eq && !strcmp(name, "version")) {
			printf("shmqd %s (control protocol %d, shared-memory layout %d.%d)\n",
			       SHMQ_VERSION_STRING, SHMQ_PROTO_VERSION, SHMQ_LAYOUT_MAJOR,
			       SHMQ_LAYOUT_MINOR);
			return 0;
		}
		if (!eq && !strcmp(name, "dump-config")) {
			a->dump_config = true;
			continue;
		}
		if (!eq && !strcmp(name, "json")) {
			a->json = true;
			continue;
		}

		is_config = len == 6 && !strncmp(name, "config", 6);
		o = is_config ? NULL : option_find(name, len);
		if (!is_config && !o) {
			log_error("unknown option '--%.*s'; see --help", (int)len, name);
			return -EINVAL;
		}
		/* Every other flag takes a value: --name=value or --name value. */
		if (eq) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			log_error("option '%s' needs a value; see --help", arg);
			return -EINVAL;
		}

		if (!o) {
			if (!*value) {
				log_error("--config needs a path");
				return -EINVAL;
			}
			a->config_path = value;
			continue;
		}
		/* Check now, so a typo is reported before the daemon touches anything. */
		set_defaults(&scratch);
		if (option_set(&scratch, o, value, why, sizeof(why)) < 0) {
			log_error("--%s: %s", o->name, why);
			return -EINVAL;
		}
		a->value[o - options] = value;
	}
	return 1;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int load_file(struct shmqd_config *c, const char *path, bool must_exist)
{
	char line[CONFIG_LINE_MAX + 2];
	unsigned int lineno = 0;
	int r = 0;
	FILE *f;

	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		if (r == -ENOENT && !must_exist) {
			log_debug("no configuration file %s; using the built-in defaults", path);
			return 0;
		}
		return log_errno(r, "opening configuration file %s", path);
	}

	while (fgets(line, sizeof(line), f)) {
		char *s, *eq, *name, *value, why[160];
		const struct config_option *o;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			log_error("%s:%u: line longer than %d bytes", path, lineno,
				  CONFIG_LINE_MAX);
			r = -EINVAL;
			break;
		}
		s = trim(line);
		if (!*s || *s == '#')
			continue;
		for (char *h = s + 1; *h; h++) {
			if (*h == '#' && (h[-1] == ' ' || h[-1] == '\t')) {
				*h = '\0'; /* a trailing comment */
				s = trim(s);
				break;
			}
		}
		eq = strchr(s, '=');
		if (!eq) {
			log_error("%s:%u: expected 'name = value', got '%s'", path, lineno, s);
			r = -EINVAL;
			break;
		}
		*eq = '\0';
		name = trim(s);
		value = trim(eq + 1);
		o = option_find(name, strlen(name));
		if (!o) {
			log_error("%s:%u: unknown option '%s'", path, lineno, name);
			r = -EINVAL;
			break;
		}
		if (option_set(c, o, value, why, sizeof(why)) < 0) {
			log_error("%s:%u: %s: %s", path, lineno, name, why);
			r = -EINVAL;
			break;
		}
	}
	if (r == 0 && ferror(f))
		r = log_errno(-EIO, "reading configuration file %s", path);
	fclose(f);
	return r;
}

static int conf_name(const struct dirent *e)
{
	size_t n = strlen(e->d_name);

	return e->d_name[0] != '.' && n > 5 && !strcmp(e->d_name + n - 5, ".conf");
}

/* The drop-ins of @path: @path.d/ *.conf, in byte order (alphasort in the C locale). */
static int load_drop_ins(struct shmqd_config *c, const char *path)
{
	char dir[PATH_MAX], file[PATH_MAX];
	struct dirent **names;
	int n, r = 0;

	if ((size_t)snprintf(dir, sizeof(dir), "%s.d", path) >= sizeof(dir))
		return log_errno(-ENAMETOOLONG, "drop-in directory of %s", path);
	n = scandir(dir, &names, conf_name, alphasort);
	if (n < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return log_errno(-errno, "reading drop-in directory %s", dir);
	}
	for (int i = 0; i < n; i++) {
		if (r == 0 && (size_t)snprintf(file, sizeof(file), "%s/%s", dir,
					       names[i]->d_name) >= sizeof(file))
			r = log_errno(-ENAMETOOLONG, "drop-in %s in %s", names[i]->d_name, dir);
		if (r == 0) {
			log_debug("configuration drop-in %s", file);
			r = load_file(c, file, true);
		}
		free(names[i]);
	}
	free(names);
	return r;
}

/* Rules that tie options together; each message names both sides. */
static int validate(const struct shmqd_config *c)
{
	if (c->default_slots & (c->default_slots - 1)) {
		log_error("default-slots = %" PRIu32 " is not a power of two", c->default_slots);
		return -EINVAL;
	}
	if (c->default_slots > c->max_slots) {
		log_error("default-slots = %" PRIu32 " exceeds max-slots = %" PRIu32,
			  c->default_slots, c->max_slots);
		return -EINVAL;
	}
	if (c->fd_store && c->state_directory[0]) {
		log_error(
			"fd-store = yes and state-directory = %s exclude each other: objects live "
			"in one place",
			c->state_directory);
		return -EINVAL;
	}
	if (c->default_slot_size > c->max_slot_size) {
		log_error("default-slot-size = %" PRIu32 " exceeds max-slot-size = %" PRIu32,
			  c->default_slot_size, c->max_slot_size);
		return -EINVAL;
	}
	return 0;
}

int shmqd_config_load(struct shmqd_config *ret, const struct shmqd_args *a)
{
	struct shmqd_config c;
	int r;

	set_defaults(&c);
	r = load_file(&c, a->config_path ? a->config_path : SHMQD_CONFIG_PATH_DEFAULT,
		      a->config_path != NULL);
	if (r == 0)
		r = load_drop_ins(&c, a->config_path ? a->config_path : SHMQD_CONFIG_PATH_DEFAULT);
	if (r < 0)
		return r;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		char why[160];

		/* Checked by shmqd_config_parse_argv(): cannot fail here. */
		if (a->value[i] && option_set(&c, &options[i], a->value[i], why, sizeof(why)) < 0) {
			log_error("--%s: %s", options[i].name, why);
			return -EINVAL;
		}
	}
	r = validate(&c);
	if (r < 0)
		return r;
	*ret = c;
	return 0;
}

bool shmqd_config_socket_from_argv(const struct shmqd_args *a)
{
	return a->value[OPT_SOCKET_INDEX] != NULL;
}

size_t shmqd_config_format(const struct shmqd_config *c, char *buf, size_t size)
{
	size_t len = 0;

	if (size)
		buf[0] = '\0';
	for (size_t i = 0; i < N_OPTIONS; i++) {
		char v[SHMQD_STATE_DIR_MAX + 32];
		int n;

		format_value(c, &options[i], v, sizeof(v));
		n = snprintf(len < size ? buf + len : NULL, len < size ? size - len : 0,
			     "%s = %s\n", options[i].name, v);
		if (n > 0)
			len += (size_t)n;
	}
	return len;
}

size_t shmqd_config_format_typed(const struct shmqd_config *c, char *buf, size_t size)
{
	size_t len = 0;

	if (size)
		buf[0] = '\0';
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct config_option *o = &options[i];
		char v[SHMQD_STATE_DIR_MAX + 32];
		char type = 's';
		int n;

		switch (o->type) {
		case OPT_U32:
			type = 'n';
			format_value(c, o, v, sizeof(v));
			break;
		case OPT_SIZE: /* bytes, not "1G": a number to compute with */
			type = 'n';
			snprintf(v, sizeof(v), "%" PRIu64, *(const uint64_t *)field_const(c, o));
			break;
		case OPT_BOOL:
			type = 'b';
			format_value(c, o, v, sizeof(v));
			break;
		default:
			format_value(c, o, v, sizeof(v));
			break;
		}
		n = snprintf(len < size ? buf + len : NULL, len < size ? size - len : 0,
			     "%c\t%s = %s\n", type, o->name, v);
		if (n > 0)
			len += (size_t)n;
	}
	return len;
}

void shmqd_config_dump(const struct shmqd_config *c, FILE *f)
{
	fprintf(f, "# shmqd %s configuration\n", SHMQ_VERSION_STRING);
	for (size_t i = 0; i < N_OPTIONS; i++) {
		char v[SHMQD_STATE_DIR_MAX + 32];

		format_value(c, &options[i], v, sizeof(v));
		fputc('\n', f);
		print_wrapped(f, "# ", options[i].help);
		fprintf(f, "%s =%s%s\n", options[i].name, *v ? " " : "", v);
	}
}

/* @s as a JSON string: the config's values are ASCII, but nothing is assumed. */
static void json_string_out(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f); /* UTF-8 passes as it is */
	}
	fputc('"', f);
}

void shmqd_config_dump_json(const struct shmqd_config *c, FILE *f)
{
	fprintf(f, "{\n");
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct config_option *o = &options[i];
		const void *v = field_const(c, o);
		char text[SHMQD_STATE_DIR_MAX + 32];

		fprintf(f, "  \"%s\": ", o->name);
		switch (o->type) {
		case OPT_U32:
			fprintf(f, "%" PRIu32, *(const uint32_t *)v);
			break;
		case OPT_SIZE: /* bytes, a number: no unit suffix to parse */
			fprintf(f, "%" PRIu64, *(const uint64_t *)v);
			break;
		case OPT_BOOL:
			fprintf(f, "%s", *(const uint32_t *)v ? "true" : "false");
			break;
		case OPT_MODE: /* octal is how a mode is read: "0660", as in the file */
		case OPT_LEVEL:
		case OPT_PATH:
		case OPT_GROUP:
			format_value(c, o, text, sizeof(text));
			json_string_out(f, text);
			break;
		}
		fprintf(f, "%s\n", i + 1 < N_OPTIONS ? "," : "");
	}
	fprintf(f, "}\n");
}

void shmqd_config_apply_reload(const struct shmqd_config *old, struct shmqd_config *new)
{
	unsigned int changed = 0;

	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct config_option *o = &options[i];
		char was[SHMQD_STATE_DIR_MAX + 32], now[SHMQD_STATE_DIR_MAX + 32];

		format_value(old, o, was, sizeof(was));
		format_value(new, o, now, sizeof(now));
		if (!strcmp(was, now))
			continue;
		if (o->restart) {
			log_notice("config: %s: '%s' -> '%s' needs a restart; keeping '%s'",
				   o->name, was, now, was);
			memcpy(field(new, o), field_const(old, o),
			       o->type == OPT_PATH || o->type == OPT_GROUP
				       ? (size_t)o->max + 1 /* the field's size */
			       : o->type == OPT_SIZE ? sizeof(uint64_t)
						     : sizeof(uint32_t));
			continue;
		}
		log_notice("config: %s: %s -> %s", o->name, was, now);
		changed++;
	}
	if (!changed)
		log_info("config: reloaded, nothing changed");
}
