#!/bin/sh
# Sends guests' DHCP, DHCPv6, Router and Neighbor Solicitations to nfdhcpd.
#
#   nfdhcpd-iptables.sh add|del [IFACE_PATTERN]     (default pattern: tap+)
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
set -eu

op=${1:-add}
pat=${2:-tap+}
case "$op" in
  add) A=-A ;;
  del) A=-D ;;
  *) echo "usage: $0 add|del [IFACE_PATTERN]" >&2; exit 2 ;;
esac

Q4=${DHCP_QUEUE:-42}
QRS=${RS_QUEUE:-43}
QNS=${NS_QUEUE:-44}
Q6=${DHCPV6_QUEUE:-45}
BYPASS=--queue-bypass

for m in "-i $pat" "-m physdev --physdev-in $pat"; do
  # shellcheck disable=SC2086
  iptables -t mangle $A PREROUTING $m -p udp --dport 67 -j NFQUEUE --queue-num "$Q4" $BYPASS
  # shellcheck disable=SC2086
  ip6tables -t mangle $A PREROUTING $m -p ipv6-icmp --icmpv6-type router-solicitation -j NFQUEUE --queue-num "$QRS" $BYPASS
  # shellcheck disable=SC2086
  ip6tables -t mangle $A PREROUTING $m -p ipv6-icmp --icmpv6-type neighbour-solicitation -j NFQUEUE --queue-num "$QNS" $BYPASS
  # shellcheck disable=SC2086
  ip6tables -t mangle $A PREROUTING $m -p udp --dport 547 -j NFQUEUE --queue-num "$Q6" $BYPASS
done
