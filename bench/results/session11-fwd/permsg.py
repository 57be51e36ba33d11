import re,sys,glob
def parse(f, scen):
    lines=open(f).read().split('\n')
    out={}
    for i,l in enumerate(lines):
        m=re.match(r'\[1/1\] (\S+) (\S+): ([\d.]+) M/s, ([\d.]+) M/CPU-s, ([\d.]+) k msg/CPU-s',l)
        if m and m.group(1)==scen[0] and m.group(2)==scen[1]:
            rate=float(m.group(3))*1e6/ (10 if 'small' in scen[0] else 1000)
            block=[]
            j=i-1
            while j>=0 and lines[j].startswith('    '):
                block.insert(0,lines[j]); j-=1
            pass
            for b in block:
                mm=re.match(r'\s+(.*?)( \d+)?: (\d+) ms of CPU per s \(node (\d+) ms, (\d+) wakes; ZMQbg/IO/# (\d+) ms, (\d+) wakes',b)
                if mm:
                    name=mm.group(1); cpu=int(mm.group(3))
                    out[name]=(cpu*1000/rate, (int(mm.group(5))+int(mm.group(7)))/rate*1000)
            return float(m.group(5)), out
    return None
scen=(sys.argv[1], sys.argv[2])
for f in sorted(glob.glob(sys.argv[3])):
    r=parse(f,scen)
    if r: print(f.split('/')[-1], r[0], ' '.join('%s=%.2fus/%.2fwk'%(k,v[0],v[1]) for k,v in sorted(r[1].items())))
