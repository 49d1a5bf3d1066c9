/* SPDX-License-Identifier: MIT */
/*
 * Integration-test harness (t_ prefix): a private shmqd per test, and the
 * small process tools the tests share.
 *
 * Each daemon runs as a child of the test on a fresh mkdtemp() directory
 * holding its socket, its stderr log and, when asked, a config file.  The
 * child gets PR_SET_PDEATHSIG(SIGKILL), so a test killed by its .timeout
 * never leaves a daemon behind.  Every wait is bounded.  A test that passes
 * ends with t_daemon_fini(), which stops the daemon with SIGTERM and asserts
 * a clean exit; a daemon still registered when the test process ends (a
 * failed assertion) has its stderr printed, then is killed: suites set
 * `.fini = t_daemon_cleanup_all`, and an atexit() hook covers the TSan
 * stand-in runner, which exits at a failed assertion.  Criterion returns
 * from a failed assertion in a .init, so where nothing can go on (no
 * daemon, no connection) the harness cleans up and exits the test itself.
 *
 * The binaries come from the environment, as `make test` sets it:
 *   SHMQD          path of shmqd
 *   SHMQ_EXAMPLES  directory of the example programs
 */
#ifndef SHMQ_TESTS_INTEGRATION_DAEMON_H
#define SHMQ_TESTS_INTEGRATION_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define T_DAEMON_ARGS_MAX 16
#define T_DAEMON_START_MS 10000 /* socket must answer within this (sanitizer builds are slow) */
#define T_DAEMON_STOP_MS  10000 /* SIGTERM grace before SIGKILL */
#define T_UNPRIVILEGED_ID 65534 /* nobody / nogroup */

struct t_daemon {
	pid_t pid;	 /* 0: not running */
	int last_status; /* of the last exit: 0..255, or 128 + signal */
	char dir[64];	 /* mkdtemp() */
	char sock[108];	 /* dir/shmqd.sock */
	char log[96];	 /* dir/shmqd.stderr */
	char conf[96];	 /* dir/shmqd.conf, when a config was given */
	const char *args[T_DAEMON_ARGS_MAX + 1];
	int n_args;
	bool registered;
};

/* Path of shmqd from $SHMQD; fails the test when unset. */
const char *t_shmqd_path(void);

/* $SHMQ_EXAMPLES/@name; fails the test when unset.  Returns a static buffer. */
const char *t_example_path(const char *name);

/*
 * A copy of the program at @path that every uid can execute, for tests
 * that run a project binary as another user: the checkout may sit under a
 * 0700 directory (a home directory, mktemp -d) that the other uid cannot
 * traverse.  The copies live in one private 0755 directory under /tmp, made
 * by the first call in a process and removed when that process exits.  The
 * file LSAN_OPTIONS names as suppressions= is copied there too, and the
 * variable is pointed at the copy: a sanitized program that cannot read its
 * suppressions file dies.  Call it before fork(), so the copy is made once.
 * Fails the test on error; returns a buffer that lives as long as the process.
 */
const char *t_stage_for_others(const char *path);

/*
 * Start shmqd on a fresh directory.  @args: extra command-line arguments
 * ("--max-clients=2"), NULL-terminated, or NULL; they must outlive @d.
 * @conf_text: written to d->conf and passed with --config, or NULL.
 * Returns once the socket answers a HELLO; fails the test (printing the
 * daemon's stderr) when it exits or does not answer in time.
 */
void t_daemon_start(struct t_daemon *d, const char *const *args, const char *conf_text);

/* (Re)start a stopped daemon with the same directory, socket and arguments. */
void t_daemon_restart(struct t_daemon *d);

/* Exec shmqd on d->sock without waiting for it (tests of startup errors). */
void t_daemon_spawn(struct t_daemon *d);

/* Wait (bounded) until the socket answers a HELLO; false if it did not or the daemon exited. */
bool t_daemon_wait_ready(struct t_daemon *d, int timeout_ms);

/* SIGTERM, wait up to T_DAEMON_STOP_MS, then SIGKILL.  Returns the exit status (see last_status). */
int t_daemon_stop(struct t_daemon *d);

/* SIGKILL and reap. */
void t_daemon_kill(struct t_daemon *d);

/* Send @sig to the running daemon. */
void t_daemon_signal(struct t_daemon *d, int sig);

/* Wait (bounded) for a daemon that exits by itself.  Returns the status, or -ETIMEDOUT. */
int t_daemon_wait_exit(struct t_daemon *d, int timeout_ms);

/* Replace the config file (for SIGHUP reload). */
void t_daemon_write_conf(struct t_daemon *d, const char *conf_text);

/* Print the daemon's stderr log to stderr. */
void t_daemon_dump_log(const struct t_daemon *d);

/* Read the daemon's stderr log into @buf (NUL-terminated, truncated). */
void t_daemon_read_log(const struct t_daemon *d, char *buf, size_t size);

/* Success path: stop, assert exit status 0, remove the directory. */
void t_daemon_fini(struct t_daemon *d);

/* Failure path: print the log of every registered daemon, kill it, remove its directory. */
void t_daemon_cleanup_all(void);

/* --- Processes --- */

/* A program started by t_spawn(), its stdout and stderr going to an unlinked file. */
struct t_proc {
	pid_t pid;
	int out_fd;
};

/* Start @argv (argv[0] a path) in the background; fails the test if it cannot fork. */
void t_spawn(struct t_proc *p, const char *const *argv);

/*
 * Wait for @p, bounded by @timeout_ms (then SIGKILL), and copy its output
 * into @out (NUL-terminated, truncated at @out_size).  Returns as t_run().
 */
int t_finish(struct t_proc *p, char *out, size_t out_size, int timeout_ms);

/*
 * Run @argv (argv[0] a path) with stdout and stderr captured into @out
 * (NUL-terminated, truncated at @out_size), bounded by @timeout_ms.
 * Returns the exit status 0..255, 128 + signal, or -ETIMEDOUT (killed).
 */
int t_run(const char *const *argv, char *out, size_t out_size, int timeout_ms);

/*
 * Run python3 -c @script with a file holding @text as sys.argv[1] (for a
 * parser of a tool's output), as t_run() with @out.  Returns as t_run().
 */
int t_python(const char *script, const char *text, char *out, size_t out_size, int timeout_ms);

/* Like t_wait_peer(), bounded: SIGKILL after @timeout_ms and return -ETIMEDOUT. */
int t_wait_peer_ms(pid_t pid, int timeout_ms);

/*
 * Like t_fork_peer(), but the child gets SIGKILL when the test process
 * ends, so a failed or timed-out test leaves no worker behind.
 */
pid_t t_fork_child(int (*fn)(void *arg), void *arg);

/*
 * fork(); the child drops to @uid/@gid (setgroups(0), setgid, setuid), then
 * runs _exit(fn(arg)).  Exit status 100 means the drop itself failed.
 */
pid_t t_fork_as(uid_t uid, gid_t gid, int (*fn)(void *arg), void *arg);

/*
 * Skip the test (cr_skip_test) unless this process is root: for tests of
 * what other uids may do, which only root can become.  t_fork_as() calls
 * it, so `make test` passes as a normal user (nobody included).
 */
void t_need_root(const char *why);

/* t_fork_as() with supplementary groups @groups instead of none. */
pid_t t_fork_as_groups(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups,
		       int (*fn)(void *arg), void *arg);

/* MAP_SHARED|MAP_ANONYMOUS zeroed memory that forked children write into. */
void *t_shared_alloc(size_t size);

/* t_sleep_ms(), t_now_ns(): tests/helpers.h */

/* --- Clients and assertions --- */

struct shmq_client;

/* shmq_client_connect() to @d's socket; fails the test on error. */
struct shmq_client *t_connect(const struct t_daemon *d);

/* The expression returns 0 (or >= 0 for T_OK_N). */
#define T_OK(expr)                                                                 \
	do {                                                                       \
		int t_r_ = (expr);                                                 \
		cr_assert(t_r_ == 0, "%s: %d (%s)", #expr, t_r_, strerror(-t_r_)); \
	} while (0)

/* The expression returns exactly @err (a negative errno). */
#define T_ERR(expr, err)                                                                  \
	do {                                                                              \
		int t_r_ = (expr), t_e_ = (err);                                          \
		cr_assert(t_r_ == t_e_, "%s: expected %d (%s), got %d (%s)", #expr, t_e_, \
			  strerror(-t_e_), t_r_, t_r_ < 0 ? strerror(-t_r_) : "ok");      \
	} while (0)

#endif /* SHMQ_TESTS_INTEGRATION_DAEMON_H */
