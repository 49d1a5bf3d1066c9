/* SPDX-License-Identifier: MIT */
/*
 * shmqd logging to stderr, journald-aware.  See log.h.
 *
 * Each message is formatted into one buffer and written with one write(2),
 * so lines from the daemon never interleave mid-line with anything else
 * writing to the same pipe or journal stream.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "daemon/log.h"

#define LINE_MAX_BYTES 2048

/*
 * Client-caused lines: at most RATELIMIT_BURST per RATELIMIT_INTERVAL_NS
 * per uid.  The daemon serves every client from one thread, so a client
 * sending requests (good or bad) as fast as it can must not be able to fill
 * the disk through the journal, nor drown another user's lines: each uid
 * has its own bucket, and RATELIMIT_UIDS buckets bound the total.  Lines
 * marked client-caused that come with no uid (no request being served)
 * share one more bucket.
 */
#define RATELIMIT_INTERVAL_NS (UINT64_C(10) * 1000000000)
#define RATELIMIT_BURST	      200
#define RATELIMIT_UIDS	      64

static int log_level = SHMQD_LOG_DEFAULT;
static bool to_journal;

struct bucket {
	uint64_t begin_ns; /* 0: unused */
	uint32_t uid;
	bool has_uid;
	unsigned int n;
	unsigned int suppressed;
};

static struct bucket buckets[RATELIMIT_UIDS];
static struct bucket anonymous;

/* The current request's reason (shmqd_log_reason()): SHMQ_REASON_MAX bytes with the NUL. */
static char reason[256];

/* The uid whose request (or session's end) is being handled; see shmqd_log_client_begin(). */
static struct {
	bool set;
	uint32_t uid;
} ctx;

/* Journal fields of the lines being written (log.h). */
static struct {
	uint64_t session_id; /* 0: none */
	int32_t pid;
	const char *object; /* NULL: none */
	const char *message_id;
} fields;

static const char *const level_names[] = {
	[LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",	  [LOG_CRIT] = "crit",
	[LOG_ERR] = "err",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
};

void shmqd_log_init(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/*
	 * $JOURNAL_STREAM is inherited by children whose stderr may point
	 * elsewhere, so it counts only if it names the file our stderr is.
	 */
	to_journal = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 &&
		     fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
		     (unsigned long long)st.st_ino == ino;
}

void shmqd_log_set_level(int level)
{
	log_level = level;
}

int shmqd_log_get_level(void)
{
	return log_level;
}

const char *shmqd_log_level_name(int level)
{
	if (level < 0 || level > LOG_DEBUG)
		return "?";
	return level_names[level];
}

int shmqd_log_level_from_name(const char *name)
{
	/* Only the levels the daemon uses are configurable. */
	for (int l = LOG_ERR; l <= LOG_DEBUG; l++)
		if (!strcmp(name, level_names[l]))
			return l;
	return -EINVAL;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

void shmqd_log_session(uint64_t session_id, int32_t pid)
{
	fields.session_id = session_id;
	fields.pid = pid;
}

void shmqd_log_object(const char *name)
{
	fields.object = name;
}

void shmqd_log_message_id(const char *id)
{
	fields.message_id = id;
}

/* The line with its fields, in journald's native protocol.  Return: 0; < 0 not sent. */
static int emit_journal(int level, const char *msg, const char *message_id)
{
	char m[LINE_MAX_BYTES + 16], prio[16], sess[48], pid[32], uid[32], obj[96], id[48];
	struct iovec iov[8];
	int n = 0;

	snprintf(m, sizeof(m), "MESSAGE=%s", msg);
	iov[n++] = (struct iovec){m, strlen(m)};
	snprintf(prio, sizeof(prio), "PRIORITY=%d", level);
	iov[n++] = (struct iovec){prio, strlen(prio)};
	iov[n++] = (struct iovec){(char *)"SYSLOG_IDENTIFIER=shmqd", 23};
	if (fields.session_id) {
		snprintf(sess, sizeof(sess), "SHMQ_SESSION=%" PRIu64, fields.session_id);
		iov[n++] = (struct iovec){sess, strlen(sess)};
	}
	if (fields.pid > 0) {
		snprintf(pid, sizeof(pid), "CLIENT_PID=%" PRId32, fields.pid);
		iov[n++] = (struct iovec){pid, strlen(pid)};
	}
	if (ctx.set) {
		snprintf(uid, sizeof(uid), "CLIENT_UID=%" PRIu32, ctx.uid);
		iov[n++] = (struct iovec){uid, strlen(uid)};
	}
	if (fields.object) {
		snprintf(obj, sizeof(obj), "SHMQ_OBJECT=%s", fields.object);
		iov[n++] = (struct iovec){obj, strlen(obj)};
	}
	if (message_id) {
		snprintf(id, sizeof(id), "MESSAGE_ID=%s", message_id);
		iov[n++] = (struct iovec){id, strlen(id)};
	}
	return sd_journal_sendv(iov, n);
}

static void emit_id(int level, const char *msg, const char *message_id)
{
	char line[LINE_MAX_BYTES + 64];
	int n;

	if (to_journal && emit_journal(level, msg, message_id) >= 0)
		return;
	/* no journald socket after all: the stream, with the priority prefix */
	if (to_journal)
		n = snprintf(line, sizeof(line), "<%d>%s\n", level, msg);
	else
		n = snprintf(line, sizeof(line), "shmqd[%d]: %s: %s\n", (int)getpid(),
			     shmqd_log_level_name(level), msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	/* Logging never fails the caller: a full or closed stderr loses the line. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

static void emit(int level, const char *msg)
{
	emit_id(level, msg, NULL);
}

/* Say how many lines @b held back, and start its next interval at @now. */
static void bucket_roll(struct bucket *b, uint64_t now)
{
	if (b->suppressed) {
		char msg[128];

		if (b->has_uid)
			snprintf(msg, sizeof(msg),
				 "uid %" PRIu32 ": %u messages suppressed by the rate limit",
				 b->uid, b->suppressed);
		else
			snprintf(msg, sizeof(msg),
				 "%u client messages suppressed by the rate limit", b->suppressed);
		emit(LOG_NOTICE, msg);
	}
	b->begin_ns = now;
	b->n = 0;
	b->suppressed = 0;
}

/* @uid's bucket: its own, a free one, or the one idle longest (after its summary). */
static struct bucket *bucket_of(uint32_t uid, uint64_t now)
{
	struct bucket *oldest = &buckets[0];

	for (unsigned int i = 0; i < RATELIMIT_UIDS; i++) {
		struct bucket *b = &buckets[i];

		if (b->begin_ns && b->uid == uid)
			return b;
		if (b->begin_ns < oldest->begin_ns)
			oldest = b;
	}
	if (oldest->begin_ns)
		bucket_roll(oldest, now);
	*oldest = (struct bucket){.begin_ns = now, .uid = uid, .has_uid = true};
	return oldest;
}

/* Return: true if a client-caused line may be written now. */
static bool ratelimit_pass(void)
{
	uint64_t now = mono_ns();
	struct bucket *b = ctx.set ? bucket_of(ctx.uid, now) : &anonymous;

	if (now - b->begin_ns >= RATELIMIT_INTERVAL_NS)
		bucket_roll(b, now);
	if (b->n >= RATELIMIT_BURST) {
		b->suppressed++;
		return false;
	}
	b->n++;
	return true;
}

void shmqd_log_reason_clear(void)
{
	reason[0] = '\0';
}

void shmqd_log_set_reason(const char *text)
{
	/* The first reason is the cause; later lines are consequences. */
	size_t n = strnlen(text, sizeof(reason) - 1);

	if (reason[0])
		return;
	memcpy(reason, text, n); /* cut at the reply's bound (protocol.h) */
	reason[n] = '\0';
	/* It goes to the client as printable ASCII (protocol.h). */
	for (char *p = reason; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
}

const char *shmqd_log_reason(void)
{
	return reason;
}

void shmqd_log_client_begin(uint32_t uid, uint64_t session_id, int32_t pid)
{
	ctx.set = true;
	ctx.uid = uid;
	shmqd_log_session(session_id, pid);
}

void shmqd_log_client_end(void)
{
	ctx.set = false;
	shmqd_log_session(0, 0);
}

void shmqd_log_tick(void)
{
	uint64_t now = mono_ns();

	/* A bucket that held lines back and then fell quiet still owes its summary. */
	for (unsigned int i = 0; i < RATELIMIT_UIDS; i++)
		if (buckets[i].suppressed && now - buckets[i].begin_ns >= RATELIMIT_INTERVAL_NS)
			bucket_roll(&buckets[i], now);
	if (anonymous.suppressed && now - anonymous.begin_ns >= RATELIMIT_INTERVAL_NS)
		bucket_roll(&anonymous, now);
}

int shmqd_log_internal(int level, int error, bool ratelimited, const char *fmt, ...)
{
	/* the MESSAGE_ID names one line, the event's own, written or not */
	const char *message_id = fields.message_id;
	char msg[LINE_MAX_BYTES];
	int saved_errno = errno;
	bool formatted = false;
	va_list ap;
	int n = 0;

	fields.message_id = NULL;
	/* Formatted here only when it is a request's reason: a dropped line costs nothing. */
	if (error < 0 && ctx.set && !reason[0]) {
		va_start(ap, fmt);
		n = vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		formatted = true;
		if (n >= 0)
			shmqd_log_set_reason(msg);
	}
	if (level > log_level)
		return error;
	/*
	 * While a client's request or end is handled, every line but an
	 * error is that client's doing: its uid's bucket.  An error is the
	 * daemon's own trouble, and always written.
	 */
	if ((ratelimited || (ctx.set && level > LOG_ERR)) && !ratelimit_pass())
		return error;

	if (!formatted) {
		va_start(ap, fmt);
		n = vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	if (n >= 0 && error < 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(-error));
	emit_id(level, msg, message_id);
	errno = saved_errno;
	return error;
}
