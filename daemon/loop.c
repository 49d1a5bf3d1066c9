/* SPDX-License-Identifier: MIT */
/*
 * The daemon's single-threaded event loop.
 *
 * DESIGN
 *
 * One epoll instance watches: the signalfd (SIGTERM/SIGINT stop, SIGHUP
 * reloads; no code runs in signal handlers), the listening socket, and per
 * session its socket and its process's pidfd.  Each event goes to a handler
 * named on_<source>_<event>().  The epoll_wait() timeout is the time to the
 * next housekeeping tick (1 s, shorter if the systemd watchdog needs it),
 * which refreshes every segment's daemon_heartbeat_ns and pings the
 * watchdog.  before_sleep() runs after every batch: it reaps sessions that
 * died during the batch and tells systemd the current counts.
 *
 * The daemon is never on the data path, so the loop does no spinning:
 * it sleeps in epoll_wait() until a client or a timer needs it.
 */
#include <errno.h>
#include <inttypes.h>
#include <numa.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "daemon/log.h"
#include "daemon/shmqd.h"

#define EVENTS_PER_WAIT	   64
#define ACCEPTS_PER_WAKEUP 64
#define TICK_NS		   UINT64_C(1000000000)

uint64_t shmqd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

int shmqd_epoll_add(struct shmqd *d, int fd, uint32_t events, struct shmqd_watch *w)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return log_warning_errno(-errno, "epoll_ctl(ADD, %d)", fd);
	return 0;
}

/* --- Setup --- */

static int signals_open(struct shmqd *d)
{
	sigset_t mask;

	/* Replies use MSG_NOSIGNAL; this is the belt to those braces. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return log_errno(-errno, "blocking signals");
	d->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->sigfd < 0)
		return log_errno(-errno, "signalfd");
	d->sig_watch.source = SHMQD_SRC_SIGNAL;
	return shmqd_epoll_add(d, d->sigfd, EPOLLIN, &d->sig_watch);
}

/*
 * Each client costs two descriptors (socket, pidfd) and each object one
 * (its memfd): raise the soft limit to the hard one, as systemd advises for
 * services that hold many fds, and say so when the configured limits could
 * still run into it.
 */
static void fd_limit_raise(const struct shmqd_config *cfg)
{
	uint64_t need = 2 * (uint64_t)cfg->max_clients + cfg->max_objects + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warning(
			"RLIMIT_NOFILE is %llu, but max-clients and max-objects may need %" PRIu64
			" descriptors",
			(unsigned long long)rl.rlim_cur, need);
}

int shmqd_init(struct shmqd *d, const struct shmqd_config *cfg, const struct shmqd_args *args)
{
	char **names = NULL;
	uint64_t usec = 0;
	int r, n_fds;

	memset(d, 0, sizeof(*d));
	d->cfg = *cfg;
	d->args = args;
	d->epfd = d->sigfd = d->listen_fd = d->metrics_fd = -1;
	d->store.dirfd = d->store.reg_fd = -1;
	d->next_session_id = d->next_object_id = d->next_attach_id = 1;
	d->started_ns = shmqd_now_ns();
	list_init(&d->sessions);
	list_init(&d->rejected);
	list_init(&d->dead);
	list_init(&d->objects);
	list_init(&d->uids);

	d->rx = malloc(SHMQ_MSG_MAX);
	d->tx = malloc(SHMQ_MSG_MAX);
	if (!d->rx || !d->tx)
		return log_errno(-ENOMEM, "allocating message buffers");
	/* Must come first: libnuma's other calls are undefined until it succeeds. */
	d->numa_ok = numa_available() >= 0;
	if (!d->numa_ok)
		log_info("NUMA is not available; requests for a NUMA node will fail with ENODEV");
	fd_limit_raise(cfg);

	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0)
		return log_errno(-errno, "epoll_create1");
	r = signals_open(d);
	if (r < 0)
		return r;
	/* Socket activation and the fd store's entries arrive the same way. */
	n_fds = sd_listen_fds_with_names(1, &names);
	if (n_fds < 0)
		return log_errno(n_fds, "sd_listen_fds_with_names");
	r = shmqd_store_take_passed(d, n_fds, names);
	if (r == 0)
		r = shmqd_listen_open(d, n_fds, names);
	for (int i = 0; names && i < n_fds; i++)
		free(names[i]);
	free(names);
	if (r < 0)
		return r;
	d->listen_watch.source = SHMQD_SRC_LISTEN;
	r = shmqd_epoll_add(d, d->listen_fd, EPOLLIN, &d->listen_watch);
	if (r < 0)
		return r;
	r = shmqd_metrics_open(d);
	if (r < 0)
		return r;
	/* Before the first accept: adopted clients must find their attachments. */
	r = shmqd_store_open(d);
	if (r > 0)
		r = shmqd_adopt(d);
	if (r < 0)
		return r;

	d->tick_ns = TICK_NS;
	r = sd_watchdog_enabled(0, &usec);
	if (r < 0)
		log_warning_errno(r, "reading the systemd watchdog settings");
	if (r > 0 && usec) {
		d->watchdog = true;
		/* Ping at least twice per watchdog period. */
		if (usec * 1000 / 2 < d->tick_ns)
			d->tick_ns = usec * 1000 / 2;
	}
	d->next_tick_ns = shmqd_now_ns() + d->tick_ns;
	return 0;
}

void shmqd_fini(struct shmqd *d)
{
	shmqd_session_free_all(d);
	shmqd_object_free_all(d);
	shmqd_store_close(d);
	shmqd_metrics_close(d);
	shmqd_listen_close(d);
	if (d->sigfd >= 0)
		close(d->sigfd);
	if (d->epfd >= 0)
		close(d->epfd);
	free(d->rx);
	free(d->tx);
	d->rx = d->tx = NULL;
}

/* --- Handlers --- */

static void reload(struct shmqd *d)
{
	struct shmqd_config c;

	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, shmqd_now_ns() / 1000);
	log_info("SIGHUP: reloading the configuration");
	if (shmqd_config_load(&c, d->args) < 0) {
		log_error("reload failed; keeping the current configuration");
	} else {
		shmqd_config_apply_reload(&d->cfg, &c);
		d->cfg = c;
		shmqd_log_set_level((int)c.log_level);
	}
	sd_notify(0, "READY=1");
}

static void on_signal_received(struct shmqd *d)
{
	struct signalfd_siginfo si;

	while (read(d->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			reload(d);
			break;
		case SIGTERM:
		case SIGINT:
			log_info("%s from pid %" PRIu32 ": stopping", strsignal((int)si.ssi_signo),
				 si.ssi_pid);
			d->stopping = true;
			break;
		default:
			break;
		}
	}
}

static void listen_pause(struct shmqd *d, bool pause)
{
	struct epoll_event ev = {.events = pause ? 0 : EPOLLIN, .data.ptr = &d->listen_watch};

	if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, d->listen_fd, &ev) == 0)
		d->listen_paused = pause;
}

static void on_listen_connect(struct shmqd *d)
{
	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			shmqd_session_accept(d, fd);
			continue;
		}
		if (errno == EAGAIN)
			return;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		/*
		 * Out of descriptors or memory: the pending connection stays
		 * readable, and a level-triggered epoll would spin on it.  Stop
		 * watching until the next tick, when sessions may have ended.
		 */
		log_warning_errno(-errno, "accept; pausing new connections for a moment");
		listen_pause(d, true);
		return;
	}
}

static void on_timer_tick(struct shmqd *d, uint64_t now)
{
	shmqd_object_heartbeat(d, now);
	shmqd_object_sample_use(d);
	shmqd_metrics_tick(d, now);
	shmqd_log_tick();
	if (d->watchdog)
		sd_notify(0, "WATCHDOG=1");
	if (d->listen_paused)
		listen_pause(d, false);
}

static void before_sleep(struct shmqd *d)
{
	shmqd_session_reap_dead(d);
	if (d->status_sessions != d->n_sessions || d->status_objects != d->n_objects) {
		d->status_sessions = d->n_sessions;
		d->status_objects = d->n_objects;
		sd_notifyf(0, "STATUS=%" PRIu32 " clients, %" PRIu32 " objects, %" PRIu64 " bytes",
			   d->n_sessions, d->n_objects, d->memory_bytes);
	}
}

static void dispatch(struct shmqd *d, const struct epoll_event *ev)
{
	struct shmqd_watch *w = ev->data.ptr;

	switch (w->source) {
	case SHMQD_SRC_SIGNAL:
		on_signal_received(d);
		break;
	case SHMQD_SRC_LISTEN:
		on_listen_connect(d);
		break;
	case SHMQD_SRC_CLIENT:
	case SHMQD_SRC_PIDFD:
		shmqd_session_on_event(d, w, ev->events);
		break;
	case SHMQD_SRC_METRICS:
	case SHMQD_SRC_METRICS_CONN:
		shmqd_metrics_on_event(d, w, ev->events);
		break;
	}
}

static int next_timeout_ms(const struct shmqd *d)
{
	uint64_t now = shmqd_now_ns();

	if (now >= d->next_tick_ns)
		return 0;
	return (int)((d->next_tick_ns - now + 999999) / 1000000);
}

int shmqd_loop(struct shmqd *d)
{
	struct epoll_event ev[EVENTS_PER_WAIT];

	while (!d->stopping) {
		int n = epoll_wait(d->epfd, ev, EVENTS_PER_WAIT, next_timeout_ms(d));
		uint64_t now;

		if (n < 0 && errno != EINTR)
			return log_errno(-errno, "epoll_wait");
		for (int i = 0; i < n; i++)
			dispatch(d, &ev[i]);

		now = shmqd_now_ns();
		if (now >= d->next_tick_ns) {
			on_timer_tick(d, now);
			/* After a long stall, tick again a period from now, not in a burst. */
			d->next_tick_ns += d->tick_ns;
			if (d->next_tick_ns <= now)
				d->next_tick_ns = now + d->tick_ns;
		}
		before_sleep(d);
	}
	return 0;
}
