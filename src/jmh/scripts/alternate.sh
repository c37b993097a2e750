#!/bin/bash
# Runs one JMH command in several checkouts in turn, round after round, so that every checkout
# sees the same stretch of a shared, noisy machine; then prints, per benchmark and parameters, the
# median of all iterations of each checkout and its speed against the first checkout.
#
# usage: alternate.sh ROUNDS OUTDIR "JMH ARGS" DIR...
#   e.g. alternate.sh 6 /tmp/alt "DecodeAttentionBenchmark -p tokens=4096 -f 1" ../old .
# Each DIR is a checkout of this project (git worktree add ../old <commit>). Use -f 1 in the JMH
# arguments: forks of one build differ by more than a few per cent, so alternate forks, not runs.
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
rounds=$1; out=$2; args=$3; shift 3
mkdir -p "$out"
dirs=()
for d in "$@"; do dirs+=("$(cd "$d" && pwd)"); done
for round in $(seq 1 "$rounds"); do
  for i in "${!dirs[@]}"; do
    echo "== checkout $i (${dirs[$i]}) round $round $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    (cd "${dirs[$i]}" && mvn -B -q test-compile exec:exec@jmh \
        -Djmh.args="$args -rf json -rff $out/side$i-round$round.json" > "$out/side$i-round$round.log" 2>&1)
  done
done
python3 - "$out" "${#dirs[@]}" <<'PY'
import glob, json, statistics, sys
out, sides = sys.argv[1], int(sys.argv[2])
runs = [{} for _ in range(sides)]
for s in range(sides):
    for f in glob.glob(f"{out}/side{s}-round*.json"):
        for b in json.load(open(f)):
            key = (b["benchmark"].split(".")[-2] + "." + b["benchmark"].split(".")[-1],
                   " ".join(f"{k}={v}" for k, v in sorted(b.get("params", {}).items())))
            runs[s].setdefault(key, []).extend(x for fork in b["primaryMetric"]["rawData"] for x in fork)
for key in sorted(runs[0]):
    base = statistics.median(runs[0][key])
    line = f"{key[0]} {key[1]}: {base:.1f}"
    for s in range(1, sides):
        if key in runs[s]:
            m = statistics.median(runs[s][key])
            line += f" | {m:.1f} ({100 * base / m:.1f} % of checkout 0's speed)"
    print(line)
PY
