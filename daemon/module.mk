# SPDX-License-Identifier: MIT
# shmqd, the daemon.  Included by the top-level Makefile after ALL_OBJ.
#   make build/shmqd     just the daemon
#   make run             build it and run it in the foreground with the
#                        built-in defaults (SHMQD_RUN_ARGS adds flags)

DAEMON_SRC := daemon/adopt.c \
	      daemon/barrier.c \
	      daemon/cond.c \
	      daemon/config.c \
	      daemon/event.c \
	      daemon/lock.c \
	      daemon/pipe.c \
	      daemon/kind.c \
	      daemon/listen.c \
	      daemon/log.c \
	      daemon/loop.c \
	      daemon/main.c \
	      daemon/memory.c \
	      daemon/metrics.c \
	      daemon/object.c \
	      daemon/queue.c \
	      daemon/request.c \
	      daemon/sem.c \
	      daemon/session.c \
	      daemon/store.c

DAEMON_OBJ := $(DAEMON_SRC:%.c=$(B)/%.o)
DAEMON_BIN := $(B)/shmqd
DAEMON_LIBS := $(shell pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd) -lnuma

ALL_OBJ       += $(DAEMON_OBJ)
BUILD_TARGETS += $(DAEMON_BIN)

$(DAEMON_BIN): $(DAEMON_OBJ) $(SHM_LIB)
	@mkdir -p $(@D)
	$(QUIET_LINK)$(CC) -o $@ $^ $(LDFLAGS) $(DAEMON_LIBS)

# /dev/null as the config file: the built-in defaults, whatever /etc holds.
# As root, the socket is the system one (/run/shmq/shmqd.sock): mode 0660
# and group shmq, as shmqd.socket makes it, with the group made if missing
# (what systemd-sysusers does with systemd/shmq.sysusers).
SHMQD_RUN_ARGS ?=
ifeq ($(shell id -u),0)
SHMQD_RUN_SOCKET := --socket-mode=0660 --socket-group=shmq
endif
run: $(DAEMON_BIN) $(PY_TARGETS)
ifeq ($(shell id -u),0)
	@getent group shmq >/dev/null || { groupadd --system shmq && \
		echo 'made the system group shmq: its members may connect'; }
endif
	@echo 'shmqd starting; Python clients: PYTHONPATH=$(CURDIR)/$(B)/python /usr/bin/python3'
	$(DAEMON_BIN) --config=/dev/null $(SHMQD_RUN_SOCKET) $(SHMQD_RUN_ARGS)

.PHONY: run
