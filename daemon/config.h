/* SPDX-License-Identifier: MIT */
/*
 * shmqd configuration: one option table (config.c) drives defaults, bounds,
 * the config file, the command line, --help, --dump-config and the change
 * log on reload.  Precedence: built-in defaults, then the config file
 * (/etc/shmq/shmqd.conf or --config PATH), then command-line flags.
 */
#ifndef SHMQD_CONFIG_H
#define SHMQD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/un.h>

#define SHMQD_CONFIG_PATH_DEFAULT "/etc/shmq/shmqd.conf"
#define SHMQD_SOCKET_PATH_MAX	  sizeof(((struct sockaddr_un *)0)->sun_path)
#define SHMQD_N_OPTIONS		  18
#define SHMQD_STATE_DIR_MAX	  256 /* bytes, with the NUL */
#define SHMQD_GROUP_MAX		  64  /* a group name or gid, with the NUL */

struct shmqd_config {
	char socket[SHMQD_SOCKET_PATH_MAX]; /* "" = the default for this user */
	uint32_t socket_mode;
	char socket_group[SHMQD_GROUP_MAX]; /* "" = the daemon's own group */
	uint32_t log_level;		    /* LOG_ERR..LOG_DEBUG */
	uint32_t max_clients;
	uint32_t max_clients_per_uid; /* uid 0 exempt */
	uint32_t max_objects;
	uint32_t max_objects_per_uid;
	uint64_t max_memory_per_uid; /* bytes */
	uint32_t max_attach_per_session;
	uint32_t sessions_per_object;
	uint32_t default_slots;
	uint32_t default_slot_size;
	uint32_t max_slots;
	uint32_t max_slot_size;
	char state_directory[SHMQD_STATE_DIR_MAX];  /* "": objects live in memfds only */
	uint32_t fd_store;			    /* bool: keep memfds in systemd's fd store */
	char metrics_socket[SHMQD_SOCKET_PATH_MAX]; /* "": no metrics endpoint */
};

/* What the command line asked for; kept so that a reload can re-apply it. */
struct shmqd_args {
	const char *config_path; /* NULL: SHMQD_CONFIG_PATH_DEFAULT, which may be missing */
	bool dump_config;
	bool json;			    /* --json: --dump-config as JSON */
	const char *value[SHMQD_N_OPTIONS]; /* per option: the flag's value, or NULL */
};

/*
 * Parse argv.  Prints --help/--version itself.
 * Return: 1 run the daemon; 0 done, exit successfully; -EINVAL usage error (logged).
 */
int shmqd_config_parse_argv(struct shmqd_args *a, int argc, char *argv[]);

/*
 * Build a configuration: defaults, the file, its drop-ins (PATH.d/, every
 * *.conf in name order), then the flags in @a; then check the options
 * against each other.  Errors are logged with file:line.
 * Return: 0; -EINVAL a bad option or value; -ENOENT an explicit --config is
 * missing; other -errno reading the file.
 */
int shmqd_config_load(struct shmqd_config *ret, const struct shmqd_args *a);

/* The effective control socket path, and whether the command line set it. */
bool shmqd_config_socket_from_argv(const struct shmqd_args *a);

/*
 * Every option as a "name = value" line, in table order, into @buf (always
 * NUL-terminated).  Return: the length the whole text needs, without the
 * NUL, like snprintf().
 */
size_t shmqd_config_format(const struct shmqd_config *c, char *buf, size_t size);

/* @group, a name or a decimal gid, as a gid.  Return: 0; -ENOENT no such group; -ERANGE. */
int shmqd_config_group_id(const char *group, uint32_t *ret_gid);

/*
 * As shmqd_config_format(), each line led by its type and a tab: n a
 * decimal number (sizes in bytes), b yes or no, s a string (CONFIG_TYPED).
 */
size_t shmqd_config_format_typed(const struct shmqd_config *c, char *buf, size_t size);

/* Every option with its value, in config-file format. */
void shmqd_config_dump(const struct shmqd_config *c, FILE *f);

/*
 * Every option as one JSON object, typed: numbers and sizes (bytes) as
 * numbers, yes/no as booleans, modes ("0660"), levels, paths and groups
 * as strings.
 */
void shmqd_config_dump_json(const struct shmqd_config *c, FILE *f);

/*
 * After a reload: log each option that changed, and keep the old value of
 * options that need a restart (in @new).
 */
void shmqd_config_apply_reload(const struct shmqd_config *old, struct shmqd_config *new);

#endif /* SHMQD_CONFIG_H */
