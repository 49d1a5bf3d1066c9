/* SPDX-License-Identifier: MIT */
/*
 * The control socket: where it lives, taking it over from systemd, or
 * binding it ourselves without stepping on a live daemon.
 *
 * Path, first match wins: --socket, $SHMQ_SOCKET (shared with libshmq, so a
 * test can point both at one place), `socket =` in the config file, then
 * /run/shmq/shmqd.sock for root, $XDG_RUNTIME_DIR/shmq/shmqd.sock for other
 * users, or /tmp/shmq-$UID/shmqd.sock without XDG_RUNTIME_DIR.
 *
 * The socket's mode is 0666 by default: connecting grants nothing by
 * itself, every object carries its own owner and mode and the daemon checks
 * them on each request, like SysV IPC.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "daemon/log.h"
#include "daemon/shmqd.h"

static int path_set(char *buf, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int path_set(char *buf, const char *what, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, SHMQD_SOCKET_PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= SHMQD_SOCKET_PATH_MAX)
		return log_errno(-ENAMETOOLONG, "socket path from %s is longer than %zu bytes",
				 what, SHMQD_SOCKET_PATH_MAX - 1);
	return 0;
}

/* Return: 0 and the path in d->socket_path; *@ret_private for per-user defaults. */
static int socket_path(struct shmqd *d, bool *ret_private, bool *ret_default)
{
	const char *env = getenv("SHMQ_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	uid_t uid = geteuid();

	*ret_private = uid != 0;
	*ret_default = false;
	if (shmqd_config_socket_from_argv(d->args))
		return path_set(d->socket_path, "--socket", "%s", d->cfg.socket);
	if (env && *env)
		return path_set(d->socket_path, "$SHMQ_SOCKET", "%s", env);
	if (d->cfg.socket[0])
		return path_set(d->socket_path, "the config file", "%s", d->cfg.socket);
	*ret_default = true;
	if (uid == 0)
		return path_set(d->socket_path, "the default", "/run/shmq/shmqd.sock");
	if (xdg && *xdg == '/')
		return path_set(d->socket_path, "$XDG_RUNTIME_DIR", "%s/shmq/shmqd.sock", xdg);
	return path_set(d->socket_path, "the default", "/tmp/shmq-%u/shmqd.sock", (unsigned)uid);
}

static int parent_dir(const char *path, bool private, bool check_owner)
{
	char dir[SHMQD_SOCKET_PATH_MAX];
	mode_t mode = private ? 0700 : 0755;
	struct stat st;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0; /* in / itself */
	*slash = '\0';
	if (mkdir(dir, mode) == 0) {
		/* mkdir() applies the umask; say exactly what we mean. */
		if (chmod(dir, mode) < 0)
			return log_errno(-errno, "chmod %s", dir);
		return 0;
	}
	if (errno != EEXIST)
		return log_errno(-errno, "creating %s", dir);
	if (!check_owner)
		return 0;
	/*
	 * A default directory that already exists must be ours: under /tmp
	 * another user could have made it first and would then control who
	 * answers on our socket path.
	 */
	if (lstat(dir, &st) < 0)
		return log_errno(-errno, "stat %s", dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (private && (st.st_mode & 077)) ||
	    (st.st_mode & 022))
		return log_errno(-EPERM,
				 "%s is not a directory owned by uid %u and writable only by it",
				 dir, (unsigned)geteuid());
	return 0;
}

/* Return: 0 nothing (or a stale socket, now removed) is there; -EADDRINUSE a daemon answers. */
static int probe_existing(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return log_errno(-errno, "stat %s", path);
	}
	if (!S_ISSOCK(st.st_mode))
		return log_errno(-EEXIST, "%s exists and is not a socket; not touching it", path);

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_errno(-errno, "socket");
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	close(fd);
	/* Refused: nobody listens, the file is left over from a daemon that died. */
	if (r == -ECONNREFUSED) {
		if (unlink(path) < 0 && errno != ENOENT)
			return log_errno(-errno, "removing stale socket %s", path);
		log_info("removed stale socket %s", path);
		return 0;
	}
	/* Connected, backlog full (EAGAIN), or a listener of another type: someone is there. */
	if (r == 0 || r == -EAGAIN || r == -EPROTOTYPE || r == -EINPROGRESS)
		return log_errno(-EADDRINUSE, "another daemon is listening on %s", path);
	return log_errno(r, "probing %s", path);
}

/* Bind @fd to @path with @mode and listen; on failure nothing is left at @path. */
static int bind_listen(int fd, const char *path, uint32_t mode)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	mode_t old_umask;
	int r;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* The socket file gets its final mode at birth: no window with a wider one. */
	old_umask = umask(~mode & 0777);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old_umask);
	if (r < 0)
		return log_errno(r, "binding %s", path);
	if (listen(fd, SOMAXCONN) < 0) {
		r = log_errno(-errno, "listen on %s", path);
		unlink(path);
		return r;
	}
	return 0;
}

/*
 * Give the socket at @path the configured group (none: the daemon's own),
 * before it has its public name: a client never finds it with another.
 */
static int socket_group(const char *path, const char *group)
{
	uint32_t gid;
	int r;

	if (!*group)
		return 0;
	r = shmqd_config_group_id(group, &gid);
	if (r < 0) {
		unlink(path);
		return log_errno(r, "socket-group '%s'", group);
	}
	if (chown(path, (uid_t)-1, (gid_t)gid) < 0) {
		r = log_errno(-errno, "giving %s to group %s (gid %" PRIu32 ")", path, group, gid);
		unlink(path);
		return r;
	}
	return 0;
}

/*
 * Move the listening socket from @tmp to @path, failing if @path exists as
 * bind() would.  The kernel may lack RENAME_NOREPLACE for this file system:
 * then a hard link does the same, with both names briefly present.
 */
static int publish(const char *tmp, const char *path)
{
	int r = 0;

	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EINVAL || errno == ENOSYS)
		r = link(tmp, path) < 0 ? -errno : 0;
	else
		r = -errno;
	unlink(tmp);
	if (r == -EEXIST)
		return log_errno(-EADDRINUSE, "%s appeared while starting: another daemon?", path);
	if (r < 0)
		return log_errno(r, "renaming %s to %s", tmp, path);
	return 0;
}

/*
 * The socket is bound under a temporary name beside its path, made to
 * listen, and only then given its path: a client that waits for the file
 * to appear (`test -S`) can connect at once, instead of meeting a bound
 * socket that does not listen yet (ECONNREFUSED).  A path too long for a
 * temporary name beside it is bound directly.
 */
static int bind_own(struct shmqd *d)
{
	char tmp[SHMQD_SOCKET_PATH_MAX];
	bool private, is_default, staged;
	struct stat st;
	int fd, r, n;

	r = socket_path(d, &private, &is_default);
	if (r < 0)
		return r;
	r = parent_dir(d->socket_path, private, is_default);
	if (r < 0)
		return r;
	r = probe_existing(d->socket_path);
	if (r < 0)
		return r;

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_errno(-errno, "socket");
	n = snprintf(tmp, sizeof(tmp), "%s.%d.new", d->socket_path, (int)getpid());
	staged = n > 0 && (size_t)n < sizeof(tmp);
	r = bind_listen(fd, staged ? tmp : d->socket_path, d->cfg.socket_mode);
	if (r == 0)
		r = socket_group(staged ? tmp : d->socket_path, d->cfg.socket_group);
	if (r == 0 && staged)
		r = publish(tmp, d->socket_path);
	if (r < 0) {
		close(fd);
		return r;
	}
	if (stat(d->socket_path, &st) == 0) {
		d->socket_dev = st.st_dev;
		d->socket_ino = st.st_ino;
	}
	d->listen_bound = true;
	d->listen_fd = fd;
	log_info("listening on %s (mode %04" PRIo32 "%s%s)", d->socket_path, d->cfg.socket_mode,
		 d->cfg.socket_group[0] ? ", group " : "", d->cfg.socket_group);
	return 0;
}

static int take_activated(struct shmqd *d, int fd)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int r, flags;

	r = sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0);
	if (r < 0)
		return log_errno(r, "checking the socket passed by systemd");
	if (r == 0)
		return log_errno(-EINVAL, "the socket passed by systemd is not a listening "
					  "SOCK_SEQPACKET Unix socket (ListenSequentialPacket=)");
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return log_errno(-errno, "making the activated socket non-blocking");
	d->listen_fd = fd;
	d->listen_activated = true;
	if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && len > sizeof(sa_family_t) &&
	    sa.sun_path[0])
		snprintf(d->socket_path, sizeof(d->socket_path), "%.*s",
			 (int)(len - offsetof(struct sockaddr_un, sun_path)), sa.sun_path);
	log_info("listening on %s (socket activation)",
		 d->socket_path[0] ? d->socket_path : "an unnamed socket");
	return 0;
}

/*
 * @names: what sd_listen_fds_with_names() returned, with the fd store's
 * entries already taken (NULL) by shmqd_store_take_passed().  What is left
 * must be the one listening socket of shmqd.socket, or nothing.
 */
int shmqd_listen_open(struct shmqd *d, int n_fds, char **names)
{
	int fd = -1, n = 0;

	for (int i = 0; i < n_fds; i++) {
		if (names && !names[i])
			continue;
		n++;
		fd = SD_LISTEN_FDS_START + i;
	}
	if (n > 1)
		return log_errno(-EINVAL, "systemd passed %d sockets, expected one", n);
	if (n == 1)
		return take_activated(d, fd);
	return bind_own(d);
}

void shmqd_listen_close(struct shmqd *d)
{
	struct stat st;

	if (d->listen_fd >= 0)
		close(d->listen_fd);
	d->listen_fd = -1;
	/* Remove the file only if it is still the one we bound, not a successor's. */
	if (d->listen_bound && stat(d->socket_path, &st) == 0 && st.st_dev == d->socket_dev &&
	    st.st_ino == d->socket_ino)
		unlink(d->socket_path);
	d->listen_bound = false;
}
