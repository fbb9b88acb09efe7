#!/usr/bin/env bash
# Starts the test Nautobot in the background (uWSGI through
# `nautobot-server start`, $NAUTOBOT_WORKERS processes x $NAUTOBOT_THREADS
# threads, HTTP keep-alive) on $NAUTOBOT_HOST:$NAUTOBOT_PORT, and waits until
# GET /api/ with the token answers 200. It starts PostgreSQL and Redis first
# when they are down (after a reboot). Returns at once when it already runs.
# Pid file: $NAUTOBOT_ROOT/nautobot.pid, log: $NAUTOBOT_ROOT/nautobot.log.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$HERE/env.sh"

nb_loopback_only
[[ -x $NAUTOBOT_VENV/bin/nautobot-server && -f $NAUTOBOT_CONFIG ]] ||
    nb_die "Nautobot is not installed: run $HERE/setup.sh first"

pid=$(nb_server_pid)
if [[ -n $pid ]]; then
    [[ "$(nb_api_code)" == 200 ]] ||
        nb_die "server pid $pid runs but $NAUTOBOT_URL/api/ does not answer 200: run $HERE/stop.sh"
    nb_say "already running at $NAUTOBOT_URL (pid $pid)"
    exit 0
fi
rm -f "$NAUTOBOT_PIDFILE"
# Anything answering there now is not ours.
[[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$NAUTOBOT_URL/" 2>/dev/null || true)" == 000 ]] ||
    nb_die "$NAUTOBOT_HOST:$NAUTOBOT_PORT is taken by another program"

nb_services

T0=$SECONDS
nb_say "starting uWSGI at $NAUTOBOT_URL ($NAUTOBOT_WORKERS x $NAUTOBOT_THREADS)"
cd "$NAUTOBOT_ROOT"
# --http-keepalive: without it uWSGI answers HTTP/1.1 without
#   "Connection: close" and then closes the socket, which pooled clients
#   trip over when they reuse it.
# --die-on-term: SIGTERM stops it (uWSGI 2.0 would reload).
# --buffer-size: long query strings.
# The server outlives this script: it must not keep the caller's open files
# (a lock held while restarting it would never be released).
# (255 is the shell's own descriptor of this script.)
for fd in "/proc/$$/fd"/*; do
    fd=${fd##*/}
    if ((fd > 2 && fd != 255)); then
        eval "exec $fd>&-"
    fi
done
"$NAUTOBOT_VENV/bin/nautobot-server" --config-path "$NAUTOBOT_CONFIG" start \
    --http "$NAUTOBOT_HOST:$NAUTOBOT_PORT" --http-keepalive \
    --master --processes "$NAUTOBOT_WORKERS" --threads "$NAUTOBOT_THREADS" --enable-threads \
    --die-on-term --vacuum --buffer-size 32768 --harakiri 120 --listen 128 \
    --pidfile "$NAUTOBOT_PIDFILE" --daemonize "$NAUTOBOT_LOG" >/dev/null 2>&1 || {
    tail -n 30 "$NAUTOBOT_LOG" >&2 || true
    nb_die "nautobot-server start failed (log: $NAUTOBOT_LOG)"
}

code=000
deadline=$((SECONDS + NAUTOBOT_START_TIMEOUT))
while ((SECONDS < deadline)); do
    code=$(nb_api_code 3)
    [[ $code == 200 ]] && break
    if [[ -s $NAUTOBOT_PIDFILE && -z "$(nb_server_pid)" ]]; then
        tail -n 40 "$NAUTOBOT_LOG" >&2 || true
        nb_die "uWSGI exited while starting (log: $NAUTOBOT_LOG)"
    fi
    sleep 0.5
done
if [[ $code != 200 ]]; then
    tail -n 40 "$NAUTOBOT_LOG" >&2 || true
    nb_die "GET $NAUTOBOT_URL/api/ gave no 200 within ${NAUTOBOT_START_TIMEOUT}s (last: $code; log: $NAUTOBOT_LOG); stop it with $HERE/stop.sh"
fi
nb_say "answering after $((SECONDS - T0)) s (pid $(cat "$NAUTOBOT_PIDFILE"))"

# The first request of a kind costs each worker about half a second (lazy
# imports, filter sets): pay that here rather than in a test's timeout.
if [[ ${NAUTOBOT_WARMUP:-1} == 1 ]]; then
    paths=(
        '/api/ipam/prefixes/?contains=192.0.2.1&limit=1'
        '/api/ipam/ip-addresses/?type=dhcp&limit=1'
        '/api/dcim/interfaces/?mac_address=02:00:00:00:00:00'
        '/api/dcim/devices/?mac_address=02:00:00:00:00:00'
        '/api/extras/custom-fields/?content_types=ipam.ipaddress'
        '/api/ipam/ip-address-to-interface/?limit=1'
        '/api/extras/statuses/?name=Active'
        '/api/ipam/namespaces/?name=Global'
    )
    for _round in 1 2; do
        for p in "${paths[@]}"; do
            for _n in 1 2 3; do
                curl -s -o /dev/null -m 30 -H "Authorization: Token $NAUTOBOT_TOKEN" \
                    -H 'Accept: application/json' "$NAUTOBOT_URL$p" &
            done
        done
        wait
    done
    nb_say "warmed up after $((SECONDS - T0)) s"
fi
