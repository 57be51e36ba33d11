"""Target 3 from results.json files: per run and median, the cluster scenario against one node in the same repetition.
usage: python3 summary.py DIR [DIR...]"""
import json, statistics, sys

PAIRS = [('cluster-fanout-1k', 'fanout-1k'), ('cluster-latency-20', 'latency-20'), ('cluster-latency-1k', 'latency-1k')]
for d in sys.argv[1:]:
    runs = json.load(open(f'{d}/results.json'))['runs']
    by = {(r['scenario'], r['rep']): r for r in runs if r['server'].startswith('tidings')}
    print(f'## {d}')
    for cl, one in PAIRS:
        rows = []
        for rep in sorted({r['rep'] for r in runs}):
            c, s = by.get((cl, rep)), by.get((one, rep))
            if not c or not s:
                continue
            rows.append((c['deliveriesPerCpuSec'] / s['deliveriesPerCpuSec'], c['latencyMs']['p50'] - s['latencyMs']['p50'], c['firstP50Ms'] - s['firstP50Ms'], s['load1'], c['load1'], s['deliveriesPerCpuSec'], c['deliveriesPerCpuSec'], s['latencyMs']['p50'], c['latencyMs']['p50']))
        if not rows:
            continue
        med = lambda i: statistics.median(r[i] for r in rows)
        print(f'{cl}: per CPU-s {med(0):.2f}x ({" / ".join(f"{r[0]:.2f}" for r in rows)}); p50 {med(1):+.2f} ms ({" / ".join(f"{r[1]:+.2f}" for r in rows)}); '
              f'first p50 {med(2):+.2f} ms; one node {med(5)/1e6:.2f} M/CPU-s p50 {med(7):.2f}, cluster {med(6)/1e6:.2f} M/CPU-s p50 {med(8):.2f}; load {min(min(r[3], r[4]) for r in rows):.1f}-{max(max(r[3], r[4]) for r in rows):.1f}')
