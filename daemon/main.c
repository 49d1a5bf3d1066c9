/* SPDX-License-Identifier: MIT */
/*
 * shmqd: the shmq daemon.  main() only calls run(), whose steps each return
 * -errno and log their own detail: parse argv, load the configuration,
 * create the state and bind the control socket (or take it from socket
 * activation), tell systemd READY=1, serve until SIGTERM/SIGINT.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "daemon/config.h"
#include "daemon/log.h"
#include "daemon/shmqd.h"

static int run(int argc, char *argv[])
{
	struct shmqd_config cfg;
	struct shmqd_args args;
	struct shmqd d;
	int r;

	shmqd_log_init();
	r = shmqd_config_parse_argv(&args, argc, argv);
	if (r <= 0)
		return r; /* 0: --help/--version printed */

	r = shmqd_config_load(&cfg, &args);
	if (r < 0)
		return r; /* logged with file:line */
	if (args.json && !args.dump_config) {
		log_error("--json goes with --dump-config; see --help");
		return -EINVAL;
	}
	if (args.dump_config) {
		if (args.json)
			shmqd_config_dump_json(&cfg, stdout);
		else
			shmqd_config_dump(&cfg, stdout);
		return 0;
	}
	shmqd_log_set_level((int)cfg.log_level);

	r = shmqd_init(&d, &cfg, &args);
	if (r >= 0) {
		sd_notifyf(0, "READY=1\nSTATUS=Serving clients on %s", d.socket_path);
		r = shmqd_loop(&d);
		sd_notify(0, "STOPPING=1\nSTATUS=Stopping");
	} else {
		sd_notifyf(0, "STATUS=Failed to start: %s\nERRNO=%d", strerror(-r), -r);
	}
	shmqd_fini(&d);
	return r;
}

int main(int argc, char *argv[])
{
	return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
