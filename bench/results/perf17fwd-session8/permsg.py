"""µs of CPU per published message per process and thread, measured phase. usage: permsg.py run.log results.json"""
import json, re, sys
log = open(sys.argv[1]).read().splitlines()
runs = json.load(open(sys.argv[2]))['runs']
groups, cur, out = [], [], []
for line in log:
    m = re.match(r'\s+(.+?): (\d+) ms of CPU per s \((.*); per s\), (\d+) write calls per s', line)
    if m:
        cur.append(m.groups()); continue
    m = re.match(r'\[(\d+)/(\d+)\] (\S+) (\S+):', line)
    if m:
        out.append((m.group(3), m.group(4), cur)); cur = []
for (scen, server, lines), r in zip(out, runs):
    msgs = r['published'] / r['seconds']
    # measured phase: the last len/2 lines
    meas = lines[len(lines)//2:]
    tot = sum(int(l[1]) for l in meas)
    print(f"{scen} {server}: {msgs/1000:.1f} k msg/s, {r['publishedPerCpuSec']/1000:.1f} k msg/CPU-s, load {r.get('load1', 0):.1f}; total {tot*1000/msgs:.2f} µs/msg")
    for name, ms, kinds, writes in sorted(meas):
        ks = []
        for k in kinds.split('; '):
            mm = re.match(r'(\S+) (\d+) ms, (\d+) wakes', k)
            if mm: ks.append(f"{mm.group(1)} {int(mm.group(2))*1000/msgs:.2f} ({int(mm.group(3))} wk/s)")
        print(f"   {name:28s} {int(ms)*1000/msgs:5.2f} µs/msg  [{', '.join(ks)}] {writes} wr/s")
