#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 300 s each).
#   bash fuzz/run.sh            # 5 minutes per target
#   bash fuzz/run.sh 60         # a quick pass
# Needs nightly and cargo-fuzz: `rustup toolchain install nightly` and
# `cargo install cargo-fuzz`. A crash leaves its input in
# fuzz/artifacts/<target>/: copy it to fuzz/regressions/<target>/ and add a
# unit test for it before fixing.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-300}"
export WEIR_SKIP_PLUGIN_BUILD=1   # the fuzz targets load no plugins
cargo +nightly fuzz build -s none
for target in envelope config plugin_output; do
    mkdir -p "corpus/$target" "regressions/$target"
    echo "== $target: ${secs}s"
    # Past crashes (regressions/) run first, as part of the corpus.
    cargo +nightly fuzz run -s none "$target" "corpus/$target" "seeds/$target" "regressions/$target" -- \
        -max_total_time="$secs" -max_len=65536 -print_final_stats=1 2>&1 | tail -n 12
done
