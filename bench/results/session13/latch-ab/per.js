const fs = require('fs');
const dirs = fs.readdirSync('/tmp/l13/ab').filter((d) => /^lat-(base|lig)-\d+$/.test(d) && fs.existsSync(`/tmp/l13/ab/${d}/results.json`));
const f = (x) => x.toFixed(2);
const rows = { base: [], lig: [] };
for (const d of dirs.sort((a, b) => a.split('-')[2] - b.split('-')[2])) {
  const r = JSON.parse(fs.readFileSync(`/tmp/l13/ab/${d}/results.json`)); const runs = r.runs || r;
  const g = (sc, sv) => runs.find((x) => x.scenario === sc && x.server === sv);
  const l1 = g('latency-1k', 'tidings'), w1 = g('latency-1k', 'ws-batched'), l20 = g('latency-20', 'tidings'), w20 = g('latency-20', 'ws-batched');
  const c20 = g('cluster-latency-20', 'tidings-cluster'), c1 = g('cluster-latency-1k', 'tidings-cluster');
  const o = { d, p99: l1.latencyMs.p99 / w1.latencyMs.p99, first: l20.firstP50Ms / w20.firstP50Ms, c20: c20.latencyMs.p50 - l20.latencyMs.p50, c1: c1.latencyMs.p50 - l1.latencyMs.p50, load: l1.load1 };
  rows[d.split('-')[1]].push(o);
  console.log(d.padEnd(12), 'p99/wsb', f(o.p99), ' first/wsb', f(o.first), ' cl20 +', f(o.c20), ' cl1k +', f(o.c1), ' load', o.load?.toFixed?.(1));
}
const med = (a) => { const s = a.slice().sort((x, y) => x - y); const n = s.length; return n ? (n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2) : NaN; };
for (const k of ['base', 'lig']) { const a = rows[k]; console.log(k, 'n', a.length, 'median p99', f(med(a.map((x) => x.p99))), 'first', f(med(a.map((x) => x.first))), 'cl20', f(med(a.map((x) => x.c20))), 'cl1k', f(med(a.map((x) => x.c1)))); }
