# SPDX-License-Identifier: MIT
# tools/: shmqctl, the admin tool.  Included by the top-level Makefile after
# ALL_OBJ is defined.  (shmq-bench, tools/bench/, is built by the Makefile.)
#   make build/shmqctl   just the admin tool
#
# shmqctl links libshmq statically: the public API for the daemon's registry,
# plus shm/'s validators and layout for read-only views of the segments.

CTL_SRC    := tools/shmqctl/main.c \
	      tools/shmqctl/manage.c \
	      tools/shmqctl/metrics.c \
	      tools/shmqctl/output.c \
	      tools/shmqctl/snapshot.c \
	      tools/shmqctl/verbs.c

CTL_OBJ    := $(CTL_SRC:%.c=$(B)/%.o)
SCOLS_LIBS := $(shell pkg-config --libs smartcols 2>/dev/null || echo -lsmartcols)
CTL_BIN    := $(B)/shmqctl

ALL_OBJ       += $(CTL_OBJ)
BUILD_TARGETS += $(CTL_BIN)

$(CTL_BIN): $(CTL_OBJ) $(B)/libshmq.a
	@mkdir -p $(@D)
	$(QUIET_LINK)$(CC) -o $@ $^ $(LDFLAGS) $(PKG_LIBS) $(SCOLS_LIBS) -lm
