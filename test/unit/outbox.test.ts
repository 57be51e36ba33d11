/**
 * The Outbox over real loopback sockets: frames of one turn leave in one
 * write, pushes merged into "\n"-separated text frames, other frames kept in
 * place, every socket its own frames in order, and the slow-consumer limit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';
import { Outbox, FlushScheduler } from '../../src/edge/outbox.js';
import { PushRun, SharedPush, linesFrame, textFrame, textFrameAround } from '../../src/edge/frames.js';
import { BatchRanges, eachRangeInMessageBatch, encodeMessageBatch } from '../../src/cluster/batch.js';
import { eachFramePayload } from '../../src/sockjs/native.js';

/** A connected pair: the server side (written by the Outbox) and the client side (read by the test). */
async function socketPair(): Promise<{ server: Socket; client: Socket; close(): void }> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  const accepted = new Promise<Socket>((r) => srv.once('connection', r));
  const client = connect(port, '127.0.0.1');
  const server = await accepted;
  return {
    server,
    client,
    close: () => {
      client.destroy();
      server.destroy();
      srv.close();
    },
  };
}

/** Unmasked server frames -> [opcode, payload text] (read as the SockJS native transport reads them). */
function parseFrames(buf: Buffer): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  eachFramePayload(buf, (opcode, payload) => out.push([opcode, payload.toString('utf8')]));
  return out;
}

/** Reads until `bytes` arrived, then waits a little more to catch anything extra. */
function collect(client: Socket, bytes: number, timeoutMs = 3000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const t = setTimeout(() => reject(new Error(`only ${n} of ${bytes} bytes`)), timeoutMs);
    client.on('data', (d: Buffer) => {
      chunks.push(d);
      n += d.length;
      if (n >= bytes) {
        clearTimeout(t);
        setTimeout(() => resolve(Buffer.concat(chunks)), 50);
      }
    });
  });
}

const noOverflow = {
  onOverflow(): void {
    throw new Error('unexpected overflow');
  },
};

test('pushes of one turn reach each socket in order, merged into one text frame; a reply keeps its place', async () => {
  const a = await socketPair();
  const b = await socketPair();
  try {
    const scheduler = new FlushScheduler();
    const boxA = new Outbox(a.server, 1 << 20, noOverflow, scheduler);
    const boxB = new Outbox(b.server, 1 << 20, noOverflow, scheduler);
    const pushes = [1, 2, 3, 4].map((n) => new SharedPush(Buffer.from(`{"type":"message","channel":"c","offset":${n}}`), 'c', n));
    const reply = textFrame(Buffer.from('{"id":7,"result":{}}'));
    for (const p of pushes.slice(0, 2)) {
      boxA.push(p);
      boxB.push(p);
    }
    boxB.push(reply);
    for (const p of pushes.slice(2)) {
      boxA.push(p);
      boxB.push(p);
    }
    const payloads = pushes.reduce((n, p) => n + p.json.length, 0);
    // A: one frame (2-byte header), 3 newlines. B: three frames, 2 newlines, and the reply frame.
    const [rawA, rawB] = await Promise.all([collect(a.client, 2 + payloads + 3), collect(b.client, 2 + 2 + payloads + 2 + reply.length)]);
    const framesA = parseFrames(rawA);
    assert.equal(framesA.length, 1, 'four pushes in one frame');
    assert.equal(framesA[0]![0], 1, 'a text frame');
    assert.deepEqual(
      framesA[0]![1].split('\n').map((l) => (JSON.parse(l) as { offset: number }).offset),
      [1, 2, 3, 4],
    );
    const framesB = parseFrames(rawB).map(([op, text]) => [op, text.split('\n').map((l) => JSON.parse(l) as { offset?: number; id?: number }).map((m) => m.offset ?? `id${m.id}`)]);
    assert.deepEqual(framesB, [
      [1, [1, 2]],
      [1, ['id7']],
      [1, [3, 4]],
    ]);
  } finally {
    a.close();
    b.close();
  }
});

test('a socket over its limit is reported to its owner and the frame is not queued', async () => {
  const a = await socketPair();
  try {
    let overflows = 0;
    const box = new Outbox(a.server, 1000, { onOverflow: () => overflows++ }, new FlushScheduler());
    const frame = textFrame(Buffer.alloc(400, 0x61));
    box.push(frame);
    box.push(frame);
    assert.equal(overflows, 0);
    box.push(frame);
    assert.equal(overflows, 1, 'the third frame passes 1000 bytes');
    assert.equal(box.pending, 2 * frame.length, 'only the first two frames wait');
  } finally {
    a.close();
  }
});

test('the flush gap grows to the last flush time only when that flush carried several messages', async () => {
  // A fake clock and a socket whose write takes 12 ms of that clock: the scheduler's rule alone.
  let t = 1000;
  const writes: number[] = [];
  const socket = { destroyed: false, writableLength: 0, write: () => { writes.push(t); t += 12; return true; } } as unknown as Socket;
  const scheduler = new FlushScheduler(1, () => t);
  const box = new Outbox(socket, 1 << 20, noOverflow, scheduler);
  const frame = textFrame(Buffer.from('{"type":"message"}'));
  const flushed = (): Promise<void> => new Promise((r) => setTimeout(r, 30));

  // As the hub delivers: announced, pushed, delivered (an idle edge's first push is written at once, a direct pass).
  const deliver = (messages: number): void => {
    scheduler.noteMessage(messages);
    box.push(frame);
    scheduler.messageDelivered();
  };
  // One message per flush (a steady rate below saturation): the gap stays at the minimum.
  deliver(1);
  await flushed();
  assert.equal(writes.length, 1);
  assert.equal(scheduler.gapMs(), 1, 'a 12 ms flush of one message does not delay the next');

  // Two messages in a flush that ran late (a steady rate, a busy machine): still the minimum.
  deliver(2);
  await flushed();
  assert.equal(writes.length, 2);
  assert.equal(scheduler.gapMs(), 1, 'one late flush does not switch to batching');

  // Several messages in one flush (the receive side is behind): the gap becomes the flush time.
  deliver(5);
  await flushed();
  assert.equal(writes.length, 3);
  assert.equal(scheduler.gapMs(), 12, 'the next flush waits as long as the last one took');

  // The gap is bounded, whatever the flush took.
  socket.write = () => { t += 500; return true; };
  deliver(5);
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(scheduler.gapMs(), 50, 'at most 50 ms');
  assert.equal(new FlushScheduler(0).gapMs(), 0, 'write_coalesce_ms 0: every turn');
});

test('a socket that does not drain: frames wait here, leave in writes of at most 256 KiB, and are dropped on close', async () => {
  // A fake socket whose buffer only empties when the test says so (a client that stopped reading).
  const writes: number[] = [];
  const socket = Object.assign(new EventEmitter(), {
    destroyed: false,
    writableLength: 0,
    write(buf: Buffer): boolean {
      writes.push(buf.length);
      socket.writableLength += buf.length;
      return false;
    },
  });
  const box = new Outbox(socket as unknown as Socket, 1 << 22, noOverflow, new FlushScheduler(0));
  const frame = textFrame(Buffer.alloc(60_000, 0x61));
  // A few event-loop turns (flushes run on setImmediate): enough for every flush that is due.
  const turn = async (): Promise<void> => {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  };
  for (let i = 0; i < 3; i++) box.push(frame);
  await turn();
  for (let i = 0; i < 2; i++) box.push(frame);
  await turn();
  assert.deepEqual(writes, [3 * frame.length, 2 * frame.length], 'a socket below 256 KiB takes each turn in one write');
  for (let i = 0; i < 10; i++) box.push(frame);
  await turn();
  assert.equal(writes.length, 2, 'its buffer holds 300 KB: the frames wait here');
  assert.equal(box.pending, 15 * frame.length);
  socket.writableLength = 0;
  socket.emit('drain');
  await turn();
  assert.deepEqual(writes.slice(2), [4 * frame.length, 4 * frame.length], 'after drain: whole frames, at most 256 KiB a write, until the buffer is full again');
  box.close();
  socket.writableLength = 0;
  socket.emit('drain');
  await turn();
  assert.equal(writes.length, 4, 'what waited here is dropped when the client is cut off');
  assert.equal(box.pending, 0);
});

test('textFrameAround writes the frame textFrame makes of head + body + tail, at every length encoding', () => {
  for (const n of [0, 1, 100, 110, 111, 112, 125, 126, 200, 65_500, 65_535, 65_536, 70_000]) {
    const body = Buffer.from('x'.repeat(n));
    for (const [head, tail] of [['{"id":7,"result":', '}'], ['é', ''], ['', 'ü']] as const) {
      assert.deepEqual(textFrameAround(head, body, tail), textFrame(Buffer.concat([Buffer.from(head), body, Buffer.from(tail)])), `${n} bytes around ${head}`);
    }
  }
});

test('linesFrame writes the frame textFrame makes of the pushes joined by "\\n"; a push alone is its own frame; an outbox counts a push as its frame', async () => {
  for (const n of [0, 1, 60, 61, 62, 125, 126, 200, 32_767, 32_768, 65_535, 65_536, 70_000]) {
    const pushes = [Buffer.from('{"a":"' + 'x'.repeat(n) + '"}'), Buffer.from('{"b":1}'), Buffer.from('{"é":"ü"}')].map((j) => new SharedPush(j, 'c', 1));
    for (const [from, to] of [[0, 1], [0, 2], [0, 3], [1, 3]] as const) {
      const lines = Buffer.concat(pushes.slice(from, to).flatMap((p, i) => (i > 0 ? [Buffer.from('\n'), p.json] : [p.json])));
      assert.deepEqual(linesFrame(pushes, from, to), textFrame(lines), `${n} bytes, pushes ${from}..${to}`);
    }
    assert.deepEqual(pushes[0]!.forJson(), textFrame(pushes[0]!.json));
    assert.equal(pushes[0]!.jsonFrameBytes, pushes[0]!.forJson().length);
  }
  const a = await socketPair();
  try {
    const box = new Outbox(a.server, 1 << 20, noOverflow, new FlushScheduler());
    const push = new SharedPush(Buffer.alloc(300, 0x61), 'c', 1);
    box.push(push);
    assert.equal(box.pending, push.forJson().length, 'a queued push counts as its frame');
    const raw = await collect(a.client, push.forJson().length);
    assert.deepEqual(raw, push.forJson(), 'a push alone in its turn leaves as its own frame');
  } finally {
    a.close();
  }
});

/** A run as the hub makes it: the pushes of a director batch, as byte ranges of its body. */
function runOf(jsons: readonly string[], first = 1): PushRun {
  const body = encodeMessageBatch(
    jsons.map((_, i) => first + i),
    jsons.map((j) => Buffer.from(j)),
  );
  const run = new PushRun(body, 'c');
  eachRangeInMessageBatch(body, (offset, start, end) => run.add(offset, start, end));
  return run;
}

test('a run of a batch\'s pushes: its frame is their lines, it counts as their frames alone, a push taken alone is that push, and it merges with the pushes around it', async () => {
  for (const n of [0, 60, 126, 32_768, 70_000]) {
    const jsons = ['{"a":"' + 'x'.repeat(n) + '"}', '{"b":1}', '{"é":"ü"}'];
    const run = runOf(jsons, 7);
    const alone = jsons.map((j, i) => new SharedPush(Buffer.from(j), 'c', 7 + i));
    assert.equal(run.count, 3);
    assert.deepEqual(run.offsets, [7, 8, 9]);
    assert.deepEqual(run.forJson(), textFrame(Buffer.from(jsons.join('\n'))), `${n} bytes: the run's frame`);
    assert.equal(run.jsonFrameBytes, alone.reduce((sum, p) => sum + p.jsonFrameBytes, 0), 'counted as its pushes sent alone');
    for (let i = 0; i < 3; i++) {
      const p = run.push(i);
      assert.deepEqual([p.json, p.channel, p.offset], [alone[i]!.json, 'c', 7 + i]);
      assert.equal(run.push(i), p, 'made once, shared by every listener that takes it alone');
    }
    const before = new SharedPush(Buffer.from('{"type":"presence"}'), 'c', 0);
    const items = [before, run, alone[0]!];
    assert.deepEqual(linesFrame(items, 0, 3), textFrame(Buffer.from(['{"type":"presence"}', ...jsons, jsons[0]].join('\n'))), `${n} bytes: merged with pushes`);
  }
  const a = await socketPair();
  const b = await socketPair();
  try {
    // Two sockets, each a run and a reply: both get the run's lines in one frame, then the reply, in one write.
    const scheduler = new FlushScheduler();
    const run = runOf(['{"m":1}', '{"m":2}']);
    const reply = textFrame(Buffer.from('{"id":1,"result":{}}'));
    const boxA = new Outbox(a.server, 1 << 20, noOverflow, scheduler);
    const boxB = new Outbox(b.server, 1 << 20, noOverflow, scheduler);
    for (const box of [boxA, boxB]) {
      box.push(run);
      box.push(reply);
    }
    assert.equal(boxA.pending, run.jsonFrameBytes + reply.length, 'a queued run counts as its pushes\' frames');
    const expected = [
      [1, '{"m":1}\n{"m":2}'],
      [1, '{"id":1,"result":{}}'],
    ];
    const want = run.forJson().length + reply.length;
    assert.deepEqual(parseFrames(await collect(a.client, want)), expected);
    assert.deepEqual(parseFrames(await collect(b.client, want)), expected);
  } finally {
    a.close();
    b.close();
  }
});

test('a run past the client\'s send buffer limit cuts the client off as slow (counted whole, not as one item)', async () => {
  const a = await socketPair();
  try {
    let overflows = 0;
    const run = runOf(Array.from({ length: 50 }, (_, i) => `{"m":${i},"pad":"${'p'.repeat(100)}"}`));
    // The limit lies between one push's frame and the run's: a run counted as one push would pass.
    const box = new Outbox(a.server, run.push(0).jsonFrameBytes * 10, { onOverflow: () => overflows++ }, new FlushScheduler());
    box.push(run);
    assert.equal(overflows, 1);
    assert.equal(box.pending, 0, 'nothing of the run was queued');
  } finally {
    a.close();
  }
});

/** A socket that takes every write (its buffer stays empty) and keeps the buffers it was given. */
test('an idle edge writes a channel message to each socket as it delivers it; a second item for a socket, later messages of the turn and a busy scheduler queue for the flush', async () => {
  let t = 1000;
  const scheduler = new FlushScheduler(1, () => t);
  const [a, b, c] = [takingSocket(), takingSocket(), takingSocket()];
  const [boxA, boxB, boxC] = [a, b, c].map((s) => new Outbox(s.socket, 1 << 20, noOverflow, scheduler));
  const frame = (text: string): Buffer => textFrame(Buffer.from(text));
  const texts = (writes: Buffer[]): string[] => writes.map((w) => parseFrames(w).map(([, p]) => p).join('|'));
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  const flushed = async (s: { writes: Buffer[] }, n: number): Promise<void> => {
    for (let i = 0; i < 200 && s.writes.length < n; i++) await new Promise((r) => setTimeout(r, 1));
  };

  // Idle: the first message's pushes are written as they are delivered, before the delivery ends.
  scheduler.noteMessage(1);
  boxA.push(frame('m1'));
  assert.deepEqual(texts(a.writes), ['m1'], 'written at once, not at the end of the turn');
  boxB.push(frame('m1'));
  assert.deepEqual(texts(b.writes), ['m1']);
  scheduler.messageDelivered();
  // A second message in the same turn, though the pass took longer than the minimum gap: queued.
  t += 5;
  scheduler.noteMessage(1);
  boxB.push(frame('m2'));
  scheduler.messageDelivered();
  assert.equal(b.writes.length, 1, 'one pass per turn: the next message queues');
  // Outside a delivery (a reply), nothing is written at once.
  boxC.push(frame('reply'));
  assert.equal(c.writes.length, 0, 'a reply is queued');
  t += 1; // the flush's minimum gap from the pass' start
  await flushed(b, 2);
  await flushed(c, 1);
  assert.deepEqual(texts(b.writes), ['m1', 'm2'], 'in order');
  assert.deepEqual(texts(c.writes), ['reply']);

  // A later turn: a pass again, one write per socket in it (a second item for a socket waits for the flush).
  await turn();
  t += 5;
  scheduler.noteMessage(2);
  boxA.push(frame('m1b'));
  boxA.push(frame('m1c'));
  scheduler.messageDelivered();
  assert.deepEqual(texts(a.writes), ['m1', 'm1b'], 'the first item at once, the second waits');
  t += 1;
  await flushed(a, 3);
  assert.deepEqual(texts(a.writes), ['m1', 'm1b', 'm1c'], 'in order');

  // A later turn, the gap passed: a pass again. A scheduler with a flush armed: no pass.
  await turn();
  t += 5;
  scheduler.noteMessage(1);
  boxC.push(frame('m3'));
  scheduler.messageDelivered();
  assert.deepEqual(texts(c.writes), ['reply', 'm3'], 'idle again: written at once');
  await turn();
  t += 5;
  boxA.push(frame('reply2')); // a reply: queued, and a flush armed for it
  scheduler.noteMessage(1);
  boxB.push(frame('m4'));
  scheduler.messageDelivered();
  assert.equal(b.writes.length, 2, 'a flush is armed: the message waits for it');
  t += 1;
  await flushed(b, 3);
  assert.deepEqual(texts(b.writes), ['m1', 'm2', 'm4']);
  assert.deepEqual(texts(a.writes), ['m1', 'm1b', 'm1c', 'reply2']);

  // An edge busy most of the time (a pass of 10 ms, 2 ms idle after it) keeps to the end of the turn.
  await turn();
  t += 5;
  (a.socket as unknown as { write: (b: Buffer) => boolean }).write = (buf: Buffer): boolean => {
    a.writes.push(buf);
    t += 10;
    return true;
  };
  scheduler.noteMessage(1);
  boxA.push(frame('m6'));
  scheduler.messageDelivered();
  assert.equal(a.writes.length, 5, 'idle: written at once (the write takes 10 ms)');
  await turn();
  t += 2;
  scheduler.noteMessage(1);
  boxB.push(frame('m7'));
  scheduler.messageDelivered();
  assert.equal(b.writes.length, 3, 'idle 2 ms after a 10 ms pass: queued for the flush');
  await flushed(b, 4);
  assert.deepEqual(texts(b.writes), ['m1', 'm2', 'm4', 'm7']);

  // A socket whose own buffer is full (a slow reader) is not written at once: its frames wait here.
  await turn();
  t += 50;
  (c.socket as unknown as { writableLength: number }).writableLength = 300 * 1024;
  scheduler.noteMessage(1);
  boxC.push(frame('m5'));
  boxA.push(frame('m5'));
  scheduler.messageDelivered();
  assert.equal(c.writes.length, 2, 'a full socket buffer: queued');
  assert.deepEqual(texts(a.writes), ['m1', 'm1b', 'm1c', 'reply2', 'm6', 'm5'], 'the others are written at once');
});

function takingSocket(): { socket: Socket; writes: Buffer[] } {
  const writes: Buffer[] = [];
  const socket = Object.assign(new EventEmitter(), {
    destroyed: false,
    writableLength: 0,
    write(buf: Buffer): boolean {
      writes.push(buf);
      return true;
    },
  });
  return { socket: socket as unknown as Socket, writes };
}

test('sockets behind by the same frames (each flush over 256 KiB) write one shared buffer per write, joined once', async () => {
  const scheduler = new FlushScheduler(0);
  const runs = Array.from({ length: 6 }, (_, r) => runOf(Array.from({ length: 40 }, (_, i) => `{"m":${r * 40 + i},"pad":"${'p'.repeat(1500)}"}`), r * 40 + 1));
  const sockets = [takingSocket(), takingSocket(), takingSocket()];
  for (const { socket } of sockets) {
    const box = new Outbox(socket, 1 << 22, noOverflow, scheduler);
    for (const run of runs) box.push(run);
  }
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  const [first, ...others] = sockets.map((s) => s.writes);
  assert.ok(first!.length >= 2, `the frames leave in several writes of at most 256 KiB (${first!.map((b) => b.length).join(', ')})`);
  for (const w of first!) assert.ok(w.length <= 256 * 1024);
  for (const writes of others) {
    assert.equal(writes.length, first!.length);
    writes.forEach((w, i) => assert.equal(w, first![i], `write ${i}: the same buffer as the first socket's`));
  }
  const lines = parseFrames(Buffer.concat(first!)).flatMap(([, text]) => text.split('\n'));
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { m: number }).m),
    Array.from({ length: 240 }, (_, i) => i),
    'every push once, in order',
  );
});

test('a run written into several sockets\' merged frames: the same lines each time, kept from the second socket on', () => {
  const jsons = ['{"m":1}', '{"m":2,"é":"ü"}', '{"m":3}'];
  const run = runOf(jsons);
  const body = (run as unknown as { body: Buffer }).body;
  const other = new SharedPush(Buffer.from('{"x":0}'), 'c', 0);
  const expected = textFrame(Buffer.from(['{"x":0}', ...jsons].join('\n')));
  assert.deepEqual(linesFrame([other, run], 0, 2), expected, 'first socket');
  assert.deepEqual(linesFrame([other, run], 0, 2), expected, 'second socket');
  // The lines are the run's own bytes from the second socket on: what the batch body holds is not read again.
  body.fill(0x20);
  assert.deepEqual(linesFrame([other, run], 0, 2), expected, 'third socket: the kept lines');
  // A run whose frame was built alone copies its lines from that frame.
  const alone = runOf(jsons);
  assert.deepEqual(alone.forJson(), textFrame(Buffer.from(jsons.join('\n'))));
  (alone as unknown as { body: Buffer }).body.fill(0x20);
  assert.deepEqual(linesFrame([other, alone], 0, 2), expected, 'after its frame alone: the frame\'s lines');
});

test('a run copies its pushes\' span of the batch in one copy and closes the gaps; pushes out of order or without a gap are copied one by one', () => {
  /** A batch body that counts its copies. */
  class CountingBuffer extends Uint8Array {
    copies = 0;
  }
  const counted = (b: Buffer): Buffer & CountingBuffer => {
    const c = Buffer.from(b) as Buffer & CountingBuffer;
    c.copies = 0;
    const copy = c.copy.bind(c);
    c.copy = (...a: Parameters<Buffer['copy']>) => (c.copies++, copy(...a));
    return c;
  };
  const jsons = ['{"m":1}', '{"m":22}', '{"é":"ü"}', '{"m":4444}'];
  const body = counted(encodeMessageBatch([1, 2, 3, 4], jsons.map((j) => Buffer.from(j))));
  const run = new PushRun(body, 'c');
  eachRangeInMessageBatch(body, (offset, start, end) => run.add(offset, start, end));
  const other = new SharedPush(Buffer.from('{"x":0}'), 'c', 0);
  const expected = (js: string[]): Buffer => textFrame(Buffer.from(['{"x":0}', ...js, '{"x":0}'].join('\n')));
  assert.deepEqual(linesFrame([other, run, other], 0, 3), expected(jsons), 'the run between two pushes');
  assert.equal(body.copies, 1, 'one copy of the span');
  assert.deepEqual(run.forJson(), textFrame(Buffer.from(jsons.join('\n'))), 'the run alone');
  // Ranges a batch does not make (a span wide enough for the one-copy path all the same): out of order, and touching (no gap for the newline).
  const text = Buffer.from('AAA{"a":1}{"b":2}BB{"c":3}ZZZZZZZZZZ{"d":4}');
  const [a, b, c, d]: Array<[number, number]> = [[3, 10], [10, 17], [19, 26], [36, 43]];
  const odd = counted(text);
  const unordered = new PushRun(odd, 'c');
  [a, c, b, d].forEach(([s, e], i) => unordered.add(i + 1, s!, e!));
  assert.deepEqual(linesFrame([other, unordered, other], 0, 3), expected(['{"a":1}', '{"c":3}', '{"b":2}', '{"d":4}']));
  assert.equal(odd.copies, 4, 'push by push');
  const touching = new PushRun(counted(text), 'c');
  [a, b, d].forEach(([s, e], i) => touching.add(i + 1, s!, e!));
  assert.deepEqual(linesFrame([other, touching, other], 0, 3), expected(['{"a":1}', '{"b":2}', '{"d":4}']));
  // The same ranges as a walked batch gives them (PushRun.of).
  for (const order of [[a, c, b, d], [a, b, d]]) {
    const ranges = new BatchRanges(order.length);
    order.forEach(([s, e], i) => {
      ranges.offsets[i] = i + 1;
      ranges.starts[i] = s!;
      ranges.ends[i] = e!;
    });
    const viaOf = PushRun.of(text, 'c', ranges, 0, order.length);
    assert.deepEqual(linesFrame([other, viaOf, other], 0, 3), expected(order.map(([s, e]) => text.toString('utf8', s, e))));
  }
});
