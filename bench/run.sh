#!/usr/bin/env bash
# Benchmark daydream: cold run, no-op runs, a one-concept edit and a `touch` of every input on a
# ~100k-task project, then no-op runs at ~100k..1M tasks with prompts kept in the store only.
# Prints a markdown table and writes it to bench/results.md.   Usage: bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

cargo build --release --quiet
BIN=$ROOT/target/release/daydream
if [ ! -x /usr/bin/time ]; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq time >/dev/null
fi

W=$(mktemp -d /tmp/daydream-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
ROWS=$W/rows
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
MAX_RSS_MB=500

# measure SCENARIO TASKS PROJECT WALL_TARGET [RSS_TARGET_MB]: one `daydream run`, appended as a
# table row; "-" (or no RSS target) checks nothing.
measure() {
    /usr/bin/time -f '%e %U %S %M' -o "$W/time" "$BIN" -C "$3" run >"$W/out" 2>&1 \
        || { cat "$W/out" >&2; echo "daydream run failed ($1)" >&2; exit 1; }
    read -r wall user sys rss <"$W/time"
    said=$(tail -1 "$W/out" | sed -E 's/^done: //; s/ in [0-9.]+s$//')
    awk -v s="$1" -v n="$2" -v w="$wall" -v u="$user" -v k="$sys" -v r="$rss" \
        -v t="$4" -v m="${5:--}" -v said="$said" 'BEGIN {
        rmb = r / 1024; v = "ok"
        if (t != "-" && w + 0 >= t + 0) v = "MISS (wall < " t " s)"
        if (m != "-" && rmb >= m + 0) v = (v == "ok" ? "" : v ", ") "MISS (rss < " m " MB)"
        if (t == "-" && m == "-" && v == "ok") v = "-"
        printf "| %s | %d | %.2f | %.2f | %.0f | %.2f | %s | %s |\n",
            s, n, w, u + k, rmb, w * 1e6 / n, said, v }' | tee -a "$ROWS"
}

tasks() { python3 -c "import math; print(math.comb($1, $2) * $3)"; }

echo "| scenario | gen tasks | wall s | cpu s | max RSS MB | µs/task | daydream says | target |" | tee "$ROWS"
echo "|---|--:|--:|--:|--:|--:|---|---|" | tee -a "$ROWS"

# 1. 60 concepts, k=3, 3 models: 34,220 combos -> 102,660 generation tasks, prompt files written.
P=$W/p100k
python3 bench/make_project.py "$P" --concepts 60 --k 3 --gen-models 3 >/dev/null
N=$(tasks 60 3 3)
measure "cold run" "$N" "$P" - "$MAX_RSS_MB"
for i in 1 2 3; do measure "no-op #$i" "$N" "$P" 0.5 "$MAX_RSS_MB"; done
echo "An appended sentence about benchmarks changes this concept." \
    >>"$P/data/1_raw/concepts/descriptions-paragraph/concept-0001.txt"
measure "edit one concept" "$N" "$P" 1 "$MAX_RSS_MB"
find "$P/data/1_raw" "$P/templates" "$P/pipeline.yaml" -type f -exec touch {} +
measure "touch all inputs" "$N" "$P" - "$MAX_RSS_MB"
rm -rf "$P"

# 2. Scaling with prompts in the store only (materialize: false): 6 models, k=3.
for c in 47 64 80 100; do
    P=$W/p$c
    python3 bench/make_project.py "$P" --concepts "$c" --k 3 --gen-models 6 --no-prompt-files >/dev/null
    N=$(tasks "$c" 3 6)
    t=$(awk -v n="$N" 'BEGIN { print (n > 900000 ? 5 : "-") }')
    measure "store-only, $c concepts: cold" "$N" "$P" -
    for i in 1 2 3; do measure "store-only, $c concepts: no-op #$i" "$N" "$P" "$t"; done
    rm -rf "$P"
done

{
    echo "# daydream benchmark"
    echo
    echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), daydream $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo ' + uncommitted src changes')"
    echo "- $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ { printf "%.0f GB RAM", $2 / 1048576 }' /proc/meminfo)"
    echo "- load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine inflates wall times)"
    echo "- one evaluation model and template, so evaluation tasks = generation tasks; \`bench/run.sh\` regenerates this file"
    echo "- targets: no-op < 0.5 s at ~100k tasks, one-concept edit < 1 s, < 5 s at ~1M tasks, max RSS < $MAX_RSS_MB MB at ~100k tasks (the 1M scaling rows show growth, with no memory target)"
    echo
    cat "$ROWS"
} >bench/results.md
echo "wrote bench/results.md"
