import sys, subprocess, re, statistics as st, collections
# usage: agg.py tag npairs
tag, n = sys.argv[1], int(sys.argv[2])
for side in ['base','branch']:
    d = collections.defaultdict(list)
    for i in range(1, n+1):
        try:
            out = subprocess.run(['python3','/work/wt/perf17edge/bench/results/perf17fwd-session8/permsg.py',f'/tmp/p17e-{tag}-{side}-{i}.txt',f'/tmp/p17e-{tag}-{side}-{i}/results.json'],capture_output=True,text=True).stdout
        except Exception as e:
            continue
        scen=None
        for line in out.splitlines():
            m = re.match(r'(\S+) (\S+): ([\d.]+) k msg/s, ([\d.]+) k msg/CPU-s, load ([\d.]+); total ([\d.]+)', line)
            if m:
                scen=m.group(1); d[(scen,'msg/CPU-s k')].append(float(m.group(4))); d[(scen,'total us/msg')].append(float(m.group(6))); d[(scen,'load')].append(float(m.group(5))); continue
            m = re.match(r'\s+(.+?)\s+([\d.]+) µs/msg', line)
            if m and scen:
                name = re.sub(r' \d+$','',m.group(1).strip())
                d[(scen,name)].append(float(m.group(2)))
    print('==', side)
    for k,v in sorted(d.items()):
        print(f"  {k[0]:22s} {k[1]:18s} median {st.median(v):7.2f}  [{' '.join(f'{x:.2f}' for x in v)}]")
