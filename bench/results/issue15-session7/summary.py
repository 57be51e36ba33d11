"""Per-process CPU per connect from tools/ab.sh lines (runs.txt): each run's total, then the edge
worker's and the primary's µs per connect (main thread, ZeroMQ I/O thread), and the edge/primary
ratio (the primary's code is the same in every variant here, so it serves as an in-run control of
the machine's load). Usage: python3 summary.py runs.txt"""
import re, sys
cur = None
for l in open(sys.argv[1]):
    m = re.match(r'(\S+) load (\S+): tidings: (\S+) KB/conn, (\d+) µs server CPU per connect, ([\d,]+) connects/s(.*)', l)
    if m:
        cur = m.groups(); rate = int(cur[4].replace(',', '')); edge = None
        nats = re.search(r'nats: \S+ KB/conn, (\d+) µs', cur[5])
        print(f"{cur[0]:14s} load {cur[1]:11s} {cur[2]:>4s} KB {cur[3]:>4s} µs" + (f"  nats {nats.group(1)} µs  ratio {int(cur[3])/int(nats.group(1)):.2f}x" if nats else ''))
        continue
    m = re.search(r'node (edge|primary)\S*\s*\d*: (\d+) ms of CPU per s \(node (\d+) ms.*?ZMQbg/IO/# (\d+) ms', l)
    if m and cur:
        kind, tot, node, zmq = m.groups()
        per = 1000 * int(tot) / rate
        extra = f"  edge/primary {edge / per:.2f}" if kind == 'primary' and edge else ''
        if kind == 'edge': edge = per
        print(f"    {kind:8s} {per:5.0f} µs/connect (main {1000*int(node)/rate:4.0f}, zmq I/O {1000*int(zmq)/rate:3.0f}){extra}")
