/** WAMP messages, codec, payload mapping, IDs and the director's procedure registry, fed objects and bytes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from '@msgpack/msgpack';
import { Msg, ProtocolViolation, parseClientMessage, uriProblem, isReservedUri, withPayload } from '../../src/wamp/messages.js';
import { decodeMessage, encodeMessage, toJsonForm, toMsgpackForm } from '../../src/wamp/codec.js';
import { dataFromPublish, eventPayload } from '../../src/wamp/payload-map.js';
import { publicationId, randomId } from '../../src/wamp/ids.js';
import { errorParts } from '../../src/wamp/error-map.js';
import { ProcedureRegistry } from '../../src/wamp/registry.js';
import { ErrorCodes, TidingsError } from '../../src/protocol/errors.js';

test('client messages: valid shapes parse, everything else is a protocol violation', () => {
  assert.deepEqual(parseClientMessage([1, 'realm1', { roles: {} }]), { type: Msg.HELLO, realm: 'realm1', details: { roles: {} } });
  assert.deepEqual(parseClientMessage([16, 7, {}, 'com.t', [1], { a: 2 }]), { type: Msg.PUBLISH, request: 7, options: {}, topic: 'com.t', args: [1], kwargs: { a: 2 } });
  assert.deepEqual(parseClientMessage([70, 3, {}]), { type: Msg.YIELD, request: 3, options: {} });
  assert.equal(parseClientMessage([8, 68, 2 ** 53, {}, 'com.err']).type, Msg.ERROR);
  const bad: unknown[] = [
    [],
    {},
    'x',
    [999],
    ['1', 'realm1', {}],
    [1, 'realm1'],
    [1, 5, {}],
    [1, 'realm1', []],
    [16, 0, {}, 'com.t'], // IDs start at 1
    [16, 2 ** 53 + 2, {}, 'com.t'],
    [16, 1.5, {}, 'com.t'],
    [16, 1, {}, 'com.t', { not: 'a list' }],
    [16, 1, {}, 'com.t', [], []],
    [16, 1, {}, 'com.t', [], {}, 'extra'],
    [2, 1, {}], // WELCOME is the router's
    [36, 1, 2, {}], // EVENT too
    [32, 1, null, 'com.t'],
  ];
  for (const b of bad) assert.throws(() => parseClientMessage(b), ProtocolViolation, JSON.stringify(b));
});

test('URIs: loose rules, wamp. reserved; empty payloads left out of messages', () => {
  for (const ok of ['com.example.topic', 'a', 'Chat_Room-1.x:y']) assert.equal(uriProblem(ok), undefined, ok);
  for (const bad of ['', 'a..b', '.a', 'a.', 'a b', 'a#b']) assert.ok(uriProblem(bad), bad);
  assert.ok(isReservedUri('wamp.session.on_join'));
  assert.ok(!isReservedUri('wampx.y'));
  assert.deepEqual(withPayload([50, 1, {}], [], {}), [50, 1, {}]);
  assert.deepEqual(withPayload([50, 1, {}], [1], undefined), [50, 1, {}, [1]]);
  assert.deepEqual(withPayload([50, 1, {}], undefined, { a: 1 }), [50, 1, {}, [], { a: 1 }]);
});

test('binary: MessagePack bytes become the JSON form\'s \\0-base64 strings and back', () => {
  const bytes = Uint8Array.from([0x10, 0xe3, 0xff, 0x90, 0x53, 0x07, 0x5c, 0x52, 0x6f, 0x5f, 0xc0, 0x6d, 0x4f, 0xe3, 0x7c, 0xdb]);
  // The spec's own example.
  assert.equal(toJsonForm(bytes), '\u0000EOP/kFMHXFJvX8BtT+N82w==');
  const msg = [16, 1, {}, 'com.bin', [bytes, 'text'], { b: bytes }];
  const decoded = decodeMessage('msgpack', encode(msg), true) as unknown[];
  assert.deepEqual(decoded, [16, 1, {}, 'com.bin', ['\u0000EOP/kFMHXFJvX8BtT+N82w==', 'text'], { b: '\u0000EOP/kFMHXFJvX8BtT+N82w==' }]);
  const back = toMsgpackForm(decoded) as unknown[];
  assert.deepEqual((back[4] as unknown[])[0], bytes);
  assert.equal((back[4] as unknown[])[1], 'text');
  // JSON peers keep the string form as it is.
  assert.equal(encodeMessage('json', decoded), JSON.stringify(decoded));
  // Integers beyond 32 bits (IDs) decode as numbers; beyond 2^53 they are refused.
  assert.deepEqual(decodeMessage('msgpack', encode([16, 2 ** 53, {}, 'com.x']), true), [16, 2 ** 53, {}, 'com.x']);
  assert.throws(() => decodeMessage('msgpack', encode([16, BigInt(2) ** BigInt(60), {}, 'x'], { useBigInt64: true }), true), ProtocolViolation);
  // Extension types (a timestamp) and text frames on msgpack, binary frames on json: violations.
  assert.throws(() => decodeMessage('msgpack', encode([16, 1, {}, 'x', [new Date()]]), true), ProtocolViolation);
  assert.throws(() => decodeMessage('msgpack', encode([1]), false), ProtocolViolation);
  assert.throws(() => decodeMessage('json', new TextEncoder().encode('[1]'), true), ProtocolViolation);
  assert.throws(() => decodeMessage('json', new TextEncoder().encode('[1,'), false), ProtocolViolation);
});

test('nesting: a message deeper than the payload limit plus its envelope is refused before anything reads it', () => {
  let ok: unknown = 1;
  for (let i = 0; i < 34; i++) ok = [ok];
  assert.doesNotThrow(() => decodeMessage('json', new TextEncoder().encode(JSON.stringify([16, 1, {}, 't', ok])), false));
  let deep: unknown = 1;
  for (let i = 0; i < 40; i++) deep = [deep];
  assert.throws(() => decodeMessage('json', new TextEncoder().encode(JSON.stringify([16, 1, {}, 't', deep])), false), /nests deeper/);
  assert.throws(() => decodeMessage('msgpack', encode([16, 1, {}, 't', deep]), true), /nests deeper/);
});

test('args/kwargs <-> channel data: one argument is the data, anything else the envelope; round trips are exact', () => {
  assert.deepEqual(dataFromPublish(['hi'], undefined), 'hi');
  assert.deepEqual(dataFromPublish([{ text: 'x' }], {}), { text: 'x' });
  assert.deepEqual(dataFromPublish(undefined, undefined), { args: [], kwargs: {} });
  assert.deepEqual(dataFromPublish([1, 2], { k: 'v' }), { args: [1, 2], kwargs: { k: 'v' } });
  const lookalike = { args: [1], kwargs: { a: 1 } };
  assert.deepEqual(dataFromPublish([lookalike], undefined), { args: [lookalike], kwargs: {} }, 'an argument that looks like the envelope is wrapped');
  for (const [args, kwargs] of [[['hi'], undefined], [[1, 2], { k: 'v' }], [[lookalike], undefined], [[null], undefined]] as Array<[unknown[], Record<string, unknown> | undefined]>) {
    const back = eventPayload(dataFromPublish(args, kwargs));
    assert.deepEqual(back.args, args);
    assert.deepEqual(back.kwargs ?? {}, kwargs ?? {});
  }
  assert.deepEqual(eventPayload({ text: 'native' }), { args: [{ text: 'native' }] });
  assert.deepEqual(eventPayload({ args: ['a'], kwargs: { b: 1 }, extra: true }), { args: [{ args: ['a'], kwargs: { b: 1 }, extra: true }] });
});

test('IDs: random ones in [1, 2^53]; a publication ID is the same wherever it is computed', () => {
  for (let i = 0; i < 1000; i++) {
    const id = randomId();
    assert.ok(Number.isSafeInteger(id) || id === 2 ** 53);
    assert.ok(id >= 1 && id <= 2 ** 53);
  }
  assert.equal(publicationId('com.t', 'e1', 5), publicationId('com.t', 'e1', 5));
  const seen = new Set<number>();
  for (let i = 1; i <= 5000; i++) seen.add(publicationId('com.t', 'e1', i));
  seen.add(publicationId('com.t', 'e2', 1));
  seen.add(publicationId('com.u', 'e1', 1));
  assert.equal(seen.size, 5002, 'no collisions among neighbours');
});

test('errors map to standard URIs with the Tidings code as keyword arguments', () => {
  assert.deepEqual(errorParts(new TidingsError(ErrorCodes.WAMP_NO_SUCH_PROCEDURE, 'x')).uri, 'wamp.error.no_such_procedure');
  assert.equal(errorParts(new TidingsError(ErrorCodes.PERMISSION_DENIED)).uri, 'wamp.error.not_authorized');
  const deep = errorParts(new TidingsError(ErrorCodes.PAYLOAD_TOO_DEEP));
  assert.equal(deep.uri, 'wamp.error.invalid_argument');
  assert.deepEqual(deep.kwargs, { code: 126, name: 'payload_too_deep' });
  assert.equal(errorParts(new TidingsError(ErrorCodes.INTERNAL)).uri, 'tidings.error.internal');
});

function registry(maxInvocations = 10) {
  const sent: Array<{ edge: string; body: Record<string, unknown> }> = [];
  const r = new ProcedureRegistry({ maxRegistrations: 3, maxInvocations, sendToEdge: (edge, body) => sent.push({ edge, body }) });
  return { r, sent };
}

const callee = { instance: 'i1', session: 11 };
const caller = { instance: 'i2', session: 22 };

test('registry: one callee per procedure, unregister by its owner only, bounded', () => {
  const { r } = registry();
  const reg = r.register('com.a', 'node1/e0', 'i1', 11);
  assert.throws(() => r.register('com.a', 'node2/e0', 'i9', 99), (e: TidingsError) => e.code === 191);
  assert.throws(() => r.unregister(caller, reg.id), (e: TidingsError) => e.code === 192, 'another session may not unregister it');
  r.unregister(callee, reg.id);
  assert.throws(() => r.unregister(callee, reg.id), (e: TidingsError) => e.code === 192);
  r.register('com.a', 'e', 'i1', 11);
  r.register('com.b', 'e', 'i1', 11);
  r.register('com.c', 'e', 'i1', 11);
  assert.throws(() => r.register('com.d', 'e', 'i1', 11), (e: TidingsError) => e.code === 108);
});

test('registry: a call goes down to the callee\'s edge and settles with its answer, once', async () => {
  const { r, sent } = registry();
  r.register('com.add', 'node1/e0', 'i1', 11);
  await assert.rejects(r.call('com.none', caller, { callerAuthid: 'bob' }, 1000), (e: TidingsError) => e.code === 190);
  const p = r.call('com.add', caller, { args: [1, 2], callerAuthid: 'bob' }, 1000);
  assert.equal(sent.length, 1);
  assert.equal(sent[0]!.edge, 'node1/e0');
  assert.deepEqual({ ...sent[0]!.body, invocation: 0 }, { op: 'wamp_invocation', session: 11, invocation: 0, registration: r.lookup('com.add')!.id, procedure: 'com.add', caller_authid: 'bob', args: [1, 2], kwargs: undefined });
  const inv = sent[0]!.body['invocation'] as number;
  assert.equal(r.answer(caller, inv, { args: [0] }), false, 'only the callee answers');
  assert.equal(r.answer(callee, inv, { args: [3] }), true);
  assert.deepEqual(await p, { args: [3] });
  assert.equal(r.answer(callee, inv, { args: [4] }), false, 'a second answer is discarded');
  assert.equal(r.invocationCount, 0);
});

test('registry: callee gone (session or node) cancels its calls; timeouts; the in-flight limit', async () => {
  const { r, sent } = registry(2);
  r.register('com.slow', 'node1/e0', 'i1', 11);
  const a = r.call('com.slow', caller, { callerAuthid: null }, 10_000);
  r.sessionClosed(callee);
  await assert.rejects(a, (e: TidingsError) => e.code === 193);
  assert.equal(r.lookup('com.slow'), undefined, 'its registration went with it');

  r.register('com.slow', 'node1/e0', 'i1', 12);
  const b = r.call('com.slow', caller, { callerAuthid: null }, 10_000);
  assert.equal(r.instancesGone(['i1']), 1);
  await assert.rejects(b, (e: TidingsError) => e.code === 193);

  r.register('com.slow', 'node2/e0', 'i3', 13);
  sent.length = 0;
  const c = r.call('com.slow', caller, { callerAuthid: null }, 30);
  await assert.rejects(c, (e: TidingsError) => e.code === 194);
  assert.equal(sent.at(-1)!.body['op'], 'wamp_interrupt', 'the callee\'s edge is told (and interrupts a callee that can take it)');
  assert.equal(sent.at(-1)!.body['reason'], 'wamp.error.timeout');

  const d = r.call('com.slow', caller, { callerAuthid: null }, 10_000);
  const e = r.call('com.slow', caller, { callerAuthid: null }, 10_000);
  await assert.rejects(r.call('com.slow', caller, { callerAuthid: null }, 10_000), (err: TidingsError) => err.code === 108);
  // The caller leaves: its calls are given up and the callee interrupted.
  sent.length = 0;
  r.sessionClosed(caller);
  await assert.rejects(d, (err: TidingsError) => err.code === 193);
  await assert.rejects(e, (err: TidingsError) => err.code === 193);
  assert.equal(sent.filter((s) => s.body['op'] === 'wamp_interrupt').length, 2);
  assert.equal(r.invocationCount, 0);
  r.clear();
});

test('registry: an edge\'s list restores what a new director does not know, and revokes what another session took', async () => {
  const { r, sent } = registry();
  // A new director: the edge's registrations come back with their IDs and are callable.
  assert.deepEqual(r.sync('node1/e0', 'i1', [{ registration: 77, procedure: 'com.a', session: 11 }]), []);
  assert.equal(r.lookup('com.a')!.id, 77);
  const p = r.call('com.a', caller, { callerAuthid: null }, 1000);
  assert.equal(sent.at(-1)!.edge, 'node1/e0');
  r.answer(callee, sent.at(-1)!.body['invocation'] as number, { args: ['ok'] });
  assert.deepEqual(await p, { args: ['ok'] });
  // Known already: nothing changes. Another session took the procedure meanwhile: revoked.
  assert.deepEqual(r.sync('node1/e0', 'i1', [{ registration: 77, procedure: 'com.a', session: 11 }]), []);
  const other = r.register('com.b', 'node2/e0', 'i2', 22);
  assert.deepEqual(r.sync('node1/e0', 'i1', [{ registration: 78, procedure: 'com.b', session: 11 }]), [78]);
  assert.equal(r.lookup('com.b'), other);
  assert.equal(r.registrationCount, 2);
});

test('event gate: events wait for SUBSCRIBED; own publications are skipped even when replies come out of order', async () => {
  const { EventGate } = await import('../../src/wamp/event-gate.js');
  const { SharedPush } = await import('../../src/edge/frames.js');
  const push = (offset: number, channel = 'c') => new SharedPush(Buffer.from('{}'), channel, offset);
  const g = new EventGate();
  // A SUBSCRIBE in progress holds the channel; other channels pass.
  g.hold('c');
  assert.equal(g.offer(push(1)), 'held');
  assert.equal(g.offer(push(1, 'd')), 'send');
  // Two exclude_me publishes in flight (holds 2 and 3); their replies come 4 then 3.
  g.hold('c');
  g.hold('c');
  for (const o of [2, 3, 4, 5]) assert.equal(g.offer(push(o)), 'held');
  assert.deepEqual(g.unhold('c'), [], 'still held by the publishes');
  g.own('c', 4);
  assert.deepEqual(g.unhold('c'), []);
  g.own('c', 3);
  assert.deepEqual(g.unhold('c').map((p) => p.offset), [1, 2, 5], 'in order, without the own publications 3 and 4');
  assert.equal(g.offer(push(6)), 'send');
  assert.equal(g.size, 0, 'nothing left behind');
  // An own publication whose message never comes (unsubscribed meanwhile) is forgotten.
  g.hold('c');
  g.own('c', 9);
  assert.deepEqual(g.unhold('c'), []);
  g.forget('c');
  assert.equal(g.size, 0);
  assert.equal(g.offer(push(9)), 'send');
});

test('registry: an INVOCATION waits for the callee\'s edge to be reachable (a restarted director), within a bound', async () => {
  const sent: Array<{ edge: string; body: Record<string, unknown> }> = [];
  let reachable = false;
  const r = new ProcedureRegistry({ maxRegistrations: 10, maxInvocations: 10, sendToEdge: (edge, body) => sent.push({ edge, body }), reachable: () => reachable });
  r.register('com.a', 'node1/e0', 'i1', 11);
  const p = r.call('com.a', caller, { callerAuthid: null }, 10_000);
  await new Promise((res) => setTimeout(res, 60));
  assert.equal(sent.length, 0, 'not sent where it would be dropped');
  reachable = true;
  await new Promise((res) => setTimeout(res, 60));
  assert.equal(sent.length, 1, 'sent once the edge is reachable');
  r.answer(callee, sent[0]!.body['invocation'] as number, { args: [1] });
  assert.deepEqual(await p, { args: [1] });
  reachable = false;
  const started = Date.now();
  await assert.rejects(r.call('com.a', caller, { callerAuthid: null }, 200), (e: TidingsError) => e.code === 113);
  assert.ok(Date.now() - started < 1000, 'bounded by the call timeout');
  assert.equal(r.invocationCount, 0);
});
