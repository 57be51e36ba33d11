/**
 * A connection's in-flight limit (client_max_inflight), fed frames as a
 * websocket would deliver them, over a context whose director never answers:
 * commands past the limit get 135 at once, and the connection is not read
 * until half of its commands are answered.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { pino } from 'pino';
import { ClientConnection } from '../../src/edge/connection.js';
import { FlushScheduler } from '../../src/edge/outbox.js';
import { resolveConfig } from '../../src/config/resolve.js';
import type { EdgeContext } from '../../src/edge/context.js';
import { FakeSocket, FakeWs } from '../helpers/fake-client-socket.js';

test('commands past client_max_inflight get 135 at once; the client is not read until half are answered', async () => {
  const config = resolveConfig({ env: { TIDINGS_CLIENT_MAX_INFLIGHT: '10' } });
  const answers: Array<(v: unknown) => void> = [];
  const limited: string[] = [];
  const ctx = {
    config,
    edgeId: 'e',
    auth: { authenticate: async () => ({ user: 'u', subscribe: ['*'], publish: ['*'], presence: ['*'], history: ['*'], call: [], register: [], expires: null }) },
    hub: { joinUser: async () => undefined, leaveUser: () => undefined },
    commands: { request: () => new Promise((resolve) => answers.push(resolve)), publishTextTo: (...args: unknown[]) => answers.push((v) => (args[4] as { resolve(v: unknown): void }).resolve(v)),
      // A plain publish line's data goes as the frame's bytes (readPublishLine).
      publishBytesTo: (...args: unknown[]) => answers.push((v) => (args[6] as { resolve(v: unknown): void }).resolve(v)),
    },
    scheduler: new FlushScheduler(0),
    metrics: { slowConsumers: { inc: () => undefined }, limited: { inc: (l: { code: string }) => limited.push(l.code) } },
    extraMethods: new Map(),
    onConnected: () => undefined,
    forget: () => undefined,
    noteClosed: () => undefined,
  } as unknown as EdgeContext;
  const ws = new FakeWs();
  const socket = new FakeSocket();
  const conn = new ClientConnection('c1', ws as unknown as WebSocket, socket as unknown as Socket, 'json', ctx, pino({ level: 'silent' }));
  await conn.connect(undefined);
  const frame = (from: number, n: number): Buffer =>
    Buffer.from(Array.from({ length: n }, (_, i) => JSON.stringify({ id: from + i, method: 'publish', params: { channel: 'c', data: i } })).join('\n'));
  const flushed = (): Promise<void> => new Promise((r) => setTimeout(r, 10));
  const replies = (): Array<{ id?: number; error?: { code: number } }> => socket.lines as Array<{ id?: number; error?: { code: number } }>;

  ws.emit('message', frame(1, 25), false);
  await flushed();
  assert.equal(answers.length, 10, 'ten publishes went to the director');
  assert.deepEqual(replies().map((r) => r.error?.code), Array(15).fill(135), 'the other fifteen were refused at once');
  assert.deepEqual(replies().map((r) => r.id), Array.from({ length: 15 }, (_, i) => 11 + i));
  assert.equal(limited.length, 15);
  assert.equal(ws.paused, true, 'not read while at the limit');

  for (const a of answers.splice(0, 4)) a({ offset: 1, epoch: 'x' });
  await flushed();
  assert.equal(ws.paused, true, 'six in flight: still more than half the limit');
  answers.shift()!({ offset: 1, epoch: 'x' });
  await flushed();
  assert.equal(ws.paused, false, 'five in flight: read again');
  ws.emit('message', frame(100, 5), false);
  await flushed();
  assert.equal(answers.length, 10, 'room for five more');
  assert.equal(ws.paused, true);
});
