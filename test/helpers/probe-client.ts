/**
 * A websocket client run as its own process (so it can live in a test network
 * namespace): connects with a token, subscribes to a channel and prints one
 * JSON line per message until it has `count` or `timeoutMs` passes.
 * Usage: node probe-client.js <ws-url> <channel> <count> <timeoutMs> <tokenSecret>
 */
import WebSocket from 'ws';
import { signToken } from '../../src/auth/sign.js';

const [url, channel, countText, timeoutText, secret] = process.argv.slice(2) as [string, string, string, string, string];
const count = Number(countText);
const deadline = setTimeout(() => {
  process.stdout.write(JSON.stringify({ type: 'timeout' }) + '\n');
  process.exit(3);
}, Number(timeoutText));

async function main(): Promise<void> {
  const token = await signToken({ secret, user: `probe-${process.pid}`, ttl: 600, subscribe: [channel] });
  let attempt = 0;
  const open = (): void => {
    const ws = new WebSocket(url);
    let seen = 0;
    ws.on('open', () => {
      ws.send(JSON.stringify({ id: 1, method: 'connect', params: { token } }));
      ws.send(JSON.stringify({ id: 2, method: 'subscribe', params: { channel } }));
    });
    ws.on('message', (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        if (!line) continue;
        const m = JSON.parse(line);
        if (m.type === 'ping') ws.send('{"type":"pong"}');
        process.stdout.write(line + '\n');
        if (m.type === 'message' && ++seen >= count) {
          clearTimeout(deadline);
          ws.close();
          setTimeout(() => process.exit(0), 50);
        }
      }
    });
    // The node may still be starting: retry the connection a few times.
    ws.on('error', () => {
      if (++attempt < 50) setTimeout(open, 200);
    });
  };
  open();
}
void main();
