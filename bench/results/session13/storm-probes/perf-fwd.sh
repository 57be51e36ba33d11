#!/bin/bash
# perf record the forwarder node's primary (TIDINGS_NODE_ID=node1, main process) during cluster-small-rooms
cd ${1:-/work/main}
OUT=${2:-/tmp/l13/perf-fwd}
mkdir -p $OUT
TIDINGS_BENCH_NODE_OPTIONS=--perf-basic-prof-only-functions node dist/bench/run.js --only cluster-small-rooms --servers tidings --repeat 1 --out $OUT/res > $OUT/log 2>&1 &
B=$!
for i in $(seq 1 120); do grep -q " 1.0 s," $OUT/log && break; sleep 0.5; done
for p in $(pgrep -f "cli/main.js serve"); do
  if tr '\0' '\n' < /proc/$p/environ | grep -q "^TIDINGS_NODE_ID=node1" && ! tr '\0' ' ' < /proc/$p/cmdline | grep -q "max-semi-space-size=2 "; then
    ppid=$(awk '{print $4}' /proc/$p/stat); pc=$(tr '\0' ' ' < /proc/$ppid/cmdline)
    case "$pc" in *cli/main.js*) ;; *) FWD=$p;; esac
  fi
done
echo "forwarder pid $FWD"
perf record -F 1999 -g -p $FWD -o $OUT/perf.data -- sleep 3 2>/dev/null
wait $B
grep "^\[" $OUT/log
perf report -i $OUT/perf.data --no-children --sort comm,dso,sym --percent-limit 0.7 --stdio 2>/dev/null | grep -v "^$" | grep "%" | head -60
