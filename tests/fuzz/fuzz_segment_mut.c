/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: a valid segment, scribbled on while in use.
 *
 * Structure-aware, so the fuzzer starts past the magic and geometry checks:
 *
 *   byte 0   the object: bit 0 kind (queue / other), then bits 7..6: 00
 *            semaphore, 10 event, 11 lock, 01 condition (bit 5 clear) or
 *            barrier (bit 5 set); an event's initial state, a lock's
 *            recursive flag, is bit 1, a barrier's parties 1 + bits 1..2;
 *            queues (bit 7 clear): bits 1..2 mode, bits 3..4 log2(slots) - 1,
 *            bits 5..6 slot size 16 << n; pipes (bit 7 set): bit 1 one-way,
 *            slots and slot size as a queue's; semaphores: bits 1..2 flags, bits 3..4 the
 *            initial value, bit 5 the bound above it
 *   byte 1   bit 6: a queue is joinable; bit 5: its messages go up to 256
 *            bytes, through an arena past the slot size; the other bits the
 *            session record this peer acts as (>= 4: none)
 *   then     records of 4 bytes [u8 op][u16 offset, little endian][u8 value]
 *            op < 0x80: write value at offset (mod the segment size), i.e.
 *                       a peer with write access scribbles on the segment;
 *            op >= 0x80: run operation op (drive.c); every 16th also
 *                       re-attaches the scribbled segment from scratch,
 *                       as a process opening it now would.
 *
 * A segment is formatted fresh for each input; the operations run on the
 * geometry copied at the first attach, whatever the header says later.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shm/layout.h"
#include "shm/sem.h"
#include "tests/fuzz/drive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void params_from(uint8_t b, struct shmq_segment_params *p)
{
	memset(p, 0, sizeof(*p));
	p->n_sessions = 4;
	p->name = "fuzz";
	p->mode = 0600;
	p->object_id = 1;
	if (!(b & 1) && (b & 0x80)) {
		p->kind = SHMQ_KIND_PIPE;
		p->geom.pipe.flags = (b >> 1) & SHMQ_PIPE_ONEWAY;
		p->geom.pipe.n_slots = UINT32_C(2) << ((b >> 3) & 3);
		p->geom.pipe.slot_size = UINT32_C(16) << ((b >> 5) & 3);
	} else if (!(b & 1)) {
		p->kind = SHMQ_KIND_QUEUE;
		p->geom.queue.mode = (b >> 1) & 3;
		p->geom.queue.n_slots = UINT32_C(2) << ((b >> 3) & 3);
		p->geom.queue.slot_size = UINT32_C(16) << ((b >> 5) & 3);
		p->geom.queue.numa_node = -1;
	} else if ((b & 0xc0) == 0x40 && !(b & 0x20)) {
		p->kind = SHMQ_KIND_COND;
		p->geom.cond.lock_id = 2;
	} else if ((b & 0xc0) == 0x40) {
		p->kind = SHMQ_KIND_BARRIER;
		p->geom.barrier.parties = 1 + ((b >> 1) & 3);
	} else if ((b & 0xc0) == 0xc0) {
		p->kind = SHMQ_KIND_LOCK;
		p->geom.lock.flags = (b >> 1) & SHMQ_LOCK_RECURSIVE;
	} else if (b & 0x80) {
		p->kind = SHMQ_KIND_EVENT;
		p->geom.event.initial = (b >> 1) & 1;
	} else {
		p->kind = SHMQ_KIND_SEM;
		p->geom.sem.flags = (b >> 1) & 3;
		p->geom.sem.initial = (b >> 3) & 3;
		if (p->geom.sem.flags & SHMQ_SEM_BOUNDED)
			p->geom.sem.max = p->geom.sem.initial + ((b >> 5) & 3);
		if (p->geom.sem.max == 0 && (p->geom.sem.flags & SHMQ_SEM_BOUNDED))
			p->geom.sem.max = 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shmq_segment_params p;
	struct shmq_segment seg, again;
	struct drive *dr;
	uint64_t seg_size;
	unsigned int ops = 0;
	void *base;
	int rc;

	if (size < 2)
		return 0;
	drive_new_input();
	params_from(data[0], &p);
	if (p.kind == SHMQ_KIND_QUEUE && (data[1] & 0x40))
		p.geom.queue.flags = SHMQ_QUEUE_F_JOINABLE;
	if (p.kind == SHMQ_KIND_QUEUE && (data[1] & 0x20) && p.geom.queue.slot_size < 256)
		p.geom.queue.max_msg = 256;
	if (shmq__segment_size(&p, &seg_size) < 0)
		abort();
	if (posix_memalign(&base, 4096, seg_size))
		abort();
	memset(base, 0, seg_size);
	if (shmq__segment_format(base, seg_size, &p) < 0 ||
	    shmq__segment_attach(base, seg_size, &seg) < 0 || shmq__segment_check(&seg) < 0)
		abort(); /* a freshly formatted segment is valid */
	dr = drive_open(&seg, data[1] & 0x9f);

	for (size_t at = 2; at + 4 <= size; at += 4) {
		uint8_t op = data[at];
		size_t off = ((size_t)data[at + 1] | (size_t)data[at + 2] << 8) % seg_size;

		if (op < 0x80) {
			((volatile unsigned char *)base)[off] = data[at + 3];
			continue;
		}
		drive_step(dr, (uint8_t)(op << 1 | (data[at + 3] & 1)));
		if (++ops % 16 == 0) {
			rc = shmq__segment_attach(base, seg_size, &again);
			if (rc != 0 && rc != -EBADMSG && rc != -EAGAIN && rc != -EPROTO)
				abort();
			if (rc == 0 && shmq__segment_check(&again) == 0) {
				struct drive *d2 = drive_open(&again, data[at + 3] >> 4);

				drive_all(d2);
				drive_close(d2);
			}
		}
	}
	drive_all(dr);
	drive_close(dr);
	free(base);
	return 0;
}
