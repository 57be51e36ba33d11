#!/bin/bash
# alternate: base=/work/main, branch=/work/wt/direct; $1 = only, $2 = servers, $3 = pairs
O=/tmp/l11/abd${TAG}; mkdir -p $O
for i in $(seq 1 $3); do for side in base direct; do
  d=/work/main; [ $side = direct ] && d=/work/wt/direct
  (cd $d && { date -u +%T; uptime; node dist/bench/run.js --only $1 --servers $2 --out $O/$side-$1-$i; } > $O/$side-$1-$i.log 2>&1)
done; done
