#!/bin/bash
# Sends guests' DHCP, DHCPv6, Router and Neighbor Solicitations to nfdhcpd.
#
#   nfdhcpd-iptables.sh add|del [IFACE_PATTERN]     (default pattern: tap+)
#
# `add` appends each rule that is not there yet, so running it again changes
# nothing. `del` removes those rules (every copy of them) and nothing else;
# rules that are not there are skipped, so it too can run any number of times.
#
# Routed setups match the tap as the input interface (-i); bridged setups match
# the bridge port with -m physdev (needs net.bridge.bridge-nf-call-iptables=1
# and net.bridge.bridge-nf-call-ip6tables=1).
#
# --queue-bypass: when no nfdhcpd listens on a queue (stopped, restarting) the
# kernel lets the packet through as if the rule were not there, instead of
# dropping it. Guests then reach whatever the host itself offers (usually
# nothing for DHCP; the host kernel for Neighbor Solicitations) rather than
# losing all neighbour resolution while the daemon restarts. Remove it if a
# stopped nfdhcpd must mean that no guest request ever reaches the host.
#
# Queue numbers must match nfdhcpd.conf: dhcp_queue, rs_queue, ns_queue, dhcpv6_queue.
set -euo pipefail

usage() {
    echo "usage: $0 add|del [IFACE_PATTERN]" >&2
    exit 2
}
op=${1:-add}
pat=${2:-tap+}
case "$op" in
add | del) ;;
*) usage ;;
esac

Q4=${DHCP_QUEUE:-42}
QRS=${RS_QUEUE:-43}
QNS=${NS_QUEUE:-44}
Q6=${DHCPV6_QUEUE:-45}
BYPASS=--queue-bypass

# present TOOL RULE...: whether RULE is in the mangle PREROUTING chain. -C
# exits with 1 for "no such rule"; anything else is a real error (bad
# argument, missing extension, no permission) and stops the script.
present() {
    local tool=$1 rc=0 err
    shift
    err=$("$tool" -w -t mangle -C PREROUTING "$@" 2>&1) || rc=$?
    case $rc in
    0) return 0 ;;
    1) return 1 ;;
    *)
        echo "$0: $tool -t mangle -C PREROUTING $*: ${err:-exit $rc}" >&2
        exit 1
        ;;
    esac
}

# rule TOOL RULE...: adds or deletes one rule of the mangle PREROUTING chain.
rule() {
    local tool=$1
    shift
    if [[ $op == add ]]; then
        present "$tool" "$@" || "$tool" -w -t mangle -A PREROUTING "$@"
    else
        while present "$tool" "$@"; do
            "$tool" -w -t mangle -D PREROUTING "$@"
        done
    fi
}

for m in "-i $pat" "-m physdev --physdev-in $pat"; do
    read -r -a match <<<"$m"
    rule iptables "${match[@]}" -p udp --dport 67 -j NFQUEUE --queue-num "$Q4" "$BYPASS"
    rule ip6tables "${match[@]}" -p ipv6-icmp --icmpv6-type router-solicitation -j NFQUEUE --queue-num "$QRS" "$BYPASS"
    rule ip6tables "${match[@]}" -p ipv6-icmp --icmpv6-type neighbour-solicitation -j NFQUEUE --queue-num "$QNS" "$BYPASS"
    rule ip6tables "${match[@]}" -p udp --dport 547 -j NFQUEUE --queue-num "$Q6" "$BYPASS"
done
