/**
 * SendQueue against a scripted stand-in for an XPUB: a send is refused with
 * EAGAIN (a peer at its high-water mark) while noDrop is on and the script
 * says a peer is full; with noDrop off it always goes out (libzmq drops it for
 * the full peers only). What each send found is recorded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { SendQueue, SHED_GRACE_MS } from '../../src/zmq/send-queue.js';

class ScriptedXpub {
  noDrop = true;
  /** Until when (ms since epoch) a peer is full. */
  fullUntil = 0;
  readonly sent: Array<{ body: string; dropped: boolean }> = [];
  async send(message: Buffer[] | Buffer): Promise<void> {
    const body = (Array.isArray(message) ? message : [message]).map((b) => b.toString()).join('|');
    if (Date.now() < this.fullUntil) {
      if (this.noDrop) throw Object.assign(new Error('Resource temporarily unavailable'), { code: 'EAGAIN' });
      this.sent.push({ body, dropped: true });
      return;
    }
    this.sent.push({ body, dropped: false });
  }
}

const log = pino({ level: 'silent' });
const msg = (s: string): Buffer[] => [Buffer.from(s)];

async function drained(q: SendQueue, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (q.length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  assert.equal(q.length, 0, 'the queue drained');
}

test('a peer full for less than maxBlockMs holds the send back and loses nothing', async () => {
  const xpub = new ScriptedXpub();
  const q = new SendQueue(xpub, 10, log, 'test', { maxBlockMs: 400 });
  xpub.fullUntil = Date.now() + 100;
  q.push(msg('a'));
  q.push(msg('b'));
  await drained(q, 2000);
  assert.deepEqual(xpub.sent, [{ body: 'a', dropped: false }, { body: 'b', dropped: false }]);
  assert.equal(q.shed, 0);
  q.close();
});

test('a peer full for longer than maxBlockMs is shed, and the marker follows the shed message at once', async () => {
  const xpub = new ScriptedXpub();
  const q = new SendQueue(xpub, 10, log, 'test', { maxBlockMs: 100, markShed: (m) => msg(`marker:${m[0]!.toString()}`) });
  xpub.fullUntil = Date.now() + 10_000;
  q.push(msg('a'));
  q.push(() => msg('tick'));
  await drained(q, 3000);
  assert.deepEqual(
    xpub.sent.map((s) => s.body),
    ['a', 'marker:a', 'tick', 'marker:tick'],
    'each shed message is followed by its marker, and a queued builder is built when its turn comes',
  );
  assert.ok(xpub.sent.every((s) => s.dropped), 'all sent without the full peer');
  assert.equal(q.shed, 2, 'two messages shed (markers not counted)');
  q.close();
});

test(`while shedding, a peer newly full for less than SHED_GRACE_MS (${SHED_GRACE_MS} ms) loses nothing`, async () => {
  const xpub = new ScriptedXpub();
  const q = new SendQueue(xpub, 10, log, 'test', { maxBlockMs: 2000 });
  // A stalled peer: the first message waits maxBlockMs and is shed; the queue is now shedding.
  xpub.fullUntil = Date.now() + 2100;
  q.push(msg('stalled'));
  await drained(q, 5000);
  assert.equal(q.shed, 1);
  assert.ok(q.shedding, 'shedding after the stall');
  // libzmq skips the stalled peer from now on; another, healthy peer is full for a moment.
  xpub.fullUntil = Date.now() + SHED_GRACE_MS / 3;
  q.push(msg('x'));
  q.push(msg('y'));
  await drained(q, 3000);
  assert.deepEqual(xpub.sent.slice(1), [{ body: 'x', dropped: false }, { body: 'y', dropped: false }], 'the momentarily full peer got both');
  assert.equal(q.shed, 1, 'nothing more shed');
  q.close();
});

test('while shedding, a peer full past SHED_GRACE_MS is shed without waiting maxBlockMs again', async () => {
  const xpub = new ScriptedXpub();
  const q = new SendQueue(xpub, 10, log, 'test', { maxBlockMs: 1000 });
  xpub.fullUntil = Date.now() + 60_000;
  q.push(msg('first'));
  await drained(q, 3000);
  const t = Date.now();
  q.push(msg('second'));
  await drained(q, 3000);
  const waited = Date.now() - t;
  assert.equal(q.shed, 2);
  assert.ok(waited >= SHED_GRACE_MS - 5 && waited < 1000, `the second shed waited the grace, not maxBlockMs: ${waited} ms`);
  q.close();
});

test('a byte budget (maxBytes) fills the queue however few messages wait; it empties as they are sent', async () => {
  const xpub = new ScriptedXpub();
  xpub.fullUntil = Date.now() + 150;
  const q = new SendQueue(xpub, 1000, log, 'test', { maxBytes: 100 });
  const big = [Buffer.alloc(60, 0x61)];
  assert.ok(q.push(big));
  assert.ok(!q.full, '60 of 100 bytes');
  assert.ok(q.push(big));
  assert.equal(q.bytes, 120);
  assert.ok(q.full, 'two messages of 60 bytes reach a budget of 100, with room for 998 more messages');
  assert.equal(q.push(big), false, 'a full queue refuses');
  assert.ok(q.push(big, true), 'an admitted message (its room counted by the caller) is queued');
  let spaced = false;
  const space = q.space().then(() => (spaced = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(spaced, false, 'no room while the peer is full');
  await space;
  await drained(q, 2000);
  assert.equal(q.bytes, 0);
  assert.equal(xpub.sent.filter((s) => !s.dropped).length, 3, 'nothing lost');
});
