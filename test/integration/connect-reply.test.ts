/**
 * A connect's reply and the replies to the subscribes sent in its frame (as
 * the SDK sends them) leave the edge in one write; a subscribe that waits on
 * a director that does not answer does not hold its connect's reply past the
 * once-a-second sweep.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import type { Socket } from 'node:net';
import { startSingleNode, TOKEN_SECRET, type SingleNode } from '../helpers/processes.js';
import { signToken } from '../../src/auth/sign.js';

let node: SingleNode;

before(async () => {
  // A short command timeout: the stopped director's join report fails (and the subscribe is answered) within it.
  node = await startSingleNode({ TIDINGS_COMMAND_TIMEOUT: '3' });
});
after(async () => {
  node.proc.child.kill('SIGCONT');
  await node?.stop();
});

interface Arrival {
  /** The socket read (counted from 1, after the upgrade) that carried it. */
  read: number;
  at: number;
  reply: { id: number; result?: Record<string, unknown>; error?: { code: number } };
}

/**
 * Open a websocket and send connect plus one subscribe per channel in one
 * frame; resolves with each reply's arrival (which socket read, when).
 */
async function connectWithSubscribes(user: string, channels: string[], timeoutMs: number): Promise<{ ws: WebSocket; sentAt: number; replies: Arrival[] }> {
  const ws = new WebSocket(node.url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const socket = (ws as unknown as { _socket: Socket })._socket;
  let reads = 0;
  // Counted before ws's own listener handles the chunk (prepended), so a reply knows its read.
  socket.prependListener('data', () => reads++);
  const token = await signToken({ secret: TOKEN_SECRET, user, ttl: 600, subscribe: ['*'] });
  const lines = [JSON.stringify({ id: 1, method: 'connect', params: { token } }), ...channels.map((channel, i) => JSON.stringify({ id: i + 2, method: 'subscribe', params: { channel } }))];
  const replies: Arrival[] = [];
  const all = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${replies.length} of ${lines.length} replies in ${timeoutMs} ms: ${JSON.stringify(replies)}`)), timeoutMs);
    ws.on('message', (data: Buffer) => {
      for (const line of data.toString('utf8').split('\n')) {
        const msg = JSON.parse(line) as Arrival['reply'];
        if (typeof msg.id !== 'number') continue;
        replies.push({ read: reads, at: performance.now(), reply: msg });
        if (replies.length === lines.length) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
  });
  const sentAt = performance.now();
  ws.send(lines.join('\n'));
  await all;
  return { ws, sentAt, replies };
}

test('a connect and the subscribes sent in its frame are answered in one write, the connect first', async () => {
  const sockets: WebSocket[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const { ws, replies } = await connectWithSubscribes(`one-write-${i}`, [`room-${i}`, `lobby`], 10_000);
      sockets.push(ws);
      // The connect first; subscribes to different channels are answered as each channel goes live.
      assert.equal(replies[0]!.reply.id, 1, 'connect answered first');
      assert.deepEqual(replies.map((r) => r.reply.id).sort(), [1, 2, 3]);
      assert.ok(
        replies.every((r) => r.reply.result !== undefined),
        JSON.stringify(replies),
      );
      assert.equal(replies[0]!.reply.result!['user'], `one-write-${i}`);
      assert.equal(replies.find((r) => r.reply.id === 2)!.reply.result!['channel'], `room-${i}`);
      // One socket read carried all three: they left the edge in one write, not the connect's reply a round trip ahead.
      assert.deepEqual(
        replies.map((r) => r.read),
        [1, 1, 1],
        `connection ${i}: the replies came in reads ${replies.map((r) => r.read).join(', ')}`,
      );
    }
  } finally {
    for (const ws of sockets) ws.close();
  }
});

test('a subscribe waiting on a director that does not answer does not hold its connect reply past the sweep', async () => {
  // The user's bucket and the channel are live on the edge already: the connect needs no director, the subscribe's join report does.
  const first = await connectWithSubscribes('stalled', ['stalled-room'], 10_000);
  first.ws.close();
  const keep = await connectWithSubscribes('stalled', ['stalled-room'], 10_000);
  node.proc.child.kill('SIGSTOP');
  let second: Awaited<ReturnType<typeof connectWithSubscribes>>;
  try {
    second = await connectWithSubscribes('stalled', ['stalled-room'], 15_000);
  } finally {
    node.proc.child.kill('SIGCONT');
    keep.ws.close();
  }
  second.ws.close();
  const [connect, subscribe] = second.replies as [Arrival, Arrival];
  assert.equal(connect.reply.id, 1);
  assert.equal(connect.reply.result?.['user'], 'stalled');
  assert.equal(subscribe.reply.id, 2);
  // The join report waited for the stopped director until the command timeout (3 s): the subscribe's reply came then.
  assert.ok(subscribe.at - second.sentAt >= 2500, `the subscribe was answered after ${(subscribe.at - second.sentAt).toFixed(0)} ms`);
  // The connect's reply was let go by the sweep (once a second), not held until then.
  assert.ok(connect.at - second.sentAt < 2000, `the connect was answered after ${(connect.at - second.sentAt).toFixed(0)} ms`);
  assert.ok(connect.read < subscribe.read, 'in an earlier write');
});
