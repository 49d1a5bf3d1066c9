# SPDX-License-Identifier: MIT
# tools/man/: the man pages made from the sources, so they cannot drift:
# one section 3 page per function family from the kernel-doc of shmq.h
# (kdoc2man.py), and shmqd.conf(5) from the daemon's own option table
# (conf2man.py, which runs the built shmqd --dump-config).  Installed with
# the hand-written pages of man/.

MAN3_FAMILIES := shmq_barrier shmq_client shmq_cond shmq_daemon shmq_event shmq_lock \
		 shmq_pipe shmq_poller shmq_queue shmq_sem shmq_waiter
MAN3_GEN      := $(MAN3_FAMILIES:%=$(B)/man/%.3)
MAN5_GEN      := $(B)/man/shmqd.conf.5

BUILD_TARGETS += $(MAN3_GEN) $(MAN5_GEN)

# One run writes every family; the stamp stands for all of them, and a page
# the script did not write (a family list out of step) fails the build.
$(B)/man/.families: include/shmq/shmq.h tools/man/kdoc2man.py VERSION
	@mkdir -p $(@D)
	$(QUIET_GEN)/usr/bin/python3 tools/man/kdoc2man.py include/shmq/shmq.h $(VERSION) $(@D) && \
		for p in $(MAN3_GEN); do test -s $$p || { echo "$$p was not made" >&2; exit 1; }; done && \
		touch $@

$(MAN3_GEN): $(B)/man/.families ;

$(MAN5_GEN): $(DAEMON_BIN) tools/man/conf2man.py VERSION
	@mkdir -p $(@D)
	$(QUIET_GEN)/usr/bin/python3 tools/man/conf2man.py $(DAEMON_BIN) $(VERSION) $@
