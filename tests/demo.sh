#!/usr/bin/env bash
# nfdhcpd in five seconds: a VM host and a guest, each a network namespace,
# joined by a veth pair whose host end is called tap0. nfdhcpd runs in the
# host namespace behind an iptables NFQUEUE rule; ISC dhclient in the guest
# gets the address and routes written in the binding file for tap0.
#
# Run as root:   tests/demo.sh
# Nothing outside the two namespaces is touched; everything is removed on
# exit. Set DEMO_KEEP=1 to keep the temporary directory (config, logs).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

if [[ $EUID -ne 0 ]]; then
    echo "run as root: the demo creates network namespaces" >&2
    exit 1
fi

PACKAGES=(isc-dhcp-client iproute2 iptables busybox)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }

echo "== building nfdhcpd"
cargo build --release --quiet
NFDHCPD=$REPO/target/release/nfdhcpd

HOST=nfdemo-$$-host
GUEST=nfdemo-$$-guest
TMP=$(mktemp -d /tmp/nfdhcpd-demo.XXXXXX)
# The daemon reads the bindings after switching to an unprivileged user.
chmod 755 "$TMP"
DAEMON_PID=
DHCLIENT_PID=

cleanup() {
    set +e
    [[ -n $DHCLIENT_PID ]] && kill "$DHCLIENT_PID" 2>/dev/null
    [[ -n $DAEMON_PID ]] && kill "$DAEMON_PID" 2>/dev/null
    wait 2>/dev/null
    for ns in "$GUEST" "$HOST"; do
        if [[ -e /run/netns/$ns ]]; then
            for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null; done
            ip netns del "$ns"
        fi
    done
    if [[ -n ${DEMO_KEEP:-} ]]; then
        echo "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

h() { ip netns exec "$HOST" "$@"; }
g() { ip netns exec "$GUEST" "$@"; }

echo "== namespaces: host $HOST, guest $GUEST"
ip netns add "$HOST"
ip netns add "$GUEST"
h ip link set lo up
g ip link set lo up
h ip link add tap0 type veth peer name eth0 netns "$GUEST"
g ip link set dev eth0 address aa:6b:39:22:33:44
h ip addr add 192.0.2.1/24 dev tap0
h ip link set tap0 up
g ip link set eth0 up

echo "== firewall (host namespace): DHCP from taps to NFQUEUE 42"
h iptables -t mangle -A PREROUTING -i tap+ -p udp --dport 67 -j NFQUEUE --queue-num 42
h iptables -t mangle -S PREROUTING | sed 's/^/   /'

# ---- IPv6 (to come) --------------------------------------------------------
# Host: ip6tables rules for RS (43), NS (44) and DHCPv6 (45) on tap+, and
# SUBNET6/GATEWAY6 in the binding below. Guest: rdisc6 eth0, the kernel's
# SLAAC address, dhclient -6 -S for DNS. Then set enable_ipv6 = yes below.
# -----------------------------------------------------------------------------

echo "== config: etc/nfdhcpd.conf with paths moved to $TMP"
mkdir -p "$TMP/bindings" "$TMP/log"
if [[ -f etc/nfdhcpd.conf ]]; then
    sed -e "s|^pidfile *=.*|pidfile = $TMP/nfdhcpd.pid|" \
        -e "s|^datapath *=.*|datapath = $TMP/bindings|" \
        -e "s|^logdir *=.*|logdir = $TMP/log|" \
        -e "s|^enable_ipv6 *=.*|enable_ipv6 = no|" \
        etc/nfdhcpd.conf >"$TMP/nfdhcpd.conf"
else
    cat >"$TMP/nfdhcpd.conf" <<EOF
[general]
pidfile = $TMP/nfdhcpd.pid
datapath = $TMP/bindings
logdir = $TMP/log
user = nobody
[dhcp]
enable_dhcp = yes
server_ip = 192.0.2.1
nameservers = 192.0.2.2, 192.0.2.3
domain = example.com
[ipv6]
enable_ipv6 = no
EOF
fi
grep -E '^(pidfile|datapath|logdir|user|server_ip|nameservers|domain|enable_ipv6) *=' \
    "$TMP/nfdhcpd.conf" | sed 's/^/   /'

echo "== binding file $TMP/bindings/tap0"
cat >"$TMP/bindings/.tap0.tmp" <<EOF
INDEV=tap0
IP=192.0.2.100
MAC=aa:6b:39:22:33:44
HOSTNAME=demo-vm.example.com
TAGS=""
GATEWAY=192.0.2.1
SUBNET=192.0.2.0/24
GATEWAY6=
SUBNET6=
EUI64=
PRIVATE=
MTU=1400
MACSPOOF=
EOF
mv "$TMP/bindings/.tap0.tmp" "$TMP/bindings/tap0"
sed 's/^/   /' "$TMP/bindings/tap0"

echo "== starting nfdhcpd in the host namespace"
# Started directly (not through h) so that $! is the daemon itself.
ip netns exec "$HOST" "$NFDHCPD" -f -d -c "$TMP/nfdhcpd.conf" 2>"$TMP/nfdhcpd.stderr" &
DAEMON_PID=$!
for _ in $(seq 100); do
    grep -q 'ready:' "$TMP/nfdhcpd.stderr" && break
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q 'ready:' "$TMP/nfdhcpd.stderr"; then
    echo "nfdhcpd did not start:" >&2
    cat "$TMP/nfdhcpd.stderr" >&2
    exit 1
fi
grep 'ready:' "$TMP/nfdhcpd.stderr" | sed 's/^/   /'

# A minimal dhclient script: configures the guest's namespace only, never
# resolv.conf or the host name, and keeps what it got in lease.env.
cat >"$TMP/guest-script" <<EOF
#!/bin/sh
case "\$reason" in
PREINIT)
    ip link set dev "\$interface" up ;;
BOUND|RENEW|REBIND|REBOOT)
    ip -4 addr flush dev "\$interface"
    ip addr add "\$new_ip_address/\$new_subnet_mask" broadcast + dev "\$interface"
    [ -n "\$new_interface_mtu" ] && ip link set dev "\$interface" mtu "\$new_interface_mtu"
    if [ -n "\$new_rfc3442_classless_static_routes" ]; then
        set -- \$new_rfc3442_classless_static_routes
        while [ \$# -ge 5 ]; do
            len=\$1; shift; n=\$(( (len + 7) / 8 )); net=; i=0
            while [ \$i -lt 4 ]; do
                if [ \$i -lt \$n ]; then o=\$1; shift; else o=0; fi
                net="\$net\${net:+.}\$o"; i=\$((i + 1))
            done
            gw="\$1.\$2.\$3.\$4"; shift 4
            if [ "\$gw" = 0.0.0.0 ]; then
                ip route replace "\$net/\$len" dev "\$interface"
            else
                ip route replace "\$net/\$len" via "\$gw" dev "\$interface"
            fi
        done
    else
        for r in \$new_routers; do ip route replace default via "\$r" dev "\$interface"; break; done
    fi
    env | grep '^new_' | sort > "$TMP/lease.env" ;;
esac
exit 0
EOF
chmod 755 "$TMP/guest-script"
cat >"$TMP/dhclient.conf" <<'EOF'
option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
timeout 15;
initial-interval 1;
request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers,
        host-name, interface-mtu, rfc3442-classless-static-routes,
        dhcp-lease-time, dhcp-renewal-time, dhcp-rebinding-time;
EOF

echo "== dhclient in the guest"
ip netns exec "$GUEST" dhclient -d -1 -v -cf "$TMP/dhclient.conf" -sf "$TMP/guest-script" \
    -lf "$TMP/dhclient.leases" -pf "$TMP/dhclient.pid" eth0 2>"$TMP/dhclient.log" &
DHCLIENT_PID=$!
for _ in $(seq 200); do
    [[ -s $TMP/lease.env ]] && break
    kill -0 "$DHCLIENT_PID" 2>/dev/null || break
    sleep 0.1
done
grep -E '^DHCP|^bound' "$TMP/dhclient.log" | sed 's/^/   /' || true
if [[ ! -s $TMP/lease.env ]]; then
    echo "the guest got no lease; nfdhcpd said:" >&2
    cat "$TMP/nfdhcpd.stderr" >&2
    exit 1
fi
kill "$DHCLIENT_PID" 2>/dev/null || true
wait "$DHCLIENT_PID" 2>/dev/null || true
DHCLIENT_PID=

echo
echo "== the guest got (lease values)"
sed 's/^/   /' "$TMP/lease.env"
echo "== guest: ip -4 addr show dev eth0"
g ip -4 addr show dev eth0 | sed 's/^/   /'
echo "== guest: ip route"
g ip route | sed 's/^/   /'
echo "== guest: ping the host (192.0.2.1)"
g busybox ping -c 1 -W 2 192.0.2.1 | sed 's/^/   /'
echo "== nfdhcpd log"
grep -v ': debug: ' "$TMP/nfdhcpd.stderr" | sed 's/^/   /'

echo "== stopping nfdhcpd"
kill "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=
echo "   exit status $rc"
echo "== done; namespaces and files are removed"
