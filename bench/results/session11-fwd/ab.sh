#!/bin/bash
# usage: ab.sh <pairs> <only> <servers> <tag> [threads]
pairs=$1; only=$2; servers=$3; tag=$4
run() { # label dir
  local label=$1 dir=$2 n=$3
  echo "=== $tag $label $n $(date -u +%H:%M:%S) $(uptime | sed 's/.*load/load/')" >> /tmp/fwd-ab/$tag.log
  (cd $dir && TIDINGS_BENCH_THREADS=1 timeout 900 node dist/bench/run.js --only $only --servers $servers --repeat 1 --out /tmp/fwd-ab/out-$tag-$label-$n > /tmp/fwd-ab/$tag-$label-$n.txt 2>&1)
  grep "^\[1/1\]\|^tidings" /tmp/fwd-ab/$tag-$label-$n.txt >> /tmp/fwd-ab/$tag.log
}
for i in $(seq 1 $pairs); do
  if [ $((i % 2)) -eq 1 ]; then run base /tmp/base-fwd $i; run branch /work/wt/fwd $i; else run branch /work/wt/fwd $i; run base /tmp/base-fwd $i; fi
done
echo "=== done $(date -u +%H:%M:%S) $(uptime | sed 's/.*load/load/')" >> /tmp/fwd-ab/$tag.log
