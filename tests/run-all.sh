#!/usr/bin/env bash
# Runs every check of the project: formatting, lints, unit tests and the
# end-to-end tests (real DHCP clients in network namespaces).
#
# Run as root on Debian 12 from anywhere:   tests/run-all.sh
# It installs the Debian packages the tests need when they are missing.
#
# The end-to-end tests only create their own network namespaces
# (nfdt-<pid>-<n>-<role>); the host's interfaces and firewall are not touched.
#
# To add a step, write a function and add a `step NAME FUNCTION` line in main.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

APT_PACKAGES=(
    isc-dhcp-client udhcpc busybox dhcpcd5 ndisc6 dnsmasq-base
    iptables iproute2 tcpdump socat procps
)

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
        for p in $(ip netns pids "$ns" 2>/dev/null); do
            kill -9 "$p" 2>/dev/null || true
        done
        ip netns del "$ns" || true
    done
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
        echo "namespaces left behind:" $leftovers >&2
        remove_stale_namespaces
        rc=1
    fi
    return $rc
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
    step "cargo test" cargo_tests
    # Later: Nautobot for the relay-mode tests (shared/nautobot/), e.g.
    #   step nautobot-setup nautobot_setup
    #   step relay-e2e cargo test --test e2e_relay -- --ignored

    printf '\n==== summary ====\n'
    printf '%s\n' "${SUMMARY[@]}"
    if [[ $FAILED -ne 0 ]]; then
        echo "FAILED"
        exit 1
    fi
    echo "ALL PASSED"
}

main "$@"
