#!/usr/bin/env bash
# Benchmark `daydream run --watch`: the time from a one-template save to the end of the rebuild
# (no LLM calls), and the watcher's memory over 100 consecutive edits, on a ~100k-task project:
# 32 concepts, k=3, 10 active generation templates, 2 models = 99,200 generation tasks, so one
# template's save re-renders 4,960 prompts (9,920 tasks). Run twice: prompt files written, and
# prompts kept in the store only (`materialize: false`).
# Prints a markdown table and writes it to bench/watch-results.md.   Usage: bench/watch.sh [EDITS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EDITS=${1:-100}

cargo build --release --quiet
BIN=$ROOT/target/release/daydream
W=$(mktemp -d /tmp/daydream-watch-bench.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill -INT "$PID" 2>/dev/null; rm -rf "$W"' EXIT
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=$W/rows
echo "| prompts | edits | save -> rebuilt, median s | p90 s | max s | daydream's own rebuild, median s | heap (RssAnon) after edit 1 / 10 / $EDITS MB | RSS incl. the store's mmap MB | target |" >"$ROWS"
echo "|---|--:|--:|--:|--:|--:|---|---|---|" >>"$ROWS"

# heap: anonymous memory (RssAnon); the store's pages mapped by SQLite's mmap count in VmRSS only
rss_mb() { awk -v k="${2:-RssAnon}:" '$1 == k { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
now() { date +%s.%N; }

bench() { # bench LABEL [--no-prompt-files]
    local label=$1; shift
    local P=$W/p
    python3 bench/make_project.py "$P" --concepts 32 --k 3 --gen-models 2 --gen-templates 10 "$@" >/dev/null
: >"$W/log"
    "$BIN" -C "$P" run --watch >"$W/log" 2>&1 &
    PID=$!
    until grep -q "^watching " "$W/log"; do sleep 0.05; done
    mapfile -t templates < <(awk -F, 'NR > 1 && $4 == "true" { print $1 }' "$P/data/1_raw/generation_templates.csv")
    : >"$W/lat"
    local rss1= rss10= vm1_=
    for i in $(seq 1 "$EDITS"); do
        local t=${templates[$(( (i - 1) % ${#templates[@]} ))]}
        local t0; t0=$(now)
        echo "Edit $i." >>"$P/templates/generation/$t.txt"
        until [ "$(grep -c '^  rebuilt in' "$W/log")" -ge "$i" ]; do sleep 0.005; done
        local t1; t1=$(now)
        echo "$t0 $t1" | awk '{ printf "%.3f\n", $2 - $1 }' >>"$W/lat"
        [ "$i" = 1 ] && rss1=$(rss_mb "$PID") && vm1_=$(rss_mb "$PID" VmRSS)
        [ "$i" = 10 ] && rss10=$(rss_mb "$PID")
    done
    local rssN; rssN=$(rss_mb "$PID")
    local vm1=$vm1_ vmN; vmN=$(rss_mb "$PID" VmRSS)
    if grep -q "^error" "$W/log"; then grep "^error" "$W/log" >&2; exit 1; fi
    kill -INT "$PID"; wait "$PID" || true; PID=
    sort -n "$W/lat" -o "$W/lat"
    local own; own=$(grep '^  rebuilt in' "$W/log" | sed -E 's/.*rebuilt in ([0-9.]+)s.*/\1/' | sort -n)
    awk -v label="$label" -v n="$EDITS" -v r1="$rss1" -v r10="$rss10" -v rn="$rssN" -v vm="$vm1 -> $vmN" -v own="$(echo "$own" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')" '
        { a[NR] = $1 }
        END {
            med = a[int((NR + 1) / 2)]; p90 = a[int(NR * 0.9 + 0.5)]; mx = a[NR]
            printf "| %s | %d | %.2f | %.2f | %.2f | %.2f | %s / %s / %s | %s | %s |\n",
                label, n, med, p90, mx, own, r1, r10, rn, vm, (med < 1 ? "< 1 s: met" : "< 1 s: MISSED")
        }' "$W/lat" | tee -a "$ROWS"
    rm -rf "$P"
}

bench "files written (9,920 per save)"
bench "store only (materialize: false)" --no-prompt-files

{
    echo "# bench/watch.sh, $(date -u +%Y-%m-%d), $(nproc) cores, load before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    cat "$ROWS"
} | tee bench/watch-results.md
