/** LoopGuard: one failing item is counted, logged (rate-limited) and skipped; a loop that ends while serving is a death. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { LoopGuard, LOG_EVERY_MS } from '../../src/runtime/loop-guard.js';

function capture(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const out = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, out) as Logger, lines };
}

async function* items<T>(list: T[], end?: Error): AsyncGenerator<T> {
  for (const x of list) yield x;
  if (end) throw end;
}

async function count(registry: Registry, loop: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === 'tidings_loop_failures_total')!;
  return (m.values.find((v) => v.labels['loop'] === loop)?.value as number | undefined) ?? 0;
}

test('a throwing item is skipped; the loop serves the rest and, stopped, is no death', async () => {
  const registry = new Registry();
  const { log, lines } = capture();
  const deaths: string[] = [];
  const guard = new LoopGuard(registry, log, (loop) => deaths.push(loop));
  const served: number[] = [];
  await guard.run('test', items([1, 2, 3, 4]), (n) => {
    if (n === 2) throw new Error('poison');
    if (n === 3) return Promise.reject(new Error('async poison'));
    served.push(n);
    return undefined;
  }, () => true);
  assert.deepEqual(served, [1, 4]);
  assert.equal(await count(registry, 'test'), 2);
  assert.deepEqual(deaths, [], 'a loop that ends while its service stops is no death');
  await new Promise((r) => setImmediate(r));
  assert.equal(lines.filter((l) => l['msg'] === 'item failed and was skipped').length, 1, 'the second failure within the window is not logged');
});

test('a loop that ends or throws while serving dies once, fatally', async () => {
  const { log, lines } = capture();
  const deaths: string[] = [];
  const guard = new LoopGuard(new Registry(), log, (loop) => deaths.push(loop));
  await guard.run('ended', items([1]), () => undefined, () => false);
  await guard.run('thrown', items([1], new Error('socket gone')), () => undefined, () => false);
  assert.deepEqual(deaths, ['ended'], 'reported once');
  assert.equal(guard.dead, 'ended');
  await new Promise((r) => setImmediate(r));
  assert.equal(lines.filter((l) => l['level'] === 60).length, 1);
});

test('failures are logged at most once per window per loop, with how many were not', () => {
  const { log, lines } = capture();
  let now = 1000;
  const guard = new LoopGuard(new Registry(), log, undefined, () => now);
  for (let i = 0; i < 5; i++) guard.failed('a', new Error('x'));
  guard.failed('b', new Error('y'));
  now += LOG_EVERY_MS;
  guard.failed('a', new Error('x'));
  const logged = lines.map((l) => [l['loop'], l['notLogged']]);
  assert.deepEqual(logged, [['a', undefined], ['b', undefined], ['a', 4]]);
});
