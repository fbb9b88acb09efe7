#!/usr/bin/env bash
# Makes the test Nautobot (127.0.0.1:PORT of the root network namespace)
# reachable as 127.0.0.1:PORT inside network namespace NETNS, through a UNIX
# socket and two socat processes:
#
#   root namespace: socat UNIX-LISTEN:$RUNDIR/nb-bridge.NETNS.sock -> TCP:127.0.0.1:PORT
#   NETNS:          socat TCP-LISTEN:127.0.0.1:PORT -> UNIX-CONNECT:$RUNDIR/nb-bridge.NETNS.sock
#
# The root namespace's interfaces and firewall stay as they are; in NETNS
# only `lo` is brought up.
#
# usage: netns-bridge.sh start NETNS [PORT]   PORT defaults to $NAUTOBOT_PORT or 8080
#        netns-bridge.sh stop NETNS           connections to PORT in NETNS are refused then
#        netns-bridge.sh status NETNS         exit 0 when both socats run
#
# RUNDIR is $NB_BRIDGE_RUNDIR or /run. Pid files nb-bridge.NETNS.outer.pid and
# nb-bridge.NETNS.inner.pid, log nb-bridge.NETNS.log (removed by `stop` when
# empty). `stop` signals only the two pids it wrote (each checked to still be
# that socat) and the processes they forked, one per open connection.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 2
}
action=${1:-}
ns=${2:-}
port=${3:-${NAUTOBOT_PORT:-8080}}
[[ -n $action && -n $ns ]] || usage
[[ $ns =~ ^[A-Za-z0-9_.-]+$ ]] || {
    echo "netns-bridge: bad namespace name: $ns" >&2
    exit 2
}
[[ $port =~ ^[0-9]+$ ]] || {
    echo "netns-bridge: bad port: $port" >&2
    exit 2
}
rundir=${NB_BRIDGE_RUNDIR:-/run}
sock=$rundir/nb-bridge.$ns.sock
outer_pidfile=$rundir/nb-bridge.$ns.outer.pid
inner_pidfile=$rundir/nb-bridge.$ns.inner.pid
log=$rundir/nb-bridge.$ns.log

say() { printf '[%s] netns-bridge %s: %s\n' "$(date +%H:%M:%S)" "$ns" "$*" >&2; }

# ours PID: PID is alive and is a socat whose command line names our socket.
ours() {
    local pid=${1:-} cmdline
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == "socat "*"$sock"* ]]
}

# finish PIDFILE: ends the socat of PIDFILE and its per-connection children.
finish() {
    local pidfile=$1 pid children c
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if ours "$pid"; then
        children=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
        kill -TERM "$pid" 2>/dev/null || true
        for c in $children; do kill -TERM "$c" 2>/dev/null || true; done
        for _ in $(seq 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        say "stopped socat $pid"
    elif [[ -n $pid ]]; then
        say "pid $pid of $pidfile is not our socat: left alone"
    fi
    rm -f "$pidfile"
}

case "$action" in
start)
    command -v socat >/dev/null || {
        say "socat is not installed (apt-get install socat)"
        exit 1
    }
    [[ -e /run/netns/$ns ]] || {
        say "no network namespace $ns"
        exit 1
    }
    if ours "$(cat "$outer_pidfile" 2>/dev/null || true)" &&
        ours "$(cat "$inner_pidfile" 2>/dev/null || true)"; then
        say "already bridged"
        exit 0
    fi
    finish "$inner_pidfile"
    finish "$outer_pidfile"
    ip -n "$ns" link set lo up
    : >"$log"
    socat UNIX-LISTEN:"$sock",fork,unlink-early,mode=600 TCP:127.0.0.1:"$port" </dev/null >>"$log" 2>&1 &
    echo $! >"$outer_pidfile"
    for _ in $(seq 50); do
        [[ -S $sock ]] && break
        sleep 0.1
    done
    if [[ ! -S $sock ]]; then
        finish "$outer_pidfile"
        say "the root-namespace socat did not make $sock (log: $log)"
        exit 1
    fi
    # `ip netns exec` execs socat: $! is socat's pid.
    ip netns exec "$ns" socat TCP-LISTEN:"$port",bind=127.0.0.1,fork,reuseaddr \
        UNIX-CONNECT:"$sock" </dev/null >>"$log" 2>&1 &
    echo $! >"$inner_pidfile"
    for _ in $(seq 50); do
        if ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
            say "127.0.0.1:$port -> $sock -> 127.0.0.1:$port (pids $(cat "$outer_pidfile") $(cat "$inner_pidfile"))"
            exit 0
        fi
        sleep 0.1
    done
    finish "$inner_pidfile"
    finish "$outer_pidfile"
    say "nothing listens on 127.0.0.1:$port inside the namespace (log: $log)"
    exit 1
    ;;
stop)
    finish "$inner_pidfile"
    finish "$outer_pidfile"
    rm -f "$sock"
    # The log is kept only when socat had something to say.
    if [[ -f $log && ! -s $log ]]; then rm -f "$log"; fi
    ;;
status)
    rc=0
    for f in "$outer_pidfile" "$inner_pidfile"; do
        pid=$(cat "$f" 2>/dev/null || true)
        if ours "$pid"; then
            echo "$(basename "$f"): pid $pid"
        else
            echo "$(basename "$f"): not running"
            rc=1
        fi
    done
    exit $rc
    ;;
*) usage ;;
esac
