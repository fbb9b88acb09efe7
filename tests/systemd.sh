#!/bin/bash
# The package under a real systemd: boots a minimal Debian 12 with systemd
# as PID 1 in a container (systemd-nspawn -b, its own network namespace),
# installs the freshly built package there with `apt install ./nfdhcpd_*.deb`
# and runs debian/tests/systemd-service inside it (the autopkgtest of the
# package): readiness, a guest's lease and RA, the journal, reload, STATUS,
# the watchdog, stop, the unit's exposure and the SysV init script.
#
#   sudo tests/systemd.sh
#
# Needs root. Missing Debian tools (debootstrap, systemd-container) are
# installed with apt-get. The root file system is built with debootstrap the
# first time (about 3 minutes) and kept under /var/tmp, keyed by its package
# list; each run boots a copy of it, removed afterwards, also on failure.
#
# Environment:
#   NFDHCPD_DEB         a built package to test instead of building one
#   CARGO_TARGET_DIR    build cache for the package build (default:
#                       /var/tmp/nfdhcpd-systemd-target, kept between runs)
#   NFDHCPD_SD_KEEP=1   keep the temporary directory (console log, results)
#   CI                  when set, the root file system is not cached
#
# Safety: the container has a network namespace of its own
# (--private-network, no veth on the host); the daemon, the guest namespace
# and the iptables rules all live inside it. The container is stopped by
# PID. Bounded: every wait has a limit, the whole run well under 10 minutes
# once the root file system is cached.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
START=$(date +%s)
SUITE="debootstrap bookworm minbase: systemd systemd-sysv dbus iproute2 iptables udhcpc ndisc6 procps logrotate"
INCLUDE=systemd,systemd-sysv,dbus,iproute2,iptables,udhcpc,ndisc6,procps,logrotate
KEY=$(printf '%s\n' "$SUITE" | sha256sum | cut -c1-12)
CACHE=/var/tmp/nfdhcpd-systemd-root-$KEY
MIRROR=${NFDHCPD_MIRROR:-http://deb.debian.org/debian}
BOOT_LIMIT=420

TMP=""
CONTAINER_PID=""

# descendants PID: every process below PID, children first.
descendants() {
	local child
	for child in $(pgrep -P "$1"); do
		echo "$child"
		descendants "$child"
	done
}

cleanup() {
	local rc=$?
	set +e
	if [ -n "$CONTAINER_PID" ] && kill -0 "$CONTAINER_PID" 2>/dev/null; then
		# timeout(1) runs systemd-nspawn, whose children are the
		# container's processes: all of them by PID.
		local tree nspawn
		tree=$(descendants "$CONTAINER_PID")
		nspawn=$(for p in $tree; do
			[ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd-nspawn ] && echo "$p"
		done)
		# shellcheck disable=SC2086
		[ -n "$nspawn" ] && kill -TERM $nspawn 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$CONTAINER_PID" 2>/dev/null || break
			sleep 0.2
		done
		# shellcheck disable=SC2086
		kill -KILL $tree "$CONTAINER_PID" 2>/dev/null
	fi
	if [ -n "$TMP" ]; then
		if [ "${NFDHCPD_SD_KEEP:-}" = 1 ]; then
			echo "kept $TMP"
		else
			rm -rf --one-file-system "$TMP"
		fi
	fi
	echo "systemd test: $(($(date +%s) - START)) s"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
if [ -z "${NFDHCPD_DEB:-}" ]; then
	command -v dh >/dev/null || missing+=(debhelper)
	command -v dpkg-buildpackage >/dev/null || missing+=(dpkg-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${missing[@]}" >/dev/null
fi

TMP=$(mktemp -d /var/tmp/nfdhcpd-systemd.XXXXXX)
# Under CI the root file system is built afresh (about 75 s), never taken
# from a cache another run may have left in any state.
if [ -n "${CI:-}" ]; then
	CACHE=$TMP/rootfs
fi

# ------------------------------------------------------------ the package
if [ -n "${NFDHCPD_DEB:-}" ]; then
	DEB=$(readlink -f "$NFDHCPD_DEB")
else
	echo "building the package"
	export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/nfdhcpd-systemd-target}
	t0=$(date +%s)
	mkdir "$TMP/src"
	(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 -r sh -c 'for f; do [ ! -e "$f" ] || printf "%s\0" "$f"; done' sh |
		xargs -0 -r cp -a --parents -t "$TMP/src")
	if ! (cd "$TMP/src" && timeout 1200 dpkg-buildpackage -us -uc -b) >"$TMP/build.log" 2>&1; then
		tail -n 40 "$TMP/build.log"
		echo "FAIL - dpkg-buildpackage"
		exit 1
	fi
	DEB=$(ls "$TMP"/nfdhcpd_*.deb)
	echo "built $(basename "$DEB") in $(($(date +%s) - t0)) s"
fi
[ -f "$DEB" ] || { echo "FAIL - no package: $DEB"; exit 1; }

# ------------------------------------------------------------ the root file system
if [ ! -x "$CACHE/usr/lib/systemd/systemd" ]; then
	echo "building the root file system in $CACHE ($SUITE)"
	t0=$(date +%s)
	rm -rf --one-file-system "$CACHE.tmp"
	if ! timeout 900 debootstrap --variant=minbase --include="$INCLUDE" bookworm \
		"$CACHE.tmp" "$MIRROR" >"$TMP/debootstrap.log" 2>&1; then
		tail -n 20 "$TMP/debootstrap.log"
		rm -rf --one-file-system "$CACHE.tmp"
		echo "FAIL - debootstrap"
		exit 1
	fi
	rm -rf "$CACHE.tmp/var/cache/apt/archives/"*.deb
	mv "$CACHE.tmp" "$CACHE"
	echo "root file system built in $(($(date +%s) - t0)) s"
fi

ROOT=$TMP/root
cp -a "$CACHE" "$ROOT"
mkdir -p "$TMP/results"
cp "$DEB" "$ROOT/root/"
install -m 0755 "$SRC/debian/tests/systemd-service" "$ROOT/root/systemd-service"
echo nfdhcpd-test >"$ROOT/etc/hostname"
# The test runs as a unit of the booted system, then powers it off.
cat >"$ROOT/root/run-test" <<'EOF'
#!/bin/sh
date +%s.%N >/results/booted
{
	systemctl is-system-running --wait
	systemd-analyze time
	systemd-analyze blame --no-pager | head -n 5
	echo "apt install ./$(cd /root && ls nfdhcpd_*.deb)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		/root/nfdhcpd_*.deb || { echo "FAIL - apt install"; echo 1 >/results/rc; exit 0; }
	/root/systemd-service
	echo $? >/results/rc
} >/results/log 2>&1
EOF
chmod 0755 "$ROOT/root/run-test"
cat >"$ROOT/etc/systemd/system/nfdhcpd-e2e.service" <<'EOF'
[Unit]
Description=nfdhcpd end-to-end test
[Service]
Type=oneshot
ExecStart=/root/run-test
ExecStopPost=/usr/bin/systemctl --no-block poweroff
TimeoutStartSec=360
EOF
# Started after boot, not as part of it: is-system-running --wait would
# otherwise wait for the test itself.
cat >"$ROOT/etc/systemd/system/nfdhcpd-e2e.timer" <<'EOF'
[Unit]
Description=nfdhcpd end-to-end test, once booted
[Timer]
OnActiveSec=1
AccuracySec=1ms
EOF
mkdir -p "$ROOT/etc/systemd/system/timers.target.wants"
ln -s ../nfdhcpd-e2e.timer "$ROOT/etc/systemd/system/timers.target.wants/nfdhcpd-e2e.timer"

# ------------------------------------------------------------ boot
echo "booting the container"
t_boot=$(date +%s.%N)
# The console is read only and goes straight to a file: nothing the
# container prints can ever wait for a reader (a console nobody drains
# blocks systemd, PID 1, at its next write).
# timeout(1) asks nspawn to shut the container down (SIGTERM) and kills it
# 30 s later if the container does not stop.
timeout -k 30 "$BOOT_LIMIT" systemd-nspawn -q -b -D "$ROOT" --private-network \
	--console=read-only --register=no --keep-unit \
	--bind="$TMP/results:/results" --capability=CAP_NET_ADMIN,CAP_NET_RAW \
	</dev/null >"$TMP/console.log" 2>&1 &
CONTAINER_PID=$!
# And should timeout(1) itself not return, the same limit applies here:
# cleanup stops the container by PID.
deadline=$(($(date +%s) + BOOT_LIMIT + 60))
while kill -0 "$CONTAINER_PID" 2>/dev/null; do
	if [ "$(date +%s)" -ge "$deadline" ]; then
		echo "FAIL - the container still runs after $((BOOT_LIMIT + 60)) s"
		tr -d '\r' <"$TMP/console.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -n 60
		echo "----- the checks so far"
		cat "$TMP/results/log" 2>/dev/null
		exit 1
	fi
	sleep 1
done
wait "$CONTAINER_PID" || true
CONTAINER_PID=""
if [ -s "$TMP/results/booted" ]; then
	awk -v a="$t_boot" -v b="$(cat "$TMP/results/booted")" 'BEGIN { printf "booted in %.1f s\n", b - a }'
fi

rc=$(cat "$TMP/results/rc" 2>/dev/null || echo none)
if [ "$rc" != 0 ]; then
	echo "----- journal of nfdhcpd.service (last 40 lines)"
	journalctl -D "$ROOT/var/log/journal" --no-pager -q -u nfdhcpd 2>/dev/null | tail -n 40
	echo "----- console (last 40 lines)"
	tr -d '\r' <"$TMP/console.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -n 40
	echo "----- the checks"
fi
# The checks last: they are what a reader of the end of the output needs.
cat "$TMP/results/log" 2>/dev/null || true
if [ "$rc" != 0 ]; then
	echo "FAIL - systemd test (exit status $rc)"
	exit 1
fi
echo "PASS - systemd test"
