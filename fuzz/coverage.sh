#!/usr/bin/env bash
# Source coverage of the fuzz corpora: replays fuzz/corpus/TARGET and
# fuzz/seeds/TARGET through a coverage-instrumented build and prints the line
# and region coverage of the source files each target is about.
#
#   fuzz/coverage.sh [TARGET...]        (default: every target)
#
# Needs the llvm-tools component (rustup component add llvm-tools). The
# profiles and binaries stay in fuzz/target/; see fuzz/README.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
export PATH="$HOME/.cargo/bin:$PATH"

# The sources each target exercises, as llvm-cov names them (relative to
# src/); the rest of the crate is linked in but not reachable from the target.
declare -A FILES=(
    [dhcp4_nfqueue]='^core/(dhcp4|bootp|frame)\.rs'
    [relay4]='^core/(relay4|bootp)\.rs'
    [dhcp6]='^core/(dhcp6|frame6)\.rs'
    [ndp_rs_ns]='^core/(ndp|frame6)\.rs'
    [binding_file]='^(binding|mac)\.rs'
    [config]='^config\.rs'
    [nautobot_json]='^(backend/(nautobot|pool)|fuzzing)\.rs'
    [netbox_json]='^(backend/netbox|fuzzing)\.rs'
)

TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
    for f in fuzz_targets/*.rs; do
        t=${f#fuzz_targets/}
        TARGETS+=("${t%.rs}")
    done
fi

TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
LLVM_BIN=$(rustc --print sysroot)/lib/rustlib/$TRIPLE/bin
if [[ ! -x $LLVM_BIN/llvm-cov ]]; then
    rustup component add llvm-tools
fi

for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t"
    # cargo fuzz writes the profile to fuzz/coverage/TARGET; it is moved
    # under target/ so that nothing lands outside the ignored directories.
    RUSTC_BOOTSTRAP=1 cargo fuzz coverage --target "$TRIPLE" "$t" "corpus/$t" "seeds/$t" \
        >"target/coverage-$t.log" 2>&1
    mkdir -p target/coverage
    rm -rf "target/coverage/$t"
    mv "coverage/$t" "target/coverage/$t"
    rmdir coverage 2>/dev/null || true
    echo "== $t ($(find "corpus/$t" "seeds/$t" -type f | wc -l) inputs)"
    "$LLVM_BIN/llvm-cov" report \
        "target/$TRIPLE/coverage/$TRIPLE/release/$t" \
        -instr-profile="target/coverage/$t/coverage.profdata" \
        -ignore-filename-regex='/(\.cargo|rustc|fuzz)/' |
        awk -v re="${FILES[$t]:-.}" 'NR <= 2 || $1 ~ re'
done
