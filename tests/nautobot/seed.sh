#!/usr/bin/env bash
# Creates the fixtures the tests expect in the running test Nautobot
# (idempotent). Arguments go to seed.py: --with-custom-fields, --json PATH.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$HERE/env.sh"
exec "$NAUTOBOT_PYTHON" "$HERE/seed.py" "$@"
