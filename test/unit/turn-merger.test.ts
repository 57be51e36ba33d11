/**
 * TurnMerger with the forwarder's two joiners, fed the frames a forwarder
 * receives, in front of a real SendQueue over a stand-in socket that records
 * (or holds) what it is given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { checkPublishBatch, decodeMessageBatch, decodePublishEntries, encodeMessageBatch, encodePublishBatch, isPublishBatch, MAX_BATCH_ENTRIES } from '../../src/cluster/batch.js';
import { decodeHeader, DownKind, encodeHeader, type InboundPublish } from '../../src/cluster/wire.js';
import { channelTopic } from '../../src/cluster/topics.js';
import { SendQueue } from '../../src/zmq/send-queue.js';
import { TurnMerger } from '../../src/forwarder/turn-merger.js';
import { channelJoiner, publishJoiner } from '../../src/forwarder/batch-joins.js';

const log = pino({ level: 'silent' });
const b = (s: string): Buffer => Buffer.from(s);
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A socket that records what it sends; while `held`, a send waits until release(). */
class Recorder {
  readonly sent: Buffer[][] = [];
  held = false;
  private releases: Array<() => void> = [];
  async send(m: Buffer[] | Buffer): Promise<void> {
    if (this.held) await new Promise<void>((r) => this.releases.push(r));
    this.sent.push(m as Buffer[]);
  }
  release(): void {
    this.held = false;
    for (const r of this.releases.splice(0)) r();
  }
}

const one = (ch: string, offset: number, epoch = 'E'): Buffer[] => [channelTopic(ch), encodeHeader(DownKind.Message, offset, epoch), b(`${ch}${offset}`)];
const many = (ch: string, first: number, n: number, epoch = 'E'): Buffer[] => {
  const offsets = Array.from({ length: n }, (_, i) => first + i);
  return [channelTopic(ch), encodeHeader(DownKind.MessageBatch, first, epoch), encodeMessageBatch(offsets, offsets.map((o) => b(`${ch}${o}`)))];
};
/** What went down: [epoch, [offset, push]...] per ZeroMQ message, or the kind's number for anything else. */
const down = (sent: Buffer[][]): unknown[] =>
  sent.map((f) => {
    const h = f.length === 3 ? decodeHeader(f[1]!) : undefined;
    if (!h) return f.map((x) => x.toString()).join('|');
    if (h.kind === DownKind.Message) return [h.epoch, 'one', [h.offset, f[2]!.toString()]];
    if (h.kind === DownKind.MessageBatch) return [h.epoch, 'batch', ...decodeMessageBatch(f[2]!)!.map((e) => [e.offset, e.push.toString()])];
    return h.kind;
  });

test('down: the channel messages of one turn leave as one batch, in order, the header naming the first offset; one alone leaves unchanged', async () => {
  const sock = new Recorder();
  const q = new SendQueue(sock, 100, log, 'test');
  const m = new TurnMerger(q, channelJoiner(1 << 20));
  const alone = one('a', 1);
  assert.equal(m.take(alone), undefined);
  await turn();
  assert.equal(sock.sent[0], alone, 'a message alone in its turn is passed on as it came');
  for (const msg of [one('a', 2), many('a', 3, 3), one('a', 6), many('a', 7, 2)]) assert.equal(m.take(msg), undefined);
  assert.equal(sock.sent.length, 1, 'nothing leaves before the end of the turn');
  await turn();
  assert.deepEqual(down(sock.sent.slice(1)), [['E', 'batch', [2, 'a2'], [3, 'a3'], [4, 'a4'], [5, 'a5'], [6, 'a6'], [7, 'a7'], [8, 'a8']]]);
  assert.equal(decodeHeader(sock.sent[1]![1]!)!.offset, 2);
  assert.deepEqual([m.joinedIn, m.joinedOut], [4, 1]);
  q.close();
});

test('down: another topic, another epoch, a hole, the size limit, a probe or a tick ends the run, and everything keeps its order', async () => {
  const sock = new Recorder();
  const q = new SendQueue(sock, 100, log, 'test');
  // Room for two of these entries (12-byte head + 2-3 bytes each), not three.
  const m = new TurnMerger(q, channelJoiner(2 * 15));
  const probe = [channelTopic('a'), encodeHeader(DownKind.Probe, 0, 'E'), b('{}')];
  const sequence: Array<Buffer[] | (() => Buffer[])> = [
    one('a', 1),
    one('a', 2),
    one('a', 3), // the size limit
    one('b', 4), // another topic
    one('b', 5, 'F'), // another epoch
    one('b', 7, 'F'), // a hole
    probe,
    one('b', 8, 'F'),
    () => [b('tick')],
    one('b', 9, 'F'),
  ];
  for (const msg of sequence) assert.equal(m.take(msg), undefined);
  await turn();
  assert.deepEqual(down(sock.sent), [
    ['E', 'batch', [1, 'a1'], [2, 'a2']],
    ['E', 'one', [3, 'a3']],
    ['E', 'one', [4, 'b4']],
    ['F', 'one', [5, 'b5']],
    ['F', 'one', [7, 'b7']],
    DownKind.Probe,
    ['F', 'one', [8, 'b8']],
    'tick',
    ['F', 'one', [9, 'b9']],
  ]);
  q.close();
});

test('down: a batch that does not add up, or whose header does not name its first offset, is passed on alone, unjoined', async () => {
  const sock = new Recorder();
  const q = new SendQueue(sock, 100, log, 'test');
  const m = new TurnMerger(q, channelJoiner(1 << 20));
  const bad = many('a', 2, 2);
  bad[2] = bad[2]!.subarray(0, bad[2]!.length - 1);
  // Well-formed, but its header does not name its first entry's offset.
  const misnamed = many('a', 5, 2);
  misnamed[1] = encodeHeader(DownKind.MessageBatch, 4, 'E');
  for (const msg of [one('a', 1), bad, one('a', 4), misnamed, one('a', 7)]) m.take(msg);
  await turn();
  assert.equal(sock.sent.length, 5);
  assert.equal(sock.sent[1], bad);
  assert.equal(sock.sent[3], misnamed);
  q.close();
});

const pub = (name: string, data: string, target: 'channel' | 'user' = 'channel'): InboundPublish => ({ target, name, data, sender: null, noHistory: false });

test('up: the publish batches of one turn leave as one, their entries in order; a body the director would refuse goes alone', async () => {
  const sock = new Recorder();
  const q = new SendQueue(sock, 100, log, 'test');
  const first = encodePublishBatch([pub('a', '1'), pub('a', '2')]);
  const second = encodePublishBatch([pub('b', '3')]);
  const third = encodePublishBatch([pub('u1', '4', 'user')]);
  const bad = encodePublishBatch([pub('a', '5')]);
  bad[1] = Buffer.from(bad[1]!);
  bad[1][0] = 0x78; // neither 'c' nor 'u': the director refuses the whole body
  assert.equal(checkPublishBatch(bad[1]), 0);
  // The cap: the first three joined fit, a fourth does not.
  const cap = first[1]!.length + second[1]!.length + third[1]!.length;
  const m = new TurnMerger(q, publishJoiner(cap));
  const fourth = encodePublishBatch([pub('a', '6')]);
  const single = [b('a:{"x":1}')]; // omnibus single-frame form
  for (const msg of [first, second, third, fourth, bad, single, encodePublishBatch([pub('a', '7')])]) assert.equal(m.take(msg), undefined);
  await turn();
  const got = sock.sent.map((f) => (isPublishBatch(f) && checkPublishBatch(f[1]!) > 0 ? decodePublishEntries(f[1]!).map((p) => `${p.target[0]}:${p.name}:${p.data}`) : f));
  assert.deepEqual(got, [['c:a:1', 'c:a:2', 'c:b:3', 'u:u1:4'], ['c:a:6'], bad, single, ['c:a:7']]);
  assert.deepEqual([m.joinedIn, m.joinedOut], [3, 1]);
  q.close();
});

test('up: a run stops at MAX_BATCH_ENTRIES entries', async () => {
  const sock = new Recorder();
  const q = new SendQueue(sock, 100, log, 'test');
  const m = new TurnMerger(q, publishJoiner(1 << 30));
  const big = encodePublishBatch(Array.from({ length: MAX_BATCH_ENTRIES - 1 }, (_, i) => pub('a', String(i))));
  for (const msg of [big, encodePublishBatch([pub('a', 'x')]), encodePublishBatch([pub('a', 'y')])]) m.take(msg);
  await turn();
  assert.deepEqual(
    sock.sent.map((f) => checkPublishBatch(f[1]!)),
    [MAX_BATCH_ENTRIES, 1],
  );
  q.close();
});

test('a full send queue holds the receive loop back (take returns a promise) and nothing is lost or reordered', async () => {
  const sock = new Recorder();
  sock.held = true;
  const q = new SendQueue(sock, 1, log, 'test');
  const m = new TurnMerger(q, channelJoiner(1 << 20));
  // The socket holds the first message; the queue (limit 1) is then full.
  assert.equal(m.take(one('a', 1)), undefined);
  await turn();
  assert.equal(q.length, 1);
  const waits: Array<Promise<void> | undefined> = [];
  waits.push(m.take(one('a', 2)));
  waits.push(m.take(one('a', 3)));
  waits.push(m.take([b('other')]));
  await turn();
  const blocked = waits.filter((w) => w !== undefined);
  assert.ok(blocked.length > 0, 'the loop is told to wait while the queue is full');
  sock.release();
  await Promise.all(waits);
  await turn();
  for (let i = 0; i < 50 && q.length > 0; i++) await turn();
  assert.deepEqual(down(sock.sent), [['E', 'one', [1, 'a1']], ['E', 'batch', [2, 'a2'], [3, 'a3']], 'other']);
  q.close();
});
