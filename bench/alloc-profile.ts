/**
 * Where a server's allocations go, garbage included: a preload for every
 * Tidings process of a bench run (edge workers inherit NODE_OPTIONS) that
 * runs V8's sampling heap profiler keeping the objects minor and major
 * collections freed (Node's --heap-prof keeps only the survivors, which says
 * nothing of what the young generation's collections cost), and writes each
 * process' profile at exit to <tmpdir>/tidings-alloc/alloc-<main|worker>-<pid>.heapprofile
 * (open it in Chrome's DevTools, Memory tab, or summarise it with
 * dist/bench/alloc-summary.js, which also gives bytes per message):
 *
 *   TIDINGS_BENCH_NODE_OPTIONS="--import $PWD/dist/bench/alloc-profile.js" node dist/bench/run.js --only small-rooms --servers tidings-ws --repeat 1
 *   node dist/bench/alloc-summary.js /tmp/tidings-alloc/alloc-worker-*.heapprofile [--messages N]
 *
 * Allocations in functions V8 inlined are counted to the function they were
 * inlined into (session 10 used a copy calling
 * v8.setFlagsFromString('--no-turbo-inlining') first to see each function's
 * own, at some cost in speed).
 */
import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import cluster from 'node:cluster';

const dir = join(tmpdir(), 'tidings-alloc');
mkdirSync(dir, { recursive: true });
const session = new Session();
session.connect();
session.post('HeapProfiler.enable');
// One sample per 4 KB allocated on average: enough for per-site shares over a few seconds of load.
session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
let written = false;
process.on('exit', () => {
  if (written) return;
  written = true;
  // The in-process session answers synchronously, so the profile is written before the process ends.
  session.post('HeapProfiler.stopSampling', (err, r) => {
    if (err) return;
    writeFileSync(join(dir, `alloc-${cluster.isWorker ? 'worker' : 'main'}-${process.pid}.heapprofile`), JSON.stringify(r.profile));
  });
});
