/* SPDX-License-Identifier: MIT */
/* Integration-test harness: a private shmqd per test; see daemon.h. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"
#include "tests/integration/raw.h"

#define POLL_MS 5

/* Daemons this process started and has not finished: printed and killed at failure. */
static struct t_daemon *registry[8];
static pid_t registry_owner; /* forked clients inherit the registry: only its owner acts */

const char *t_shmqd_path(void)
{
	const char *p = getenv("SHMQD");

	if (!p || !*p) {
		cr_fail("SHMQD is not set: run `make test`, or set SHMQD=path/to/shmqd");
		exit(1); /* in a .init, Criterion returns from a failed assertion */
	}
	return p;
}

const char *t_example_path(const char *name)
{
	static char buf[4096];
	const char *dir = getenv("SHMQ_EXAMPLES");

	if (!dir || !*dir) {
		cr_fail("SHMQ_EXAMPLES is not set: run `make test`, or set "
			"SHMQ_EXAMPLES=build/examples");
		exit(1);
	}
	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

/* --- Copies of the project's programs that other uids can execute --- */

#define STAGE_MAX 8

static struct {
	pid_t owner; /* the process that made dir; only it removes it */
	char dir[64];
	char src[STAGE_MAX][4096];
	char dst[STAGE_MAX][160];
	int n;
} stage;

static int stage_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void stage_cleanup(void)
{
	if (stage.owner == getpid() && stage.dir[0])
		nftw(stage.dir, stage_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* Copy @src to @dst with @mode, whatever the umask. */
static void stage_copy(const char *src, const char *dst, mode_t mode)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	char buf[65536];
	ssize_t n;

	cr_assert(in >= 0, "staging %s: %s", src, strerror(errno));
	cr_assert(out >= 0, "staging %s as %s: %s", src, dst, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert(write(out, buf, (size_t)n) == n, "staging %s: %s", dst, strerror(errno));
	cr_assert(n == 0, "reading %s: %s", src, strerror(errno));
	cr_assert(fchmod(out, mode) == 0);
	close(in);
	close(out);
}

/* Point LSAN_OPTIONS' suppressions= at a copy in the stage directory. */
static void stage_lsan_suppressions(void)
{
	const char *opts = getenv("LSAN_OPTIONS");
	const char *at = opts ? strstr(opts, "suppressions=") : NULL;
	char src[4096], dst[160], *env;
	size_t len;

	if (!at)
		return;
	at += strlen("suppressions=");
	len = strcspn(at, ":");
	if (len == 0 || len >= sizeof(src))
		return;
	memcpy(src, at, len);
	src[len] = '\0';
	snprintf(dst, sizeof(dst), "%s/lsan.supp", stage.dir);
	stage_copy(src, dst, 0644);
	cr_assert(asprintf(&env, "%.*s%s%s", (int)(at - opts), opts, dst, at + len) > 0);
	setenv("LSAN_OPTIONS", env, 1);
	free(env);
}

const char *t_stage_for_others(const char *path)
{
	const char *base = strrchr(path, '/');

	if (stage.owner != getpid()) {
		memset(&stage, 0, sizeof(stage));
		snprintf(stage.dir, sizeof(stage.dir), "/tmp/shmq-stage-XXXXXX");
		cr_assert(mkdtemp(stage.dir) != NULL, "mkdtemp: %s", strerror(errno));
		cr_assert(chmod(stage.dir, 0755) == 0);
		stage.owner = getpid();
		atexit(stage_cleanup);
		stage_lsan_suppressions();
	}
	for (int i = 0; i < stage.n; i++)
		if (strcmp(stage.src[i], path) == 0)
			return stage.dst[i];
	cr_assert(stage.n < STAGE_MAX && strlen(path) < sizeof(stage.src[0]));
	snprintf(stage.src[stage.n], sizeof(stage.src[0]), "%s", path);
	/* One directory per copy: two programs may share a base name. */
	snprintf(stage.dst[stage.n], sizeof(stage.dst[0]), "%s/%d", stage.dir, stage.n);
	cr_assert(mkdir(stage.dst[stage.n], 0755) == 0);
	cr_assert(chmod(stage.dst[stage.n], 0755) == 0);
	snprintf(stage.dst[stage.n] + strlen(stage.dst[stage.n]),
		 sizeof(stage.dst[0]) - strlen(stage.dst[stage.n]), "/%s", base ? base + 1 : path);
	stage_copy(path, stage.dst[stage.n], 0755);
	return stage.dst[stage.n++];
}

static void do_register(struct t_daemon *d)
{
	if (d->registered)
		return;
	if (registry_owner != getpid()) {
		memset(registry, 0, sizeof(registry));
		registry_owner = getpid();
		atexit(t_daemon_cleanup_all);
	}
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
		if (!registry[i]) {
			registry[i] = d;
			d->registered = true;
			return;
		}
	}
	cr_fail("too many daemons in one test");
}

static void do_unregister(struct t_daemon *d)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (registry[i] == d)
			registry[i] = NULL;
	d->registered = false;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert(f != NULL, "fopen %s: %s", path, strerror(errno));
	fputs(text, f);
	cr_assert(fclose(f) == 0, "writing %s: %s", path, strerror(errno));
}

void t_daemon_write_conf(struct t_daemon *d, const char *conf_text)
{
	char tmp[128];

	/* rename() so a reload never reads a half-written file. */
	snprintf(tmp, sizeof(tmp), "%s.new", d->conf);
	write_file(tmp, conf_text);
	cr_assert(rename(tmp, d->conf) == 0, "rename: %s", strerror(errno));
}

void t_daemon_spawn(struct t_daemon *d)
{
	const char *argv[T_DAEMON_ARGS_MAX + 8];
	char sock_arg[160], conf_arg[160];
	const char *shmqd = t_shmqd_path();
	int n = 0, logfd;
	pid_t parent = getpid(), pid;

	snprintf(sock_arg, sizeof(sock_arg), "--socket=%s", d->sock);
	argv[n++] = shmqd;
	argv[n++] = sock_arg;
	if (d->conf[0]) {
		snprintf(conf_arg, sizeof(conf_arg), "--config=%s", d->conf);
		argv[n++] = conf_arg;
	}
	for (int i = 0; i < d->n_args; i++)
		argv[n++] = d->args[i];
	argv[n] = NULL;

	logfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	cr_assert(logfd >= 0, "open %s: %s", d->log, strerror(errno));
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* A test killed by its timeout must not leave a daemon behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		/* The daemon must not inherit the test's client sockets and memfds. */
		syscall(SYS_close_range, 3u, ~0u, 0u);
		signal(SIGPIPE, SIG_DFL);
		execv(shmqd, (char *const *)argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", shmqd, strerror(errno));
		_exit(127);
	}
	close(logfd);
	d->pid = pid;
	do_register(d);
}

static int reap(pid_t pid, bool block, int *ret_status)
{
	int st;
	pid_t r;

	do
		r = waitpid(pid, &st, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r < 0 ? -errno : 0;
	*ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 1;
}

bool t_daemon_wait_ready(struct t_daemon *d, int timeout_ms)
{
	uint64_t deadline = t_now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (t_now_ns() < deadline) {
		int st, fd;

		if (reap(d->pid, false, &st) > 0) {
			d->pid = 0;
			d->last_status = st;
			return false;
		}
		fd = t_raw_connect(d->sock);
		if (fd >= 0) {
			int r = t_raw_hello(fd);

			close(fd);
			if (r == 0)
				return true;
		}
		t_sleep_ms(POLL_MS);
	}
	return false;
}

void t_daemon_restart(struct t_daemon *d)
{
	cr_assert(d->pid == 0, "restart of a running daemon");
	t_daemon_spawn(d);
	if (!t_daemon_wait_ready(d, T_DAEMON_START_MS)) {
		bool running = d->pid != 0;
		int st = d->last_status;

		t_daemon_cleanup_all(); /* print the log, kill, remove the directory */
		cr_fail("shmqd did not answer within %d ms (%s %d)", T_DAEMON_START_MS,
			running ? "still running" : "exited with status", running ? 0 : st);
		/* Criterion does not abort a .init at a failed assertion: nothing can go on. */
		exit(1);
	}
}

void t_daemon_start(struct t_daemon *d, const char *const *args, const char *conf_text)
{
	memset(d, 0, sizeof(*d));
	t_shmqd_path(); /* fail before creating anything */
	snprintf(d->dir, sizeof(d->dir), "/tmp/shmq-integ-XXXXXX");
	cr_assert(mkdtemp(d->dir) != NULL, "mkdtemp: %s", strerror(errno));
	/* Other uids (permission tests) must reach the socket. */
	cr_assert(chmod(d->dir, 0755) == 0, "chmod: %s", strerror(errno));
	snprintf(d->sock, sizeof(d->sock), "%s/shmqd.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/shmqd.stderr", d->dir);
	if (conf_text) {
		snprintf(d->conf, sizeof(d->conf), "%s/shmqd.conf", d->dir);
		write_file(d->conf, conf_text);
	}
	for (; args && args[d->n_args]; d->n_args++) {
		cr_assert(d->n_args < T_DAEMON_ARGS_MAX, "too many daemon arguments");
		d->args[d->n_args] = args[d->n_args];
	}
	t_daemon_restart(d);
}

void t_daemon_signal(struct t_daemon *d, int sig)
{
	cr_assert(d->pid > 0, "daemon not running");
	cr_assert(kill(d->pid, sig) == 0, "kill: %s", strerror(errno));
}

int t_daemon_wait_exit(struct t_daemon *d, int timeout_ms)
{
	uint64_t deadline = t_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int st;

	if (d->pid == 0)
		return d->last_status;
	for (;;) {
		if (reap(d->pid, false, &st) > 0) {
			d->pid = 0;
			d->last_status = st;
			return st;
		}
		if (t_now_ns() >= deadline)
			return -ETIMEDOUT;
		t_sleep_ms(POLL_MS);
	}
}

void t_daemon_kill(struct t_daemon *d)
{
	int st;

	if (d->pid == 0)
		return;
	kill(d->pid, SIGKILL);
	if (reap(d->pid, true, &st) > 0)
		d->last_status = st;
	d->pid = 0;
}

int t_daemon_stop(struct t_daemon *d)
{
	if (d->pid == 0)
		return d->last_status;
	kill(d->pid, SIGTERM);
	if (t_daemon_wait_exit(d, T_DAEMON_STOP_MS) == -ETIMEDOUT) {
		fprintf(stderr, "shmqd pid %d ignored SIGTERM for %d ms: SIGKILL\n", (int)d->pid,
			T_DAEMON_STOP_MS);
		t_daemon_kill(d);
	}
	return d->last_status;
}

void t_daemon_read_log(const struct t_daemon *d, char *buf, size_t size)
{
	int fd = open(d->log, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	buf[0] = '\0';
	if (fd < 0)
		return;
	while (n + 1 < size) {
		ssize_t r = read(fd, buf + n, size - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	close(fd);
}

void t_daemon_dump_log(const struct t_daemon *d)
{
	static char buf[64 * 1024];

	t_daemon_read_log(d, buf, sizeof(buf));
	fprintf(stderr, "---- shmqd stderr (%s) ----\n%s---- end of shmqd stderr ----\n", d->log,
		buf);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void remove_dir(struct t_daemon *d)
{
	if (d->dir[0])
		nftw(d->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	d->dir[0] = '\0';
}

void t_daemon_fini(struct t_daemon *d)
{
	int st = t_daemon_stop(d);

	if (st != 0) {
		t_daemon_dump_log(d);
		do_unregister(d);
		remove_dir(d);
		cr_fail("shmqd exited with status %d after SIGTERM (expected 0)", st);
	}
	do_unregister(d);
	remove_dir(d);
}

void t_daemon_cleanup_all(void)
{
	if (registry_owner != getpid())
		return;
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
		struct t_daemon *d = registry[i];

		if (!d)
			continue;
		registry[i] = NULL;
		d->registered = false;
		t_daemon_kill(d);
		t_daemon_dump_log(d);
		remove_dir(d);
	}
}

struct shmq_client *t_connect(const struct t_daemon *d)
{
	struct shmq_client *c = NULL;
	int r = shmq_client_connect(d->sock, &c);

	if (r < 0) {
		cr_fail("shmq_client_connect(%s): %d (%s)", d->sock, r, strerror(-r));
		t_daemon_cleanup_all(); /* reached only from a .init (see t_shmqd_path()) */
		exit(1);
	}
	return c;
}

/* --- Processes --- */

int t_wait_peer_ms(pid_t pid, int timeout_ms)
{
	uint64_t deadline = t_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int st;

	for (;;) {
		int r = reap(pid, false, &st);

		if (r > 0)
			return st;
		if (r < 0)
			return r;
		if (t_now_ns() >= deadline) {
			kill(pid, SIGKILL);
			reap(pid, true, &st);
			return -ETIMEDOUT;
		}
		t_sleep_ms(1);
	}
}

void t_spawn(struct t_proc *p, const char *const *argv)
{
	char path[] = "/tmp/shmq-integ-run-XXXXXX";
	pid_t pid;

	p->out_fd = mkstemp(path);
	cr_assert(p->out_fd >= 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p->out_fd, STDOUT_FILENO);
		dup2(p->out_fd, STDERR_FILENO);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		execv(argv[0], (char *const *)argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	p->pid = pid;
}

int t_finish(struct t_proc *p, char *out, size_t out_size, int timeout_ms)
{
	int st = t_wait_peer_ms(p->pid, timeout_ms);

	if (out && out_size) {
		ssize_t n = pread(p->out_fd, out, out_size - 1, 0);

		out[n > 0 ? n : 0] = '\0';
	}
	close(p->out_fd);
	p->out_fd = -1;
	p->pid = 0;
	return st;
}

int t_run(const char *const *argv, char *out, size_t out_size, int timeout_ms)
{
	struct t_proc p;

	t_spawn(&p, argv);
	return t_finish(&p, out, out_size, timeout_ms);
}

int t_python(const char *script, const char *text, char *out, size_t out_size, int timeout_ms)
{
	char path[] = "/tmp/shmq-integ-text-XXXXXX";
	const char *argv[] = {"/usr/bin/env", "python3", "-c", script, path, NULL};
	size_t len = strlen(text);
	int fd = mkstemp(path), st;

	cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
	cr_assert(write(fd, text, len) == (ssize_t)len, "write: %s", strerror(errno));
	close(fd);
	st = t_run(argv, out, out_size, timeout_ms);
	unlink(path);
	return st;
}

pid_t t_fork_child(int (*fn)(void *arg), void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(fn(arg));
	}
	return pid;
}

pid_t t_fork_as(uid_t uid, gid_t gid, int (*fn)(void *arg), void *arg)
{
	return t_fork_as_groups(uid, gid, NULL, 0, fn, arg);
}

void t_need_root(const char *why)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: %s", why);
}

pid_t t_fork_as_groups(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups,
		       int (*fn)(void *arg), void *arg)
{
	pid_t pid;

	/* setgroups() and setuid() to the test's other user: root only, whoever we are */
	t_need_root("to run a process as another uid");

	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (setgroups(n_groups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(100);
		/* After the drop: a change of credentials clears the parent-death signal. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getuid() != uid || geteuid() != uid || getgid() != gid)
			_exit(100);
		_exit(fn(arg));
	}
	return pid;
}

void *t_shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	cr_assert(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}
