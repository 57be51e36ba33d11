/**
 * An eavesdropper on a ZeroMQ subscriber address, run as its own process (so
 * it can live in a test network namespace): a SUB socket without keys that
 * subscribes to everything until SIGTERM (or `ms` milliseconds), then prints
 * {"received": n, "events": [...]} with its handshake events.
 * Usage: node zmq-eavesdropper.js <address> <ms>
 */
import { Subscriber } from 'zeromq';

const [address, msText] = process.argv.slice(2) as [string, string];
const sub = new Subscriber({ linger: 0 });
const events: string[] = [];
for (const type of ['connect', 'handshake', 'handshake:error:protocol', 'handshake:error:auth', 'disconnect'] as const) {
  sub.events.on(type, () => events.push(type));
}
let received = 0;
sub.connect(address);
sub.subscribe();
void (async () => {
  for await (const _ of sub) received++;
})().catch(() => undefined);
const report = (): void => {
  process.stdout.write(JSON.stringify({ received, events: [...new Set(events)] }) + '\n');
  sub.close();
  process.exit(0);
};
setTimeout(report, Number(msText));
process.on('SIGTERM', report);
