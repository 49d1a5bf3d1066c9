# SPDX-License-Identifier: MIT
# libshmq (libclient/ + shm/): libshmq.so.$(MAJOR), libshmq.a, libshmq.pc,
# and the checks that keep its ABI honest.  Included by the top-level Makefile.
#   make check-abi       exported symbols == libclient/libshmq.map
#   make check-headers   each public header compiles alone as C11 and as C++

LIB_SRC    := libclient/admin.c \
	      libclient/barrier.c \
	      libclient/client.c \
	      libclient/cond.c \
	      libclient/event.c \
	      libclient/helper.c \
	      libclient/library.c \
	      libclient/lock.c \
	      libclient/object.c \
	      libclient/pipe.c \
	      libclient/poller.c \
	      libclient/queue.c \
	      libclient/sem.c \
	      libclient/waiter.c

LIB_OBJ    := $(LIB_SRC:%.c=$(B)/%.o)
LIB_MAP    := libclient/libshmq.map
LIB_SONAME := libshmq.so.$(MAJOR)
LIB_SO     := $(B)/libshmq.so.$(VERSION)
LIB_LINKS  := $(B)/$(LIB_SONAME) $(B)/libshmq.so
LIB_A      := $(B)/libshmq.a
LIB_PC     := $(B)/libshmq.pc

ALL_OBJ       += $(LIB_OBJ)
BUILD_TARGETS += $(LIB_SO) $(LIB_LINKS) $(LIB_A) $(LIB_PC)

$(LIB_OBJ): override CFLAGS += -fPIC -fvisibility=hidden

# shm/uring_futex.o references liburing, and -z defs wants every symbol resolved.
$(LIB_SO): $(SHM_OBJ) $(LIB_OBJ) $(LIB_MAP)
	@mkdir -p $(@D)
	$(QUIET_LINK)$(CC) -shared -Wl,-soname,$(LIB_SONAME) \
		-Wl,--version-script=$(LIB_MAP) -Wl,-z,defs \
		-o $@ $(filter %.o,$^) $(LDFLAGS) $(PKG_LIBS)

$(LIB_LINKS): $(LIB_SO)
	$(QUIET_GEN)ln -sf $(notdir $<) $@

$(LIB_A): $(SHM_OBJ) $(LIB_OBJ)
	@mkdir -p $(@D)
	$(QUIET_AR)rm -f $@ && $(AR) rcs $@ $^

$(LIB_PC): libclient/libshmq.pc.in VERSION
	@mkdir -p $(@D)
	$(QUIET_GEN)sed -e 's|@prefix@|$(prefix)|' -e 's|@libdir@|$(libdir)|' \
		-e 's|@includedir@|$(includedir)|' -e 's|@VERSION@|$(VERSION)|' $< >$@

# Every defined dynamic symbol but the version nodes (type A) must be in the map.
check-abi: $(LIB_SO)
	@nm -D --defined-only $< | awk '$$2 != "A" { sub(/@.*/, "", $$3); print $$3 }' \
		| sort -u >$(B)/abi.actual
	@grep -o 'shmq_[a-z0-9_]*;' $(LIB_MAP) | tr -d ';' | sort -u >$(B)/abi.expected
	@diff -u $(B)/abi.expected $(B)/abi.actual
	@echo '  ABI   $(notdir $<): exports == $(LIB_MAP)'

CXX        ?= g++
PUBLIC_HEADERS := $(wildcard include/shmq/*.h) $(VERSION_H)
HEADER_CHECK_FLAGS := -Wall -Wextra -Werror -pedantic-errors -I include -I $(B)/include

# A header alone, plus one declaration: a header of macros only would otherwise
# be an empty translation unit, which -pedantic-errors rejects.
check-headers: $(VERSION_H)
	@set -e; for h in $(abspath $(PUBLIC_HEADERS)); do \
		printf '  HDR   %s (C11, C++11)\n' $${h#$(CURDIR)/}; \
		printf '#include "%s"\ntypedef int shmq_check_headers_t;\n' $$h \
			| $(CC) -std=c11 $(HEADER_CHECK_FLAGS) -x c -c -o /dev/null -; \
		printf '#include "%s"\ntypedef int shmq_check_headers_t;\n' $$h \
			| $(CXX) -std=c++11 $(HEADER_CHECK_FLAGS) -x c++ -c -o /dev/null -; \
	done

.PHONY: check-abi check-headers
