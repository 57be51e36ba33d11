#!/bin/bash
# ab.sh <label> <dir> : one idle-10k run (tidings,nats), a line appended to /tmp/p15c/ab.txt
L=$1; D=$2; shift 2
O=/tmp/p15c/runs/$L-$(date +%H%M%S); mkdir -p $O
LA=$(cut -d' ' -f1 /proc/loadavg)
(cd $D && env "$@" TIDINGS_BENCH_THREADS=1 node dist/bench/run.js --only idle-10k --servers tidings,nats --repeat 1 --out $O > $O/run.log 2>&1)
LB=$(cut -d' ' -f1 /proc/loadavg)
echo "$(date +%H:%M) $L load $LA-$LB: $(grep -h '^\[1/1\]' $O/run.log | sed 's/.*idle-10k //' | tr '\n' ' ')" >> /tmp/p15c/ab.txt
grep -h "node edge\|node primary" $O/run.log | head -2 | sed 's/^/    /' >> /tmp/p15c/ab.txt
