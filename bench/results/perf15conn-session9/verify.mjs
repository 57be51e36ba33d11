// Hs256Verifier.verify, base build against this branch, alternating batches of distinct tokens (one per user, as the bench's subscribers).
const [dirA, dirB] = process.argv.slice(2);
const { Hs256Verifier: VA } = await import(`${dirA}/dist/src/auth/hs256.js`);
const { Hs256Verifier: VB } = await import(`${dirB}/dist/src/auth/hs256.js`);
const { signToken } = await import(`${dirB}/dist/src/auth/sign.js`);
const secret = 'bench-token-secret-0123456789abcdef0123456789';
const tokens = [];
for (let i = 0; i < 20000; i++) tokens.push(await signToken({ secret, user: `bench-user-${i}`, ttl: 3600, subscribe: ['ch-0'] }));
const a = new VA(secret), b = new VB(secret);
const now = Math.floor(Date.now() / 1000);
const run = (v) => { const t0 = process.cpuUsage(); for (const t of tokens) v.verify(t, now, 5); const d = process.cpuUsage(t0); return (d.user + d.system) / tokens.length; };
const ra = [], rb = [];
for (let r = 0; r < 12; r++) { if (r % 2) { rb.push(run(b)); ra.push(run(a)); } else { ra.push(run(a)); rb.push(run(b)); } }
const med = (x) => [...x].sort((p, q) => p - q)[x.length >> 1];
console.log(`jose decode (base): ${ra.map((x) => x.toFixed(2)).join(' ')} µs; median ${med(ra).toFixed(2)}`);
console.log(`one parse (branch): ${rb.map((x) => x.toFixed(2)).join(' ')} µs; median ${med(rb).toFixed(2)}`);
