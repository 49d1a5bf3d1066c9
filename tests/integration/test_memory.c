/* SPDX-License-Identifier: MIT */
/*
 * Integration: where the daemon puts a queue's memory.  NUMA binding to an
 * existing and a missing node, and huge pages with and without a pool.
 *
 * The huge-page test adapts to the machine instead of skipping: with an
 * empty pool it expects -ENOMEM; when it may resize the pool (root), it
 * sets 16 pages, expects the create to succeed and to take pages from the
 * pool, and puts the old size back before asserting anything.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "tests/helpers.h"
#include "tests/integration/daemon.h"

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"
#define POOL_PAGES   16

static struct t_daemon d;

static void setup(void)
{
	t_daemon_start(&d, NULL, NULL);
}

TestSuite(memory, .init = setup, .fini = t_daemon_cleanup_all, .timeout = 30);

static struct shmq_queue_attr qattr(int32_t numa_node)
{
	return (struct shmq_queue_attr){
		.size = sizeof(struct shmq_queue_attr),
		.n_slots = 64,
		.slot_size = 256,
		.mode = SHMQ_MPMC,
		.numa_node = numa_node,
		.perm = 0600,
		.flags = numa_node >= 0 ? SHMQ_QUEUE_NUMA : 0,
	};
}

static bool node_exists(int node)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", node);
	return stat(path, &st) == 0;
}

Test(memory, create_bound_to_numa_node_0_succeeds_and_carries_data)
{
	struct shmq_queue_attr a = qattr(0);
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q;
	char buf[8];

	T_OK(shmq_queue_open(c, "numa0", SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND | SHMQ_RECV, &a, &q));
	T_OK(shmq_queue_send(q, "node0", 5));
	cr_assert(eq(int, shmq_queue_recv(q, buf, sizeof(buf)), 5));
	T_OK(shmq_queue_close(q));
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

Test(memory, create_bound_to_a_missing_numa_node_returns_enodev)
{
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = NULL;
	int node = 5;

	while (node_exists(node))
		node++;
	{
		struct shmq_queue_attr a = qattr(node);

		T_ERR(shmq_queue_open(c, "numa-missing", SHMQ_CREATE | SHMQ_SEND, &a, &q), -ENODEV);
	}
	cr_assert(q == NULL, "ret_ was written on failure");
	{
		struct shmq_queue *v = NULL;

		T_ERR(shmq_queue_open(c, "numa-missing", SHMQ_VIEW, NULL, &v), -ENOENT);
	}
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static bool write_long(const char *path, long v)
{
	FILE *f = fopen(path, "we");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

static long meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':')
			v = strtol(line + strlen(key) + 1, NULL, 10);
	fclose(f);
	return v;
}

Test(memory, hugepage_create_follows_the_state_of_the_hugepage_pool)
{
	struct shmq_queue_attr a = qattr(-1);
	struct shmq_client *c = t_connect(&d);
	struct shmq_queue *q = NULL;
	long old = read_long(NR_HUGEPAGES), free_before, free_during = -1;
	int r_empty = 1, r_pool = 1;
	bool resized = false;

	cr_assert(old >= 0, "cannot read " NR_HUGEPAGES);
	free_before = meminfo("HugePages_Free");
	if (free_before == 0) {
		/* No pages to be had: the create must say so. */
		r_empty = shmq_queue_open(c, "huge0", SHMQ_CREATE | SHMQ_SEND | SHMQ_HUGEPAGES, &a,
					  &q);
		if (r_empty == 0)
			shmq_queue_close(q);
		q = NULL;
		resized = write_long(NR_HUGEPAGES, old + POOL_PAGES) &&
			  read_long(NR_HUGEPAGES) >= old + 1;
	}
	if (resized || free_before > 0) {
		r_pool = shmq_queue_open(
			c, "huge1",
			SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND | SHMQ_RECV | SHMQ_HUGEPAGES, &a, &q);
		free_during = meminfo("HugePages_Free");
		if (r_pool == 0) {
			char buf[8];

			/* The memory works; then give it back before the pool shrinks. */
			if (shmq_queue_send(q, "huge", 4) != 0 ||
			    shmq_queue_recv(q, buf, sizeof(buf)) != 4)
				r_pool = -EIO;
			shmq_queue_close(q);
			shmq_unlink(c, "huge1");
		}
	}
	if (resized)
		write_long(NR_HUGEPAGES, old);

	cr_assert(free_before >= 0, "no HugePages_Free in /proc/meminfo");
	if (free_before == 0)
		T_ERR(r_empty, -ENOMEM);
	if (resized || free_before > 0) {
		T_OK(r_pool);
		cr_assert(free_during < (resized ? free_before + POOL_PAGES : free_before),
			  "the queue took no page from the pool (free %ld during)", free_during);
	}
	fprintf(stderr, "hugepages: pool %ld, free %ld, resized %s\n", old, free_before,
		resized ? "yes" : "no");
	T_OK(shmq_client_close(c));
	t_daemon_fini(&d);
}
