// Table values of the closing sitting: medians and per-run ratios.
const fs = require('fs');
const D = process.argv[2] || '/tmp/f13';
const load = (n) => { try { const r = JSON.parse(fs.readFileSync(`${D}/${n}/results.json`)); return r.runs || r; } catch { return []; } };
const med = (a) => { const s = a.filter((x) => Number.isFinite(x)).sort((x, y) => x - y); const n = s.length; return n ? (n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2) : NaN; };
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
function series(runs, sc, sv, key) { return runs.filter((r) => r.scenario === sc && r.server === sv).sort((a, b) => a.rep - b.rep).map(key); }
function ratio(runs, scA, svA, scB, svB, key, label, d = 2) {
  const a = series(runs, scA, svA, key), b = series(runs, scB, svB, key);
  const per = a.map((x, i) => x / b[i]);
  console.log(`${label}: ${f(med(a) / med(b), d)}x (${per.map((x) => f(x, d)).join(' / ')}); ${a.map((x) => f(x / 1e3, 1)).join(' / ')} vs ${b.map((x) => f(x / 1e3, 1)).join(' / ')} (k)`);
}
function diff(runs, scA, svA, scB, svB, key, label) {
  const a = series(runs, scA, svA, key), b = series(runs, scB, svB, key);
  const per = a.map((x, i) => x - b[i]);
  console.log(`${label}: ${f(med(a) - med(b))} ms (${per.map((x) => f(x)).join(' / ')}); ${a.map((x) => f(x)).join(' / ')} vs ${b.map((x) => f(x)).join(' / ')}`);
}
const pub = (r) => r.publishedPerCpuSec, del = (r) => r.deliveriesPerCpuSec, p99 = (r) => r.latencyMs.p99, p50 = (r) => r.latencyMs.p50, first = (r) => r.firstP50Ms;
const s = load('small');
ratio(s, 'small-rooms', 'tidings', 'small-rooms', 'nats', pub, '17.1 zmq/nats');
ratio(s, 'small-rooms', 'tidings-ws', 'small-rooms', 'nats', pub, '17.1 ws/nats');
ratio(s, 'many-channels-1k', 'tidings', 'many-channels-1k', 'nats', pub, '17.2 zmq/nats');
ratio(s, 'many-channels-1k', 'tidings-ws', 'many-channels-1k', 'nats', pub, '17.2 ws/nats');
ratio(s, 'cluster-small-rooms', 'tidings-cluster', 'small-rooms', 'tidings', pub, '17.4 zmq cluster/one');
ratio(s, 'cluster-small-rooms', 'tidings-ws-cluster', 'small-rooms', 'tidings-ws', pub, '17.4 ws cluster/one');
ratio(s, 'cluster-small-rooms', 'nats-cluster', 'small-rooms', 'nats', pub, '17.4 NATS pair/one');
const fo = load('fanout');
ratio(fo, 'fanout-1k', 'tidings', 'fanout-1k', 'ws-merged', del, '15.4 zmq/ws-merged');
ratio(fo, 'fanout-1k', 'tidings', 'fanout-1k', 'nats', del, '15.4 zmq/nats');
ratio(fo, 'fanout-1k', 'tidings-ws', 'fanout-1k', 'ws-merged', del, '15.4 ws/ws-merged');
ratio(fo, 'fanout-1k', 'tidings-ws', 'fanout-1k', 'nats', del, '15.4 ws/nats');
ratio(fo, 'cluster-fanout-1k', 'tidings-cluster', 'fanout-1k', 'tidings', del, '15.3 cluster/one');
ratio(fo, 'cluster-fanout-1k', 'nats-cluster', 'fanout-1k', 'nats', del, '15.3 NATS cluster/one');
const l = load('latency');
ratio(l, 'latency-1k', 'tidings', 'latency-1k', 'ws-batched', p99, '15.5 p99/ws-batched');
ratio(l, 'latency-20', 'tidings', 'latency-20', 'ws-batched', first, '15.5 first/ws-batched');
diff(l, 'cluster-latency-20', 'tidings-cluster', 'latency-20', 'tidings', p50, '15.3 cl20 p50');
diff(l, 'cluster-latency-1k', 'tidings-cluster', 'latency-1k', 'tidings', p50, '15.3 cl1k p50');
diff(l, 'cluster-latency-20', 'nats-cluster', 'latency-20', 'nats', p50, 'NATS cl20 p50');
diff(l, 'cluster-latency-1k', 'nats-cluster', 'latency-1k', 'nats', p50, 'NATS cl1k p50');
for (const sv of ['tidings', 'ws-batched', 'nats']) console.log('latency-1k', sv, 'p99', series(l, 'latency-1k', sv, p99).map((x) => f(x, 1)).join(' / '), ' latency-20 first', series(l, 'latency-20', sv, first).map((x) => f(x)).join(' / '));
const i = load('idle');
const cpc = (r) => r.cpuPerConnectUs, kb = (r) => r.rssPerConnKB;
ratio(i, 'idle-10k', 'tidings', 'idle-10k', 'nats', cpc, '15.2 connect cpu/nats');
console.log('15.1 KB/conn', series(i, 'idle-10k', 'tidings', kb).map((x) => f(x, 1)).join(' / '), ' nats', series(i, 'idle-10k', 'nats', kb).map((x) => f(x, 1)).join(' / '));
console.log('loads', ['small', 'fanout', 'latency', 'idle'].map((n) => n + ' ' + load(n).map((r) => r.load1?.toFixed(1)).filter(Boolean).join(',')).join(' | '));
try { const st = JSON.parse(fs.readFileSync(`${D}/storm/storm.json`)).runs; console.log('storm all back s', st.map((r) => (r.allRecoveredMs / 1000).toFixed(1)).join(' / '), ' p99 ratio', st.map((r) => r.p99Ratio.toFixed(2)).join(' / '), ' extra µs', st.map((r) => r.extraCpuPerReconnectUs.toFixed(0)).join(' / '), ' failed', st.map((r) => r.failedReconnects).join('/'), ' holes', st.map((r) => r.gaps + r.repeats + r.pending + r.recoveredFalse).join('/')); } catch (e) { console.log('storm: -', e.message); }
