/* SPDX-License-Identifier: MIT */
/*
 * Integration: shmqd's command line and configuration.  --help, --version
 * and --dump-config, a bad value in the file (exit 1, naming the line),
 * flags over the file, and SIGHUP applying a new limit to a running daemon.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <shmq/shmq.h>
#include <shmq/version.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define RUN_MS	  10000
#define RELOAD_MS 5000

static struct t_daemon d;
static char out[64 * 1024];

TestSuite(config, .fini = t_daemon_cleanup_all, .timeout = 30);

static int run_shmqd(const char *a1, const char *a2, const char *a3)
{
	const char *argv[] = {t_shmqd_path(), a1, a2, a3, NULL};

	return t_run(argv, out, sizeof(out), RUN_MS);
}

Test(config, help_prints_usage_with_every_option_and_exits_0)
{
	static const char *const options[] = {
		"--config",	 "--dump-config",	  "--version",		 "--socket",
		"--max-clients", "--max-objects-per-uid", "--max-memory-per-uid"};

	cr_assert(eq(int, run_shmqd("--help", NULL, NULL), 0), "%s", out);
	cr_assert(strstr(out, "Usage") != NULL || strstr(out, "usage") != NULL,
		  "no usage line:\n%s", out);
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		cr_assert(strstr(out, options[i]) != NULL, "--help does not mention %s:\n%s",
			  options[i], out);
}

Test(config, version_prints_the_release_version_and_exits_0)
{
	cr_assert(eq(int, run_shmqd("--version", NULL, NULL), 0), "%s", out);
	cr_assert(strstr(out, SHMQ_VERSION_STRING) != NULL, "no %s in:\n%s", SHMQ_VERSION_STRING,
		  out);
	cr_assert(strstr(out, "shmqd") != NULL, "%s", out);
}

/* The value of @name in a config-file dump: "name = value". */
static const char *dumped(const char *name, char *val, size_t size)
{
	const char *p = out;
	size_t len = strlen(name);

	while ((p = strstr(p, name))) {
		if ((p == out || p[-1] == '\n') && (p[len] == ' ' || p[len] == '=')) {
			const char *v = p + len;

			while (*v == ' ' || *v == '=')
				v++;
			snprintf(val, size, "%.*s", (int)strcspn(v, "\n"), v);
			return val;
		}
		p += len;
	}
	return NULL;
}

Test(config, dump_config_prints_every_option_in_file_format_and_exits_0)
{
	char val[64];

	cr_assert(eq(int, run_shmqd("--dump-config", "--config=/dev/null", NULL), 0), "%s", out);
	cr_assert(dumped("max-clients", val, sizeof(val)) != NULL, "no max-clients in:\n%s", out);
	cr_assert(strcmp(val, "1024") == 0, "max-clients default is %s", val);
	cr_assert(dumped("max-objects-per-uid", val, sizeof(val)) != NULL, "%s", out);
	cr_assert(dumped("max-memory-per-uid", val, sizeof(val)) != NULL, "%s", out);
	cr_assert(dumped("socket", val, sizeof(val)) != NULL, "%s", out);
}

Test(config, dump_config_shows_the_file_overridden_by_flags)
{
	char val[64];

	{
		char path[] = "/tmp/shmq-integ-conf-XXXXXX";
		int fd = mkstemp(path);
		FILE *f;

		cr_assert(fd >= 0);
		f = fdopen(fd, "w");
		fputs("# test configuration\n\nmax-clients = 7\nmax-objects-per-uid=9\n", f);
		fclose(f);
		{
			char conf_arg[64];

			snprintf(conf_arg, sizeof(conf_arg), "--config=%s", path);
			cr_assert(eq(int, run_shmqd(conf_arg, "--max-clients=11", "--dump-config"),
				     0),
				  "%s", out);
		}
		unlink(path);
	}
	cr_assert(dumped("max-clients", val, sizeof(val)) != NULL && strcmp(val, "11") == 0,
		  "flag over file: max-clients = %s", val);
	cr_assert(dumped("max-objects-per-uid", val, sizeof(val)) != NULL && strcmp(val, "9") == 0,
		  "file over default: max-objects-per-uid = %s", val);
}

/* Write @text to a temporary config file, start shmqd on it, expect exit 1 naming @line. */
static void expect_bad_config(const char *text, int line)
{
	char path[] = "/tmp/shmq-integ-conf-XXXXXX", conf_arg[64], sock_arg[64], where[64];
	int fd = mkstemp(path), st;
	FILE *f;

	cr_assert(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	snprintf(conf_arg, sizeof(conf_arg), "--config=%s", path);
	snprintf(sock_arg, sizeof(sock_arg), "--socket=%s.sock", path);
	st = run_shmqd(conf_arg, sock_arg, NULL);
	unlink(path);
	cr_assert(eq(int, st, 1), "shmqd with a bad config exited %d:\n%s", st, out);
	snprintf(where, sizeof(where), "%s:%d", path, line);
	cr_assert(strstr(out, where) != NULL || strstr(out, "line") != NULL,
		  "the message does not name %s:\n%s", where, out);
	if (!strstr(out, where)) {
		char ln[32];

		snprintf(ln, sizeof(ln), "line %d", line);
		cr_assert(strstr(out, ln) != NULL, "the message does not name line %d:\n%s", line,
			  out);
	}
}

Test(config, bad_value_in_the_config_file_exits_1_naming_the_line)
{
	expect_bad_config("# comment\nmax-clients = 8\n\nmax-objects-per-uid = banana\n", 4);
}

Test(config, out_of_range_value_in_the_config_file_exits_1_naming_the_line)
{
	expect_bad_config("max-clients = 0\n", 1);
	expect_bad_config("log-level = info\nmax-clients = 99999999\n", 2);
	expect_bad_config("\n\n\nmax-memory-per-uid = 1E\n", 4);
}

Test(config, a_socket_group_that_does_not_exist_exits_1_naming_the_line_and_the_group)
{
	expect_bad_config("socket-mode = 0660\nsocket-group = no-such-group-here\n", 2);
	cr_assert(strstr(out, "'no-such-group-here' is not a group on this system") != NULL, "%s",
		  out);
}

Test(config, the_socket_gets_the_configured_group_by_name_or_gid)
{
	static const char *const by_gid[] = {"--socket-mode=0660", "--socket-group=65534", NULL};
	static const char *const by_name[] = {"--socket-mode=0660", "--socket-group=root", NULL};
	struct stat st;

	t_need_root("giving the socket to another group");
	t_daemon_start(&d, by_gid, NULL);
	cr_assert(lstat(d.sock, &st) == 0);
	cr_assert(eq(u32, st.st_mode & 07777, 0660), "mode %04o", st.st_mode & 07777);
	cr_assert(eq(u32, st.st_gid, 65534), "group %u", st.st_gid);
	t_daemon_fini(&d);
	t_daemon_start(&d, by_name, NULL);
	cr_assert(lstat(d.sock, &st) == 0);
	cr_assert(eq(u32, st.st_gid, 0), "group %u", st.st_gid);
	t_daemon_fini(&d);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert(f != NULL, "%s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
}

Test(config, drop_ins_override_the_file_in_name_order_and_trailing_comments_are_comments)
{
	char dir[] = "/tmp/shmq-integ-dropin-XXXXXX", path[128], dd[160], f[200], arg[160], val[64];

	cr_assert(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/shmqd.conf", dir);
	snprintf(dd, sizeof(dd), "%s.d", path);
	cr_assert(mkdir(dd, 0755) == 0);
	write_file(path, "max-clients = 8   # a trailing comment\nmax-objects = 5\n"
			 "socket-mode = 0660\t# after a tab\n");
	snprintf(f, sizeof(f), "%s/20-later.conf", dd);
	write_file(f, "max-objects = 77 # the later one wins\n");
	snprintf(f, sizeof(f), "%s/10-first.conf", dd);
	write_file(f, "max-objects = 66\nmax-clients = 9\n");
	snprintf(f, sizeof(f), "%s/30-ignored.txt", dd);
	write_file(f, "max-clients = 1000\n");
	snprintf(arg, sizeof(arg), "--config=%s", path);
	cr_assert(eq(int, run_shmqd(arg, "--dump-config", NULL), 0), "%s", out);
	cr_assert(dumped("max-clients", val, sizeof(val)) && !strcmp(val, "9"), "max-clients %s",
		  val);
	cr_assert(dumped("max-objects", val, sizeof(val)) && !strcmp(val, "77"), "max-objects %s",
		  val);
	cr_assert(dumped("socket-mode", val, sizeof(val)) && !strcmp(val, "0660"), "socket-mode %s",
		  val);

	/* a bad drop-in stops the daemon, naming its own file and line */
	snprintf(f, sizeof(f), "%s/40-bad.conf", dd);
	write_file(f, "\nmax-clients = many\n");
	cr_assert(eq(int, run_shmqd(arg, "--dump-config", NULL), 1), "%s", out);
	snprintf(val, sizeof(val), "40-bad.conf:2");
	cr_assert(strstr(out, val) != NULL, "%s", out);
	snprintf(f, sizeof(f), "rm -rf %s", dir);
	cr_assert(system(f) == 0);
}

Test(config, dump_config_json_is_one_typed_object)
{
	static const char script[] =
		"import json, sys\n"
		"d = json.load(open(sys.argv[1], encoding='utf-8'))\n"
		"assert d['max-clients'] == 1024 and type(d['max-clients']) is int\n"
		"assert d['max-memory-per-uid'] == 1 << 30\n"
		"assert d['fd-store'] is False\n"
		"assert d['socket-mode'] == '0666' and d['log-level'] == 'info'\n"
		"assert d['socket'] == '' and d['socket-group'] == ''\n"
		"assert len(d) == 18, len(d)\n";
	char res[4096];

	cr_assert(eq(int, run_shmqd("--config=/dev/null", "--dump-config", "--json"), 0), "%s",
		  out);
	cr_assert(eq(int, t_python(script, out, res, sizeof(res), RUN_MS), 0), "%s\n--- JSON:\n%s",
		  res, out);
	cr_assert(eq(int, run_shmqd("--json", NULL, NULL), 1), "--json alone: %s", out);
}

Test(config, unknown_option_in_the_config_file_exits_1_naming_the_line)
{
	expect_bad_config("max-clients = 8\nno-such-option = 1\n", 2);
	expect_bad_config("just some words\n", 1);
}

Test(config, bad_command_line_flag_exits_nonzero)
{
	int st = run_shmqd("--no-such-flag=1", NULL, NULL);

	cr_assert(st == 1 || st == 2, "exit %d:\n%s", st, out);
	st = run_shmqd("--max-clients=lots", NULL, NULL);
	cr_assert(st == 1 || st == 2, "exit %d:\n%s", st, out);
}

Test(config, sighup_reload_applies_a_new_object_limit)
{
	struct shmq_sem_attr a = {.size = sizeof(a)};
	struct shmq_sem *s1, *s2, *s3, *s = NULL;
	struct shmq_client *c;
	uint64_t deadline;
	int r;

	t_daemon_start(&d, NULL, "max-objects-per-uid = 1\n");
	c = t_connect(&d);
	T_OK(shmq_sem_open(c, "h1", SHMQ_CREATE | SHMQ_EXCL, &a, &s1));
	T_ERR(shmq_sem_open(c, "h2", SHMQ_CREATE | SHMQ_EXCL, &a, &s), -ENOSPC);

	t_daemon_write_conf(&d, "max-objects-per-uid = 2\n");
	t_daemon_signal(&d, SIGHUP);
	/* The reload is asynchronous: poll, bounded. */
	deadline = t_now_ns() + RELOAD_MS * 1000000ull;
	while ((r = shmq_sem_open(c, "h2", SHMQ_CREATE | SHMQ_EXCL, &a, &s2)) == -ENOSPC &&
	       t_now_ns() < deadline)
		t_sleep_ms(10);
	T_OK(r);
	T_ERR(shmq_sem_open(c, "h3", SHMQ_CREATE | SHMQ_EXCL, &a, &s), -ENOSPC);

	/* A bad file on reload keeps the old configuration and the daemon running. */
	t_daemon_write_conf(&d, "max-objects-per-uid = banana\n");
	t_daemon_signal(&d, SIGHUP);
	t_sleep_ms(100);
	T_ERR(shmq_sem_open(c, "h3", SHMQ_CREATE | SHMQ_EXCL, &a, &s), -ENOSPC);
	cr_assert(eq(int, t_daemon_wait_exit(&d, 0), -ETIMEDOUT),
		  "the daemon exited on a bad reload");

	t_daemon_write_conf(&d, "max-objects-per-uid = 3\n");
	t_daemon_signal(&d, SIGHUP);
	deadline = t_now_ns() + RELOAD_MS * 1000000ull;
	while ((r = shmq_sem_open(c, "h3", SHMQ_CREATE | SHMQ_EXCL, &a, &s3)) == -ENOSPC &&
	       t_now_ns() < deadline)
		t_sleep_ms(10);
	T_OK(r);
	cr_assert(s == NULL, "ret_ was written on failure");
	T_OK(shmq_sem_close(s1));
	T_OK(shmq_sem_close(s2));
	T_OK(shmq_sem_close(s3));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(config, second_daemon_on_a_live_socket_refuses_to_start_and_the_first_keeps_serving)
{
	struct shmq_client *c;
	char sock_arg[160];
	int st;

	t_daemon_start(&d, NULL, NULL);
	snprintf(sock_arg, sizeof(sock_arg), "--socket=%s", d.sock);
	st = run_shmqd(sock_arg, "--config=/dev/null", NULL);
	cr_assert(st != 0 && st < 128, "a second shmqd on a live socket exited %d:\n%s", st, out);
	c = t_connect(&d);
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(config, the_metrics_socket_answers_get_with_openmetrics_and_refuses_the_rest)
{
	static char arg[160], msock[128];
	static const char *const args[] = {arg, NULL};
	char dir[] = "/tmp/shmq-integ-metrics-XXXXXX", script[2048], res[8192];
	const char *argv[] = {"/usr/bin/env", "python3", "-c", script, NULL};
	struct shmq_client *c;
	struct shmq_queue *q;
	struct t_daemon d2;
	struct stat st;
	int r;

	cr_assert(mkdtemp(dir) != NULL);
	snprintf(msock, sizeof(msock), "%s/metrics.sock", dir);
	snprintf(arg, sizeof(arg), "--metrics-socket=%s", msock);
	t_daemon_start(&d2, args, NULL);
	cr_assert(lstat(msock, &st) == 0 && S_ISSOCK(st.st_mode), "no socket at %s", msock);
	T_OK(shmq_client_connect(d2.sock, &c));
	T_OK(shmq_queue_open(c, "mq", SHMQ_CREATE | SHMQ_SEND, NULL, &q));
	for (int i = 0; i < 5; i++)
		T_OK(shmq_queue_send(q, "m", 1));
	snprintf(script, sizeof(script),
		 "import socket\n"
		 "def get(req):\n"
		 "    s = socket.socket(socket.AF_UNIX)\n"
		 "    s.settimeout(10)\n"
		 "    s.connect('%s')\n"
		 "    s.sendall(req)\n"
		 "    d = b''\n"
		 "    while True:\n"
		 "        c = s.recv(65536)\n"
		 "        if not c: return d.decode('utf-8')\n"
		 "        d += c\n"
		 "r = get(b'GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n"
		 "head, body = r.split('\\r\\n\\r\\n', 1)\n"
		 "assert head.startswith('HTTP/1.0 200 OK'), head\n"
		 "assert 'application/openmetrics-text' in head, head\n"
		 "assert ('Content-Length: %%d' %% len(body.encode())) in head, head\n"
		 "assert body.endswith('# EOF\\n'), body[-50:]\n"
		 "assert 'shmq_object_sent_total{name=\"mq\",kind=\"queue\"} 5\\n' in body, body\n"
		 "assert 'shmq_daemon_objects 1\\n' in body, body\n"
		 "assert get(b'GET /other HTTP/1.0\\r\\n\\r\\n').startswith('HTTP/1.0 404')\n"
		 "assert get(b'POST /metrics HTTP/1.0\\r\\n\\r\\n').startswith('HTTP/1.0 405')\n"
		 "# a request that never ends its headers is closed at 4 KiB, not kept\n"
		 "try:\n"
		 "    assert get(b'G' * 5000) == ''\n"
		 "except ConnectionResetError:\n"
		 "    pass\n",
		 msock);
	r = t_run(argv, res, sizeof(res), 20000);
	cr_assert(eq(int, r, 0), "%s", res);
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d2);
	cr_assert(lstat(msock, &st) < 0, "the metrics socket outlived the daemon");
	rmdir(dir);
}
