"""Samples of a `perf script -F comm,tid,time,ip,sym,dso` dump: each a dict of comm, tid and its stack's
symbols (innermost first), JIT prefixes folded to 'JS:'. Shared by incl.py and under.py."""
import re


def read_samples(path):
    samples, cur = [], None
    for line in open(path, errors='replace'):
        m = re.match(r'\s*(\S+)\s+(\d+)\s+(\d+\.\d+):', line)
        if m:
            if cur: samples.append(cur)
            cur = {'comm': m.group(1), 'tid': m.group(2), 'st': []}
        elif cur is not None and line.strip():
            parts = line.strip().split(' ', 1)
            sym = parts[1] if len(parts) > 1 else parts[0]
            sym = re.sub(r'\s*\(\S+\)$', '', sym)
            sym = re.sub(r'^(JS:|LazyCompile:|Function:)[*~^+]?', 'JS:', sym)
            cur['st'].append(sym)
    if cur: samples.append(cur)
    return samples
