# SPDX-License-Identifier: MIT
# The one non-recursive build for shmq.
#   make              build into build/          make test          unit + integration + short stress
#   make V=1          show commands              make test-stress   long stress (SHMQ_STRESS_SECONDS, SHMQ_SEED)
#   make SAN=thread   sanitizer build            make bench         shmq-bench default suite
#   make run          build, start shmqd          make WERROR=1|0    warnings as errors (default below)
#   make deps         install every goal's build dependencies (apt-get as root, else print the command)
#   make fuzz         libFuzzer harnesses (clang), FUZZ_SECONDS per target (tests/fuzz/)
#   make install DESTDIR=/tmp/stage prefix=/usr     make uninstall (same variables)
#   make help         every target

# Build on every CPU unless the command line says otherwise (its -j wins).
MAKEFLAGS  += -j$(shell nproc 2>/dev/null || echo 2)

VERSION    := $(shell cat VERSION)
MAJOR      := $(firstword $(subst ., ,$(VERSION)))
MINOR      := $(word 2,$(subst ., ,$(VERSION)))
PATCH      := $(word 3,$(subst ., ,$(VERSION)))

# Sanitizer builds live in their own tree so objects never mix.
comma      := ,
ifeq ($(SAN),)
B          := build
else
B          := build/san-$(subst $(comma),-,$(SAN))
endif

prefix     ?= /usr/local
exec_prefix ?= $(prefix)
bindir     ?= $(exec_prefix)/bin
sbindir    ?= $(exec_prefix)/sbin
libdir     ?= $(exec_prefix)/lib
includedir ?= $(prefix)/include
datarootdir ?= $(prefix)/share
mandir     ?= $(datarootdir)/man
pkgconfigdir ?= $(libdir)/pkgconfig
# shmqd reads /etc/shmq/shmqd.conf by default, whatever the prefix; another
# sysconfdir is passed to it with --config= in the installed unit.
sysconfdir ?= /etc
# systemd searches $(prefix)/lib/... for /usr and /usr/local alike.
unitdir    ?= $(prefix)/lib/systemd/system
sysusersdir ?= $(prefix)/lib/sysusers.d
tmpfilesdir ?= $(prefix)/lib/tmpfiles.d

# --- Build dependencies (Debian 12 package names) ---
# Each goal needs one set.  The set is checked -- and installed with apt-get
# when run as root -- while this Makefile is read, before pkg-config is asked
# for flags below: a first `make test` on a bare machine must compile and
# link in the same invocation.  Without root the exact apt-get command is
# printed and make stops (exit 2).  Building the daemon, library and tools
# needs only DEPS_BUILD; the test, fuzz and format tools are needed only by
# their goals.
DEPS_BUILD := gcc make pkg-config liburing-dev libnuma-dev libsystemd-dev python3-dev \
	      libsmartcols-dev
# The Python module (libclient/python) builds against python3-dev (and its
# python3 makes the man pages); shmqctl prints its tables with libsmartcols.
# The tests parse shmqctl --json with python3, run tests/python with
# python3-pytest, check the units with
# systemd-analyze, the daemon's system calls with strace and the man pages
# with groff; numactl shows the NUMA nodes the memory tests bind to.
DEPS_TEST  := $(DEPS_BUILD) libcriterion-dev numactl python3 python3-pytest systemd strace \
	      groff-base
DEPS_FUZZ  := $(DEPS_BUILD) clang libclang-rt-14-dev
DEPS_FORMAT := clang-format
DEPS_ALL   := $(sort $(DEPS_TEST) $(DEPS_FUZZ) $(DEPS_FORMAT))

GOALS      := $(or $(MAKECMDGOALS),all)
# Goals that build nothing.
NODEPS_GOALS := clean help uninstall deps-list
DEPS_NEEDED :=
ifneq ($(filter-out $(NODEPS_GOALS) format format-check,$(GOALS)),)
DEPS_NEEDED += $(DEPS_BUILD)
endif
ifneq ($(filter test test-stress,$(GOALS)),)
DEPS_NEEDED += $(DEPS_TEST)
endif
ifneq ($(filter fuzz fuzz-build,$(GOALS)),)
DEPS_NEEDED += $(DEPS_FUZZ)
endif
ifneq ($(filter format format-check,$(GOALS)),)
DEPS_NEEDED += $(DEPS_FORMAT)
endif
ifneq ($(filter deps,$(GOALS)),)
DEPS_NEEDED += $(DEPS_ALL)
endif
DEPS_NEEDED := $(sort $(DEPS_NEEDED))

# Prints the missing packages of $(DEPS_NEEDED) on stdout.  dpkg-query
# prints a line only for packages it knows, so a package never installed is
# missing by its absence.
define DEPS_MISSING_SH
have=$$(dpkg-query -W -f='$${Package} $${db:Status-Abbrev}\n' $(DEPS_NEEDED) 2>/dev/null \
	| awk '$$2 == "ii" { print $$1 }'); \
for p in $(DEPS_NEEDED); do \
	case " $$(echo $$have) " in *" $$p "*) ;; *) printf '%s ' "$$p";; esac; \
done
endef

ifneq ($(DEPS_NEEDED),)
ifneq ($(shell command -v dpkg-query),)
DEPS_MISSING := $(strip $(shell $(DEPS_MISSING_SH)))
ifneq ($(DEPS_MISSING),)
ifeq ($(shell id -u),0)
$(info installing build dependencies: $(DEPS_MISSING))
DEPS_RC := $(shell { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends $(DEPS_MISSING); } >&2; echo $$?)
ifneq ($(DEPS_RC),0)
$(error apt-get install $(DEPS_MISSING) failed (exit $(DEPS_RC)))
endif
DEPS_MISSING := $(strip $(shell $(DEPS_MISSING_SH)))
ifneq ($(DEPS_MISSING),)
$(error still missing after apt-get install: $(DEPS_MISSING))
endif
else
$(info missing build dependencies; run:)
$(info $(empty)  sudo apt-get update && sudo apt-get install -y --no-install-recommends $(DEPS_MISSING))
$(error missing build dependencies)
endif
endif
endif
endif

CC         ?= cc
CFLAGS     ?= -O2 -g
override CFLAGS   += -std=gnu17 -Wall -Wextra -Wshadow -Wstrict-prototypes \
		     -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wundef -Wvla \
		     -fno-common -pthread -MMD -MP

# Warnings are errors for the developer's goals (run, test, CI) and in a
# tree they already built; a packager's first plain `make`/`make install`
# builds without -Werror, so a newer compiler's new warning cannot fail it.
# WERROR=1|0 on the command line decides.  Exported: the system tests'
# nested `make install` must build with the same flags.
ifneq ($(filter run test test-stress bench fuzz fuzz-build check-headers,$(GOALS)),)
WERROR     ?= 1
endif
WERROR     ?= $(or $(shell cat $(B)/.werror 2>/dev/null),0)
export WERROR
ifeq ($(WERROR),1)
override CFLAGS   += -Werror
endif
override CPPFLAGS += -D_GNU_SOURCE -I include -I $(B)/include -I .
override LDFLAGS  += -pthread

ifneq ($(SAN),)
override CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
override LDFLAGS += -fsanitize=$(SAN)
endif

ifndef V
QUIET_CC   = @printf '  CC    %s\n' $@;
QUIET_LINK = @printf '  LINK  %s\n' $@;
QUIET_AR   = @printf '  AR    %s\n' $@;
QUIET_GEN  = @printf '  GEN   %s\n' $@;
endif

PKGS       := liburing
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CRITERION_LIBS := $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

# Every object depends on the flags it was built with: a change of CC,
# CFLAGS, WERROR or a package's flags rebuilds, never mixes.  The stamp is
# rewritten only when its contents change.
FLAGS_STAMP := $(B)/.flags
FLAGS_NOW  := $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(PKG_CFLAGS) $(PKG_LIBS)
ifneq ($(filter-out $(NODEPS_GOALS) format format-check deps,$(GOALS)),)
$(shell mkdir -p $(B) && { [ "$$(cat $(FLAGS_STAMP) 2>/dev/null)" = '$(subst ','"'"',$(FLAGS_NOW))' ] \
	|| printf '%s\n' '$(subst ','"'"',$(FLAGS_NOW))' >$(FLAGS_STAMP); } && echo $(WERROR) >$(B)/.werror)
endif

# Criterion cannot start under ThreadSanitizer (its sandbox maps a fixed
# arena inside TSan's shadow space: Snaipe/Criterion#274).  TSan builds
# compile the same test sources against tests/tsan/, a stand-in for the
# Criterion subset the tests use, with the same per-test fork and timeouts.
ifneq ($(filter thread,$(subst $(comma), ,$(SAN))),)
# TSan does not model atomic_thread_fence.  shmq's fences order only the
# sleeper check (store -> load, see shm/fence.h); data is published with
# release/acquire pairs, which TSan does check, so ignoring fences cannot
# produce a false report.
override CFLAGS += -Wno-tsan
TEST_RUNNER_OBJ := $(B)/tests/tsan/runner.o
TEST_INC   := -I tests/tsan -I tests
CRITERION_LIBS := -lm
else
TEST_RUNNER_OBJ :=
TEST_INC   := -I tests
endif

# --- Sources (explicit and sorted) ---

SHM_SRC    := shm/barrier.c \
	      shm/cond.c \
	      shm/event.c \
	      shm/eventcount.c \
	      shm/fence.c \
	      shm/futex.c \
	      shm/kind.c \
	      shm/layout.c \
	      shm/lock.c \
	      shm/owner.c \
	      shm/pipe.c \
	      shm/ring.c \
	      shm/sem.c \
	      shm/uring_futex.c

TEST_HELPER_SRC := tests/helpers.c

UNIT_SRC   := tests/unit/test_async.c \
	      tests/unit/test_barrier.c \
	      tests/unit/test_cond.c \
	      tests/unit/test_event.c \
	      tests/unit/test_futex.c \
	      tests/unit/test_join.c \
	      tests/unit/test_large.c \
	      tests/unit/test_layout.c \
	      tests/unit/test_lock.c \
	      tests/unit/test_owner.c \
	      tests/unit/test_pipe.c \
	      tests/unit/test_ring.c \
	      tests/unit/test_ring_mt.c \
	      tests/unit/test_sem.c \
	      tests/unit/test_uring_futex.c

STRESS_SRC := tests/stress/stress_async.c \
	      tests/stress/stress_barrier.c \
	      tests/stress/stress_cond.c \
	      tests/stress/stress_event.c \
	      tests/stress/stress_join.c \
	      tests/stress/stress_kill.c \
	      tests/stress/stress_large.c \
	      tests/stress/stress_lock.c \
	      tests/stress/stress_pipe.c \
	      tests/stress/stress_ring.c \
	      tests/stress/stress_sem.c

BENCH_SRC  := tools/bench/async.c \
	      tools/bench/baselines.c \
	      tools/bench/repair.c \
	      tools/bench/sync.c \
	      tools/bench/main.c

SHM_OBJ    := $(SHM_SRC:%.c=$(B)/%.o)
TEST_HELPER_OBJ := $(TEST_HELPER_SRC:%.c=$(B)/%.o)
UNIT_OBJ   := $(UNIT_SRC:%.c=$(B)/%.o)
STRESS_OBJ := $(STRESS_SRC:%.c=$(B)/%.o)
BENCH_OBJ  := $(BENCH_SRC:%.c=$(B)/%.o)
ALL_OBJ    := $(SHM_OBJ) $(TEST_HELPER_OBJ) $(UNIT_OBJ) $(STRESS_OBJ) $(BENCH_OBJ) \
	      $(TEST_RUNNER_OBJ)

SHM_LIB    := $(B)/libshmq-shm.a
UNIT_BIN   := $(B)/tests/unit-tests
STRESS_BIN := $(B)/tests/stress-tests
BENCH_BIN  := $(B)/shmq-bench
VERSION_H  := $(B)/include/shmq/version.h

# Per-directory fragments (included before any rule that expands ALL_OBJ)
# add to BUILD_TARGETS (what `make` builds: daemon, library, tools,
# examples), TEST_TARGETS (what only `make test` needs: criterion), ALL_OBJ
# and TEST_RUNS.
BUILD_TARGETS := $(SHM_LIB) $(BENCH_BIN)
TEST_TARGETS := $(UNIT_BIN) $(STRESS_BIN)
TEST_RUNS  :=
.DEFAULT_GOAL := all

-include libclient/module.mk
-include libclient/python/module.mk
-include daemon/module.mk
-include examples/module.mk
-include tools/module.mk
-include tools/man/module.mk
-include tests/integration/module.mk
-include tests/system/module.mk
-include tests/fuzz/module.mk

all: $(BUILD_TARGETS)

# shm/ and everything linked into libshmq later is position-independent.
$(SHM_OBJ): override CFLAGS += -fPIC -fvisibility=hidden
$(ALL_OBJ): override CFLAGS += $(PKG_CFLAGS)
$(TEST_HELPER_OBJ) $(UNIT_OBJ) $(STRESS_OBJ) $(TEST_RUNNER_OBJ): override CPPFLAGS += $(TEST_INC)
$(ALL_OBJ): $(FLAGS_STAMP) | $(VERSION_H)

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(QUIET_CC)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(VERSION_H): VERSION
	@mkdir -p $(@D)
	$(QUIET_GEN)printf '%s\n' '/* Generated from VERSION by make: do not edit. */' \
		'#ifndef SHMQ_VERSION_H' '#define SHMQ_VERSION_H' \
		'#define SHMQ_VERSION_MAJOR $(MAJOR)' '#define SHMQ_VERSION_MINOR $(MINOR)' \
		'#define SHMQ_VERSION_PATCH $(PATCH)' '#define SHMQ_VERSION_STRING "$(VERSION)"' \
		'#endif' >$@

$(SHM_LIB): $(SHM_OBJ)
	@mkdir -p $(@D)
	$(QUIET_AR)rm -f $@ && $(AR) rcs $@ $^

# test_async.c tests libclient's waiters too: libshmq.a, which carries shm/ as well.
$(UNIT_BIN): $(UNIT_OBJ) $(TEST_HELPER_OBJ) $(TEST_RUNNER_OBJ) $(LIB_A) $(SHM_LIB)
	@mkdir -p $(@D)
	$(QUIET_LINK)$(CC) -o $@ $^ $(LDFLAGS) $(CRITERION_LIBS) $(PKG_LIBS)

# The kill storm (stress_kill.c) runs a private shmqd with the integration harness.
STRESS_DAEMON_OBJ := $(B)/tests/integration/daemon.o $(B)/tests/integration/raw.o
$(STRESS_BIN): $(STRESS_OBJ) $(STRESS_DAEMON_OBJ) $(TEST_HELPER_OBJ) $(TEST_RUNNER_OBJ) $(LIB_A) \
	       $(SHM_LIB) | $(DAEMON_BIN)
	@mkdir -p $(@D)
	$(QUIET_LINK)$(CC) -o $@ $(filter %.o %.a,$^) $(LDFLAGS) $(CRITERION_LIBS) $(PKG_LIBS)

# The api and async modes go through libshmq (which carries shm/): a
# private shmqd, libclient's waiters and poller.
$(BENCH_BIN): $(BENCH_OBJ) $(LIB_A)
	@mkdir -p $(@D)
	$(QUIET_LINK)$(CC) -o $@ $^ $(LDFLAGS) $(PKG_LIBS) -lm

# --- Tests ---

# Short stress inside `make test`; `make test-stress` runs the long one.
SHMQ_STRESS_SECONDS ?= 30
# Kills of the MPMC kill storm inside `make test` (MPSC and SPMC: a quarter
# each); test-stress kills max(1000, 50 per stress second).
SHMQ_STORM_KILLS_SHORT ?= 400
CRITERION_FLAGS ?= --jobs 2

# Leaks inside Criterion's own runner are not ours: see tests/lsan.supp.
export LSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/lsan.supp

# The async suites run twice: as the kernel allows (io_uring FUTEX_WAIT on
# 6.7+), and on the helper-thread fallback that SHMQ_URING_FUTEX=0 forces.
# tests/logged repeats a failing run's failures at the end of its output.
LOGGED := tests/logged

test: $(BUILD_TARGETS) $(TEST_TARGETS)
	$(LOGGED) $(UNIT_BIN) $(CRITERION_FLAGS)
	SHMQ_URING_FUTEX=0 $(LOGGED) $(UNIT_BIN) $(CRITERION_FLAGS) --filter 'async/*'
	$(foreach t,$(TEST_RUNS),$(LOGGED) $(t) &&) true
	SHMQD=$(CURDIR)/$(DAEMON_BIN) SHMQ_STRESS_SECONDS=2 SHMQ_STORM_KILLS=$(SHMQ_STORM_KILLS_SHORT) \
		$(LOGGED) $(STRESS_BIN) --jobs 1
	SHMQ_URING_FUTEX=0 SHMQ_STRESS_SECONDS=2 $(LOGGED) $(STRESS_BIN) --jobs 1 --filter 'stress_async/*'

test-stress: $(STRESS_BIN) $(DAEMON_BIN)
	SHMQD=$(CURDIR)/$(DAEMON_BIN) SHMQ_STRESS_SECONDS=$(SHMQ_STRESS_SECONDS) \
		$(LOGGED) $(STRESS_BIN) --jobs 1
	SHMQ_URING_FUTEX=0 SHMQ_STRESS_SECONDS=$(SHMQ_STRESS_SECONDS) $(LOGGED) $(STRESS_BIN) --jobs 1 \
		--filter 'stress_async/*'

BENCH_ARGS ?=
bench: $(BENCH_BIN) $(DAEMON_BIN)
	$(BENCH_BIN) $(BENCH_ARGS)

# --- Installation ---
# make install [DESTDIR=/tmp/stage] [prefix=/usr] [libdir=...] ...
# Installs what was built in $(B) (SAN= picks the tree).  Files whose
# contents name install paths (libshmq.pc, shmqd.service) are generated here
# from the same variables, so they always match.  An existing
# $(sysconfdir)/shmq/shmqd.conf is never overwritten; uninstall removes it
# only if it is still the shipped default.

INSTALL    ?= install
MAN_PAGES  := man/shmq-bench.1 man/shmqctl.1 man/libshmq.3 man/shmqd.8
SHMQD_CONFIG_ARG := $(if $(filter /etc,$(sysconfdir)),, --config=$(sysconfdir)/shmq/shmqd.conf)

# Only what is installed: a packaging build need not build the tests.
install: $(DAEMON_BIN) $(CTL_BIN) $(BENCH_BIN) $(LIB_SO) $(LIB_A) $(VERSION_H) $(MAN3_GEN) $(MAN5_GEN) \
	 $(INSTALL_EXTRA)
	$(INSTALL) -d $(DESTDIR)$(sbindir) $(DESTDIR)$(bindir) $(DESTDIR)$(libdir) \
		$(DESTDIR)$(pkgconfigdir) $(DESTDIR)$(includedir)/shmq $(DESTDIR)$(unitdir) \
		$(DESTDIR)$(sysusersdir) $(DESTDIR)$(tmpfilesdir) $(DESTDIR)$(sysconfdir)/shmq \
		$(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man3 $(DESTDIR)$(mandir)/man5 \
		$(DESTDIR)$(mandir)/man8
	$(INSTALL) -m 0755 $(DAEMON_BIN) $(DESTDIR)$(sbindir)/shmqd
	$(INSTALL) -m 0755 $(CTL_BIN) $(BENCH_BIN) $(DESTDIR)$(bindir)/
	$(INSTALL) -m 0755 $(LIB_SO) $(DESTDIR)$(libdir)/
	ln -sf libshmq.so.$(VERSION) $(DESTDIR)$(libdir)/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $(DESTDIR)$(libdir)/libshmq.so
	$(INSTALL) -m 0644 $(LIB_A) $(DESTDIR)$(libdir)/
	$(INSTALL) -m 0644 include/shmq/shmq.h $(VERSION_H) $(DESTDIR)$(includedir)/shmq/
	sed -e 's|@prefix@|$(prefix)|' -e 's|@libdir@|$(libdir)|' \
		-e 's|@includedir@|$(includedir)|' -e 's|@VERSION@|$(VERSION)|' \
		libclient/libshmq.pc.in >$(DESTDIR)$(pkgconfigdir)/libshmq.pc
	sed -e 's|@sbindir@|$(sbindir)|' -e 's|@config_arg@|$(SHMQD_CONFIG_ARG)|' \
		systemd/shmqd.service.in >$(DESTDIR)$(unitdir)/shmqd.service
	$(INSTALL) -m 0644 systemd/shmqd.socket $(DESTDIR)$(unitdir)/
	$(INSTALL) -m 0644 systemd/shmq.sysusers $(DESTDIR)$(sysusersdir)/shmq.conf
	$(INSTALL) -m 0644 systemd/shmq.tmpfiles $(DESTDIR)$(tmpfilesdir)/shmq.conf
	[ -e $(DESTDIR)$(sysconfdir)/shmq/shmqd.conf ] || \
		$(INSTALL) -m 0644 systemd/shmqd.conf $(DESTDIR)$(sysconfdir)/shmq/shmqd.conf
	$(INSTALL) -m 0644 man/shmqctl.1 man/shmq-bench.1 $(DESTDIR)$(mandir)/man1/
	$(INSTALL) -m 0644 man/libshmq.3 $(MAN3_GEN) $(DESTDIR)$(mandir)/man3/
	$(INSTALL) -m 0644 $(MAN5_GEN) $(DESTDIR)$(mandir)/man5/
	$(INSTALL) -m 0644 man/shmqd.8 $(DESTDIR)$(mandir)/man8/

uninstall: $(UNINSTALL_EXTRA)
	rm -f $(DESTDIR)$(sbindir)/shmqd $(DESTDIR)$(bindir)/shmqctl $(DESTDIR)$(bindir)/shmq-bench \
		$(DESTDIR)$(libdir)/libshmq.so.$(VERSION) $(DESTDIR)$(libdir)/$(LIB_SONAME) \
		$(DESTDIR)$(libdir)/libshmq.so $(DESTDIR)$(libdir)/libshmq.a \
		$(DESTDIR)$(includedir)/shmq/shmq.h $(DESTDIR)$(includedir)/shmq/version.h \
		$(DESTDIR)$(pkgconfigdir)/libshmq.pc \
		$(DESTDIR)$(unitdir)/shmqd.service $(DESTDIR)$(unitdir)/shmqd.socket \
		$(DESTDIR)$(sysusersdir)/shmq.conf $(DESTDIR)$(tmpfilesdir)/shmq.conf \
		$(DESTDIR)$(mandir)/man1/shmqctl.1 $(DESTDIR)$(mandir)/man1/shmq-bench.1 \
		$(DESTDIR)$(mandir)/man3/libshmq.3 $(MAN3_FAMILIES:%=$(DESTDIR)$(mandir)/man3/%.3) \
		$(DESTDIR)$(mandir)/man5/shmqd.conf.5 \
		$(DESTDIR)$(mandir)/man8/shmqd.8
	! cmp -s systemd/shmqd.conf $(DESTDIR)$(sysconfdir)/shmq/shmqd.conf || \
		rm -f $(DESTDIR)$(sysconfdir)/shmq/shmqd.conf
	rmdir $(DESTDIR)$(includedir)/shmq $(DESTDIR)$(sysconfdir)/shmq 2>/dev/null || true

# --- Dependencies ---
# Installed while the Makefile is read (see DEPS_BUILD above); `make deps`
# is the goal that asks for every set, `make deps-list` prints them.

deps:
	@echo 'build dependencies installed: $(DEPS_ALL)'

deps-list:
	@echo 'build:  $(DEPS_BUILD)'
	@echo 'test:   $(DEPS_TEST)'
	@echo 'fuzz:   $(DEPS_FUZZ)'
	@echo 'format: $(DEPS_FORMAT)'

# --- Housekeeping ---

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf build

help:
	@sed -n 's/^#   //p' Makefile
	@echo 'targets: all test test-stress bench fuzz fuzz-build check-abi check-headers install uninstall'
	@echo '         run deps deps-list format format-check clean help'
	@echo 'variables: V=1 SAN=address,undefined|thread WERROR=1|0 SHMQ_STRESS_SECONDS=N SHMQ_SEED=N'
	@echo '           CC CFLAGS'
	@echo '           FUZZ_SECONDS=N FUZZ_TARGETS=... FUZZ_TIMEOUT=S FUZZ_ARGS=... FUZZ_CC'
	@echo '           DESTDIR prefix exec_prefix bindir sbindir libdir includedir pkgconfigdir'
	@echo '           sysconfdir unitdir sysusersdir tmpfilesdir datarootdir mandir'

-include $(ALL_OBJ:.o=.d)
.PHONY: all test test-stress bench install uninstall deps deps-list format format-check clean help
