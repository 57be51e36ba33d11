"""For samples of TID whose stack holds FRAME: inclusive share of the frames called below it (depth 1..D). usage: under.py x.script TID FRAME [depth]"""
import collections, sys
from perf_samples import read_samples
f, tid, frame = sys.argv[1], sys.argv[2], sys.argv[3]
depth = int(sys.argv[4]) if len(sys.argv) > 4 else 1
samples = read_samples(f)
w = [s for s in samples if s['tid'] == tid]
tot = len(w)
c = collections.Counter(); k = 0
for s in w:
    st = s['st']
    idx = [i for i, x in enumerate(st) if frame in x]
    if not idx: continue
    k += 1
    i = max(idx)  # outermost occurrence
    path = st[max(0, i - depth):i][::-1]
    c[' > '.join(p[:70] for p in path) if path else '(self)'] += 1
print(f'{k} of {tot} samples ({100*k/tot:.1f}%) hold {frame}')
for key, v in c.most_common(40): print(f'{100*v/tot:5.1f}% {key}')
