/* SPDX-License-Identifier: MIT */
/* Test runner for the TSan stand-in for Criterion: see criterion/criterion.h. */
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "criterion/criterion.h"

static struct shmq_t_test *tests;
static struct shmq_t_suite *suites;

void shmq_t_register_test(struct shmq_t_test *t)
{
	t->next = tests;
	tests = t;
}

void shmq_t_register_suite(struct shmq_t_suite *s)
{
	s->next = suites;
	suites = s;
}

void shmq_t_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[----] %s:%d: Assertion Failed: %s\n[----]  ", file, line, expr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Exit status of a skipped test's process (automake's "skipped" code). */
#define SKIP_STATUS 77

void shmq_t_skip(const char *fmt, ...)
{
	va_list ap;

	fputs("[SKIP] ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(NULL);
	_exit(SKIP_STATUS);
}

static const struct shmq_t_suite *suite_of(const struct shmq_t_test *t)
{
	for (const struct shmq_t_suite *s = suites; s; s = s->next)
		if (!strcmp(s->name, t->suite))
			return s;
	return NULL;
}

static int cmp_tests(const void *a, const void *b)
{
	const struct shmq_t_test *x = *(struct shmq_t_test *const *)a;
	const struct shmq_t_test *y = *(struct shmq_t_test *const *)b;
	int r = strcmp(x->suite, y->suite);

	return r ? r : strcmp(x->name, y->name);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run one test in a child process; return true when it passed. */
static bool run_one(const struct shmq_t_test *t)
{
	const struct shmq_t_suite *s = suite_of(t);
	double timeout = t->data.timeout ? t->data.timeout : s ? s->data.timeout : 0;
	void (*init)(void) = t->data.init ? t->data.init : s ? s->data.init : NULL;
	void (*fini)(void) = t->data.fini ? t->data.fini : s ? s->data.fini : NULL;
	double t0 = now_s();
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "fork: %s\n", strerror(errno));
		return false;
	}
	if (pid == 0) {
		if (timeout > 0)
			alarm((unsigned int)ceil(timeout));
		if (init)
			init();
		t->fn();
		if (fini)
			fini();
		fflush(NULL);
		_exit(0);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		printf("[PASS] %s::%s: (%.2fs)\n", t->suite, t->name, now_s() - t0);
		return true;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == SKIP_STATUS) {
		printf("[SKIP] %s::%s: (%.2fs)\n", t->suite, t->name, now_s() - t0);
		return true; /* not a failure, as in Criterion */
	}
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
		printf("[FAIL] %s::%s: Timed out. (%.2fs)\n", t->suite, t->name, now_s() - t0);
	else if (WIFSIGNALED(st))
		printf("[FAIL] %s::%s: CRASH! signal %d (%.2fs)\n", t->suite, t->name, WTERMSIG(st),
		       now_s() - t0);
	else
		printf("[FAIL] %s::%s: exit %d (%.2fs)\n", t->suite, t->name, WEXITSTATUS(st),
		       now_s() - t0);
	return false;
}

/*
 * Criterion's "suite/test" glob (the form the Makefile uses), or this
 * runner's older "suite::test" prefix.
 */
static bool filter_match(const char *filter, const struct shmq_t_test *t)
{
	char full[512];

	if (strchr(filter, '/')) {
		snprintf(full, sizeof(full), "%s/%s", t->suite, t->name);
		return fnmatch(filter, full, 0) == 0;
	}
	snprintf(full, sizeof(full), "%s::%s", t->suite, t->name);
	return strncmp(full, filter, strlen(filter)) == 0;
}

int main(int argc, char *argv[])
{
	const char *filter = NULL;
	struct shmq_t_test **v;
	size_t n = 0, passed = 0, failed = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--filter") && i + 1 < argc)
			filter = argv[++i];
		else if (!strcmp(argv[i], "--jobs") && i + 1 < argc)
			i++; /* accepted for Criterion compatibility; runs serially */
		else if (!strcmp(argv[i], "--help")) {
			printf("usage: %s [--filter SUITE/GLOB | SUITE[::TEST]] [--jobs N]\n",
			       argv[0]);
			return 0;
		}
	}

	for (struct shmq_t_test *t = tests; t; t = t->next)
		n++;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return 1;
	n = 0;
	for (struct shmq_t_test *t = tests; t; t = t->next)
		v[n++] = t;
	qsort(v, n, sizeof(*v), cmp_tests);

	for (size_t i = 0; i < n; i++) {
		char full[512];

		snprintf(full, sizeof(full), "%s::%s", v[i]->suite, v[i]->name);
		if (v[i]->data.disabled || (filter && !filter_match(filter, v[i])))
			continue;
		if (run_one(v[i]))
			passed++;
		else
			failed++;
	}
	printf("[====] Synthesis: Tested: %zu | Passing: %zu | Failing: %zu | Crashing: 0 \n",
	       passed + failed, passed, failed);
	free(v);
	return failed ? 1 : 0;
}
