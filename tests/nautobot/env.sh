# shellcheck shell=bash
# Settings of the local test Nautobot, sourced by the other scripts here.
# Every value can be set in the environment first to override it.

: "${NAUTOBOT_VERSION:=3.2.7}"                # the tested release; 2.4.x works too
: "${NAUTOBOT_VENV:=/var/tmp/nautobot-venv}"  # Python venv holding Nautobot
: "${NAUTOBOT_ROOT:=/var/tmp/nautobot}"       # config, secret key, pid file, logs
: "${NAUTOBOT_PYTHON:=python3}"               # makes the venv; needs >= 3.10
: "${NAUTOBOT_HOST:=127.0.0.1}"               # loopback only (start.sh refuses others)
: "${NAUTOBOT_PORT:=8080}"
: "${NAUTOBOT_WORKERS:=2}"                    # uWSGI processes
: "${NAUTOBOT_THREADS:=4}"                    # uWSGI threads per process
: "${NAUTOBOT_START_TIMEOUT:=120}"            # seconds start.sh waits for the API

: "${NAUTOBOT_DB_NAME:=nautobot}"
: "${NAUTOBOT_DB_USER:=nautobot}"
: "${NAUTOBOT_DB_PASSWORD:=nautobot}"
: "${NAUTOBOT_DB_HOST:=127.0.0.1}"
: "${NAUTOBOT_DB_PORT:=5432}"
: "${NAUTOBOT_REDIS_HOST:=127.0.0.1}"
: "${NAUTOBOT_REDIS_PORT:=6379}"

: "${NAUTOBOT_SUPERUSER:=admin}"
: "${NAUTOBOT_SUPERUSER_PASSWORD:=admin}"
: "${NAUTOBOT_SUPERUSER_EMAIL:=admin@example.com}"
# A fixed API token, for tests only: "Authorization: Token <this>".
: "${NAUTOBOT_TOKEN:=0123456789abcdef0123456789abcdef01234567}"

NAUTOBOT_CONFIG="$NAUTOBOT_ROOT/nautobot_config.py"
NAUTOBOT_PIDFILE="$NAUTOBOT_ROOT/nautobot.pid"
NAUTOBOT_LOG="$NAUTOBOT_ROOT/nautobot.log"
NAUTOBOT_URL="http://$NAUTOBOT_HOST:$NAUTOBOT_PORT"

export NAUTOBOT_VERSION NAUTOBOT_VENV NAUTOBOT_ROOT NAUTOBOT_PYTHON NAUTOBOT_HOST \
    NAUTOBOT_PORT NAUTOBOT_WORKERS NAUTOBOT_THREADS NAUTOBOT_START_TIMEOUT \
    NAUTOBOT_DB_NAME NAUTOBOT_DB_USER NAUTOBOT_DB_PASSWORD NAUTOBOT_DB_HOST \
    NAUTOBOT_DB_PORT NAUTOBOT_REDIS_HOST NAUTOBOT_REDIS_PORT NAUTOBOT_SUPERUSER \
    NAUTOBOT_SUPERUSER_PASSWORD NAUTOBOT_SUPERUSER_EMAIL NAUTOBOT_TOKEN \
    NAUTOBOT_CONFIG NAUTOBOT_PIDFILE NAUTOBOT_LOG NAUTOBOT_URL
# No usage reports (nautobot_config.py says so too).
export NAUTOBOT_INSTALLATION_METRICS_ENABLED=False

nb_say() { printf '[%s] nautobot: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
nb_die() {
    nb_say "error: $*"
    exit 1
}

# nb_is_server PID: PID is alive and is `nautobot-server ... start` of our venv.
nb_is_server() {
    local pid=${1:-} cmdline
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$NAUTOBOT_VENV/bin/nautobot-server "*" start "* ]]
}

# nb_server_pid: the pid from the pid file if it is our server, else nothing.
nb_server_pid() {
    local pid
    pid=$(cat "$NAUTOBOT_PIDFILE" 2>/dev/null) || return 0
    if nb_is_server "$pid"; then echo "$pid"; fi
}

# nb_api_code [TIMEOUT]: HTTP status of GET /api/ with the token (000: no answer).
nb_api_code() {
    curl -s -o /dev/null -m "${1:-10}" -w '%{http_code}' \
        -H "Authorization: Token $NAUTOBOT_TOKEN" -H 'Accept: application/json' \
        "$NAUTOBOT_URL/api/" 2>/dev/null || true
}

nb_loopback_only() {
    case "$NAUTOBOT_HOST" in
    127.* | localhost) ;;
    *) nb_die "NAUTOBOT_HOST must be a loopback address, not $NAUTOBOT_HOST" ;;
    esac
}

# nb_psql ARGS...: psql as the postgres superuser (quiet, tuples only).
nb_psql() { (cd / && runuser -u postgres -- psql -qtAX -v ON_ERROR_STOP=1 "$@"); }

nb_db_exists() { [[ "$(nb_psql -c "SELECT 1 FROM pg_database WHERE datname='$1'")" == 1 ]]; }

nb_redis_up() {
    redis-cli -h "$NAUTOBOT_REDIS_HOST" -p "$NAUTOBOT_REDIS_PORT" ping 2>/dev/null | grep -q PONG
}

# nb_services: PostgreSQL and Redis running (there is no systemd in the
# containers the tests run in, so they are started directly).
nb_services() {
    local ver cluster port status
    read -r ver cluster port status _ < <(pg_lsclusters -h 2>/dev/null | head -n1) || true
    [[ -n ${ver:-} ]] || nb_die "no PostgreSQL cluster (run setup.sh)"
    [[ $port == "$NAUTOBOT_DB_PORT" ]] ||
        nb_die "PostgreSQL $ver/$cluster listens on port $port, not NAUTOBOT_DB_PORT=$NAUTOBOT_DB_PORT"
    if [[ $status != online ]]; then
        nb_say "starting PostgreSQL $ver/$cluster"
        pg_ctlcluster "$ver" "$cluster" start
    fi
    local _i
    for _i in $(seq 60); do
        pg_isready -q -h "$NAUTOBOT_DB_HOST" -p "$NAUTOBOT_DB_PORT" && break
        sleep 0.5
    done
    pg_isready -q -h "$NAUTOBOT_DB_HOST" -p "$NAUTOBOT_DB_PORT" ||
        nb_die "PostgreSQL does not answer on $NAUTOBOT_DB_HOST:$NAUTOBOT_DB_PORT"
    if ! nb_redis_up; then
        nb_say "starting redis-server on $NAUTOBOT_REDIS_HOST:$NAUTOBOT_REDIS_PORT"
        install -d -o redis -g redis /run/redis
        runuser -u redis -- redis-server /etc/redis/redis.conf \
            --bind "$NAUTOBOT_REDIS_HOST" --port "$NAUTOBOT_REDIS_PORT" --daemonize yes
        for _i in $(seq 40); do
            nb_redis_up && break
            sleep 0.25
        done
        nb_redis_up || nb_die "redis-server does not answer (see /var/log/redis/)"
    fi
}
