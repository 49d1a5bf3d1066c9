/* SPDX-License-Identifier: MIT */
/*
 * Segment memory: a sealed memfd, sized and mapped by the daemon, optionally
 * bound to a NUMA node and optionally backed by huge pages.
 *
 * DESIGN
 *
 * Order matters, and each step has its reason:
 *
 *   memfd_create   MFD_ALLOW_SEALING so the size can be frozen; MFD_HUGETLB
 *                  when asked.
 *   fchmod 0400    a descriptor is not a capability on its own: anyone who
 *                  holds one can reopen /proc/self/fd/N, and that open is
 *                  checked against the inode's mode.  memfds start at 0777,
 *                  so a viewer's read-only descriptor could be reopened
 *                  read-write.  Owner-read-only closes that for every uid
 *                  but the daemon's own (and root).
 *   ftruncate      the size, rounded to the huge page size for hugetlb (the
 *                  kernel refuses anything else).
 *   mmap           MAP_SHARED read-write.  For hugetlb this reserves the
 *                  pages, so a pool that is too small fails here with ENOMEM
 *                  instead of a SIGBUS later.
 *   mbind          MPOL_BIND to the node, before anything touches a page:
 *                  the policy applies to pages allocated after it, and
 *                  shmem/hugetlb keep it as the file's shared policy, so it
 *                  holds for every process that maps the segment.
 *   populate       MADV_POPULATE_WRITE allocates every page now and reports
 *                  failure as an error (ENOMEM, EFAULT) where a plain first
 *                  touch would raise SIGBUS in the daemon (hugetlb pages on
 *                  a node that has none free, memory cgroup limits).
 *   (format)       done by the caller, object.c.
 *   seal           F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL: no client can
 *                  truncate the segment under the others, and nobody can
 *                  lift the seals.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/shmqd.h"

#define PAGE_SIZE_BYTES UINT64_C(4096)
#define NODEMASK_LONGS	16 /* 1024 nodes: the kernel's MAX_NUMNODES upper bound */

/*
 * libnuma reports failures by calling these (weak in libnuma) and printing
 * to stderr.  The daemon checks every return value itself and logs once
 * where it handles the error, so libnuma's own messages go to debug.
 */
void numa_error(char *where)
{
	log_debug("libnuma: %s: %s", where, strerror(errno));
}

void numa_warn(int num, char *fmt, ...)
{
	log_debug("libnuma warning %d: %s", num, fmt);
}

int shmqd_memory_numa_check(bool numa_ok, int32_t node)
{
	struct bitmask *allowed;
	bool ok;

	if (node < 0)
		return 0;
	if (!numa_ok)
		return log_client_errno(
			LOG_WARNING, -ENODEV,
			"NUMA node %" PRId32 " requested, but NUMA is not available", node);
	if (node > numa_max_node() || node >= NODEMASK_LONGS * 64)
		return log_client_errno(LOG_WARNING, -ENODEV,
					"NUMA node %" PRId32 " does not exist (highest node is %d)",
					node, numa_max_node());
	allowed = numa_get_mems_allowed();
	if (!allowed)
		return log_client_errno(LOG_WARNING, -ENOMEM, "numa_get_mems_allowed");
	ok = numa_bitmask_isbitset(allowed, (unsigned int)node);
	numa_free_nodemask(allowed);
	if (!ok)
		return log_client_errno(LOG_WARNING, -ENODEV,
					"NUMA node %" PRId32
					" is not in this daemon's allowed memory nodes (cpuset)",
					node);
	return 0;
}

/* Default huge page size from /proc/meminfo; 0 when the kernel has none. */
static uint64_t hugepage_size(void)
{
	static uint64_t cached;
	char line[128];
	FILE *f;

	if (cached)
		return cached;
	f = fopen("/proc/meminfo", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kb;

		if (sscanf(line, "Hugepagesize: %llu kB", &kb) == 1) {
			cached = (uint64_t)kb * 1024;
			break;
		}
	}
	fclose(f);
	return cached;
}

/* Free huge pages of the default size, for the log line only. */
static long hugepages_free(void)
{
	char path[96];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path),
		 "/sys/kernel/mm/hugepages/hugepages-%" PRIu64 "kB/free_hugepages",
		 hugepage_size() / 1024);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

int shmqd_memory_round(uint64_t seg_size, bool hugetlb, uint64_t *ret_size)
{
	uint64_t unit = PAGE_SIZE_BYTES;

	if (hugetlb) {
		unit = hugepage_size();
		if (!unit)
			return log_client_errno(LOG_WARNING, -ENOMEM,
						"huge pages requested, but this kernel has none");
	}
	*ret_size = (seg_size + unit - 1) / unit * unit;
	return 0;
}

/* Whatever the kernel said (ENOMEM, EFAULT, EINVAL...), the client hears -ENOMEM. */
static int no_hugepages(const char *name, uint64_t size, int r)
{
	uint64_t hp = hugepage_size();

	log_client_errno(LOG_WARNING, r,
			 "'%s': cannot get %" PRIu64 " huge pages of %" PRIu64
			 " kB (%ld free; see /proc/sys/vm/nr_hugepages)",
			 name, size / hp, hp / 1024, hugepages_free());
	return -ENOMEM;
}

/*
 * In a state directory the segment is a regular file, created 0600 in a
 * 0700 directory the daemon owns: only the daemon's uid (and root) can
 * open it by path or through /proc/PID/fd.  tmpfs files cannot be sealed,
 * and hugetlb pages cannot live on a tmpfs: see docs/reliability.md.
 */
static int file_create(int dirfd, const char *file, const char *name, bool hugetlb)
{
	int fd;

	if (hugetlb)
		return log_client_errno(LOG_NOTICE, -EOPNOTSUPP,
					"'%s': huge pages cannot be kept in a state directory on "
					"tmpfs; use fd-store, or no persistence",
					name);
	fd = openat(dirfd, file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return log_client_errno(LOG_WARNING, -errno,
					"'%s': creating %s in the state directory", name, file);
	return fd;
}

int shmqd_memory_new(const char *name, uint64_t size, bool hugetlb, int32_t node, int dirfd,
		     const char *file, struct shmqd_memory *ret)
{
	struct shmqd_memory m = {.fd = -1, .base = MAP_FAILED, .size = size};
	char fdname[SHMQ_NAME_MAX + 8];
	int r;

	if (dirfd >= 0) {
		m.fd = file_create(dirfd, file, name, hugetlb);
		if (m.fd < 0)
			return m.fd;
		goto sized;
	}
	/* Shows as /memfd:shmq:NAME in /proc/PID/fd and /proc/PID/maps. */
	snprintf(fdname, sizeof(fdname), "shmq:%s", name);
	m.fd = memfd_create(fdname, MFD_CLOEXEC | MFD_ALLOW_SEALING | (hugetlb ? MFD_HUGETLB : 0));
	if (m.fd < 0) {
		r = -errno;
		if (hugetlb)
			return no_hugepages(name, size, r);
		return log_client_errno(LOG_WARNING, r, "'%s': memfd_create", name);
	}
	if (fchmod(m.fd, S_IRUSR) < 0) {
		r = log_client_errno(LOG_WARNING, -errno, "'%s': fchmod of the memfd", name);
		goto fail;
	}
sized:
	if (ftruncate(m.fd, (off_t)size) < 0) {
		r = -errno;
		if (hugetlb)
			r = no_hugepages(name, size, r);
		else
			r = log_client_errno(LOG_WARNING, r,
					     "'%s': sizing the memfd to %" PRIu64 " bytes", name,
					     size);
		goto fail;
	}
	m.base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd, 0);
	if (m.base == MAP_FAILED) {
		r = -errno;
		if (hugetlb && r == -ENOMEM)
			r = no_hugepages(name, size, r);
		else
			r = log_client_errno(LOG_WARNING, r, "'%s': mapping %" PRIu64 " bytes",
					     name, size);
		goto fail;
	}
	if (node >= 0) {
		unsigned long mask[NODEMASK_LONGS] = {0};

		mask[node / 64] = 1UL << (node % 64);
		/* maxnode counts one more than the bits the kernel reads (mbind(2)). */
		if (mbind(m.base, size, MPOL_BIND, mask, NODEMASK_LONGS * 64 + 1, 0) < 0) {
			r = log_client_errno(LOG_WARNING, -errno,
					     "'%s': binding to NUMA node %" PRId32, name, node);
			goto fail;
		}
	}
	if (madvise(m.base, size, MADV_POPULATE_WRITE) < 0 && errno != EINVAL) {
		r = -errno;
		if (hugetlb)
			r = no_hugepages(name, size, r);
		else {
			log_client_errno(LOG_WARNING, r,
					 "'%s': cannot allocate %" PRIu64 " bytes%s", name, size,
					 node >= 0 ? " on the requested NUMA node" : "");
			r = -ENOMEM;
		}
		goto fail;
	}
	*ret = m;
	return 0;

fail:
	shmqd_memory_free(&m);
	return r;
}

int shmqd_memory_seal(const struct shmqd_memory *m)
{
	if (fcntl(m->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return log_client_errno(LOG_WARNING, -errno, "sealing a segment memfd");
	return 0;
}

void shmqd_memory_log_placement(const struct shmqd_memory *m, const char *name, int32_t node)
{
	int actual = -1;

	if (node < 0)
		return;
	/* MPOL_F_NODE|MPOL_F_ADDR: the node of the page at base (populated above). */
	if (get_mempolicy(&actual, NULL, 0, m->base, MPOL_F_NODE | MPOL_F_ADDR) < 0) {
		log_client_errno(LOG_WARNING, -errno,
				 "'%s': querying the NUMA node of the first page", name);
		return;
	}
	if (actual != node)
		log_warning("'%s': bound to NUMA node %" PRId32
			    ", but the first page is on node %d",
			    name, node, actual);
	else
		log_info("'%s': bound to NUMA node %" PRId32 "; first page is on node %d", name,
			 node, actual);
}

int shmqd_memory_open_readonly(int fd)
{
	char path[40];
	int ro;

	/*
	 * A new open file description, read-only: mmap(PROT_WRITE, MAP_SHARED)
	 * on it fails with EACCES, and F_SETFL cannot change an access mode.
	 * The daemon may open it despite mode 0400 because it owns the inode.
	 */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	if (ro < 0)
		return log_client_errno(LOG_WARNING, -errno, "reopening %s read-only", path);
	return ro;
}

int shmqd_memory_map_existing(int fd, uint64_t size, struct shmqd_memory *ret)
{
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (base == MAP_FAILED)
		return -errno;
	*ret = (struct shmqd_memory){.fd = fd, .base = base, .size = size};
	return 0;
}

void shmqd_memory_free(struct shmqd_memory *m)
{
	if (m->base != MAP_FAILED && m->base)
		munmap(m->base, m->size);
	if (m->fd >= 0)
		close(m->fd);
	m->base = MAP_FAILED;
	m->fd = -1;
}
