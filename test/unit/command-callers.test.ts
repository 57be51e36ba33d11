/**
 * The callers a forwarder tells when its link to the director drops
 * (src/forwarder/command-callers.ts): each route once, bounded, forgotten
 * once told.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandCallers } from '../../src/forwarder/command-callers.js';

/** A command as a forwarder's ROUTER receives it: [...route, id, method, body]. */
const command = (...route: string[]): Buffer[] => [...route.map((r) => Buffer.from(r)), Buffer.alloc(4), Buffer.from('ping'), Buffer.from('{}')];
const names = (routes: Buffer[][]): string[] => routes.map((r) => r.map((f) => f.toString()).join('/'));

test('each caller is told once, whatever it sent; routes of several frames are callers of their own', () => {
  const callers = new CommandCallers();
  callers.passed(command('edge-a'));
  callers.passed(command('edge-a'));
  callers.passed(command('edge-b'));
  callers.passed(command('hop', 'edge-a'));
  assert.deepEqual(names(callers.take()), ['edge-a', 'edge-b', 'hop/edge-a']);
  assert.deepEqual(callers.take(), [], 'told once: the next link starts afresh');
});

test('at most `max` callers are kept: past it the first seen is forgotten', () => {
  const callers = new CommandCallers(3);
  for (const r of ['a', 'b', 'c', 'd', 'e']) callers.passed(command(r));
  assert.equal(callers.size, 3);
  assert.deepEqual(names(callers.take()), ['c', 'd', 'e']);
});

test('a kept route is a copy: the received frame may be reused', () => {
  const callers = new CommandCallers();
  const cmd = command('edge-a');
  callers.passed(cmd);
  cmd[0]!.fill(0x78);
  assert.deepEqual(names(callers.take()), ['edge-a']);
});
