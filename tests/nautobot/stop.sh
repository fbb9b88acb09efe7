#!/usr/bin/env bash
# Stops the server start.sh started, by the pid in its pid file (after
# checking that the pid is still that server). PostgreSQL and Redis keep
# running.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$HERE/env.sh"

pid=$(cat "$NAUTOBOT_PIDFILE" 2>/dev/null || true)
if [[ -z $pid ]]; then
    nb_say "not running (no $NAUTOBOT_PIDFILE)"
    exit 0
fi
if ! kill -0 "$pid" 2>/dev/null; then
    nb_say "not running (stale pid file, pid $pid)"
    rm -f "$NAUTOBOT_PIDFILE"
    exit 0
fi
nb_is_server "$pid" || nb_die "pid $pid of $NAUTOBOT_PIDFILE is not our nautobot-server: left alone"

# SIGINT makes the uWSGI master stop its workers and router at once.
nb_say "stopping uWSGI master $pid"
kill -INT "$pid"
for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
done
if kill -0 "$pid" 2>/dev/null; then
    nb_say "still there after 30 s: SIGKILL to $pid and its children"
    children=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
    kill -KILL "$pid" 2>/dev/null || true
    for c in $children; do kill -KILL "$c" 2>/dev/null || true; done
fi
rm -f "$NAUTOBOT_PIDFILE"
nb_say "stopped"
