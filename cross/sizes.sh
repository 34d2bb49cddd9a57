#!/usr/bin/env bash
# Prints the size of the stripped release binaries of each target, plain and TLS, as
# `TARGET PLAIN TLS`, building them first with the release settings (a no-op when
# scripts/release.sh just did). With --bloat, also the crates taking the most code of the plain
# build, from an unstripped twin build (cargo-bloat, installed if missing; its build lives in
# target/cross-bloat).
#
# Usage: cross/sizes.sh [--bloat] [TARGET...]     (default: all three musl targets)
set -euo pipefail
cd "$(dirname "$0")/.."
source cross/lib.sh

bloat=0
if [[ ${1:-} == --bloat ]]; then
    bloat=1
    shift
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")

# cargo-bloat passes on only its last --config, so the target's settings and cross/release.toml
# are merged into one file: every key as a dotted line, arrays under one key concatenated.
merged_config() {
    python3 - "$@" <<'PY'
import json, sys, tomllib
merged = {}
def walk(prefix, value):
    if isinstance(value, dict):
        for k, v in value.items():
            walk(prefix + [k], v)
    elif isinstance(value, list) and tuple(prefix) in merged:
        merged[tuple(prefix)] += value
    else:
        merged[tuple(prefix)] = value
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        walk([], tomllib.load(f))
for key, value in merged.items():
    print(".".join(json.dumps(k) for k in key), "=", json.dumps(value))
PY
}

# Both flavours, each in its own target dir as scripts/release.sh builds them.
printf '%-34s %8s %8s\n' TARGET PLAIN TLS
for target in "${targets[@]}"; do
    release_build "$target" --quiet
    CARGO_TARGET_DIR=$CARGO_TARGET_DIR-tls release_build "$target" --quiet --features tls
    printf '%-34s %8d %8d\n' "$target" "$(stat -c %s "$CARGO_TARGET_DIR/$target/release/mysqlchk")" \
        "$(stat -c %s "$CARGO_TARGET_DIR-tls/$target/release/mysqlchk")"
done

if [[ $bloat == 1 ]]; then
    command -v cargo-bloat >/dev/null || cargo install --locked cargo-bloat
    config="$PWD/target/cross-bloat/config.toml"
    for target in "${targets[@]}"; do
        mkdir -p "$(dirname "$config")"
        merged_config "cross/$target.toml" cross/release.toml >"$config"
        echo
        echo "$target: top crates by code size (before stripping)"
        CARGO_PROFILE_RELEASE_STRIP=false RUSTC_BOOTSTRAP=1 cargo "+$toolchain" bloat --release \
            --target "$target" --target-dir target/cross-bloat --config "$config" --crates -n 12 \
            2>/dev/null
    done
fi
