#!/bin/bash
# mem.sh <label> <dir>: one tidings-only idle-10k run; a line appended to /tmp/p15c/mem.txt
L=$1; D=$2
O=/tmp/p15c/mruns/$L-$(date +%H%M%S); mkdir -p $O
LA=$(cut -d' ' -f1 /proc/loadavg)
(cd $D && TIDINGS_BENCH_THREADS=1 node dist/bench/run.js --only idle-10k --servers tidings --repeat 1 --out $O > $O/run.log 2>&1)
LB=$(cut -d' ' -f1 /proc/loadavg)
echo "$(date +%H:%M) $L load $LA-$LB: $(grep -h '^\[1/1\]' $O/run.log | sed 's/.*idle-10k //' | tr '\n' ' ') | $(grep -h 'node edge' $O/run.log | head -1 | sed 's/ (.*)//')" >> /tmp/p15c/mem.txt
