#!/usr/bin/env bash
# nfdhcpd in five seconds: a VM host and a guest, each a network namespace,
# joined by a veth pair whose host end is called tap0. nfdhcpd runs in the
# host namespace behind iptables and ip6tables NFQUEUE rules; ISC dhclient in
# the guest gets the address and routes written in the binding file for tap0,
# the guest kernel forms its IPv6 address from nfdhcpd's Router
# Advertisements (SLAAC), and dhclient -6 -S gets the IPv6 DNS settings.
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

PACKAGES=(isc-dhcp-client iproute2 iptables busybox ndisc6)
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
GUEST_MAC=aa:6b:39:22:33:44
# The address the guest kernel forms by SLAAC from its MAC in SUBNET6.
EUI64=2001:db8:aaaa:bbbb:a86b:39ff:fe22:3344

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
g ip link set dev eth0 address "$GUEST_MAC"
h ip addr add 192.0.2.1/24 dev tap0
h ip link set tap0 up
g ip link set eth0 up

echo "== firewall (host namespace): DHCP from taps to NFQUEUE 42"
h iptables -t mangle -A PREROUTING -i tap+ -p udp --dport 67 -j NFQUEUE --queue-num 42
h iptables -t mangle -S PREROUTING | sed 's/^/   /'

echo "== firewall (host namespace): IPv6 RS, NS and DHCPv6 from taps to NFQUEUE 43, 44, 45"
h ip6tables -t mangle -A PREROUTING -i tap+ -p ipv6-icmp --icmpv6-type router-solicitation -j NFQUEUE --queue-num 43
h ip6tables -t mangle -A PREROUTING -i tap+ -p ipv6-icmp --icmpv6-type neighbour-solicitation -j NFQUEUE --queue-num 44
h ip6tables -t mangle -A PREROUTING -i tap+ -p udp --dport 547 -j NFQUEUE --queue-num 45
h ip6tables -t mangle -S PREROUTING | sed 's/^/   /'

echo "== config: etc/nfdhcpd.conf with paths moved to $TMP"
mkdir -p "$TMP/bindings" "$TMP/log"
# As the package does for /var/log/nfdhcpd: the log directory belongs to the
# user the daemon runs as, so that it can make the file anew after a rotation.
chown nobody "$TMP/log"
if [[ -f etc/nfdhcpd.conf ]]; then
    sed -e "s|^pidfile *=.*|pidfile = $TMP/nfdhcpd.pid|" \
        -e "s|^datapath *=.*|datapath = $TMP/bindings|" \
        -e "s|^logdir *=.*|logdir = $TMP/log|" \
        -e "s|^enable_ipv6 *=.*|enable_ipv6 = yes|" \
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
enable_ipv6 = yes
nameservers = 2001:db8:100::1, 2001:db8:200::2
domains = example.com
EOF
fi
grep -E '^(pidfile|datapath|logdir|user|server_ip|nameservers|domains?|enable_ipv6) *=' \
    "$TMP/nfdhcpd.conf" | sed 's/^/   /'

echo "== binding file $TMP/bindings/tap0"
cat >"$TMP/bindings/.tap0.tmp" <<EOF
INDEV=tap0
IP=192.0.2.100
MAC=$GUEST_MAC
HOSTNAME=demo-vm.example.com
TAGS=""
GATEWAY=192.0.2.1
SUBNET=192.0.2.0/24
GATEWAY6=2001:db8:aaaa:bbbb::1
SUBNET6=2001:db8:aaaa:bbbb::/64
EUI64=$EUI64
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

echo
# The guest may only send from its link-local address once duplicate address
# detection has passed it, a second or two after the interface came up.
for _ in $(seq 50); do
    g ip -6 addr show dev eth0 scope link | grep -q tentative || break
    sleep 0.1
done
echo "== guest: rdisc6 eth0 (a Router Solicitation, nfdhcpd's Router Advertisement)"
g rdisc6 -1 -n eth0 | sed 's/^/   /'
# The guest kernel takes that RA too (and the one nfdhcpd sent when it
# started): it forms the EUI-64 address in SUBNET6 and a default route via
# the tap's link-local address, once DAD has passed that address as well.
for _ in $(seq 100); do
    addrs=$(g ip -6 addr show dev eth0)
    if grep -q "inet6 $EUI64/64" <<<"$addrs" && ! grep -q tentative <<<"$addrs" &&
        g ip -6 route | grep -q '^default'; then
        break
    fi
    sleep 0.1
done
# nfdhcpd answers from the EUI-64 link-local address of tap0's MAC, which is
# also the address the host kernel gave tap0.
TAP_LL=$(h ip -6 -o addr show dev tap0 scope link | awk '{print $4}' | cut -d/ -f1)
echo "== guest: ip -6 addr show dev eth0 (the SLAAC address is the binding's EUI64)"
g ip -6 addr show dev eth0 | sed 's/^/   /'
echo "== guest: ip -6 route (default via tap0's link-local address $TAP_LL)"
g ip -6 route | sed 's/^/   /'
if ! g ip -6 addr show dev eth0 | grep -q "inet6 $EUI64/64" ||
    ! g ip -6 route | grep -q "^default via $TAP_LL dev eth0"; then
    echo "the guest has no SLAAC address or no default route via $TAP_LL; nfdhcpd said:" >&2
    cat "$TMP/nfdhcpd.stderr" >&2
    exit 1
fi

echo "== guest: dhclient -6 -S (Information-Request for the IPv6 DNS settings)"
printf '#!/bin/sh\nenv | grep "^new_dhcp6_" | sort > "%s"\n' "$TMP/info6.env" >"$TMP/guest-script6"
chmod 755 "$TMP/guest-script6"
: >"$TMP/dhclient6.conf"
# -1: one try; with -S dhclient exits once answered.
if ! timeout 15 ip netns exec "$GUEST" dhclient -6 -S -d -1 -v -cf "$TMP/dhclient6.conf" \
    -sf "$TMP/guest-script6" -lf "$TMP/dhclient6.leases" -pf "$TMP/dhclient6.pid" eth0 \
    2>"$TMP/dhclient6.log" || [[ ! -s $TMP/info6.env ]]; then
    sed 's/^/   /' "$TMP/dhclient6.log" >&2
    echo "dhclient -6 got no answer; nfdhcpd said:" >&2
    cat "$TMP/nfdhcpd.stderr" >&2
    exit 1
fi
sed 's/^/   /' "$TMP/info6.env"
echo "== nfdhcpd log"
grep -v ': debug: ' "$TMP/nfdhcpd.stderr" | sed 's/^/   /'

echo "== stopping nfdhcpd"
kill "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=
echo "   exit status $rc"
echo "== done; namespaces and files are removed"
