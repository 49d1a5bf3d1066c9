/* SPDX-License-Identifier: MIT */
/*
 * Shared by the segment harnesses: run the ring or semaphore operations on
 * an attached segment, as a peer process would, and check that each one
 * returns a documented value.  See drive.c.
 */
#ifndef SHMQ_TESTS_FUZZ_DRIVE_H
#define SHMQ_TESTS_FUZZ_DRIVE_H

#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

/* Operations per script byte; a script of n bytes runs at most n operations. */
#define DRIVE_OPS_MAX 64

struct drive;

/* Start of an input: forget what the last one found (see post() in drive.c). */
void drive_new_input(void);

/* Handles on @seg for a session record (or none); NULL if @seg has no usable kind. */
struct drive *drive_open(struct shmq_segment *seg, uint8_t who);
/* One operation chosen by @op. */
void drive_step(struct drive *dr, uint8_t op);
/* Every operation once, in a fixed order. */
void drive_all(struct drive *dr);
void drive_close(struct drive *dr);

#endif /* SHMQ_TESTS_FUZZ_DRIVE_H */
