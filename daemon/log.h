/* SPDX-License-Identifier: MIT */
/*
 * shmqd logging: one line per event on stderr, in the form the journal
 * understands.  When stderr is connected to journald ($JOURNAL_STREAM names
 * our stderr), each line carries an sd-daemon "<N>" priority prefix;
 * otherwise it reads "shmqd[pid]: level: message".  Levels are syslog's.
 *
 * The error convention (STYLE.md): the daemon logs an error once, where it
 * is handled, and returns it in the same statement:
 *
 *	return log_errno(r, "mapping segment for pid %d", pid);
 *
 * log_*_errno() append ": <strerror>" and return @r (negative errno), so the
 * caller passes it on unchanged.  Messages caused by a client go through a
 * per-uid rate limit, which keeps a flooding client from turning into a
 * flood of log lines: log_client_*() anywhere, and every line below
 * LOG_ERR while shmqd_log_client_begin() names the uid being served.
 */
#ifndef SHMQD_LOG_H
#define SHMQD_LOG_H

#include <stdbool.h>
#include <syslog.h>

#define SHMQD_LOG_DEFAULT LOG_INFO

void shmqd_log_init(void);
void shmqd_log_set_level(int level);
int shmqd_log_get_level(void);
const char *shmqd_log_level_name(int level);
int shmqd_log_level_from_name(const char *name);

/* Log at @level (with ": strerror(-@error)" appended when @error < 0); returns @error. */
int shmqd_log_internal(int level, int error, bool ratelimited, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_full_errno(level, r, ...) shmqd_log_internal((level), (r), false, __VA_ARGS__)

#define log_errno(r, ...)	  log_full_errno(LOG_ERR, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) log_full_errno(LOG_WARNING, (r), __VA_ARGS__)
#define log_notice_errno(r, ...)  log_full_errno(LOG_NOTICE, (r), __VA_ARGS__)
#define log_info_errno(r, ...)	  log_full_errno(LOG_INFO, (r), __VA_ARGS__)
#define log_debug_errno(r, ...)	  log_full_errno(LOG_DEBUG, (r), __VA_ARGS__)

#define log_error(...)	 ((void)log_full_errno(LOG_ERR, 0, __VA_ARGS__))
#define log_warning(...) ((void)log_full_errno(LOG_WARNING, 0, __VA_ARGS__))
#define log_notice(...)	 ((void)log_full_errno(LOG_NOTICE, 0, __VA_ARGS__))
#define log_info(...)	 ((void)log_full_errno(LOG_INFO, 0, __VA_ARGS__))
#define log_debug(...)	 ((void)log_full_errno(LOG_DEBUG, 0, __VA_ARGS__))

/*
 * Client-caused messages: rate limited per uid (that of the request being
 * handled, see below), or, with none, in one shared bucket.
 */
#define log_client_errno(level, r, ...) shmqd_log_internal((level), (r), true, __VA_ARGS__)
#define log_client(level, ...)		((void)shmqd_log_internal((level), 0, true, __VA_ARGS__))

/*
 * Between these two, the daemon handles something uid @uid caused (a
 * request, a connect, a session's end and its repairs): every line below
 * LOG_ERR counts against that uid's rate limit, whatever macro wrote it.
 */
void shmqd_log_client_begin(uint32_t uid, uint64_t session_id, int32_t pid); /* 0: no session yet */
void shmqd_log_client_end(void);

/*
 * Journal fields.  Under journald (stderr is the journal stream) each line
 * is sent with sd_journal_sendv(): MESSAGE, PRIORITY, SYSLOG_IDENTIFIER
 * and, while set, SHMQ_SESSION, CLIENT_PID and CLIENT_UID (the session
 * being served), SHMQ_OBJECT (the object a line is about) and MESSAGE_ID
 * (the next line's event, one of SHMQD_MESSAGE_*; journalctl
 * MESSAGE_ID=... finds every repair or quarantine).  Elsewhere the lines
 * are plain and the fields are not written.
 */
void shmqd_log_session(uint64_t session_id, int32_t pid); /* 0, 0: none (client_begin sets it) */
void shmqd_log_object(const char *name);		  /* NULL: none */
void shmqd_log_message_id(const char *id);		  /* the next line only */

/* MESSAGE_IDs (128-bit, as sd-messages.h): events worth finding again. */
#define SHMQD_MESSAGE_REPAIR	 "4458346bd3874280aeca526903ab8bf0" /* a dead process's holds */
#define SHMQD_MESSAGE_QUARANTINE "bd7e6b4d897b4e18a70c54ab4029c7a5" /* a corrupt segment */
#define SHMQD_MESSAGE_RESTART	 "8d21879e5e3c4412b4c25051fe575499" /* objects re-adopted */
#define SHMQD_MESSAGE_SESSION	 "88ee77124e304a73962f671bc7189f60" /* a session ended with holds */

/*
 * The reason for the current request's failure, for its error reply: the
 * first client-caused line with an error while a uid is being served
 * (written or not: rate limits and log levels do not drop it), or one set
 * explicitly.  Cleared before each request.
 */
void shmqd_log_reason_clear(void);
void shmqd_log_set_reason(const char *text);
const char *shmqd_log_reason(void);

/* Housekeeping tick: write the summary a quiet, rate-limited uid still owes. */
void shmqd_log_tick(void);

#endif /* SHMQD_LOG_H */
