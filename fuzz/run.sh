#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS; prints per target the
# executions, executions per second, coverage (libFuzzer's cov/ft), corpus
# size, peak memory and the crashes found.
#
#   fuzz/run.sh SECONDS [TARGET...]        (default: every target)
#
# Environment:
#   JOBS=N         targets run at once (default 1)
#   FUZZ_ARGS=...  extra libFuzzer flags, e.g. "-max_len=8192"
#
# Exit status: 0 when no target crashed, timed out (hang) or ran out of
# memory; 1 otherwise. A finding's input is kept in fuzz/artifacts/TARGET/
# and its log in fuzz/target/logs/TARGET.log; reproduce it with
#   fuzz/target/x86_64-unknown-linux-gnu/release/TARGET fuzz/artifacts/TARGET/<file>
#
# The corpus grows in fuzz/corpus/TARGET (not committed); the committed seeds
# in fuzz/seeds/TARGET are read at each start. See fuzz/README.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
FUZZ_DIR=$PWD

usage() {
    echo "usage: fuzz/run.sh SECONDS [TARGET...]" >&2
    exit 2
}
[[ $# -ge 1 && $1 =~ ^[0-9]+$ && $1 -gt 0 ]] || usage
SECS=$1
shift

ALL_TARGETS=()
for f in fuzz_targets/*.rs; do
    t=${f#fuzz_targets/}
    ALL_TARGETS+=("${t%.rs}")
done
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
    if [[ ! -f fuzz_targets/$t.rs ]]; then
        echo "unknown target $t (targets: ${ALL_TARGETS[*]})" >&2
        exit 2
    fi
done

# cargo-fuzz drives the sanitizer and coverage flags. It needs -Z flags,
# which a stable toolchain accepts with RUSTC_BOOTSTRAP=1 (see README.md).
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (once; kept in ~/.cargo/bin)"
    cargo install --locked cargo-fuzz
fi
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
echo "building the targets with $(cargo fuzz --version) and $(rustc --version)"
RUSTC_BOOTSTRAP=1 cargo fuzz build --target "$TRIPLE"
BIN_DIR=${CARGO_TARGET_DIR:-$FUZZ_DIR/target}/$TRIPLE/release

LOGS=target/logs
mkdir -p "$LOGS"
# Per input: 2 s is a hang (the slowest seed takes milliseconds); 512 MiB
# in all or 128 MiB in one allocation is unbounded growth (a request, a
# binding or a configuration needs kilobytes).
# AddressSanitizer keeps 256 MiB of freed memory by default, which would
# count against the RSS limit on long runs; the Rust code under test has no
# use-after-free for a larger quarantine to find.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64}
LIBFUZZER_FLAGS=(
    -max_total_time="$SECS"
    -timeout=2
    -rss_limit_mb=512
    -malloc_limit_mb=128
    -print_final_stats=1
)

run_one() {
    local t=$1 log=$LOGS/$1.log
    local corpus=corpus/$t artifacts=artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    local flags=("${LIBFUZZER_FLAGS[@]}" -artifact_prefix="$artifacts/")
    [[ -f dicts/$t.dict ]] && flags+=(-dict="dicts/$t.dict")
    # shellcheck disable=SC2206 # FUZZ_ARGS is a list of flags
    flags+=(${FUZZ_ARGS:-})
    local rc=0
    "$BIN_DIR/$t" "${flags[@]}" "$corpus" "seeds/$t" >"$log" 2>&1 || rc=$?
    echo "$rc" >"$LOGS/$t.rc"
}

for t in "${TARGETS[@]}"; do
    echo "fuzzing $t for ${SECS}s (log: fuzz/$LOGS/$t.log)"
    run_one "$t" &
    while [[ $(jobs -rp | wc -l) -ge ${JOBS:-1} ]]; do
        wait -n || true
    done
done
wait || true

stat() { sed -n "s/^stat::$2: *//p" "$1" | tail -1; }

FAILED=0
printf '\n%-15s %12s %9s %7s %8s %12s %8s  %s\n' \
    target executions exec/s cov ft corpus rss_mb result
for t in "${TARGETS[@]}"; do
    log=$LOGS/$t.log
    rc=$(cat "$LOGS/$t.rc" 2>/dev/null || echo 1)
    execs=$(stat "$log" number_of_executed_units)
    eps=$(stat "$log" average_exec_per_sec)
    rss=$(stat "$log" peak_rss_mb)
    # The last status line: "#N  DONE  cov: C ft: F corp: ..." (or pulse).
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    # libFuzzer's corpus (inputs/bytes), without the files its reductions
    # made obsolete in corpus/TARGET.
    corpus=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    result=ok bad=0
    if [[ $rc -ne 0 ]]; then
        kind=$(grep -oE 'ERROR: libFuzzer: [a-z-]+|panicked at [^:]*|ERROR: AddressSanitizer: [a-z-]+' "$log" | head -1 || true)
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | head -1)
        result="FAILED (exit $rc${kind:+: $kind}${artifact:+; input fuzz/$artifact})"
        bad=1
        # The targets are deterministic: a hang replays as a hang. A timeout
        # whose input then runs at once was the machine stalling the
        # process (a loaded CI host), not the code; it is reported, and the
        # input stays in artifacts/ for a look.
        if [[ $kind == *timeout && -n $artifact ]] &&
            "$BIN_DIR/$t" -timeout=2 -runs=100 "$artifact" >"$LOGS/$t.replay.log" 2>&1; then
            result="WARNING: stopped by a timeout that does not replay (100 runs of fuzz/$artifact: $(
                sed -n 's/^Executed .* in \([0-9]*\) ms$/\1/p' "$LOGS/$t.replay.log") ms): the host stalled"
            bad=0
        fi
    fi
    [[ $bad -eq 0 ]] || FAILED=1
    printf '%-15s %12s %9s %7s %8s %12s %8s  %s\n' \
        "$t" "${execs:--}" "${eps:--}" "${cov:--}" "${ft:--}" "${corpus:--}" "${rss:--}" "$result"
done
if [[ $FAILED -ne 0 ]]; then
    echo "fuzzing found a problem: see the logs in fuzz/$LOGS/" >&2
    exit 1
fi
echo "no crash, hang or out-of-memory"
