#!/usr/bin/env bash
# Installs the local test Nautobot (idempotent; run as root on Debian 12):
#   1. Debian packages: postgresql, redis-server, socat, curl (and python3-venv
#      when the python3 on PATH is Debian's and cannot make a venv)
#   2. PostgreSQL and Redis running, on loopback only
#   3. database role and database
#   4. a venv in $NAUTOBOT_VENV with nautobot==$NAUTOBOT_VERSION (pip)
#   5. $NAUTOBOT_ROOT/nautobot_config.py
#   6. migrate, collectstatic, the superuser and the fixed API token
# A stamp file remembers a finished step 6, so a second run takes a second.
# The web server is not started here: start.sh does that.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$HERE/env.sh"

[[ $EUID -eq 0 ]] || nb_die "run as root (apt-get, the postgres account)"
nb_loopback_only
T0=$SECONDS

# ---- 1. packages
python_can_venv() {
    "$NAUTOBOT_PYTHON" -c 'import ensurepip, venv' 2>/dev/null
}
python_path=$(command -v "$NAUTOBOT_PYTHON" || true)
[[ -n $python_path ]] || nb_die "$NAUTOBOT_PYTHON not found (install python3 >= 3.10 or set NAUTOBOT_PYTHON)"
"$NAUTOBOT_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    nb_die "$NAUTOBOT_PYTHON is $("$NAUTOBOT_PYTHON" -V 2>&1); Nautobot needs >= 3.10 (set NAUTOBOT_PYTHON)"

packages=(postgresql redis-server redis-tools socat curl)
[[ -x $NAUTOBOT_VENV/bin/python ]] || python_can_venv || packages+=(python3-venv)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    nb_say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$NAUTOBOT_ROOT-apt.log
    # Waits for another apt-get or dpkg to finish rather than failing.
    apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
    if ! "${apt[@]}" install --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1; then
        "${apt[@]}" update >>"$apt_log" 2>&1 || true
        "${apt[@]}" install --no-install-recommends "${missing[@]}" >>"$apt_log" 2>&1 ||
            nb_die "apt-get install ${missing[*]} failed (log: $apt_log)"
    fi
fi
python_can_venv || [[ -x $NAUTOBOT_VENV/bin/python ]] ||
    nb_die "$python_path cannot make a venv (no ensurepip): install its venv module or set NAUTOBOT_PYTHON"

# ---- 2. PostgreSQL (Debian's cluster listens on localhost only) and Redis
if [[ -z "$(pg_lsclusters -h 2>/dev/null)" ]]; then
    pg_ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1)
    nb_say "creating PostgreSQL $pg_ver cluster main"
    pg_createcluster "$pg_ver" main >/dev/null
fi
nb_services

# ---- 3. database
if [[ "$(nb_psql -c "SELECT 1 FROM pg_roles WHERE rolname='$NAUTOBOT_DB_USER'")" != 1 ]]; then
    nb_say "creating database role $NAUTOBOT_DB_USER"
    nb_psql -c "CREATE ROLE \"$NAUTOBOT_DB_USER\" LOGIN PASSWORD '$NAUTOBOT_DB_PASSWORD'"
fi
if ! nb_db_exists "$NAUTOBOT_DB_NAME"; then
    nb_say "creating database $NAUTOBOT_DB_NAME"
    (cd / && runuser -u postgres -- createdb -O "$NAUTOBOT_DB_USER" "$NAUTOBOT_DB_NAME")
fi

# ---- 4. venv and Nautobot
installed() {
    "$NAUTOBOT_VENV/bin/python" -c \
        'import importlib.metadata as m; print(m.version("nautobot"))' 2>/dev/null || true
}
if [[ "$(installed)" != "$NAUTOBOT_VERSION" ]]; then
    if [[ ! -x $NAUTOBOT_VENV/bin/python ]]; then
        nb_say "creating venv $NAUTOBOT_VENV with $python_path ($("$NAUTOBOT_PYTHON" -V 2>&1))"
        "$NAUTOBOT_PYTHON" -m venv "$NAUTOBOT_VENV"
    fi
    nb_say "pip install nautobot==$NAUTOBOT_VERSION (under a minute)"
    "$NAUTOBOT_VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip wheel
    "$NAUTOBOT_VENV/bin/pip" install -q --disable-pip-version-check "nautobot==$NAUTOBOT_VERSION"
    [[ "$(installed)" == "$NAUTOBOT_VERSION" ]] || nb_die "nautobot $NAUTOBOT_VERSION is not in the venv after pip"
else
    nb_say "nautobot $NAUTOBOT_VERSION is installed in $NAUTOBOT_VENV"
fi

# ---- 5. configuration
mkdir -p "$NAUTOBOT_ROOT"
if [[ ! -s $NAUTOBOT_ROOT/secret_key ]]; then
    (umask 077 && "$NAUTOBOT_VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(50))' \
        >"$NAUTOBOT_ROOT/secret_key")
fi
new_config=$(mktemp)
trap 'rm -f "$new_config"' EXIT
cat >"$new_config" <<CONFIG
# Written by tests/nautobot/setup.sh for the local test instance; a re-run
# overwrites changes.
import os

from nautobot.core.settings import *  # noqa: F401,F403

# nautobot.core.settings is imported first, so NAUTOBOT_DB_* in the
# environment would come too late: set the values themselves.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "$NAUTOBOT_DB_NAME",
        "USER": "$NAUTOBOT_DB_USER",
        "PASSWORD": "$NAUTOBOT_DB_PASSWORD",
        "HOST": "$NAUTOBOT_DB_HOST",
        "PORT": "$NAUTOBOT_DB_PORT",
        "CONN_MAX_AGE": 300,
    }
}
CACHES["default"]["LOCATION"] = "redis://$NAUTOBOT_REDIS_HOST:$NAUTOBOT_REDIS_PORT/1"  # noqa: F405
CELERY_BROKER_URL = "redis://$NAUTOBOT_REDIS_HOST:$NAUTOBOT_REDIS_PORT/0"
# No Celery worker runs: the jobs Nautobot queues itself (provisioning the
# data of a new custom field, removing it with a deleted one) run inside the
# API request instead of staying pending.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_STORE_EAGER_RESULT = True

# The server binds to loopback only.
ALLOWED_HOSTS = ["*"]
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "secret_key")) as _key:
    SECRET_KEY = _key.read().strip()
INSTALLATION_METRICS_ENABLED = False
CONFIG
if ! cmp -s "$new_config" "$NAUTOBOT_CONFIG"; then
    nb_say "writing $NAUTOBOT_CONFIG"
    cp "$new_config" "$NAUTOBOT_CONFIG"
fi

# ---- 6. schema, static files, superuser, token
stamp_file=$NAUTOBOT_ROOT/.setup-done
stamp="$NAUTOBOT_VERSION $NAUTOBOT_DB_NAME $(sha1sum "$NAUTOBOT_CONFIG" | cut -c1-12) $NAUTOBOT_SUPERUSER $NAUTOBOT_TOKEN"
token_in_db() {
    [[ "$(PGPASSWORD=$NAUTOBOT_DB_PASSWORD psql -qtAX -h "$NAUTOBOT_DB_HOST" -p "$NAUTOBOT_DB_PORT" \
        -U "$NAUTOBOT_DB_USER" -d "$NAUTOBOT_DB_NAME" \
        -c "SELECT 1 FROM users_token WHERE key='$NAUTOBOT_TOKEN'" 2>/dev/null)" == 1 ]]
}
if [[ "$(cat "$stamp_file" 2>/dev/null)" == "$stamp" ]] && token_in_db; then
    nb_say "database migrated, superuser and token present"
else
    rm -f "$stamp_file"
    server=("$NAUTOBOT_VENV/bin/nautobot-server" --config-path "$NAUTOBOT_CONFIG")
    nb_say "nautobot-server migrate (the first time: 4-7 minutes on 2 cores)"
    "${server[@]}" migrate --no-input >"$NAUTOBOT_ROOT/migrate.log" 2>&1 || {
        tail -n 30 "$NAUTOBOT_ROOT/migrate.log" >&2
        nb_die "migrate failed (log: $NAUTOBOT_ROOT/migrate.log)"
    }
    nb_say "nautobot-server collectstatic"
    "${server[@]}" collectstatic --no-input >"$NAUTOBOT_ROOT/collectstatic.log" 2>&1 ||
        nb_die "collectstatic failed (log: $NAUTOBOT_ROOT/collectstatic.log)"
    nb_say "superuser $NAUTOBOT_SUPERUSER and the API token"
    "${server[@]}" shell --command '
import os
from nautobot.users.models import Token, User
env = os.environ
user, _ = User.objects.get_or_create(
    username=env["NAUTOBOT_SUPERUSER"], defaults={"email": env["NAUTOBOT_SUPERUSER_EMAIL"]}
)
user.is_staff = user.is_superuser = user.is_active = True
user.set_password(env["NAUTOBOT_SUPERUSER_PASSWORD"])
user.save()
Token.objects.filter(key=env["NAUTOBOT_TOKEN"]).exclude(user=user).delete()
if not Token.objects.filter(key=env["NAUTOBOT_TOKEN"]).exists():
    Token.objects.create(user=user, key=env["NAUTOBOT_TOKEN"], write_enabled=True,
                         description="fixed test token (tests/nautobot/setup.sh)")
' >"$NAUTOBOT_ROOT/user.log" 2>&1 || {
        tail -n 30 "$NAUTOBOT_ROOT/user.log" >&2
        nb_die "creating the superuser failed (log: $NAUTOBOT_ROOT/user.log)"
    }
    token_in_db || nb_die "the API token is not in the database"
    echo "$stamp" >"$stamp_file"
fi

nb_say "setup done in $((SECONDS - T0)) s (Nautobot $NAUTOBOT_VERSION, venv $NAUTOBOT_VENV, files $NAUTOBOT_ROOT)"
