/**
 * The command client's timeouts, against a real ROUTER socket that answers
 * some requests and never others: every request is settled exactly once, an
 * unanswered one with 114 `timeout` no sooner than its timeout, answered ones
 * with their reply, whatever order they were made in; requests with another
 * timeout than the client's keep theirs; and after a quiet spell the next
 * request's timeout still fires (the one shared timer re-arms). Requests in
 * flight on a connection that drops, or behind a forwarder whose link to the
 * director drops ("link lost" reply), fail at once with 113, not at their
 * timeouts: their answers can never come. Publishes (publishTextTo) made one
 * after another go as one publish_batch request and are answered one by one,
 * in order with the requests around them, each counted against the bound.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Router } from 'zeromq';
import { CommandClient, RawJson } from '../../src/zmq/command-client.js';
import { PUBLISH_BATCH_METHOD, PUBLISH_TEXT_METHOD, PublishEntryReader, PublishOutcomeWriter, decodeCommandBatch, encodeReplyBatch, isBatchFrames } from '../../src/cluster/batch.js';
import { ErrorCodes, TidingsError } from '../../src/protocol/errors.js';
import { LINK_LOST_ID } from '../../src/cluster/link-lost.js';
import { createLogger } from '../../src/log.js';
import { freePort } from '../helpers/ports.js';

const TIMEOUT_MS = 400;
let router: Router;
let client: CommandClient;
let serving: Promise<void>;

/** Answers `echo` with its body; never answers `ignore`. */
async function serve(r: Router): Promise<void> {
  try {
    for await (const frames of r) {
      const [route, idBuf, method, body] = frames as Buffer[];
      if (isBatchFrames(idBuf!, method!)) {
        const replies = decodeCommandBatch(body!).filter((e) => e.method === 'echo').map((e) => ({ id: e.id, ok: true, body: e.body }));
        if (replies.length > 0) await r.send([route!, ...encodeReplyBatch(replies)]);
      } else if (method!.toString() === 'echo') await r.send([route!, idBuf!, Buffer.from('ok'), body!]);
    }
  } catch {
    // closed
  }
}

before(async () => {
  router = new Router({ linger: 0 });
  const address = `tcp://127.0.0.1:${await freePort()}`;
  await router.bind(address);
  serving = serve(router);
  client = new CommandClient({ address, link: { curve: null, maxMessageSize: 1 << 20 }, timeoutMs: TIMEOUT_MS, maxInFlight: 10_000, highWaterMark: 10_000, log: createLogger('silent') });
  client.start();
  await client.request('echo', { warm: true });
});

after(async () => {
  await client?.stop();
  router?.close();
  await serving;
});

interface Outcome {
  ok: boolean;
  value: unknown;
  code: number | null;
  message: string | null;
  ms: number;
  settled: number;
}

/**
 * How `p` settles, and how long after `t0`: by default now, after the request was made; a test of how soon a
 * timeout fires passes the time taken before making it (the client's clock starts while it is made, and a
 * preemption between that and this call would make the timeout look early).
 */
function track(p: Promise<unknown>, t0 = performance.now()): Promise<Outcome> {
  let settled = 0;
  return p.then(
    (value) => ({ ok: true, value, code: null, message: null, ms: performance.now() - t0, settled: ++settled }),
    (err: unknown) => ({ ok: false, value: null, code: err instanceof TidingsError ? err.code : null, message: (err as Error).message, ms: performance.now() - t0, settled: ++settled }),
  );
}

test('unanswered requests time out with 114 after their timeout, answered ones get their reply, each settled once', { timeout: 20_000 }, async () => {
  const made: Array<{ answered: boolean; own: number | null; outcome: Promise<Outcome> }> = [];
  for (let wave = 0; wave < 3; wave++) {
    for (let i = 0; i < 300; i++) {
      const answered = i % 3 !== 0;
      // Every 50th unanswered request has a timeout of its own, shorter than the client's.
      const own = !answered && i % 50 === 0 ? 150 : null;
      const t0 = performance.now();
      const req = own === null ? client.request(answered ? 'echo' : 'ignore', { wave, i }) : client.request('ignore', { wave, i }, own);
      made.push({ answered, own, outcome: track(req, t0) });
    }
    // Requests made across several turns and moments: deadlines differ.
    await new Promise((r) => setTimeout(r, 60));
  }
  const outcomes = await Promise.all(made.map((m) => m.outcome));
  outcomes.forEach((o, k) => {
    const m = made[k]!;
    assert.equal(o.settled, 1);
    if (m.answered) {
      assert.ok(o.ok, `request ${k} was answered`);
      assert.deepEqual(o.value, { wave: Math.floor(k / 300), i: k % 300 });
      return;
    }
    assert.equal(o.ok, false, `request ${k} was never answered`);
    assert.equal(o.code, ErrorCodes.TIMEOUT.code);
    const limit = m.own ?? TIMEOUT_MS;
    // Not before its timeout; late only by the load.
    assert.ok(o.ms >= limit, `request ${k} timed out after ${o.ms.toFixed(1)} ms, before its ${limit} ms`);
    assert.ok(o.ms < limit + 2000, `request ${k} timed out after ${o.ms.toFixed(1)} ms, long after its ${limit} ms`);
  });
  assert.equal(client.inFlight, 0);
  // A quiet spell, then one more unanswered request: it still times out.
  await new Promise((r) => setTimeout(r, 100));
  const lateAt = performance.now();
  const late = await track(client.request('ignore', {}), lateAt);
  assert.equal(late.code, ErrorCodes.TIMEOUT.code);
  assert.ok(late.ms >= TIMEOUT_MS && late.ms < TIMEOUT_MS + 2000, `timed out after ${late.ms.toFixed(1)} ms`);
  assert.equal(client.inFlight, 0);
});

test('no timeout fires early, not even by the event loop\'s millisecond rounding: own timeouts and the client\'s', { timeout: 20_000 }, async () => {
  // Node's timers run on a clock of whole milliseconds: a timer armed 0.7 ms into one fires up to 0.7 ms
  // before its time by performance.now(). Requests made at different moments within a millisecond: each one
  // must still wait its whole timeout, to the microsecond.
  const started: Array<{ limit: number; t0: number; outcome: Promise<Outcome> }> = [];
  for (let k = 0; k < 24; k++) {
    await new Promise((r) => setImmediate(r));
    const busyUntil = performance.now() + 0.13 * (k % 8);
    while (performance.now() < busyUntil) {
      // a moment within the millisecond
    }
    const t0 = performance.now();
    const own = k % 4 !== 3;
    const limit = own ? 40 : TIMEOUT_MS;
    started.push({ limit, t0, outcome: track(own ? client.request('ignore', { k }, limit) : client.request('ignore', { k }), t0) });
  }
  for (const s of started) {
    const o = await s.outcome;
    assert.equal(o.code, ErrorCodes.TIMEOUT.code);
    assert.ok(o.ms >= s.limit, `a ${s.limit} ms timeout fired after ${o.ms.toFixed(3)} ms`);
  }
});

/** A ROUTER that answers nothing, a client with a long timeout, and `n` requests the ROUTER has received. */
async function unanswered(n: number): Promise<{ r: Router; c: CommandClient; routes: Buffer[]; outcomes: Array<Promise<Outcome>> }> {
  const r = new Router({ linger: 0 });
  const address = `tcp://127.0.0.1:${await freePort()}`;
  await r.bind(address);
  const c = new CommandClient({ address, link: { curve: null, maxMessageSize: 1 << 20 }, timeoutMs: 10_000, maxInFlight: 100, highWaterMark: 100, log: createLogger('silent') });
  c.start();
  const outcomes = Array.from({ length: n }, (_, i) => track(c.request('ignore', { i })));
  const routes: Buffer[] = [];
  for (let got = 0; got < n; ) {
    const [route, idBuf, method, body] = (await r.receive()) as Buffer[];
    routes.push(route!);
    got += isBatchFrames(idBuf!, method!) ? decodeCommandBatch(body!).length : 1;
  }
  return { r, c, routes, outcomes };
}

test('requests in flight when the connection drops fail at once with 113, not at their timeout', { timeout: 20_000 }, async () => {
  const { r, c, outcomes } = await unanswered(5);
  r.close(); // the peer goes away: the ROUTER that holds their route is gone
  try {
    for (const o of await Promise.all(outcomes)) {
      assert.equal(o.code, ErrorCodes.UNAVAILABLE.code);
      assert.match(o.message!, /dropped with this request in flight: it may or may not have been carried out/);
      assert.ok(o.ms < 5000, `failed after ${o.ms.toFixed(0)} ms (timeout 10 000)`);
    }
    assert.equal(c.inFlight, 0);
  } finally {
    await c.stop();
  }
});

test("a forwarder's link-lost reply fails every request in flight with its message; later ones are unaffected", { timeout: 20_000 }, async () => {
  const { r, c, routes, outcomes } = await unanswered(3);
  try {
    const body = Buffer.from(JSON.stringify(new TidingsError(ErrorCodes.UNAVAILABLE, 'link dropped with this request in flight').toBody()));
    await r.send([routes[0]!, LINK_LOST_ID, Buffer.from('error'), body]);
    for (const o of await Promise.all(outcomes)) {
      assert.equal(o.code, ErrorCodes.UNAVAILABLE.code);
      assert.match(o.message!, /: link dropped with this request in flight$/);
      assert.ok(o.ms < 5000, `failed after ${o.ms.toFixed(0)} ms (timeout 10 000)`);
    }
    assert.equal(c.inFlight, 0);
    // A request made afterwards waits for its own answer.
    const later = track(c.request('echo', { later: true }));
    const [route, idBuf, , reqBody] = (await r.receive()) as Buffer[];
    await r.send([route!, idBuf!, Buffer.from('ok'), reqBody!]);
    const o = await later;
    assert.ok(o.ok);
    assert.deepEqual(o.value, { later: true });
  } finally {
    await c.stop();
    r.close();
  }
});

/**
 * A ROUTER that answers publish_batch outcome by outcome (a publish to channel `refuse` refused with 121, the
 * others given offsets from 1) and `echo` with its body, and records what it received: [method, entries].
 */
async function publishRouter(old = false): Promise<{ r: Router; address: string; got: Array<[string, number, number]>; done: Promise<void> }> {
  const r = new Router({ linger: 0 });
  const address = `tcp://127.0.0.1:${await freePort()}`;
  await r.bind(address);
  const got: Array<[string, number, number]> = [];
  let offset = 0;
  const answer = (method: string, body: Buffer): Buffer => {
    if (method === PUBLISH_TEXT_METHOD) {
      got.push([method, new PublishEntryReader(body, true).count, body.length]);
      return Buffer.from(JSON.stringify({ offset: ++offset, epoch: 'E' }));
    }
    if (method !== PUBLISH_BATCH_METHOD) {
      got.push([method, 1, body.length]);
      return body;
    }
    const entries = new PublishEntryReader(body);
    got.push([method, entries.count, body.length]);
    const out = new PublishOutcomeWriter(entries.count);
    while (entries.next()) {
      if (entries.name() === 'refuse') out.error(Buffer.from(JSON.stringify(new TidingsError(ErrorCodes.INVALID_CHANNEL, 'refused here').toBody())));
      else out.ok(++offset, 'E');
    }
    return out.finish();
  };
  // `old`: a director from before publish_batch, which answers it 104 as any unknown command.
  const refuseBatch = (id: number, body: Buffer): { id: number; ok: boolean; body: Buffer } => {
    got.push([PUBLISH_BATCH_METHOD, new PublishEntryReader(body).count, body.length]);
    return { id, ok: false, body: Buffer.from(JSON.stringify(new TidingsError(ErrorCodes.METHOD_NOT_FOUND, 'unknown command "publish_batch"').toBody())) };
  };
  const done = (async () => {
    try {
      for await (const frames of r) {
        const [route, idBuf, method, body] = frames as Buffer[];
        if (isBatchFrames(idBuf!, method!)) {
          const entries = decodeCommandBatch(body!);
          await r.send([route!, ...encodeReplyBatch(entries.map((e) => (old && e.method === PUBLISH_BATCH_METHOD ? refuseBatch(e.id, e.body) : { id: e.id, ok: true, body: answer(e.method, e.body) })))]);
        } else {
          const m = method!.toString();
          if (old && m === PUBLISH_BATCH_METHOD) {
            const refused = refuseBatch(0, body!);
            await r.send([route!, idBuf!, Buffer.from('error'), refused.body]);
          } else await r.send([route!, idBuf!, Buffer.from('ok'), answer(m, body!)]);
        }
      }
    } catch {
      // closed
    }
  })();
  return { r, address, got, done };
}

/**
 * A command client against publishRouter(old), warmed up by one `echo` (so `got` holds only what `body` sends),
 * stopped with the router afterwards.
 */
async function withPublishClient(opts: { old?: boolean; maxInFlight?: number; maxMessageSize?: number }, body: (c: CommandClient, got: Array<[string, number, number]>) => Promise<void>): Promise<void> {
  const { r, address, got, done } = await publishRouter(opts.old);
  const link = { curve: null, maxMessageSize: opts.maxMessageSize ?? 1 << 20 };
  const c = new CommandClient({ address, link, timeoutMs: 10_000, maxInFlight: opts.maxInFlight ?? 100, highWaterMark: 100, log: createLogger('silent') });
  c.start();
  try {
    await c.request('echo', { warm: true });
    got.length = 0;
    await body(c, got);
  } finally {
    await c.stop();
    r.close();
    await done;
  }
}

test('publishes of a turn go as one publish_batch, each answered on its own; a request between them keeps its place; each counts against the in-flight bound', { timeout: 20_000 }, async () => {
  await withPublishClient({ maxInFlight: 10 }, async (c, got) => {
    const publish = (channel: string, n: number) => track(c.publishText(channel, JSON.stringify({ n }), 'me', false));
    // One turn: three publishes, a request, then nine more publishes (one refused by the "director").
    const first = [publish('a', 1), publish('a', 2), publish('refuse', 3)];
    const echo = track(c.request('echo', { between: true }));
    const second = Array.from({ length: 9 }, (_, i) => publish('b', 4 + i));
    assert.equal(c.inFlight, 10, 'every publish counts one');
    const outcomes = await Promise.all([...first, echo, ...second]);
    // In order: a batch of the first three, the request, a batch of the six the bound let through.
    assert.deepEqual(got.map(([m, n]) => [m, n]), [[PUBLISH_BATCH_METHOD, 3], ['echo', 1], [PUBLISH_BATCH_METHOD, 6]]);
    const offsets = outcomes.filter((o) => o.ok && o.value instanceof RawJson).map((o) => (o.value as RawJson).parse());
    assert.deepEqual(offsets, [1, 2, 3, 4, 5, 6, 7, 8].map((offset) => ({ offset, epoch: 'E' })), 'each accepted publish gets its own offset');
    assert.equal(outcomes[2]!.code, ErrorCodes.INVALID_CHANNEL.code, 'a refused publish gets its own error');
    assert.match(outcomes[2]!.message!, /refused here/);
    assert.deepEqual(outcomes[3]!.value, { between: true });
    const limited = outcomes.slice(4 + 6);
    assert.equal(limited.length, 3);
    for (const o of limited) assert.equal(o.code, ErrorCodes.LIMIT_EXCEEDED.code, 'past the in-flight bound: refused where made');
    assert.equal(c.inFlight, 0);
  });
});

/** A full garbage collection, without starting node with --expose-gc. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

test('an answered request lets go of what it was made with at once: a publish batch\'s body and targets are not kept until its deadline', { timeout: 20_000 }, async () => {
  await withPublishClient({}, async (c) => {
    const made: Array<WeakRef<object>> = [];
    const answered: Array<Promise<void>> = [];
    for (let i = 0; i < 3; i++) {
      // Targets of the edge's kind (an object per publish, not a promise): nothing but the client refers to them.
      answered.push(
        new Promise<void>((resolve, reject) => {
          const target = { resolve: () => resolve(), reject };
          made.push(new WeakRef(target));
          c.publishTextTo('a', JSON.stringify({ i }), null, false, target);
        }),
      );
    }
    await Promise.all(answered);
    // The client's timeout is 10 s: its deadline queue still holds the answered batch's request.
    for (let i = 0; i < 5 && made.some((w) => w.deref() !== undefined); i++) {
      await new Promise((r) => setImmediate(r));
      collectGarbage();
    }
    assert.deepEqual(
      made.map((w) => w.deref() === undefined),
      [true, true, true],
      'every target of the answered batch was collected',
    );
  });
});

test('a director from before publish_batch (it answers 104): that batch\'s publishes go again as publish_text, in order, each answered with its offset, and later ones go so at once', { timeout: 20_000 }, async () => {
  await withPublishClient({ old: true }, async (c, got) => {
    const publish = (n: number) => track(c.publishText('a', JSON.stringify({ n }), 'me', false));
    const first = await Promise.all([1, 2, 3].map(publish));
    const later = await Promise.all([4, 5].map(publish));
    const offsets = [...first, ...later].map((o) => (o.ok && o.value instanceof RawJson ? (o.value.parse() as { offset: number }).offset : o.message));
    assert.deepEqual(offsets, [1, 2, 3, 4, 5], 'every publish answered with its own offset, in order');
    assert.deepEqual(got.map(([m, n]) => [m, n]), [[PUBLISH_BATCH_METHOD, 3], ...Array.from({ length: 5 }, () => [PUBLISH_TEXT_METHOD, 1])]);
    assert.equal(c.inFlight, 0);
  });
});

test('publishes stay under the command link limit: a batch closes before it would pass it, one too large alone is refused', { timeout: 20_000 }, async () => {
  const limit = 8192;
  await withPublishClient({ maxMessageSize: limit }, async (c, got) => {
    const big = 'x'.repeat(2500);
    const fitting = Array.from({ length: 6 }, (_, i) => track(c.publishText('a', JSON.stringify({ i, big }), null, true)));
    const tooLarge = track(c.publishText('a', JSON.stringify('y'.repeat(limit)), null, false));
    const outcomes = await Promise.all(fitting);
    assert.ok(outcomes.every((o) => o.ok), JSON.stringify(outcomes.filter((o) => !o.ok)));
    const sizes = got.filter(([m]) => m === PUBLISH_BATCH_METHOD);
    assert.deepEqual(sizes.reduce((n, [, k]) => n + k, 0), 6);
    assert.ok(sizes.length >= 3 && sizes.every(([, , bytes]) => bytes <= limit - 1024), JSON.stringify(sizes));
    const o = await tooLarge;
    assert.equal(o.code, ErrorCodes.PAYLOAD_TOO_LARGE.code);
    assert.match(o.message!, /command link limit 8192/);
  });
});

test('unanswered publishes time out with 114, each once; publishes in flight when the connection drops fail at once with 113', { timeout: 20_000 }, async () => {
  const r = new Router({ linger: 0 });
  const address = `tcp://127.0.0.1:${await freePort()}`;
  await r.bind(address);
  const c = new CommandClient({ address, link: { curve: null, maxMessageSize: 1 << 20 }, timeoutMs: 300, maxInFlight: 100, highWaterMark: 100, log: createLogger('silent') });
  c.start();
  try {
    const timedOut = await Promise.all([1, 2, 3].map((n) => track(c.publishText('a', String(n), null, false))));
    for (const o of timedOut) {
      assert.equal(o.code, ErrorCodes.TIMEOUT.code);
      assert.equal(o.settled, 1);
      assert.ok(o.ms >= 299, `timed out after ${o.ms.toFixed(1)} ms`);
    }
    assert.equal(c.inFlight, 0);
  } finally {
    await c.stop();
    r.close();
  }
  const { r: r2, c: c2 } = await unanswered(1);
  try {
    const lost = [1, 2].map((n) => track(c2.publishText('a', String(n), null, false)));
    await r2.receive();
    r2.close();
    for (const o of await Promise.all(lost)) assert.equal(o.code, ErrorCodes.UNAVAILABLE.code);
    assert.equal(c2.inFlight, 0);
  } finally {
    await c2.stop();
  }
});
