import json, statistics as st
def runs(v):
    out=[]
    for i in (1,2,3):
        d=json.load(open(f'bench/results/issue15-session5/{v}-{i}/results.json'))
        out.append({(r['scenario'],r['server']):r for r in d['runs']})
    return out
for v in ('base','new'):
    R=runs(v)
    print('==',v)
    # idle-10k
    kb=[r[('idle-10k','tidings')]['rssPerConnKB'] for r in R]
    cpu=[r[('idle-10k','tidings')]['cpuPerConnectUs'] for r in R]
    ncpu=[r[('idle-10k','nats')]['cpuPerConnectUs'] for r in R]
    wkb=[r[('idle-10k','ws-batched')]['rssPerConnKB'] for r in R]
    load=[r[('idle-10k','tidings')]['load1'] for r in R]
    rat=[c/n for c,n in zip(cpu,ncpu)]
    f=lambda xs,p=2: ' / '.join(f'{x:.{p}f}' for x in xs)
    print(f'idle KB/conn median {st.median(kb):.1f} ({f(kb,1)}); ws-batched {f(wkb,1)}; load {f(load,1)}')
    print(f'connect cpu us {f(cpu,0)} nats {f(ncpu,0)} ratio median {st.median(rat):.2f} ({f(rat)})')
    for sc in ('latency-1k','latency-20'):
        p99=[r[(sc,'tidings')]['p99Ms'] if 'p99Ms' in r[(sc,'tidings')] else None for r in R]
    for sc in ('latency-1k','latency-20'):
        t=[r[(sc,'tidings')] for r in R]; w=[r[(sc,'ws-batched')] for r in R]
        keys=[k for k in t[0] if 'p99' in k.lower() or 'p50' in k.lower()]
        print(sc, keys) if v=='base' and sc=='latency-1k' else None
print()
for v in ('base','new'):
    R=runs(v)
    f=lambda xs,p=2: ' / '.join(f'{x:.{p}f}' for x in xs)
    for sc in ('latency-1k','latency-20'):
        t=[r[(sc,'tidings')] for r in R]; w=[r[(sc,'ws-batched')] for r in R]
        p99=[a['latencyMs']['p99']/b['latencyMs']['p99'] for a,b in zip(t,w)]
        p50=[a['latencyMs']['p50']/b['latencyMs']['p50'] for a,b in zip(t,w)]
        fp=[a['firstP50Ms']/b['firstP50Ms'] for a,b in zip(t,w)]
        print(v, sc, f"p99 ratio {st.median(p99):.2f} ({f(p99)}) p50 ratio {st.median(p50):.2f} ({f(p50)}) first-p50 ratio {st.median(fp):.2f} ({f(fp)}); tidings p99 {f([a['latencyMs']['p99'] for a in t],1)} ws {f([b['latencyMs']['p99'] for b in w],1)}; load {f([a['load1'] for a in t],1)}")
