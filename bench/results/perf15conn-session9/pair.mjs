// Two Tidings builds side by side, connects alternated in rounds at a fixed (open-loop) rate;
// server CPU (all processes of each node) per authenticated connect+subscribe, per round.
// usage: node pair.mjs <dirA> <dirB> [rounds] [perRound] [rate/s]
import { createRequire } from 'node:module';
const [dirA, dirB, roundsArg, nArg, rateArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 6), N = Number(nArg ?? 1000), rate = Number(rateArg ?? 400);
const A = await import(`${dirA}/dist/bench/lib/servers.js`);
const B = await import(`${dirB}/dist/bench/lib/servers.js`);
const stats = await import(`${dirB}/dist/bench/lib/proc-stats.js`);
const { signToken } = await import(`${dirB}/dist/src/auth/sign.js`);
const WebSocket = createRequire(`${dirB}/package.json`)('ws');
const servers = [['A', await A.startServer('tidings')], ['B', await B.startServer('tidings')]];
const sockets = [];
let userN = 0;
async function round(label, server) {
  const tokens = [];
  for (let i = 0; i < N; i++) tokens.push(await signToken({ secret: server.tokenSecret, user: `u${userN++}`, ttl: 3600, subscribe: ['*'] }));
  const before = stats.sample(server.pids);
  const t0 = performance.now();
  let done = 0;
  await new Promise((resolve, reject) => {
    let started = 0;
    const tick = setInterval(() => {
      const due = Math.min(N, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      for (; started < due; started++) {
        const ws = new WebSocket(server.urls[0], { perMessageDeflate: false, localAddress: `127.0.0.${2 + (started % 8)}` });
        sockets.push(ws);
        const token = tokens[started];
        ws.on('error', reject);
        ws.on('open', () => ws.send(`{"id":1,"method":"connect","params":{"token":"${token}"}}\n{"id":2,"method":"subscribe","params":{"channel":"idle"}}`));
        let got = 0;
        ws.on('message', (d) => {
          for (const line of d.toString().split('\n')) {
            if (!line.startsWith('{"id":')) { if (line.includes('"ping"')) ws.send('{"type":"pong"}'); continue; }
            if (!line.includes('"result"')) return reject(new Error(line));
            if (++got === 2 && ++done === N) { clearInterval(tick); resolve(); }
          }
        });
      }
    }, 5);
  });
  const secs = (performance.now() - t0) / 1000;
  const after = stats.sample(server.pids);
  const us = (stats.cpuBetween(before, after) / N) * 1e6;
  const writes = stats.writesBetween(before, after) / N;
  const load = (await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
  console.log(`${label} ${us.toFixed(0)} µs per connect, ${writes.toFixed(2)} writes, ${(N / secs).toFixed(0)}/s, load ${load}`);
  return us;
}
const res = { A: [], B: [] };
try {
  // a warm-up round each (JIT), not counted
  for (const [l, s] of servers) await round(`${l} warm-up`, s);
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? servers : [...servers].reverse();
    for (const [l, s] of order) res[l].push(await round(l, s));
  }
} finally {
  for (const ws of sockets) ws.terminate();
  for (const [, s] of servers) await s.stop();
}
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(`median A ${med(res.A).toFixed(0)} µs, B ${med(res.B).toFixed(0)} µs, B/A ${(med(res.B) / med(res.A)).toFixed(3)}; per round B/A: ${res.A.map((a, i) => (res.B[i] / a).toFixed(2)).join(' ')}`);
