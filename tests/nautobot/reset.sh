#!/usr/bin/env bash
# Snapshot of the test database, to go back to a known state in seconds
# instead of migrating again:
#   reset.sh save      copy $NAUTOBOT_DB_NAME to ${NAUTOBOT_DB_NAME}_snapshot
#   reset.sh restore   replace $NAUTOBOT_DB_NAME by a copy of the snapshot and
#                      empty Redis databases 0 (Celery) and 1 (cache)
# PostgreSQL copies only a database without connections, so a running server
# is stopped first and started again afterwards. Usual order:
#   setup.sh && start.sh && seed.sh --with-custom-fields && reset.sh save
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$HERE/env.sh"

action=${1:-}
case "$action" in
save | restore) ;;
*)
    echo "usage: $0 save|restore" >&2
    exit 2
    ;;
esac
snapshot=${NAUTOBOT_DB_NAME}_snapshot
createdb_() { (cd / && runuser -u postgres -- createdb "$@"); }
dropdb_() { (cd / && runuser -u postgres -- dropdb "$@"); }

running=0
if [[ -n "$(nb_server_pid)" ]]; then
    running=1
    "$HERE/stop.sh"
fi
T0=$SECONDS
if [[ $action == save ]]; then
    nb_db_exists "$NAUTOBOT_DB_NAME" || nb_die "no database $NAUTOBOT_DB_NAME: run $HERE/setup.sh"
    if nb_db_exists "$snapshot"; then dropdb_ "$snapshot"; fi
    createdb_ -O "$NAUTOBOT_DB_USER" -T "$NAUTOBOT_DB_NAME" "$snapshot"
    nb_say "saved $NAUTOBOT_DB_NAME as $snapshot"
else
    nb_db_exists "$snapshot" || nb_die "no snapshot $snapshot: run '$0 save' first"
    if nb_db_exists "$NAUTOBOT_DB_NAME"; then dropdb_ "$NAUTOBOT_DB_NAME"; fi
    createdb_ -O "$NAUTOBOT_DB_USER" -T "$snapshot" "$NAUTOBOT_DB_NAME"
    for db in 0 1; do
        redis-cli -h "$NAUTOBOT_REDIS_HOST" -p "$NAUTOBOT_REDIS_PORT" -n "$db" flushdb >/dev/null
    done
    nb_say "restored $NAUTOBOT_DB_NAME from $snapshot; Redis emptied"
fi
nb_say "database work took $((SECONDS - T0)) s"
if [[ $running == 1 ]]; then "$HERE/start.sh"; fi
