# SPDX-License-Identifier: MIT
# libFuzzer harnesses (clang).  Included by the top-level Makefile; nothing
# here is part of `make all` or `make test`, which build with $(CC).
#   make fuzz                 build, then run each target for FUZZ_SECONDS
#   make fuzz-build           just build them into build/fuzz/
#   make fuzz FUZZ_TARGETS=fuzz_proto FUZZ_SECONDS=600
#
# Every target runs with hang detection (-timeout), leak detection and
# AddressSanitizer + UBSan; any crash, leak, timeout or sanitizer report
# fails the run and leaves the input in build/fuzz/artifacts/.  New inputs
# go to build/fuzz/corpus/<target>/; the committed seeds (and regression
# inputs) in tests/fuzz/corpus/<target>/ are only read.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 120
FUZZ_TIMEOUT ?= 10
FUZZ_ARGS    ?=
FUZZ_B       := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := -std=gnu17 -O1 -g -Wall -Wextra -Werror -fno-omit-frame-pointer -pthread \
		$(FUZZ_SAN) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -MMD -MP
# A post's wait for a dead owner's undo (shm/sem.h): bounded at 2 s, which
# a forged tag would make every input pay; 10 ms exercises the same path.
FUZZ_CPPFLAGS := -D_GNU_SOURCE -I include -I $(B)/include -I . \
		 -DSHMQ_OWNER_WAIT_NS='(UINT64_C(10) * 1000000)'

FUZZ_TARGETS ?= fuzz_proto fuzz_segment fuzz_segment_mut fuzz_client

FUZZ_SHM_OBJ := $(SHM_SRC:%.c=$(FUZZ_B)/%.o)
FUZZ_DAEMON_OBJ := $(filter-out $(FUZZ_B)/daemon/main.o,$(DAEMON_SRC:%.c=$(FUZZ_B)/%.o))
FUZZ_DRIVE_OBJ := $(FUZZ_B)/tests/fuzz/drive.o
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_B)/%.o)

$(FUZZ_B)/%.o: %.c | $(VERSION_H)
	@mkdir -p $(@D)
	$(QUIET_CC)$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -c -o $@ $<

# The input sizes each target needs: a datagram script, or a whole segment.
FUZZ_MAXLEN_fuzz_proto       := 8192
FUZZ_MAXLEN_fuzz_segment     := 16384
FUZZ_MAXLEN_fuzz_segment_mut := 4096
FUZZ_MAXLEN_fuzz_client      := 8192

$(FUZZ_B)/fuzz_proto: $(FUZZ_B)/tests/fuzz/fuzz_proto.o $(FUZZ_DAEMON_OBJ) $(FUZZ_SHM_OBJ)
	$(QUIET_LINK)$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ -pthread $(DAEMON_LIBS) \
		$(PKG_LIBS)

$(FUZZ_B)/fuzz_segment $(FUZZ_B)/fuzz_segment_mut: $(FUZZ_B)/%: $(FUZZ_B)/tests/fuzz/%.o \
		$(FUZZ_DRIVE_OBJ) $(FUZZ_SHM_OBJ)
	$(QUIET_LINK)$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ -pthread $(PKG_LIBS)

# libshmq's objects are built -fvisibility=hidden in the library; here they
# are linked straight into the harness, so visibility does not matter.
$(FUZZ_B)/fuzz_client: $(FUZZ_B)/tests/fuzz/fuzz_client.o $(FUZZ_LIB_OBJ) $(FUZZ_SHM_OBJ)
	$(QUIET_LINK)$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ -pthread $(PKG_LIBS)

fuzz-build: $(addprefix $(FUZZ_B)/,$(FUZZ_TARGETS))

# One target after the other: each gets the machine's cores it can use for
# FUZZ_SECONDS.  -print_final_stats shows exec/s and the corpus it reached.
fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_B)/corpus/$$t $(FUZZ_B)/artifacts; \
		echo "  FUZZ  $$t for $(FUZZ_SECONDS) s"; \
		ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
		$(FUZZ_B)/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) \
			-detect_leaks=1 -rss_limit_mb=2048 -print_final_stats=1 \
			-max_len=$$(case $$t in fuzz_proto) echo $(FUZZ_MAXLEN_fuzz_proto);; \
				fuzz_segment) echo $(FUZZ_MAXLEN_fuzz_segment);; \
				fuzz_client) echo $(FUZZ_MAXLEN_fuzz_client);; \
				*) echo $(FUZZ_MAXLEN_fuzz_segment_mut);; esac) \
			-artifact_prefix=$(FUZZ_B)/artifacts/$$t- $(FUZZ_ARGS) \
			$(FUZZ_B)/corpus/$$t tests/fuzz/corpus/$$t; \
	done

-include $(FUZZ_SHM_OBJ:.o=.d) $(FUZZ_DAEMON_OBJ:.o=.d) $(FUZZ_DRIVE_OBJ:.o=.d) $(FUZZ_LIB_OBJ:.o=.d) \
	$(addprefix $(FUZZ_B)/tests/fuzz/,$(addsuffix .d,$(FUZZ_TARGETS)))

.PHONY: fuzz fuzz-build
