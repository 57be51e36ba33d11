#!/bin/bash
# ab.sh <label> <dir> <servers> [env...] : one idle-10k run, prints a line
L=$1; D=$2; SV=$3; shift 3
O=/tmp/p15e/runs/$L-$(date +%H%M%S); mkdir -p $O
LA=$(cut -d' ' -f1 /proc/loadavg)
(cd $D && env "$@" TIDINGS_BENCH_THREADS=1 node dist/bench/run.js --only idle-10k --servers $SV --repeat 1 --out $O > $O/run.log 2>&1)
LB=$(cut -d' ' -f1 /proc/loadavg)
echo "$L load $LA-$LB: $(grep -h '^\[1/1\]' $O/run.log | sed 's/.*idle-10k //' | tr '\n' ' ')" | tee -a /tmp/p15e/ab.txt
grep -h "node edge\|node primary" $O/run.log | grep -v nats | head -2 | sed 's/^/    /' >> /tmp/p15e/ab.txt
