/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: the segment validators over arbitrary bytes.
 *
 * The input is the whole segment, copied into a page-aligned buffer of
 * exactly its size (AddressSanitizer's redzone starts at the last byte, so
 * any read past the mapping is caught).  shmq__segment_attach() must accept
 * it or say why (-EBADMSG, -EAGAIN, -EPROTO); when it accepts,
 * shmq__segment_check() and every ring or semaphore operation runs on it,
 * and each must return one of its documented values -- never crash, read
 * out of bounds or loop (libFuzzer's -timeout catches a hang).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shm/layout.h"
#include "tests/fuzz/drive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shmq_segment seg;
	struct drive *dr;
	void *base;
	int rc;

	if (size == 0)
		return 0;
	drive_new_input();
	if (posix_memalign(&base, 4096, size))
		abort();
	memcpy(base, data, size);

	rc = shmq__segment_attach(base, size, &seg);
	if (rc != 0 && rc != -EBADMSG && rc != -EAGAIN && rc != -EPROTO)
		abort();
	if (rc == 0) {
		/* What attach promises: every part lies inside the mapping. */
		if (seg.size != size || (unsigned char *)seg.object < (unsigned char *)base ||
		    (unsigned char *)seg.object >= (unsigned char *)base + size)
			abort();
		rc = shmq__segment_check(&seg);
		if (rc != 0 && rc != -EBADMSG)
			abort();
		/* The last bytes of the input pick the session record to act as. */
		dr = drive_open(&seg, data[size - 1] & 7);
		drive_all(dr);
		drive_close(dr);
	}
	free(base);
	return 0;
}
