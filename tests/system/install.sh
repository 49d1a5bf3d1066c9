#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# System tests: what `make install` puts where, and whether it works there.
#
#   install     make install DESTDIR=stage prefix=/usr: every file, the
#               soname links, libshmq.pc with the install prefix, the units
#               with the install paths; an existing config is kept
#   pkg-config  an example built against the stage through pkg-config
#               (PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR into the stage)
#               runs with LD_LIBRARY_PATH against the staged daemon, and the
#               staged shmqctl talks to it
#   man         the man pages format without a warning (groff -ww)
#   units       systemd-analyze verify of the units, installed under a real
#               prefix so that ExecStart= exists; sysusers.d and tmpfiles.d
#               applied to a scratch root
#   security    systemd-analyze security --offline: the service's exposure
#   syscalls    (plain builds) every system call shmqd makes while serving is
#               allowed by the unit's SystemCallFilter=, traced with strace
#   uninstall   make uninstall leaves only the changed config behind
#
# Run by `make test` through $(B)/tests/run-system-tests, which sets B, SAN,
# MAKE and CC.  Output: one "[PASS] system::NAME" line per test; the first
# failure prints why and exits 1.
set -euo pipefail

: "${B:?}" "${MAKE:=make}" "${CC:=cc}"
SAN=${SAN-}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
version=$(cat VERSION)
major=${version%%.*}

work=$(mktemp -d /tmp/shmq-system-XXXXXX)
daemon_pid=
cleanup() {
	if [ -n "$daemon_pid" ]; then kill -9 "$daemon_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "[FAIL] system::$test: $*" >&2
	exit 1
}
pass() { echo "[PASS] system::$test"; }

# The same sanitizer flags as the build, so an example links against a
# sanitized libshmq.so.
san_flags=
if [ -n "$SAN" ]; then san_flags="-fsanitize=$SAN -fno-omit-frame-pointer"; fi

# Start $1 (a shmqd) on $work/$2.sock in the background; wait until it answers.
start_daemon() {
	local bin=$1 name=$2 i
	"$bin" --config=/dev/null --socket="$work/$name.sock" 2>>"$work/$name.log" &
	daemon_pid=$!
	for i in $(seq 1 500); do
		[ -S "$work/$name.sock" ] && return 0
		kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/$name.log" >&2; return 1; }
		sleep 0.02
	done
	return 1
}

stop_daemon() {
	kill -TERM "$daemon_pid"
	wait "$daemon_pid" || fail "shmqd exited with status $? after SIGTERM"
	daemon_pid=
}

# --- install ---
test=install
dest=$work/dest
$MAKE -s --no-print-directory install DESTDIR="$dest" prefix=/usr SAN="$SAN" >/dev/null
for f in usr/sbin/shmqd usr/bin/shmqctl usr/bin/shmq-bench \
	 "usr/lib/libshmq.so.$version" "usr/lib/libshmq.so.$major" usr/lib/libshmq.so \
	 usr/lib/libshmq.a usr/include/shmq/shmq.h usr/include/shmq/version.h \
	 usr/lib/pkgconfig/libshmq.pc usr/lib/systemd/system/shmqd.service \
	 usr/lib/systemd/system/shmqd.socket usr/lib/sysusers.d/shmq.conf \
	 usr/lib/tmpfiles.d/shmq.conf etc/shmq/shmqd.conf usr/share/man/man1/shmqctl.1 \
	 usr/share/man/man1/shmq-bench.1 \
	 usr/share/man/man3/libshmq.3 usr/share/man/man8/shmqd.8 \
	 usr/share/man/man3/shmq_queue.3 usr/share/man/man3/shmq_daemon.3 \
	 usr/share/man/man5/shmqd.conf.5; do
	[ -e "$dest/$f" ] || fail "missing $f"
done
[ -x "$dest/usr/sbin/shmqd" ] && [ -x "$dest/usr/bin/shmqctl" ] || fail "binaries not executable"
[ "$(readlink "$dest/usr/lib/libshmq.so.$major")" = "libshmq.so.$version" ] ||
	fail "libshmq.so.$major does not point at libshmq.so.$version"
[ "$(readlink "$dest/usr/lib/libshmq.so")" = "libshmq.so.$major" ] ||
	fail "libshmq.so does not point at libshmq.so.$major"
# Captured first: with pipefail, grep -q closing the pipe early could fail the writer.
dyn=$(readelf -d "$dest/usr/lib/libshmq.so.$version")
grep -q "SONAME.*\[libshmq.so.$major\]" <<<"$dyn" || fail "wrong SONAME"
grep -qx 'prefix=/usr' "$dest/usr/lib/pkgconfig/libshmq.pc" || fail "libshmq.pc prefix"
grep -qx "Version: $version" "$dest/usr/lib/pkgconfig/libshmq.pc" || fail "libshmq.pc version"
grep -qx 'ExecStart=/usr/sbin/shmqd --fd-store=yes' "$dest/usr/lib/systemd/system/shmqd.service" ||
	fail "ExecStart= in shmqd.service: $(grep ExecStart "$dest/usr/lib/systemd/system/shmqd.service")"
grep -q 'SHMQ_VERSION_STRING "'"$version"'"' "$dest/usr/include/shmq/version.h" ||
	fail "version.h"
cmp -s systemd/shmqd.conf "$dest/etc/shmq/shmqd.conf" || fail "shmqd.conf differs"
# A second install keeps a changed configuration.
echo 'max-clients = 7' >>"$dest/etc/shmq/shmqd.conf"
$MAKE -s --no-print-directory install DESTDIR="$dest" prefix=/usr SAN="$SAN" >/dev/null
grep -qx 'max-clients = 7' "$dest/etc/shmq/shmqd.conf" || fail "install overwrote shmqd.conf"
pass

# --- pkg-config ---
test=pkg-config
export PKG_CONFIG_PATH=$dest/usr/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
cflags=$(pkg-config --cflags libshmq)
libs=$(pkg-config --libs libshmq)
[ "$(pkg-config --modversion libshmq)" = "$version" ] || fail "modversion"
case "$cflags" in *"-I$dest/usr/include"*) ;; *) fail "cflags: $cflags" ;; esac
case "$libs" in *"-L$dest/usr/lib"*"-lshmq"*) ;; *) fail "libs: $libs" ;; esac
# shellcheck disable=SC2086 # word splitting of flags is meant
$CC $san_flags -o "$work/hello" examples/hello.c $cflags $libs || fail "building hello"
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
deps=$(LD_LIBRARY_PATH=$dest/usr/lib ldd "$work/hello")
grep -q "libshmq.so.$major => $dest/usr/lib/" <<<"$deps" ||
	fail "hello does not resolve libshmq from the stage: $deps"
start_daemon "$dest/usr/sbin/shmqd" staged || fail "the staged shmqd did not start"
out=$(LD_LIBRARY_PATH=$dest/usr/lib "$work/hello" --socket "$work/staged.sock") ||
	fail "hello against the stage: $out"
case "$out" in *'received "hello"'*) ;; *) fail "hello printed: $out" ;; esac
"$dest/usr/bin/shmqctl" --socket "$work/staged.sock" status >"$work/status.out" ||
	fail "staged shmqctl status"
grep -q "shmqd $version" "$work/status.out" || fail "status: $(cat "$work/status.out")"
stop_daemon
# The installed shmq-bench (bin/) starts the installed shmqd (sbin/) for its
# api row, found from its own path, not from the current directory.
(cd / && "$dest/usr/bin/shmq-bench" --quick --only api --sizes 64) >"$work/bench.out" 2>&1 ||
	fail "staged shmq-bench: $(cat "$work/bench.out")"
! grep -q 'no shmqd at' "$work/bench.out" || fail "shmq-bench: $(grep 'no shmqd' "$work/bench.out")"
grep -Eq '^shmq-api +[0-9]' "$work/bench.out" || fail "no shmq-api row: $(cat "$work/bench.out")"
pass

# --- man ---
test=man
for page in "$dest"/usr/share/man/man*/*; do
	warnings=$(LC_ALL=C.UTF-8 groff -man -ww -z "$page" 2>&1) || fail "groff $page"
	[ -z "$warnings" ] || fail "$page: $warnings"
done
# Every public function has its family's section 3 page.
for fn in $(sed -n 's/^SHMQ_API [^(]*[ *]\(shmq_[a-z0-9_]*\)(.*/\1/p' include/shmq/shmq.h); do
	grep -qs "^\.SS \"$fn()\"" "$dest"/usr/share/man/man3/shmq_*.3 ||
		fail "no section 3 page describes $fn()"
done
# shmqd(8) documents every option of the daemon's option table.
sed 's/\\-/-/g' man/shmqd.8 >"$work/shmqd.8.txt"
for opt in $("$B/shmqd" --config=/dev/null --dump-config | sed -n 's/^\([a-z-]*\) =.*/\1/p'); do
	grep -q "^\.BI $opt " "$work/shmqd.8.txt" || fail "shmqd(8) lacks option $opt"
done
pass

# --- units ---
test=units
root=$work/prefix
$MAKE -s --no-print-directory install prefix="$root/usr" sysconfdir="$root/etc" SAN="$SAN" >/dev/null
unitdir=$root/usr/lib/systemd/system
grep -qx "ExecStart=$root/usr/sbin/shmqd --fd-store=yes --config=$root/etc/shmq/shmqd.conf" \
	"$unitdir/shmqd.service" || fail "ExecStart= with another sysconfdir"
# It also looks up Documentation=man: pages: the ones just installed.
verify=$(MANPATH=$root/usr/share/man systemd-analyze verify "$unitdir/shmqd.socket" \
	"$unitdir/shmqd.service" 2>&1) ||
	fail "systemd-analyze verify: $verify"
# Anything it says is a finding, even with exit status 0 (e.g. an unknown setting).
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
sysroot=$work/sysroot
mkdir -p "$sysroot/etc"
out=$(systemd-sysusers --root="$sysroot" "$root/usr/lib/sysusers.d/shmq.conf" 2>&1) ||
	fail "systemd-sysusers: $out"
uid=$(awk -F: '$1 == "shmq" { print $3 }' "$sysroot/etc/passwd")
gid=$(awk -F: '$1 == "shmq" { print $3 }' "$sysroot/etc/group")
[ -n "$uid" ] && [ -n "$gid" ] || fail "no user or group shmq in the scratch root"
[ "$uid" -lt 1000 ] || fail "shmq is not a system user (uid $uid)"
if [ "$(id -u)" = 0 ]; then
	out=$(systemd-tmpfiles --root="$sysroot" --create "$root/usr/lib/tmpfiles.d/shmq.conf" 2>&1) ||
		fail "systemd-tmpfiles: $out"
	[ "$(stat -c '%a %u %g' "$sysroot/run/shmq")" = "755 $uid $gid" ] ||
		fail "/run/shmq is $(stat -c '%a %u %g' "$sysroot/run/shmq")"
else
	# Only root can give /run/shmq to user shmq: check the line instead of applying it.
	line=$(awk '$2 == "/run/shmq"' "$root/usr/lib/tmpfiles.d/shmq.conf")
	[ "$(printf '%s\n' "$line" | awk '{ print $1, $3, $4, $5 }')" = "d 0755 shmq shmq" ] ||
		fail "tmpfiles.d line for /run/shmq: '$line'"
	echo "system::$test: not root, the tmpfiles.d line is checked, not applied"
fi
pass

# --- security ---
test=security
report=$(systemd-analyze security --offline=yes "$unitdir/shmqd.service" 2>&1) ||
	true # exits non-zero above its threshold; the level is checked below
level=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for shmqd.service: \([0-9.]*\).*/\1/p')
[ -n "$level" ] || fail "no exposure level in: $report"
awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || fail "exposure level $level > 2.0: $report"
echo "shmqd.service exposure level: $level"
pass

# --- syscalls ---
test=syscalls
if [ -n "$SAN" ]; then
	# Sanitizer runtimes make calls of their own; the unit runs the plain build.
	echo "[SKIP] system::$test: sanitizer build"
else
	python3 tests/system/syscalls.py --trace-dir "$work/trace" --shmqd "$B/shmqd" \
		--shmqctl "$B/shmqctl" --examples "$B/examples" \
		--unit "$unitdir/shmqd.service" || fail "see above"
	pass
fi

# --- uninstall ---
test=uninstall
$MAKE -s --no-print-directory uninstall DESTDIR="$dest" prefix=/usr SAN="$SAN" >/dev/null
left=$(cd "$dest" && find . ! -type d | sort)
[ "$left" = "./etc/shmq/shmqd.conf" ] || fail "left behind: $left"
$MAKE -s --no-print-directory uninstall prefix="$root/usr" sysconfdir="$root/etc" SAN="$SAN" >/dev/null
left=$(cd "$root" && find . ! -type d | sort)
[ -z "$left" ] || fail "an unchanged config is removed, yet left behind: $left"
pass
