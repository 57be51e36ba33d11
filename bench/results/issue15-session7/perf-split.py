"""Where a process' on-CPU samples went, by thread and kind (perf record -g -p PID; then
`perf script -F comm,tid,time,ip,sym,dso -i FILE > FILE.script`). Usage:
python3 perf-split.py FILE.script MAIN_TID [FROM_S TO_S]   (seconds of perf's clock, e.g. the connect phase)"""
import collections, re, sys
f, main = sys.argv[1], sys.argv[2]
lo, hi = (float(sys.argv[3]), float(sys.argv[4])) if len(sys.argv) > 4 else (0, 1e18)
samples, cur = [], None
for line in open(f):
    m = re.match(r'\s*(\S+)\s+(\d+)\s+(\d+\.\d+):', line)
    if m:
        if cur: samples.append(cur)
        cur = {'comm': m.group(1), 'tid': m.group(2), 't': float(m.group(3)), 'st': []}
    elif cur is not None and line.strip():
        cur['st'].append(line.strip())
if cur: samples.append(cur)
w = [s for s in samples if lo <= s['t'] <= hi]
c = collections.Counter()
for s in w:
    st = ' '.join(s['st'])
    gc = 'Scaveng' in st or 'Marking' in st or 'Sweep' in st or 'MarkCompact' in st or 'Heap::' in st
    if s['comm'].startswith('ZMQ'): k = 'ZeroMQ I/O thread'
    elif s['tid'] != main: k = 'V8 helper threads: ' + ('TurboFan compile' if 'Compil' in st or 'compiler::' in st else 'GC' if gc else 'other')
    elif gc: k = 'main thread: GC'
    elif 'epoll_wait' in st or 'epoll_pwait' in st: k = 'main thread: epoll'
    else: k = 'main thread: the rest (JavaScript, syscalls, Node)'
    c[k] += 1
print(f'{len(w)} samples')
for k, v in c.most_common(): print(f'{100 * v / max(1, len(w)):5.1f}%  {k}')
