import re,sys,statistics as st
lines=open(sys.argv[1] if len(sys.argv)>1 else '/tmp/p15c/ab.txt').read().split('\n')
rows={}
i=0
while i<len(lines):
    l=lines[i]
    m=re.match(r'(\d\d:\d\d) (\S+) load (\S+)-(\S+): tidings: (\S+) KB/conn, (\d+) µs.*?, (\d+) connects/s.*nats: \S+ KB/conn, (\d+) µs',l)
    if m:
        t,lab,la,lb,kb,tu,cps,nu=m.groups()
        e=re.search(r'node edge \d+: (\d+) ms.*?, (\d+) write calls',lines[i+1]); p=re.search(r'node primary: (\d+) ms',lines[i+2])
        cps=int(cps)
        r=dict(t=t,load=f'{la}-{lb}',kb=float(kb),tid=int(tu),nats=int(nu),ratio=int(tu)/int(nu),edge=int(e.group(1))*1000/cps,prim=int(p.group(1))*1000/cps,writes=int(e.group(2))/cps,cps=cps)
        rows.setdefault(lab,[]).append(r)
        i+=3; continue
    i+=1
for lab,rs in rows.items():
    print(lab)
    for r in rs: print(f"  {r['t']} load {r['load']:>11}: tidings {r['tid']:4d} µs, NATS {r['nats']:4d}, ratio {r['ratio']:.2f}; edge {r['edge']:4.0f} µs, primary {r['prim']:4.0f} µs, edge writes/connect {r['writes']:.2f}; {r['kb']} KB; {r['cps']} connects/s")
    f=lambda k: st.median([r[k] for r in rs])
    print(f"  median of {len(rs)}: tidings {f('tid'):.0f}, NATS {f('nats'):.0f}, ratio {f('ratio'):.2f}, edge {f('edge'):.0f}, primary {f('prim'):.0f}, writes {f('writes'):.2f}, KB {f('kb')}")
