# SPDX-License-Identifier: MIT
# examples/: small client programs, each one .c file linked against the
# static libshmq, built into $(B)/examples/.  Included by the top-level Makefile.

EXAMPLE_SRC := examples/async_server.c \
	       examples/consumer.c \
	       examples/hello.c \
	       examples/producer.c \
	       examples/worker_pool.c

EXAMPLE_OBJ := $(EXAMPLE_SRC:%.c=$(B)/%.o)
EXAMPLE_BIN := $(EXAMPLE_SRC:%.c=$(B)/%)

ALL_OBJ       += $(EXAMPLE_OBJ)
BUILD_TARGETS += $(EXAMPLE_BIN)

$(EXAMPLE_BIN): $(B)/examples/%: $(B)/examples/%.o $(B)/libshmq.a
	$(QUIET_LINK)$(CC) -o $@ $^ $(LDFLAGS) $(PKG_LIBS)
