/**
 * The command client's timeouts, against a real ROUTER socket that answers
 * some requests and never others: every request is settled exactly once, an
 * unanswered one with 114 `timeout` no sooner than its timeout, answered ones
 * with their reply, whatever order they were made in; requests with another
 * timeout than the client's keep theirs; and after a quiet spell the next
 * request's timeout still fires (the one shared timer re-arms).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Router } from 'zeromq';
import { CommandClient } from '../../src/zmq/command-client.js';
import { decodeCommandBatch, encodeReplyBatch, isBatchFrames } from '../../src/cluster/batch.js';
import { ErrorCodes, TidingsError } from '../../src/protocol/errors.js';
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
  ms: number;
  settled: number;
}

function track(p: Promise<unknown>): Promise<Outcome> {
  const t0 = performance.now();
  let settled = 0;
  return p.then(
    (value) => ({ ok: true, value, code: null, ms: performance.now() - t0, settled: ++settled }),
    (err: unknown) => ({ ok: false, value: null, code: err instanceof TidingsError ? err.code : null, ms: performance.now() - t0, settled: ++settled }),
  );
}

test('unanswered requests time out with 114 after their timeout, answered ones get their reply, each settled once', { timeout: 20_000 }, async () => {
  const made: Array<{ answered: boolean; own: number | null; outcome: Promise<Outcome> }> = [];
  for (let wave = 0; wave < 3; wave++) {
    for (let i = 0; i < 300; i++) {
      const answered = i % 3 !== 0;
      // Every 50th unanswered request has a timeout of its own, shorter than the client's.
      const own = !answered && i % 50 === 0 ? 150 : null;
      const req = own === null ? client.request(answered ? 'echo' : 'ignore', { wave, i }) : client.request('ignore', { wave, i }, own);
      made.push({ answered, own, outcome: track(req) });
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
    // Not before its timeout (1 ms of timer rounding); late only by the load.
    assert.ok(o.ms >= limit - 1, `request ${k} timed out after ${o.ms.toFixed(1)} ms, before its ${limit} ms`);
    assert.ok(o.ms < limit + 2000, `request ${k} timed out after ${o.ms.toFixed(1)} ms, long after its ${limit} ms`);
  });
  assert.equal(client.inFlight, 0);
  // A quiet spell, then one more unanswered request: it still times out.
  await new Promise((r) => setTimeout(r, 100));
  const late = await track(client.request('ignore', {}));
  assert.equal(late.code, ErrorCodes.TIMEOUT.code);
  assert.ok(late.ms >= TIMEOUT_MS - 1 && late.ms < TIMEOUT_MS + 2000, `timed out after ${late.ms.toFixed(1)} ms`);
  assert.equal(client.inFlight, 0);
});
