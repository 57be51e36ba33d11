# Medians over the five alternating idle-10k runs (runs 1-3 with latency, 4-5 idle only).
import json, statistics as st
from pathlib import Path
here = Path(__file__).parent
for v in ('base', 'new'):
    dirs = [here / f'{v}-{i}' for i in (1, 2, 3)] + [here / f'idle-{v}-{i}' for i in (4, 5)]
    R = [{(r['scenario'], r['server']): r for r in json.load(open(d / 'results.json'))['runs']} for d in dirs]
    kb = [r[('idle-10k', 'tidings')]['rssPerConnKB'] for r in R]
    ws = [r[('idle-10k', 'ws-batched')]['rssPerConnKB'] for r in R]
    cpu = [r[('idle-10k', 'tidings')]['cpuPerConnectUs'] for r in R]
    nats = [r[('idle-10k', 'nats')]['cpuPerConnectUs'] for r in R]
    load = [r[('idle-10k', 'tidings')]['load1'] for r in R]
    ratio = [c / n for c, n in zip(cpu, nats)]
    j = lambda xs, p: ' / '.join(f'{x:.{p}f}' for x in xs)
    print(f'{v}: KB/conn median {st.median(kb):.1f} ({j(kb, 1)}), ws-batched {j(ws, 1)}; connect µs {j(cpu, 0)} vs NATS {j(nats, 0)}: ratio median {st.median(ratio):.2f} ({j(ratio, 2)}); load {j(load, 1)}')
