"""Per-process, per-thread CPU and wake-ups of each run's measured phase, from a run.log written with TIDINGS_BENCH_THREADS=1.
usage: python3 threads.py run.log"""
import re, sys

block = []
for l in open(sys.argv[1]).read().split('\n'):
    if l.startswith('    '):
        block.append(l.strip())
        continue
    if l.startswith('['):
        half = block[len(block) // 2:]  # the first half is the connect phase, the second the measured phase
        print(l.split(':')[0])
        for b in half:
            m = re.match(r'(.*?): (\d+) ms of CPU per s \(node (\d+) ms, (\d+) wakes; ZMQbg/IO/# (\d+) ms, (\d+) wakes; per s\), (\d+) write', b)
            if m:
                print('   %-22s %4s ms/s  main %4s ms %4s wakes  io %3s ms %4s wakes  writes %6s' % m.groups())
        block = []
