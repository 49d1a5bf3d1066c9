/* SPDX-License-Identifier: MIT */
/*
 * The message format shared by examples/producer.c and examples/consumer.c:
 * a small header with the producer's id, a sequence number and a checksum,
 * then a payload derived from both, so the consumer can tell a torn, lost,
 * duplicated or reordered message from a good one.
 */
#ifndef SHMQ_EXAMPLES_MESSAGE_H
#define SHMQ_EXAMPLES_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MSG_MAGIC UINT32_C(0x4d51534d) /* "MSQM" in memory */
#define MSG_DATA  1
#define MSG_END	  2 /* one per consumer after the last DATA; seq = DATA messages sent */

struct msg_hdr {
	uint32_t magic;
	uint32_t type;	   /* MSG_DATA or MSG_END */
	uint32_t producer; /* the producer's pid: unique among live producers */
	uint32_t len;	   /* whole message, header included */
	uint64_t seq;	   /* DATA: 0, 1, 2, ... per producer */
	uint32_t checksum; /* FNV-1a of the whole message with this field zero */
	uint32_t reserved;
};

static inline uint32_t msg_checksum(const void *msg, size_t len)
{
	const unsigned char *p = msg;
	uint32_t h = UINT32_C(2166136261);

	for (size_t i = 0; i < len; i++) {
		/* The checksum field itself counts as zero. */
		unsigned char b = (i >= offsetof(struct msg_hdr, checksum) &&
				   i < offsetof(struct msg_hdr, checksum) + sizeof(uint32_t))
					  ? 0
					  : p[i];

		h = (h ^ b) * UINT32_C(16777619);
	}
	return h;
}

/* Fill @buf (@len >= sizeof(struct msg_hdr) bytes) with a complete message. */
static inline void msg_build(void *buf, size_t len, uint32_t type, uint32_t producer, uint64_t seq)
{
	struct msg_hdr h = {
		.magic = MSG_MAGIC,
		.type = type,
		.producer = producer,
		.len = (uint32_t)len,
		.seq = seq,
	};
	unsigned char *p = buf;

	memcpy(p, &h, sizeof(h));
	for (size_t i = sizeof(h); i < len; i++)
		p[i] = (unsigned char)(seq * 131 + i * 7 + producer);
	h.checksum = msg_checksum(p, len);
	memcpy(p + offsetof(struct msg_hdr, checksum), &h.checksum, sizeof(h.checksum));
}

/* Return: 0 and *@ret_hdr if @msg of @len bytes is intact, else -1. */
static inline int msg_check(const void *msg, size_t len, struct msg_hdr *ret_hdr)
{
	struct msg_hdr h;

	if (len < sizeof(h))
		return -1;
	memcpy(&h, msg, sizeof(h));
	if (h.magic != MSG_MAGIC || h.len != len || (h.type != MSG_DATA && h.type != MSG_END))
		return -1;
	if (msg_checksum(msg, len) != h.checksum)
		return -1;
	*ret_hdr = h;
	return 0;
}

#endif /* SHMQ_EXAMPLES_MESSAGE_H */
