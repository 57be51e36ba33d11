#!/bin/bash
# Quiet-machine A/B of latch-idle-gap against main: latency pairs, fan-out pairs, storm pairs
O=/tmp/l12/ab2; mkdir -p $O
side() { [ $1 = lig ] && echo /tmp/lead-lig || echo /work/main; }
for i in 1 2 3 4; do for b in main lig; do echo "lat $b $i $(date -u +%T) $(cut -d' ' -f1 /proc/loadavg)" >> $O/log; (cd $(side $b) && timeout 400 node dist/bench/run.js --only latency-20,latency-1k,cluster-latency-1k --servers tidings,ws-batched --repeat 1 --out $O/lat-$b-$i > $O/lat-$b-$i.txt 2>&1); done; done
for i in 1 2; do for b in main lig; do echo "storm $b $i $(date -u +%T) $(cut -d' ' -f1 /proc/loadavg)" >> $O/log; (cd $(side $b) && timeout 300 node dist/bench/storm.js --out $O/storm-$b-$i > $O/storm-$b-$i.txt 2>&1); done; done
for i in 1 2; do for b in main lig; do echo "fan $b $i $(date -u +%T) $(cut -d' ' -f1 /proc/loadavg)" >> $O/log; (cd $(side $b) && timeout 400 node dist/bench/run.js --only fanout-1k,many-channels-1k --servers tidings,ws-merged --repeat 1 --out $O/fan-$b-$i > $O/fan-$b-$i.txt 2>&1); done; done
echo "done $(date -u +%T)" >> $O/log
