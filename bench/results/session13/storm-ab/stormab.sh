#!/bin/bash
cd /tmp/l13
for i in 1 2 3; do
  if [ $((i % 2)) -eq 1 ]; then order="base fp"; else order="fp base"; fi
  for side in $order; do
    dir=/work/main; [ $side = fp ] && dir=/tmp/fp
    echo "$(date +%T) storm $side $i load $(cut -d' ' -f1 /proc/loadavg)" >> stormab.progress
    (cd $dir && flock /tmp/bench.lock node dist/bench/storm.js --repeat 1 --out /tmp/l13/sab-$side-$i > /tmp/l13/sab-$side-$i.txt 2>&1)
  done
done
echo "$(date +%T) done" >> stormab.progress
