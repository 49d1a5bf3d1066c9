/* SPDX-License-Identifier: MIT */
/*
 * A stand-in for the subset of Criterion 2.4 that shmq's tests use, compiled
 * only into ThreadSanitizer builds (`make test SAN=thread`).
 *
 * Why it exists: Criterion's sandbox (BoxFort) maps its inheritable arena
 * with MAP_FIXED at a random address in [0x2000'0000'0000, 0x6000'0000'0000),
 * which on x86-64 is almost all TSan shadow/meta space; TSan refuses the
 * mapping and every Criterion binary aborts at start ("Could not initialize
 * inheritable arena", upstream issue Snaipe/Criterion#274, open).  The test
 * sources stay the same; this runner keeps Criterion's semantics that the
 * tests rely on: each test runs in its own forked process, a suite's
 * .timeout kills a stuck test, .init/.fini run around it, and the closing
 * line has Criterion's "Synthesis" format.  Delete it when Criterion works
 * under TSan.
 */
#ifndef SHMQ_TSAN_CRITERION_H
#define SHMQ_TSAN_CRITERION_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct criterion_test_extra_data {
	void (*init)(void);
	void (*fini)(void);
	double timeout; /* seconds; 0: none */
	bool disabled;
	const char *description;
};

struct shmq_t_test {
	const char *suite;
	const char *name;
	void (*fn)(void);
	struct criterion_test_extra_data data;
	struct shmq_t_test *next;
};

struct shmq_t_suite {
	const char *name;
	struct criterion_test_extra_data data;
	struct shmq_t_suite *next;
};

void shmq_t_register_test(struct shmq_t_test *t);
void shmq_t_register_suite(struct shmq_t_suite *s);
__attribute__((noreturn, format(printf, 4, 5))) void
shmq_t_fail(const char *file, int line, const char *expr, const char *fmt, ...);
__attribute__((noreturn, format(printf, 1, 2))) void shmq_t_skip(const char *fmt, ...);

#define Test(suite, name, ...)                                              \
	static void suite##_##name##_impl(void);                            \
	static struct shmq_t_test suite##_##name##_desc = {                 \
		#suite, #name, suite##_##name##_impl, {__VA_ARGS__}, NULL}; \
	__attribute__((constructor)) static void suite##_##name##_reg(void) \
	{                                                                   \
		shmq_t_register_test(&suite##_##name##_desc);               \
	}                                                                   \
	static void suite##_##name##_impl(void)

#define TestSuite(suite, ...)                                                          \
	static struct shmq_t_suite suite##_suite_desc = {#suite, {__VA_ARGS__}, NULL}; \
	__attribute__((constructor)) static void suite##_suite_reg(void)               \
	{                                                                              \
		shmq_t_register_suite(&suite##_suite_desc);                            \
	}

/* The leading " " keeps the format a literal when no message is given. */
#define cr_assert(expr, ...)                                                     \
	do {                                                                     \
		if (!(expr))                                                     \
			shmq_t_fail(__FILE__, __LINE__, #expr, " " __VA_ARGS__); \
	} while (0)

#define cr_fail(...) shmq_t_fail(__FILE__, __LINE__, "cr_fail", " " __VA_ARGS__)

/* Criterion's cr_skip_test(): the test ends here, neither passed nor failed. */
#define cr_skip_test(...) shmq_t_skip(" " __VA_ARGS__)

#endif /* SHMQ_TSAN_CRITERION_H */
