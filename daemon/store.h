/* SPDX-License-Identifier: MIT */
/*
 * Persistence across a daemon restart: where segments live and the registry
 * that says what they are and who is attached.  See store.c and
 * docs/reliability.md.
 *
 * The registry is the daemon's own file (state directory) or memfd (systemd
 * fd store), never handed to a client.  It is a header and an array of
 * fixed-size records; each record is an object or an attachment.  A record
 * is written body first and its type last (release), and freed by its type
 * alone, so a daemon killed at any instruction leaves every record either
 * whole or free.
 */
#ifndef SHMQD_STORE_H
#define SHMQD_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "shm/layout.h"

#define SHMQD_REG_MAGIC	      UINT64_C(0x4745524451514d53) /* "SMQQDREG" in memory */
#define SHMQD_REG_VERSION     1
#define SHMQD_REG_RECORD_SIZE 256
#define SHMQD_REG_RECORDS_MIN 256		  /* first capacity; doubles when full */
#define SHMQD_REG_RECORDS_MAX (UINT32_C(1) << 24) /* 4 GiB of registry: never reached */

/* struct shmqd_reg_record.type */
#define SHMQD_REG_FREE	 0
#define SHMQD_REG_OBJECT 1
#define SHMQD_REG_ATTACH 2

/* struct shmqd_reg_object.flags */
#define SHMQD_REG_UNLINKED (UINT32_C(1) << 0)
#define SHMQD_REG_HUGETLB  (UINT32_C(1) << 1)

struct shmqd_reg_header {
	uint64_t magic;
	uint32_t version;
	uint32_t record_size; /* SHMQD_REG_RECORD_SIZE */
	uint32_t n_records;   /* capacity: records after the header */
	uint32_t reserved0;
	/* Lower bounds for the next ids; ids are never reused across restarts. */
	_Atomic uint64_t next_object_id;
	_Atomic uint64_t next_attach_id;
	_Atomic uint64_t next_session_id;
	uint8_t reserved[SHMQD_REG_RECORD_SIZE - 48];
};

struct shmqd_reg_object {
	uint64_t object_id;
	uint64_t size; /* segment bytes: the file's size */
	uint64_t created_realtime_ns;
	uint16_t kind;
	uint16_t reserved0;
	_Atomic uint32_t flags; /* SHMQD_REG_* */
	int32_t numa_node;
	uint32_t owner_uid;
	uint32_t owner_gid;
	uint32_t mode;
	union shmq_geom geom;
	char name[SHMQ_NAME_MAX + 1];
};

struct shmqd_reg_attach {
	uint64_t attach_id;
	uint64_t object_id;
	_Atomic uint64_t session_id; /* rewritten when a restarted client takes it back */
	uint64_t pid_start;	     /* the process's start time (/proc/PID/stat field 22) */
	int32_t pid;
	uint32_t uid;
	uint32_t gid;
	uint32_t flags;		/* granted SHMQ_OPEN_SEND/RECV/SEM/VIEW */
	uint32_t session_index; /* record in the segment, UINT32_MAX for a view */
	uint32_t reserved0;
	char client_name[32];
};

struct shmqd_reg_record {
	_Atomic uint32_t type; /* SHMQD_REG_*; written last, with release */
	uint32_t reserved0;
	union {
		struct shmqd_reg_object obj;
		struct shmqd_reg_attach att;
		uint8_t pad[SHMQD_REG_RECORD_SIZE - 8];
	} u;
};

static_assert(sizeof(struct shmqd_reg_header) == SHMQD_REG_RECORD_SIZE, "registry changed");
static_assert(sizeof(struct shmqd_reg_record) == SHMQD_REG_RECORD_SIZE, "registry changed");

enum shmqd_store_kind {
	SHMQD_STORE_NONE,    /* memfds only: objects die with the daemon */
	SHMQD_STORE_DIR,     /* files in the state directory */
	SHMQD_STORE_FDSTORE, /* memfds kept by systemd */
};

/* A descriptor systemd handed back at start (LISTEN_FDS), by name. */
struct shmqd_passed_fd {
	int fd; /* -1 once taken */
	char name[64];
};

struct shmqd_store {
	enum shmqd_store_kind kind;
	int dirfd;  /* SHMQD_STORE_DIR */
	int reg_fd; /* the registry */
	struct shmqd_reg_header *reg;
	uint32_t n_records;
	uint32_t *free_stack; /* indices of free records, top last */
	uint32_t n_free;
	struct shmqd_passed_fd *passed; /* SHMQD_STORE_FDSTORE, during start only */
	uint32_t n_passed;
};

/*
 * Validate one record read back at start.  Return: 0 usable; -EBADMSG a
 * field is out of range (the record is dropped and logged).
 */
int shmqd_reg_object_check(const struct shmqd_reg_object *r);
int shmqd_reg_attach_check(const struct shmqd_reg_attach *r);
int shmqd_reg_header_check(const struct shmqd_reg_header *h, uint64_t file_size);

/* The start time of @pid from /proc/@pid/stat, 0 if unreadable. */
uint64_t shmqd_pid_start_time(int32_t pid);

#endif /* SHMQD_STORE_H */
