/* SPDX-License-Identifier: MIT */
/*
 * hello: the smallest libshmq client.  Connect to shmqd, create a queue,
 * send "hello" into it, receive it back, print it, remove the queue's name
 * and disconnect.
 *
 * Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmq/shmq.h>

#include "connect.h"

static const char *prog = "hello";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [--socket PATH] [--queue NAME]\n"
		"Create a queue, send \"hello\" through it, print what comes back.\n"
		"  -s, --socket PATH  shmqd control socket (default: $SHMQ_SOCKET, else the\n"
		"                     library's default path)\n"
		"  -q, --queue NAME   queue to create (default: hello-PID); must not exist\n"
		"  -h, --help         this text\n",
		prog);
}

static int fail(const char *what, int r)
{
	/* the daemon's (or libshmq's) reason, when there is one: it says why */
	if (shmq_last_error()[0])
		fprintf(stderr, "%s: %s: %s: %s\n", prog, what, shmq_strerror(r),
			shmq_last_error());
	else
		fprintf(stderr, "%s: %s: %s\n", prog, what, shmq_strerror(r));
	return EXIT_FAILURE;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"queue", required_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *socket_path = NULL;
	char name[64];
	struct shmq_client *c;
	struct shmq_queue *q;
	char buf[64];
	int opt, r, n, status;

	snprintf(name, sizeof(name), "hello-%d", (int)getpid());
	while ((opt = getopt_long(argc, argv, "s:q:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			socket_path = optarg;
			break;
		case 'q':
			snprintf(name, sizeof(name), "%s", optarg);
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	r = example_connect(prog, socket_path, &c);
	if (r < 0)
		return EXIT_FAILURE;

	/* EXCL: never clobber, and never unlink, a queue somebody else owns. */
	r = shmq_queue_open(c, name, SHMQ_CREATE | SHMQ_EXCL | SHMQ_SEND | SHMQ_RECV, NULL, &q);
	if (r < 0) {
		status = fail("creating the queue", r);
		shmq_client_close(c);
		return status;
	}

	status = EXIT_FAILURE;
	r = shmq_queue_send(q, "hello", strlen("hello"));
	if (r < 0) {
		fail("send", r);
		goto out;
	}
	n = shmq_queue_recv_wait(q, buf, sizeof(buf) - 1, shmq_deadline_after(1000000000));
	if (n < 0) {
		fail("receive", n);
		goto out;
	}
	buf[n] = '\0';
	printf("received \"%s\" through queue %s\n", buf, name);
	status = strcmp(buf, "hello") ? EXIT_FAILURE : EXIT_SUCCESS;

out:
	r = shmq_unlink(c, name);
	if (r < 0)
		status = fail("unlinking the queue", r);
	shmq_queue_close(q);
	shmq_client_close(c);
	return status;
}
