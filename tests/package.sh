#!/bin/bash
# Package test: builds the Debian package from a copy of this tree, checks
# it with lintian, mandoc and systemd-analyze, installs it, runs the
# installed daemon against a real DHCP client in network namespaces of its
# own, and purges it again.
#
#   sudo tests/package.sh
#
# Needs root and a Rust toolchain (cargo on PATH or in ~/.cargo/bin).
# Missing Debian tools are installed with apt-get.
#
# Environment:
#   CARGO_TARGET_DIR    build cache shared between runs (default: a fresh
#                       build inside the temporary copy)
#   NFDHCPD_PKG_KEEP=1  keep the temporary directory (logs, packages)
#
# Safety: the only network state touched is in the two namespaces made here;
# iptables runs only inside them. Processes are stopped by PID. The package
# must not be installed beforehand, and service starts are denied while it
# is installed here, so no daemon ever runs in the root namespace.
set -euo pipefail

PKG=nfdhcpd
SRC=$(cd "$(dirname "$0")/.." && pwd)
START=$(date +%s)
PASS=0
FAIL=0

# State for the cleanup trap.
TMP=""
HOST_NS=""
GUEST_NS=""
DAEMON_PID=""
CLIENT_PID=""
INSTALLED_HERE=""
POLICY_RC_CREATED=""
OPERATOR_FILE=""

ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
nok() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else nok "$what"; fi
}
# A failure after which nothing else can be checked.
fatal() {
	nok "$*"
	exit 1
}
show() {
	local f=$1
	[ -s "$f" ] || return 0
	echo "----- $f (last 40 lines)"
	tail -n 40 "$f"
	echo "-----"
}

stop_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	set +e
	stop_pid "$CLIENT_PID"
	stop_pid "$DAEMON_PID"
	[ -n "$GUEST_NS" ] && ip netns del "$GUEST_NS" 2>/dev/null
	[ -n "$HOST_NS" ] && ip netns del "$HOST_NS" 2>/dev/null
	[ -n "$OPERATOR_FILE" ] && rm -f "$OPERATOR_FILE"
	if [ -n "$INSTALLED_HERE" ] && dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null |
		grep -qv '^not-installed$'; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "$PKG" >/dev/null 2>&1
	fi
	[ -n "$POLICY_RC_CREATED" ] && rm -f /usr/sbin/policy-rc.d
	if [ -n "$TMP" ]; then
		if [ "$FAIL" -gt 0 ] || [ "$rc" -ne 0 ]; then
			for f in "$TMP"/build.log "$TMP"/daemon.out "$TMP"/run/log/nfdhcpd.log \
				"$TMP"/client/log; do
				show "$f"
			done
		fi
		if [ "${NFDHCPD_PKG_KEEP:-}" = 1 ]; then
			echo "kept $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
	echo "run time: $(($(date +%s) - START)) s"
	if [ "$rc" -ne 0 ] && [ "$FAIL" -eq 0 ]; then
		FAIL=1
	fi
	echo "package test: $PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ] || exit 1
	exit 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls "$@" every 0.1 s for up to $1 seconds.
wait_for() {
	local secs=$1
	shift
	local i
	for i in $(seq $((secs * 10))); do
		if "$@"; then return 0; fi
		sleep 0.1
	done
	"$@"
}

owner_mode() {
	[ -e "$1" ] || { echo "  $1: missing"; return 1; }
	local got
	got=$(stat -c '%U:%G %a' "$1")
	[ "$got" = "$2" ] || { echo "  $1: $got, expected $2"; return 1; }
}

absent() {
	local p rc=0
	for p in "$@"; do
		if [ -e "$p" ] || [ -L "$p" ]; then
			echo "  $p is still there"
			rc=1
		fi
	done
	return "$rc"
}

# ---------------------------------------------------------------- set-up

[ "$(id -u)" = 0 ] || fatal "must run as root"

if ! command -v cargo >/dev/null && [ ! -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
	fatal "cargo not found (PATH or ~/.cargo/bin): install Rust with rustup"
fi

if dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null | grep -qv '^not-installed$'; then
	fatal "$PKG is already installed; this test installs and purges it"
fi
for d in /etc/nfdhcpd /var/lib/nfdhcpd /var/log/nfdhcpd; do
	[ ! -e "$d" ] || fatal "$d exists without the package; refusing to touch it"
done

# systemd (for systemd-analyze) installs fine without being the running init.
DEPS="dpkg-dev debhelper lintian mandoc man-db systemd logrotate ca-certificates
	isc-dhcp-client iptables iproute2"
missing=""
for p in $DEPS; do
	if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -q '^installed$'; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	# shellcheck disable=SC2086
	if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends $missing; } >/dev/null; then
		fatal "cannot install$missing"
	fi
fi
ok "build and test dependencies present"

TMP=$(mktemp -d /tmp/nfdhcpd-pkg.XXXXXX)
# The daemon reads its bindings under here after switching to nobody.
chmod 0755 "$TMP"

# ---------------------------------------------------------------- build

# The work tree as it is (tracked and new files, without what .gitignore
# leaves out), so that the package is built from exactly what is checked.
mkdir "$TMP/src"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 -r sh -c 'for f; do [ ! -e "$f" ] || printf "%s\0" "$f"; done' sh |
		xargs -0 -r cp -a --parents -t "$TMP/src")
else
	tar -C "$SRC" --exclude=./target --exclude=./fuzz/target -cf - . | tar -C "$TMP/src" -xf -
fi
[ -f "$TMP/src/debian/control" ] || fatal "copy of the source tree has no debian/control"

VERSION=$(cd "$TMP/src" && dpkg-parsechangelog -S Version)
ARCH=$(dpkg --print-architecture)
DEB="$TMP/${PKG}_${VERSION}_${ARCH}.deb"
CHANGES="$TMP/${PKG}_${VERSION}_${ARCH}.changes"

echo "building $PKG $VERSION (log: build.log)"
t0=$(date +%s)
if (cd "$TMP/src" && dpkg-buildpackage -us -uc -b) >"$TMP/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - t0)) s)"
else
	fatal "dpkg-buildpackage failed"
fi
[ -f "$DEB" ] || fatal "no $DEB"

# ---------------------------------------------------------------- static checks

if lintian --fail-on error --display-info --show-overrides "$CHANGES" >"$TMP/lintian.log" 2>&1; then
	ok "lintian: no errors"
else
	nok "lintian: errors"
fi
grep -v '^running with root privileges' "$TMP/lintian.log" | sed 's/^/  /' || true
check "lintian: no warnings" sh -c "! grep -q '^W: ' '$TMP/lintian.log'"

man_lint() {
	local out
	out=$(mandoc -Tlint -W all "$TMP"/src/man/* 2>&1) || true
	[ -z "$out" ] || { echo "$out" | sed 's/^/  /'; return 1; }
}
check "mandoc -Tlint on the man pages" man_lint

contents() { dpkg-deb -c "$DEB" | awk '{print $1, $2, $6}'; }
in_deb() { contents | grep -qxF -e "$1"; }
check "deb: /usr/sbin/nfdhcpd root 0755" in_deb "-rwxr-xr-x root/root ./usr/sbin/nfdhcpd"
check "deb: conffile /etc/nfdhcpd/nfdhcpd.conf" \
	sh -c "dpkg-deb -e '$DEB' '$TMP/control' && grep -qx /etc/nfdhcpd/nfdhcpd.conf '$TMP/control/conffiles'"

# ---------------------------------------------------------------- install

if [ ! -e /usr/sbin/policy-rc.d ]; then
	# invoke-rc.d and deb-systemd-invoke ask this before starting services:
	# the daemon must not start in the root namespace.
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 0755 /usr/sbin/policy-rc.d
	POLICY_RC_CREATED=1
fi

INSTALLED_HERE=1
if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$DEB" \
	>"$TMP/install.log" 2>&1; then
	ok "apt-get install ./$(basename "$DEB")"
else
	cat "$TMP/install.log"
	fatal "apt-get install failed"
fi

check "/usr/sbin/nfdhcpd root:root 0755" owner_mode /usr/sbin/nfdhcpd "root:root 755"
check "/etc/nfdhcpd/nfdhcpd.conf root:root 0644" owner_mode /etc/nfdhcpd/nfdhcpd.conf "root:root 644"
check "/var/lib/nfdhcpd root:root 0755" owner_mode /var/lib/nfdhcpd "root:root 755"
check "/var/log/nfdhcpd nobody:adm 0750" owner_mode /var/log/nfdhcpd "nobody:adm 750"
check "/var/log/nfdhcpd/nfdhcpd.log nobody:adm 0640" \
	owner_mode /var/log/nfdhcpd/nfdhcpd.log "nobody:adm 640"
check "/etc/init.d/nfdhcpd root:root 0755" owner_mode /etc/init.d/nfdhcpd "root:root 755"
check "/etc/logrotate.d/nfdhcpd root:root 0644" owner_mode /etc/logrotate.d/nfdhcpd "root:root 644"
UNIT=/lib/systemd/system/nfdhcpd.service
check "$UNIT root:root 0644" owner_mode "$UNIT" "root:root 644"
for m in man8/nfdhcpd.8 man5/nfdhcpd.conf.5 man5/nfdhcpd-binding.5; do
	check "man page $m installed" test -s "/usr/share/man/$m.gz"
done
check "man nfdhcpd finds the page" sh -c 'man -w nfdhcpd | grep -q "/usr/share/man/man8/nfdhcpd.8.gz"'
check "service enabled for systemd" \
	test -L /etc/systemd/system/multi-user.target.wants/nfdhcpd.service
check "service enabled for sysvinit" sh -c 'ls /etc/rc2.d/S*nfdhcpd >/dev/null 2>&1'
check "examples installed" test -e /usr/share/doc/nfdhcpd/examples/nfdhcpd-iptables.sh

check "nfdhcpd --check-config (installed configuration)" \
	sh -c '/usr/sbin/nfdhcpd --check-config >/dev/null'
check "nfdhcpd --version is the package version" \
	sh -c "/usr/sbin/nfdhcpd --version | grep -qx 'nfdhcpd $VERSION'"
bad_config_exits_2() {
	local rc=0
	printf '[dhcp]\nlease_lifetime = soon\n' >"$TMP/bad.conf"
	/usr/sbin/nfdhcpd --check-config -c "$TMP/bad.conf" 2>/dev/null || rc=$?
	[ "$rc" = 2 ]
}
check "a bad configuration exits with status 2" bad_config_exits_2

verify_unit() {
	local out
	out=$(systemd-analyze verify "$UNIT" 2>&1) || { echo "$out" | sed 's/^/  /'; return 1; }
	[ -z "$out" ] || { echo "$out" | sed 's/^/  /'; return 1; }
}
check "systemd-analyze verify $UNIT" verify_unit
security_score() {
	local out score
	out=$(systemd-analyze security --offline=true --threshold=30 "$UNIT" 2>&1) || {
		echo "$out" | tail -n 3 | sed 's/^/  /'
		return 1
	}
	score=$(echo "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	echo "  systemd-analyze security: exposure $score"
	[ -n "$score" ]
}
check "systemd-analyze security: exposure at most 3.0" security_score
check "init script parses (sh -n)" sh -n /etc/init.d/nfdhcpd
init_status_not_running() {
	local rc=0
	/etc/init.d/nfdhcpd status >/dev/null 2>&1 || rc=$?
	[ "$rc" = 3 ] || { echo "  status exit code $rc, expected 3 (not running)"; return 1; }
}
check "the service was not started by the installation" init_status_not_running
check "logrotate accepts /etc/logrotate.d/nfdhcpd" \
	sh -c "logrotate -d -s '$TMP/logrotate.state' /etc/logrotate.d/nfdhcpd 2>&1 |
		{ ! grep -i 'error'; }"

# ---------------------------------------------------------------- run

HOST_NS="nfdpkg-$$-host"
GUEST_NS="nfdpkg-$$-guest"
GUEST_MAC="aa:6b:39:22:33:44"
GUEST_IP="192.0.2.100"
SERVER_IP="192.0.2.1"
ip netns add "$HOST_NS"
ip netns add "$GUEST_NS"
ip -n "$HOST_NS" link set lo up
ip -n "$GUEST_NS" link set lo up
ip -n "$HOST_NS" link add tap0 type veth peer name eth0 netns "$GUEST_NS"
ip -n "$GUEST_NS" link set eth0 address "$GUEST_MAC"
ip -n "$HOST_NS" addr add "$SERVER_IP/24" dev tap0
ip -n "$HOST_NS" link set tap0 up
ip -n "$GUEST_NS" link set eth0 up
ip netns exec "$HOST_NS" iptables -t mangle -A PREROUTING -i tap+ -p udp --dport 67 \
	-j NFQUEUE --queue-num 42
ok "namespaces $HOST_NS and $GUEST_NS joined by tap0, NFQUEUE rule in $HOST_NS"

# The packaged configuration, with every path in the temporary directory.
# The pid file's directory does not exist: the daemon creates it for nobody.
RUN="$TMP/run"
mkdir -p "$RUN/bindings" "$RUN/log"
chmod 0755 "$RUN" "$RUN/bindings"
chown nobody:adm "$RUN/log"
chmod 0750 "$RUN/log"
install -o nobody -g adm -m 0640 /dev/null "$RUN/log/nfdhcpd.log"
CONF="$RUN/nfdhcpd.conf"
sed -e "s|^pidfile *=.*|pidfile = $RUN/pid/nfdhcpd.pid|" \
	-e "s|^datapath *=.*|datapath = $RUN/bindings|" \
	-e "s|^logdir *=.*|logdir = $RUN/log|" \
	/etc/nfdhcpd/nfdhcpd.conf >"$CONF"
config_is_rewritten() {
	grep -qx "pidfile = $RUN/pid/nfdhcpd.pid" "$CONF" &&
		grep -qx "datapath = $RUN/bindings" "$CONF" &&
		grep -qx "logdir = $RUN/log" "$CONF" &&
		grep -qx "user = nobody" "$CONF" &&
		grep -qx "server_ip = $SERVER_IP" "$CONF" &&
		/usr/sbin/nfdhcpd --check-config -c "$CONF" >/dev/null
}
check "test configuration: packaged one with temporary paths, user nobody" config_is_rewritten
LOG="$RUN/log/nfdhcpd.log"
PIDFILE="$RUN/pid/nfdhcpd.pid"

ip netns exec "$HOST_NS" /usr/sbin/nfdhcpd -f -c "$CONF" >"$TMP/daemon.out" 2>&1 &
DAEMON_PID=$!
daemon_ready() { grep -q 'ready:' "$TMP/daemon.out"; }
if wait_for 10 daemon_ready; then
	ok "installed daemon started in $HOST_NS (pid $DAEMON_PID)"
else
	fatal "daemon not ready within 10 s"
fi

dropped_privileges() {
	local st=/proc/$DAEMON_PID/status nobody
	nobody=$(id -u nobody)
	grep -q "^Uid:[[:space:]]*$nobody[[:space:]]*$nobody[[:space:]]*$nobody[[:space:]]*$nobody$" "$st" &&
		grep -q '^CapEff:[[:space:]]*0*3000$' "$st" &&
		grep -q '^CapPrm:[[:space:]]*0*3000$' "$st" &&
		grep -q '^CapBnd:[[:space:]]*0*$' "$st" &&
		grep -q '^NoNewPrivs:[[:space:]]*1$' "$st" || {
		grep -E '^(Uid|Gid|Cap|NoNewPrivs)' "$st" | sed 's/^/  /'
		return 1
	}
}
check "running as nobody with CAP_NET_ADMIN+CAP_NET_RAW only, no_new_privs" dropped_privileges
check "pid file holds the daemon's pid" sh -c "[ \"\$(cat '$PIDFILE')\" = '$DAEMON_PID' ]"
check "pid file directory created for nobody" sh -c "[ \"\$(stat -c %U '$RUN/pid')\" = nobody ]"

# Written the way VM managers should: a temporary name, then a rename.
cat >"$RUN/bindings/.tap0.tmp" <<EOF
MAC=$GUEST_MAC
HOSTNAME=pkgtest-vm.example.org
IP=$GUEST_IP
SUBNET=192.0.2.0/24
GATEWAY=$SERVER_IP
TAGS=""
MTU=
EOF
mv "$RUN/bindings/.tap0.tmp" "$RUN/bindings/tap0"
binding_added() { grep -q 'binding tap0 added' "$LOG"; }
check "binding file picked up by inotify" wait_for 5 binding_added

CLIENT="$TMP/client"
mkdir "$CLIENT"
cat >"$CLIENT/script" <<EOF
#!/bin/sh
{ echo "@@ \$reason"; env; } >>"$CLIENT/events"
EOF
chmod 0755 "$CLIENT/script"
printf 'timeout 20;\nretry 1;\n' >"$CLIENT/dhclient.conf"
ip netns exec "$GUEST_NS" dhclient -d -1 -v -cf "$CLIENT/dhclient.conf" -sf "$CLIENT/script" \
	-lf "$CLIENT/lease" -pf "$CLIENT/pid" eth0 >"$CLIENT/log" 2>&1 &
CLIENT_PID=$!
t0=$(date +%s)
bound() { grep -q '^@@ BOUND$' "$CLIENT/events" 2>/dev/null; }
client_gone() { ! kill -0 "$CLIENT_PID" 2>/dev/null; }
bound_or_gone() { bound || client_gone; }
wait_for 25 bound_or_gone || true
if bound; then
	ok "dhclient bound ($(($(date +%s) - t0)) s)"
else
	nok "dhclient got no lease"
fi
stop_pid "$CLIENT_PID"
CLIENT_PID=""
lease_var() {
	sed -n '/^@@ BOUND$/,/^@@ /p' "$CLIENT/events" 2>/dev/null | sed -n "s/^$1=//p" | head -n 1
}
lease_is() {
	local got
	got=$(lease_var "$1")
	[ "$got" = "$2" ] || { echo "  $1=$got, expected $2"; return 1; }
}
check "guest got the binding's address $GUEST_IP" lease_is new_ip_address "$GUEST_IP"
check "guest got the subnet mask" lease_is new_subnet_mask 255.255.255.0
check "guest got the gateway as router" lease_is new_routers "$SERVER_IP"
check "answer came from server_ip" lease_is new_dhcp_server_identifier "$SERVER_IP"
check "the answer is logged" grep -q "DHCPACK.*$GUEST_IP\|$GUEST_IP.*DHCPACK" "$LOG"

# Rotation as logrotate does it; the daemon reopens the file as nobody.
mv "$LOG" "$LOG.1"
install -o nobody -g adm -m 0640 /dev/null "$LOG"
kill -HUP "$DAEMON_PID"
reopened() { grep -q 'bindings in force' "$LOG"; }
check "SIGHUP: log reopened after rotation, bindings rescanned" wait_for 5 reopened
kill -USR1 "$DAEMON_PID"
dumped() { grep -q 'binding tap0:' "$LOG"; }
check "SIGUSR1: binding table dumped to the log" wait_for 5 dumped

t0=$(date +%s%N)
kill -TERM "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
DAEMON_PID=""
check "SIGTERM: exit status 0 (was $rc) within 2 s (${ms} ms)" test "$rc" = 0 -a "$ms" -le 2000
check "pid file removed at exit" test ! -e "$PIDFILE"

# The init script with the packaged configuration and paths, inside the host
# namespace. SYSTEMCTL_SKIP_REDIRECT: on a host running systemd, the LSB
# functions would otherwise hand "start" to systemctl, i.e. to the root
# namespace.
INIT="ip netns exec $HOST_NS env SYSTEMCTL_SKIP_REDIRECT=1 /etc/init.d/nfdhcpd"
PKG_PIDFILE=/run/nfdhcpd/nfdhcpd.pid
PKG_LOG=/var/log/nfdhcpd/nfdhcpd.log
if $INIT start >"$TMP/init-start.log" 2>&1; then
	ok "init script: start"
else
	cat "$TMP/init-start.log"
	nok "init script: start"
fi
pkg_daemon_up() { [ -s "$PKG_PIDFILE" ] && grep -q 'ready:' "$PKG_LOG"; }
if wait_for 10 pkg_daemon_up; then
	DAEMON_PID=$(cat "$PKG_PIDFILE")
	ok "detached daemon ready, pid $DAEMON_PID, logging to $PKG_LOG"
else
	nok "detached daemon not ready within 10 s"
fi
if [ -n "$DAEMON_PID" ]; then
	check "detached daemon runs in $HOST_NS, not in the root namespace" \
		sh -c "ip netns identify $DAEMON_PID | grep -qx '$HOST_NS'"
	check "init script: status says running" sh -c "$INIT status >/dev/null"
	$INIT reload >/dev/null 2>&1 || true
	hup_seen() { grep -q 'SIGHUP' "$PKG_LOG"; }
	check "init script: reload sends SIGHUP" wait_for 5 hup_seen
	check "init script: stop" sh -c "$INIT stop >/dev/null"
	check "daemon stopped, pid file removed" \
		sh -c "! kill -0 $DAEMON_PID 2>/dev/null && [ ! -e $PKG_PIDFILE ]"
	kill -0 "$DAEMON_PID" 2>/dev/null || DAEMON_PID=""
fi

ip netns del "$GUEST_NS" && GUEST_NS=""
ip netns del "$HOST_NS" && HOST_NS=""

# ---------------------------------------------------------------- purge

# Binding files are the VM manager's: purging must leave them alone.
OPERATOR_FILE=/var/lib/nfdhcpd/tap-operator
printf 'MAC=aa:bb:cc:dd:ee:ff\nHOSTNAME=keep-me\n' >"$OPERATOR_FILE"
if DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "$PKG" >"$TMP/purge.log" 2>&1; then
	ok "apt-get purge $PKG (with a binding file present)"
else
	cat "$TMP/purge.log"
	nok "apt-get purge $PKG"
fi
INSTALLED_HERE=""
check "package is gone from dpkg's database" \
	sh -c "dpkg-query -W -f='\${db:Status-Status}' $PKG 2>/dev/null | grep -qx not-installed ||
		! dpkg-query -W $PKG >/dev/null 2>&1"
check "installed files and directories are gone" absent /usr/sbin/nfdhcpd /etc/nfdhcpd \
	/var/log/nfdhcpd /run/nfdhcpd "$UNIT" /etc/init.d/nfdhcpd /etc/logrotate.d/nfdhcpd \
	/usr/share/man/man8/nfdhcpd.8.gz /usr/share/man/man5/nfdhcpd.conf.5.gz \
	/usr/share/man/man5/nfdhcpd-binding.5.gz /usr/share/doc/nfdhcpd \
	/etc/systemd/system/multi-user.target.wants/nfdhcpd.service
check "no rc.d links left" sh -c '! ls /etc/rc?.d/*nfdhcpd >/dev/null 2>&1'
check "operator's binding file kept in /var/lib/nfdhcpd" test -s "$OPERATOR_FILE"
rm -f "$OPERATOR_FILE"
OPERATOR_FILE=""
rmdir /var/lib/nfdhcpd

# Once more without operator data: then the binding directory goes too.
INSTALLED_HERE=1
if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$DEB" \
	>"$TMP/install2.log" 2>&1 &&
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "$PKG" >"$TMP/purge2.log" 2>&1; then
	INSTALLED_HERE=""
	ok "second install and purge"
else
	nok "second install and purge"
fi
check "empty /var/lib/nfdhcpd removed by purge" absent /var/lib/nfdhcpd /var/log/nfdhcpd
