#!/bin/bash
# Closing sitting: every figure of issues 15 and 17, from /work/main/dist, into /tmp/f13
set -u
OUT=/tmp/f13; mkdir -p $OUT; cd /work/main
run() {  local name=$1; shift; echo "== $name $(date -u +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/log; "$@" > $OUT/$name.txt 2>&1; echo "   rc=$? $(date -u +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/log; }
run small node dist/bench/run.js --only small-rooms,cluster-small-rooms,many-channels-1k --servers tidings,tidings-ws,nats --repeat 3 --out $OUT/small
run ceiling node dist/bench/director-ceiling.js --repeat 3 --seconds 4
run fanout node dist/bench/run.js --only fanout-1k,cluster-fanout-1k --servers tidings,tidings-ws,nats,ws-merged --repeat 3 --out $OUT/fanout
run latency node dist/bench/run.js --only latency-20,cluster-latency-20,latency-1k,cluster-latency-1k --servers tidings,ws-batched,nats --repeat 3 --out $OUT/latency
run idle node dist/bench/run.js --only idle-10k --servers tidings,nats --repeat 3 --out $OUT/idle
run storm node dist/bench/storm.js --repeat 3 --out $OUT/storm
run hop node dist/bench/hop-latency.js --repeat 3
run threads env TIDINGS_BENCH_THREADS=1 node dist/bench/run.js --only small-rooms,cluster-small-rooms --servers tidings --repeat 1 --out $OUT/threads
