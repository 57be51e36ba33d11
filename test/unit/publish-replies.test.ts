/**
 * A JSON client's publish acknowledgements (ReplyLines): the replies of a
 * turn leave as lines of one text frame, in the order their outcomes came,
 * each under its own id with its own result; anything queued between them
 * keeps its place; a frame of replies stays under MAX_REPLY_LINES_BYTES; and
 * they count against the client's send buffer as they grow. A connection fed
 * frames as a websocket delivers them, over a context whose director is the
 * test (it settles each publish's target as the command client does).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { pino } from 'pino';
import { ClientConnection } from '../../src/edge/connection.js';
import { FlushScheduler } from '../../src/edge/outbox.js';
import { SharedPush, frameHeaderBytes } from '../../src/edge/frames.js';
import { MAX_REPLY_LINES_BYTES, ReplyLines, replyLineBytes } from '../../src/edge/reply-lines.js';
import { resolveConfig } from '../../src/config/resolve.js';
import type { EdgeContext } from '../../src/edge/context.js';
import type { ReplyTarget } from '../../src/zmq/command-client.js';
import { CloseCodes, TidingsError, ErrorCodes } from '../../src/protocol/errors.js';
import { FakeSocket, FakeWs } from '../helpers/fake-client-socket.js';

/** A connected JSON client whose publishes wait in `targets` for the test to settle them. */
async function publisherConnection(env: Record<string, string> = {}, publish = ['*']) {
  const config = resolveConfig({ env: { TIDINGS_CLIENT_MAX_INFLIGHT: '20000', ...env } });
  const targets: ReplyTarget[] = [];
  /** The channel of each publish that went to the director. */
  const channels: string[] = [];
  const slow: number[] = [];
  const ctx = {
    config,
    edgeId: 'e',
    auth: { authenticate: async () => ({ user: 'u', subscribe: ['*'], publish, presence: ['*'], history: ['*'], call: [], register: [], expires: null }) },
    hub: { joinUser: async () => undefined, leaveUser: () => undefined },
    commands: {
      publishBytesTo: (...args: unknown[]) => {
        channels.push(args[0] as string);
        targets.push(args[6] as ReplyTarget);
      },
      publishTextTo: (...args: unknown[]) => {
        channels.push(args[0] as string);
        targets.push(args[4] as ReplyTarget);
      },
    },
    scheduler: new FlushScheduler(0),
    metrics: { slowConsumers: { inc: () => slow.push(1) }, limited: { inc: () => undefined } },
    loops: { failed: (_: string, err: unknown) => assert.fail(String(err)) },
    extraMethods: new Map(),
    onConnected: () => undefined,
    forget: () => undefined,
    noteClosed: () => undefined,
  } as unknown as EdgeContext;
  const ws = new FakeWs();
  const socket = new FakeSocket();
  const conn = new ClientConnection('c1', ws as unknown as WebSocket, socket as unknown as Socket, 'json', ctx, pino({ level: 'silent' }));
  await conn.connect(undefined);
  /** The client sends publishes with ids from..from+n-1 in one frame. */
  const send = (from: number, n: number): void => {
    const lines = Array.from({ length: n }, (_, i) => `{"id":${from + i},"method":"publish","params":{"channel":"c","data":${i}}}`);
    ws.emit('message', Buffer.from(lines.join('\n')), false);
  };
  /** The director's reply to a batch: outcome i is {"offset":offset0+i,...}; the targets get theirs as the command client hands them out. */
  const outcomes = (count: number, offset0: number): { body: Buffer; ranges: Array<[number, number]> } => {
    const parts: string[] = [];
    const ranges: Array<[number, number]> = [];
    let at = 0;
    for (let i = 0; i < count; i++) {
      const json = JSON.stringify({ offset: offset0 + i, epoch: 'ep' });
      parts.push(json, '|');
      ranges.push([at, at + Buffer.byteLength(json)]);
      at += Buffer.byteLength(json) + 1;
    }
    return { body: Buffer.from(parts.join('')), ranges };
  };
  const flushed = (): Promise<void> => new Promise((r) => setTimeout(r, 10));
  return { conn, ws, socket, targets, channels, send, outcomes, flushed, slow };
}

test('a turn\'s publish replies: one text frame of lines, in order, each its own id and result; a push or a refusal queued between them keeps its place', async () => {
  const { conn, socket, targets, send, outcomes, flushed } = await publisherConnection();
  send(1, 6);
  await flushed();
  assert.equal(targets.length, 6);
  const { body, ranges } = outcomes(6, 100);
  // As settlePublishes hands out one batch reply's outcomes, with a push and a refusal arriving among them in the same turn.
  targets[0]!.resolveJson!(body, ...ranges[0]!);
  targets[1]!.resolveJson!(body, ...ranges[1]!);
  conn.deliver(new SharedPush(Buffer.from('{"channel":"c","offset":7,"data":"push"}'), 'c', 7));
  targets[2]!.resolveJson!(body, ...ranges[2]!);
  targets[3]!.reject(new TidingsError(ErrorCodes.INVALID_CHANNEL, 'refused'));
  targets[4]!.resolveJson!(body, ...ranges[4]!);
  targets[5]!.resolveJson!(body, ...ranges[5]!);
  await flushed();
  assert.deepEqual(socket.lines, [
    { id: 1, result: { offset: 100, epoch: 'ep' } },
    { id: 2, result: { offset: 101, epoch: 'ep' } },
    { channel: 'c', offset: 7, data: 'push' },
    { id: 3, result: { offset: 102, epoch: 'ep' } },
    { id: 4, error: { code: ErrorCodes.INVALID_CHANNEL.code, name: 'invalid_channel', message: 'invalid channel name: refused' } },
    { id: 5, result: { offset: 104, epoch: 'ep' } },
    { id: 6, result: { offset: 105, epoch: 'ep' } },
  ]);
  // The replies and the push around them share a frame; the refusal is a frame of its own, the two replies after it another.
  assert.deepEqual(socket.frames.map((f) => f.length), [4, 1, 2]);
});

/** The outbox merges line items into frames of at most this (outbox.ts MAX_MERGED_PAYLOAD); an item larger than it would be a frame of its own. */
const MAX_MERGED_FRAME = 256 * 1024;

test('replies past MAX_REPLY_LINES_BYTES go on in a new item: frames stay under the outbox\'s merged-frame bound, every reply once and in order', async () => {
  const { socket, targets, send, outcomes, flushed } = await publisherConnection();
  const n = 12_000;
  send(1, n);
  await flushed();
  const { body, ranges } = outcomes(n, 0);
  assert.equal(targets.length, n);
  targets.forEach((t, i) => t.resolveJson!(body, ...ranges[i]!));
  // A backlog leaves in writes of at most 256 KiB, one per flush.
  for (let i = 0; i < 100 && socket.frames.flat().length < n; i++) await flushed();
  const sizes = socket.frames.map((f) => Buffer.byteLength(f.join('\n')));
  assert.ok(sizes.reduce((a, b) => a + b) > 2 * MAX_MERGED_FRAME, `${sizes.length} frames, ${sizes.reduce((a, b) => a + b)} bytes: replies of over twice the bound`);
  for (const size of sizes) assert.ok(size <= MAX_MERGED_FRAME, `a frame of ${size} bytes: over the bound`);
  assert.ok(MAX_REPLY_LINES_BYTES < MAX_MERGED_FRAME);
  assert.deepEqual(
    socket.lines.map((r) => (r as { id: number; result: { offset: number } }).id * 1e6 + (r as { result: { offset: number } }).result.offset),
    Array.from({ length: n }, (_, i) => (i + 1) * 1e6 + i),
  );
});

test('replies count against client_send_buffer as they grow: past it the client is cut off as a slow consumer (4005)', async () => {
  const { ws, socket, targets, send, outcomes, flushed, slow } = await publisherConnection({ TIDINGS_CLIENT_SEND_BUFFER: '65536' });
  send(1, 200);
  await flushed();
  // The client reads slowly: its socket's buffer already holds most of what it may.
  socket.writableLength = 60_000;
  const { body, ranges } = outcomes(200, 0);
  // The first reply queues a new item (checked by push); the others only grow it, 200 * ~45 bytes: past the limit.
  targets.forEach((t, i) => t.resolveJson!(body, ...ranges[i]!));
  assert.equal(ws.closedWith, CloseCodes.SLOW_CONSUMER.code, 'cut off while the replies grew');
  assert.equal(slow.length, 1);
  await flushed();
});

test('ReplyLines writes each reply as {"id":N,"result":R}, ids of any length, results of any size; counts each as its own frame', () => {
  const r = new ReplyLines();
  const big = Buffer.from(JSON.stringify({ offset: 1, epoch: 'x'.repeat(300) }));
  const small = Buffer.from('xx{"offset":0,"epoch":"e"}yy');
  const items: Array<[number, Buffer, number, number]> = [
    [0, small, 2, small.length - 2],
    [9, small, 2, small.length - 2],
    [10, big, 0, big.length],
    [999_999_999_999_999, small, 2, small.length - 2],
  ];
  let framed = 0;
  for (const [id, b, s, e] of items) {
    const bytes = replyLineBytes(id, e - s);
    assert.equal(bytes, Buffer.byteLength(`{"id":${id},"result":${b.toString('utf8', s, e)}}`));
    r.add(id, b, s, e, bytes);
    framed += frameHeaderBytes(bytes) + bytes;
  }
  assert.equal(r.jsonFrameBytes, framed);
  const frame = r.forJson();
  const text = frame.toString('utf8', frame.length - r.lineBytes);
  assert.deepEqual(
    text.split('\n').map((l) => JSON.parse(l)),
    items.map(([id, b, s, e]) => ({ id, result: JSON.parse(b.toString('utf8', s, e)) })),
  );
});

test('each channel a connection publishes to is checked against the rules and its grants; only a granted one is remembered', async () => {
  const { ws, socket, channels, flushed } = await publisherConnection({}, ['room.*']);
  const line = (id: number, channel: string, parsed = false): string =>
    parsed ? JSON.stringify({ id, method: 'publish', params: { data: id, channel } }) : `{"id":${id},"method":"publish","params":{"channel":"${channel}","data":${id}}}`;
  const frame = [line(1, 'room.a'), line(2, 'other'), line(3, 'other'), line(4, 'room.a', true), line(5, 'room'), line(6, 'room.a'), line(7, 'room.b'), line(8, 'has space'), line(9, 'room.b', true)];
  ws.emit('message', Buffer.from(frame.join('\n')), false);
  await flushed();
  assert.deepEqual(channels, ['room.a', 'room.a', 'room.a', 'room.b', 'room.b']);
  const refused = socket.lines as Array<{ id: number; error: { code: number } }>;
  assert.deepEqual(
    refused.map((r) => [r.id, r.error.code]),
    [
      [2, ErrorCodes.PERMISSION_DENIED.code],
      [3, ErrorCodes.PERMISSION_DENIED.code],
      [5, ErrorCodes.PERMISSION_DENIED.code],
      [8, ErrorCodes.INVALID_CHANNEL.code],
    ],
  );
});

test('a ReplyLines made ready for more or fewer replies than it gets writes each of them once, in order, as one made for none', () => {
  const body = Buffer.from('{"offset":5,"epoch":"e"}');
  const lines = (expected: number, n: number): string => {
    const r = new ReplyLines(expected);
    for (let id = 1; id <= n; id++) r.add(id, body, 0, body.length, replyLineBytes(id, body.length));
    assert.equal(r.count, n);
    const frame = r.forJson();
    return frame.toString('utf8', frame.length - r.lineBytes);
  };
  for (const n of [1, 3, 40]) {
    const plain = lines(0, n);
    assert.deepEqual(
      plain.split('\n').map((l) => (JSON.parse(l) as { id: number }).id),
      Array.from({ length: n }, (_, i) => i + 1),
    );
    for (const expected of [1, 2, 3, 10, 4096]) assert.equal(lines(expected, n), plain, `${n} replies in an item made for ${expected}`);
  }
});

test('a publisher\'s frames are each read once: every publish of consecutive frames goes to the director once, in order', async () => {
  const { channels, targets, send, flushed, ws } = await publisherConnection();
  send(1, 5);
  send(6, 3);
  // A frame with a malformed line closes the connection without sending any of its publishes.
  send(9, 2);
  await flushed();
  assert.equal(channels.length, 10);
  assert.deepEqual(
    targets.map((t) => (t as unknown as { id: number }).id),
    Array.from({ length: 10 }, (_, i) => i + 1),
  );
  ws.emit('message', Buffer.from('{"id":11,"method":"publish","params":{"channel":"c","data":1}}\n{"id":12,'), false);
  await flushed();
  assert.equal(channels.length, 10, 'nothing of the malformed frame was sent');
  assert.equal(ws.closedWith, CloseCodes.BAD_REQUEST.code);
});
