#!/usr/bin/env bash
# Runs every check of the project: formatting, lints, unit tests and the
# end-to-end tests (real DHCP clients in network namespaces).
#
# Run as root on Debian 12 from anywhere:   tests/run-all.sh
# It installs the Debian packages the tests need when they are missing, and
# the local test Nautobot of tests/nautobot (PostgreSQL, Redis and Nautobot in
# a Python venv, all on loopback) that the relay-mode tests use: about 5
# minutes the first time, a few seconds after that.
#
# The end-to-end tests only create their own network namespaces
# (nfdt-<pid>-<n>-<role>); the host's interfaces and firewall are not touched.
# The relay-mode tests also start netns-bridge.sh socat pairs (pid files and
# UNIX sockets in /run) to reach Nautobot from a namespace.
#
# To add a step, write a function and add a `step NAME FUNCTION` line in main.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

APT_PACKAGES=(
    isc-dhcp-client udhcpc busybox dhcpcd5 ndisc6 dnsmasq-base
    iptables iproute2 tcpdump socat procps isc-dhcp-relay python3
    qemu-system-x86 ipxe-qemu
    debootstrap systemd-container dpkg-dev debhelper
)

NAUTOBOT_SCRIPTS=${NFDT_NAUTOBOT_SCRIPTS:-$PWD/tests/nautobot}
export NFDT_NAUTOBOT_SCRIPTS=$NAUTOBOT_SCRIPTS

SUMMARY=()
FAILED=0

# step NAME COMMAND...: runs one step, records its result and time, and
# carries on after a failure so the summary shows everything at once.
step() {
    local name=$1
    shift
    local start=$SECONDS rc=0
    printf '\n==== %s ====\n' "$name"
    "$@" || rc=$?
    local took=$((SECONDS - start))
    if [[ $rc -eq 0 ]]; then
        SUMMARY+=("$(printf 'PASS  %-26s %4ss' "$name" "$took")")
    else
        SUMMARY+=("$(printf 'FAIL  %-26s %4ss  (exit %s)' "$name" "$took" "$rc")")
        FAILED=1
    fi
}

install_packages() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$p")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        echo "all packages present"
        return 0
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
}

rust_toolchain() {
    if ! command -v cargo >/dev/null; then
        echo "cargo not found: install Rust (https://rustup.rs) first" >&2
        return 1
    fi
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null; then
            rustup component add rustfmt clippy
        else
            echo "cargo fmt / cargo clippy missing" >&2
            return 1
        fi
    fi
    cargo --version
}

# Namespaces of test processes that no longer exist (a test binary that was
# killed cannot clean up after itself). Only names this project's harness uses.
stale_namespaces() {
    local ns pid
    for ns in $(ip netns list | awk '{print $1}' | grep '^nfdt-' || true); do
        pid=$(cut -d- -f2 <<<"$ns")
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            echo "$ns"
        fi
    done
}

remove_stale_namespaces() {
    local ns p
    for ns in $(stale_namespaces); do
        echo "removing stale namespace $ns"
        # Its Nautobot bridge, if it had one: the outer socat runs here.
        if [[ -x $NAUTOBOT_SCRIPTS/netns-bridge.sh ]]; then
            "$NAUTOBOT_SCRIPTS/netns-bridge.sh" stop "$ns" 2>/dev/null || true
        fi
        for p in $(ip netns pids "$ns" 2>/dev/null); do
            kill -9 "$p" 2>/dev/null || true
        done
        ip netns del "$ns" || true
    done
}

# The test Nautobot: installed (idempotent), running, seeded with the
# fixtures and the pydhcp_* custom fields, and a snapshot of that state for
# `reset.sh restore`, saved once. Its URL and token go to the tests.
nautobot_provision() {
    local nb=$NAUTOBOT_SCRIPTS snap_db has_snap
    if [[ ! -x $nb/setup.sh ]]; then
        echo "$nb/setup.sh is missing" >&2
        return 1
    fi
    # `step` runs this under `||`, where set -e does not apply: each
    # command checks for itself.
    "$nb/setup.sh" || return 1
    "$nb/start.sh" || return 1
    "$nb/seed.sh" --with-custom-fields >/dev/null || return 1
    # The settings of env.sh (its defaults, or what the environment says).
    local settings url token
    # shellcheck source=nautobot/env.sh
    settings=$(. "$nb/env.sh" &&
        printf '%s\n' "${NAUTOBOT_DB_NAME}_snapshot" "$NAUTOBOT_URL" "$NAUTOBOT_TOKEN") || return 1
    { read -r snap_db && read -r url && read -r token; } <<<"$settings" || return 1
    # reset.sh keeps the snapshot as the database <name>_snapshot; it would
    # overwrite an existing one, which must stay the pristine seeded state.
    has_snap=$(cd /tmp && runuser -u postgres -- psql -qtAX \
        -c "SELECT 1 FROM pg_database WHERE datname='$snap_db'") || return 1
    if [[ $has_snap != 1 ]]; then
        "$nb/reset.sh" save || return 1
    else
        echo "snapshot $snap_db already saved"
    fi
    # (env.sh set them in the subshell above; these are the values read back.)
    # shellcheck disable=SC2031
    export NAUTOBOT_URL=$url NAUTOBOT_TOKEN=$token
    echo "Nautobot at $NAUTOBOT_URL"
}

host_state() {
    md5sum /etc/resolv.conf 2>/dev/null || true
    hostname
}

cargo_tests() {
    local before after leftovers rc=0
    before=$(host_state)
    # `CI` makes a skipped end-to-end test a failure.
    CI=${CI:-1} cargo test --all-targets --no-fail-fast || rc=$?
    after=$(host_state)
    if [[ "$before" != "$after" ]]; then
        echo "the tests changed /etc/resolv.conf or the host name" >&2
        rc=1
    fi
    leftovers=$(stale_namespaces)
    if [[ -n $leftovers ]]; then
        echo "namespaces left behind: ${leftovers//$'\n'/ }" >&2
        remove_stale_namespaces
        rc=1
    fi
    return $rc
}

# Every fuzz target for a few seconds (fuzz/README.md): the seeds, the
# committed reproducers and a short exploration must not crash, hang or blow
# up memory. The first run installs cargo-fuzz and builds the targets.
fuzz_briefly() {
    fuzz/run.sh 20
}

main() {
    if [[ $EUID -ne 0 ]]; then
        echo "run as root: the end-to-end tests create network namespaces" >&2
        exit 1
    fi
    step packages install_packages
    remove_stale_namespaces
    step toolchain rust_toolchain
    step "cargo fmt --check" cargo fmt --check
    step "cargo clippy" cargo clippy --all-targets -- -D warnings
    # Before the tests: without it the relay-mode tests fail (CI is set).
    step nautobot nautobot_provision
    step "cargo test" cargo_tests
    step fuzz fuzz_briefly
    # Builds, lints, installs, runs and purges the .deb (in its own namespaces).
    step "debian package" tests/package.sh
    step "systemd (nspawn)" tests/systemd.sh

    printf '\n==== summary ====\n'
    printf '%s\n' "${SUMMARY[@]}"
    if [[ $FAILED -ne 0 ]]; then
        echo "FAILED"
        exit 1
    fi
    echo "ALL PASSED"
}

main "$@"
