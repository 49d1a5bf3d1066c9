/* SPDX-License-Identifier: MIT */
/*
 * How the examples connect: shmq_client_connect(), and on failure a message
 * that names the socket it tried and the likely fix.
 */
#ifndef SHMQ_EXAMPLES_CONNECT_H
#define SHMQ_EXAMPLES_CONNECT_H

#include <errno.h>
#include <stdio.h>

#include <shmq/shmq.h>

static inline int example_connect(const char *prog, const char *path, struct shmq_client **ret)
{
	char sock[128];
	int r = shmq_client_connect(path, ret);

	if (r >= 0)
		return r;
	if (shmq_client_socket_path(path, sock, sizeof(sock)) < 0)
		snprintf(sock, sizeof(sock), "%s", path ? path : "(default)");
	fprintf(stderr, "%s: connecting to shmqd at %s: %s\n", prog, sock, shmq_strerror(r));
	if (r == -ENOENT || r == -ECONNREFUSED)
		fprintf(stderr, "%s: hint: start shmqd (make run), or pass --socket PATH\n", prog);
	else if (r == -EACCES)
		fprintf(stderr, "%s: hint: the system daemon accepts root and group shmq\n", prog);
	return r;
}

#endif
