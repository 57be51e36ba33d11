#!/bin/bash
# latch-idle-gap vs main: alternating single runs under the machine lock
cd /tmp/l13/ab
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) -eq 1 ]; then order="base lig"; else order="lig base"; fi
  for side in $order; do
    dir=/tmp/base-l13; [ $side = lig ] && dir=/tmp/lig
    echo "$(date +%T) $side $i load $(cut -d' ' -f1 /proc/loadavg)" >> progress
    (cd $dir && flock /tmp/bench.lock node dist/bench/run.js --only latency-20,cluster-latency-20,latency-1k,cluster-latency-1k --servers tidings,ws-batched --repeat 1 --out /tmp/l13/ab/lat-$side-$i > /tmp/l13/ab/lat-$side-$i.txt 2>&1)
  done
done
for i in 1 2 3; do
  for side in base lig; do
    dir=/tmp/base-l13; [ $side = lig ] && dir=/tmp/lig
    echo "$(date +%T) storm $side $i load $(cut -d' ' -f1 /proc/loadavg)" >> progress
    (cd $dir && flock /tmp/bench.lock node dist/bench/storm.js --repeat 1 --out /tmp/l13/ab/storm-$side-$i > /tmp/l13/ab/storm-$side-$i.txt 2>&1)
  done
done
echo "$(date +%T) done" >> progress
