#!/bin/bash
# every 3 s: top threads of node processes over the last 3 s
for i in $(seq 1 40); do
  echo "== $(date +%T)"; node /tmp/l13/threads.js 'node' 3 0 | sort -t'%' -k1 | awk '{print}' | sort -k3 -rn | head -8
done
