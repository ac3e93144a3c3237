#!/usr/bin/env bash
# Benchmark the store's size over a long `daydream run --watch` session (issue 19.5): on the
# ~100k-task project of bench/watch.sh (32 concepts, k=3, 10 active generation templates, 2 models
# = 99,200 generation tasks; one template's save re-renders 4,960 distinct prompts), the store
# after the first run, then after EDITS template saves (one every GAP seconds, as a person saving
# in an editor would), with watch mode's collection off (DAYDREAM_GC_EVERY=0) and on (the
# default: after every 5th rebuild, with `cache.keep_versions` at its default and at 3). Then the time of a
# `daydream gc` on the grown store, and a run after it (nothing to do).
# Prints a markdown table and writes it to bench/gc-results.md.
# Usage: bench/gc.sh [EDITS] [GAP_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EDITS=${1:-100}
GAP=${2:-0.5}

cargo build --release --quiet
BIN=$ROOT/target/release/daydream
W=$(mktemp -d /tmp/daydream-gc-bench.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill -INT "$PID" 2>/dev/null; rm -rf "$W"' EXIT
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=$W/rows
echo "| watch mode's collection | saves | store after the first run MB | after the saves MB | ratio | \`daydream gc\` then s | store after it MB | run after it | target (<= 2x) |" >"$ROWS"
echo "|---|--:|--:|--:|--:|--:|--:|---|---|" >>"$ROWS"

# the store's files: the database and its write-ahead log
store_mb() { du -cb "$1"/.daydream/store.db* | awk 'END { printf "%.1f", $1 / 1048576 }'; }

bench() { # bench LABEL GC_EVERY [KEEP_VERSIONS]
    local label=$1 every=$2 keep=${3:-}
    local P=$W/p
    python3 bench/make_project.py "$P" --concepts 32 --k 3 --gen-models 2 --gen-templates 10 >/dev/null
    [ -n "$keep" ] && printf '\ncache:\n  keep_versions: %s\n' "$keep" >>"$P/pipeline.yaml"
    "$BIN" -C "$P" run >"$W/first" 2>&1 || { cat "$W/first" >&2; exit 1; }
    local first; first=$(store_mb "$P")
    DAYDREAM_GC_EVERY=$every DAYDREAM_TIMING=1 "$BIN" -C "$P" run --watch >"$W/log" 2>&1 &
    PID=$!
    until grep -q "^watching " "$W/log"; do sleep 0.05; done
    mapfile -t templates < <(awk -F, 'NR > 1 && $4 == "true" { print $1 }' "$P/data/1_raw/generation_templates.csv")
    for i in $(seq 1 "$EDITS"); do
        local t=${templates[$(( (i - 1) % ${#templates[@]} ))]}
        echo "Edit $i." >>"$P/templates/generation/$t.txt"
        until [ "$(grep -c '^  rebuilt in' "$W/log")" -ge "$i" ]; do sleep 0.01; done
        sleep "$GAP"
    done
    # the last rebuild's collection (EDITS a multiple of 5) finishes before Ctrl-C is read
    sleep 2
    if grep -q "^error\|^warning: collecting" "$W/log"; then grep "^error\|^warning" "$W/log" >&2; exit 1; fi
    kill -INT "$PID"; wait "$PID" || true; PID=
    local grown; grown=$(store_mb "$P")
    local t0 t1; t0=$(date +%s.%N)
    "$BIN" -C "$P" gc >"$W/gc" 2>&1 || { cat "$W/gc" >&2; exit 1; }
    t1=$(date +%s.%N)
    local after; after=$(store_mb "$P")
    local run; run=$("$BIN" -C "$P" run 2>&1 | tail -1 | sed -E 's/^done: //; s/ in [0-9.]+s$//')
    awk -v l="$label" -v n="$EDITS" -v f="$first" -v g="$grown" -v t0="$t0" -v t1="$t1" \
        -v a="$after" -v run="$run" 'BEGIN {
        r = g / f
        printf "| %s | %d | %.1f | %.1f | %.2f | %.1f | %.1f | %s | %s |\n",
            l, n, f, g, r, t1 - t0, a, run, (r <= 2 ? "met" : "MISSED") }' | tee -a "$ROWS"
    rm -rf "$P"
}

bench "off (DAYDREAM_GC_EVERY=0)" 0
bench "on: every 5th rebuild, keep_versions default" 5
bench "on: every 5th rebuild, keep_versions: 3" 5 3

{
    echo "# bench/gc.sh, $(date -u +%Y-%m-%d), daydream $(git rev-parse --short HEAD), $(nproc) cores, load before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "99,200 generation tasks (4,960 distinct prompts per template), prompt files written; one template save every ${GAP} s after the previous rebuild; sizes are the database plus its log."
    echo
    cat "$ROWS"
} | tee bench/gc-results.md
