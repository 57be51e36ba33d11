"""Inclusive share of samples per frame symbol for one tid (or all of a comm); usage: incl.py x.script TID [N] [filter]"""
import collections, sys
from perf_samples import read_samples
f, tid = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 60
flt = sys.argv[4] if len(sys.argv) > 4 else None
samples = read_samples(f)
w = [s for s in samples if s['tid'] == tid or s['comm'] == tid]
c = collections.Counter()
for s in w:
    for sym in set(s['st']): c[sym] += 1
print(len(w), 'samples')
for k, v in c.most_common(400):
    if flt and flt not in k: continue
    if n <= 0: break
    n -= 1
    print(f'{100*v/len(w):5.1f}% {k[:150]}')
