/**
 * An SDK client run as its own process (so it can live in a test network
 * namespace), for failover tests:
 *   node ha-probe.js sub <ws-url> <channel> <tokenSecret>   prints {"offset","epoch","i"} per message and {"subscribed":..} per (re)subscription
 *   node ha-probe.js pub <ws-url> <channel> <tokenSecret> <perSecond>   prints {"ack": i, "offset", "epoch"} or {"fail": i} per publish
 * Runs until killed.
 */
import WebSocket from 'ws';
import { signToken } from '../../src/auth/sign.js';
import { TidingsClient } from '../../src/client/index.js';

const [mode, url, channel, secret, rate] = process.argv.slice(2) as [string, string, string, string, string | undefined];
const out = (o: unknown): void => void process.stdout.write(JSON.stringify(o) + '\n');

const client = new TidingsClient({
  urls: [url],
  WebSocket,
  getToken: () => signToken({ secret, user: `${mode}-${process.pid}`, ttl: 600, subscribe: [channel], publish: [channel] }),
  initialRetryDelay: 0.1,
  maxRetryDelay: 0.5,
  timeout: 3,
});
client.connect();
if (mode === 'sub') {
  const s = client.subscribe(channel);
  s.on('subscribed', (e) => out({ subscribed: { recovered: e.recovered, resubscribed: e.resubscribed } }));
  s.on('message', (m) => out({ offset: m.offset, epoch: m.epoch, i: (m.data as { i?: number }).i }));
} else {
  await client.ready(30);
  let i = 0;
  setInterval(() => {
    const n = i++;
    client.publish(channel, { i: n }).then(
      (r) => out({ ack: n, offset: r.offset, epoch: r.epoch }),
      () => out({ fail: n }),
    );
  }, 1000 / Number(rate ?? 50));
}
