// One XPUB -> SUB hop over tcp in one process: CPU per message of a given size (issue 17, session 7).
// node bench/results/issue17-session7/zmq-hop-cost.mjs 65536
import { XPublisher, Subscriber } from 'zeromq';
const pub = new XPublisher({ noDrop: true, sendHighWaterMark: 100000 });
await pub.bind('tcp://127.0.0.1:0');
const sub = new Subscriber({ receiveHighWaterMark: 100000 });
sub.connect(pub.lastEndpoint); sub.subscribe('');
await pub.receive();
let got = 0; (async () => { for await (const m of sub) got++; })();
const topic = Buffer.from('cchannel\0'), head = Buffer.alloc(20);
const SIZE = Number(process.argv[2]); const N = Math.min(20000, Math.round(2000 * 65536 / SIZE));
const c0 = process.cpuUsage(), t0 = performance.now();
let inSend = 0;
for (let i = 0; i < N; i++) {
  const body = Buffer.allocUnsafe(SIZE);
  const s = performance.now();
  await pub.send([topic, head, body]);
  inSend += performance.now() - s;
}
while (got < N) await new Promise((r) => setTimeout(r, 5));
const c = process.cpuUsage(c0);
console.log(`${SIZE} B: per send: ${(inSend / N * 1000).toFixed(1)} µs inside await send; process CPU per message ${((c.user + c.system) / N).toFixed(1)} µs (incl. receive side, alloc), wall ${((performance.now() - t0) / N * 1000).toFixed(1)} µs`);
pub.close(); sub.close();
