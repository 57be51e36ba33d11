/**
 * The pure parts of the omnibus and Seth-Pusher endpoints, SockJS worker
 * affinity, the HTTP authenticator's answer parsing, the SDK's fallback URL
 * and the settings that guard the compatibility endpoints.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientMessageData, commandReply, omnibusText, parseOmnibusFrame } from '../../src/omnibus/wire.js';
import { UserAuthenticator, NoopAuthenticator, omnibusUserToken } from '../../src/omnibus/authenticators.js';
import { notice, sethText } from '../../src/sethpusher/connection.js';
import { fnv1a, ownerOf } from '../../src/edge/siblings.js';
import { eachFramePayload } from '../../src/sockjs/native.js';
import { textFrame } from '../../src/edge/frames.js';
import { parseAuthAnswer } from '../../src/auth/http-authenticator.js';
import { fallbackUrl } from '../../src/client/fallback.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { encodeMessagePush, encodeDirectPush } from '../../src/director/push-encoding.js';
import { ErrorCodes, TidingsError } from '../../src/protocol/errors.js';

const code = (fn: () => unknown): number => {
  try {
    fn();
  } catch (err) {
    return (err as TidingsError).code;
  }
  return 0;
};

test('omnibus frames: commands split at the first colon, channel messages at theirs', () => {
  assert.deepEqual(parseOmnibusFrame('!authenticate:abc:1:tok'), { kind: 'command', command: 'authenticate', args: 'abc:1:tok' });
  assert.deepEqual(parseOmnibusFrame('!subscribe:news'), { kind: 'command', command: 'subscribe', args: 'news' });
  assert.deepEqual(parseOmnibusFrame('!ping'), { kind: 'command', command: 'ping', args: '' });
  assert.deepEqual(parseOmnibusFrame('news:{"type":"x","payload":{"a":"b:c"}}'), { kind: 'message', channel: 'news', json: '{"type":"x","payload":{"a":"b:c"}}' });
  assert.equal(code(() => parseOmnibusFrame('no colon')), ErrorCodes.BAD_FRAME.code);
  assert.equal(code(() => parseOmnibusFrame(':{}')), ErrorCodes.BAD_FRAME.code);
  assert.equal(code(() => parseOmnibusFrame('!:x')), ErrorCodes.BAD_FRAME.code);
  assert.equal(commandReply('subscribe', true, { channel: 'news' }), '!subscribe:{"type":"subscribe","success":true,"payload":{"channel":"news"}}');
  assert.equal(commandReply('foo', false, null), '!foo:{"type":"foo","success":false,"payload":null}');
});

test("an omnibus client's message is published with its own identifier as sender", () => {
  assert.deepEqual(clientMessageData('{"type":"chat","sender":"someone-else","payload":{"t":1}}', 'me'), { type: 'chat', sender: 'me', payload: { t: 1 } });
  assert.deepEqual(Object.keys(clientMessageData('{"payload":1,"type":"chat"}', 'me')), ['type', 'sender', 'payload']);
  assert.deepEqual(clientMessageData('{"type":"chat"}', 'me'), { type: 'chat', sender: 'me', payload: null });
  for (const bad of ['[1]', '"x"', '{"payload":1}', 'nope']) assert.equal(code(() => clientMessageData(bad, 'me')), ErrorCodes.BAD_FRAME.code, bad);
});

test('pushes as omnibus clients see them: omnibus-shaped data verbatim, anything else wrapped, other pushes not at all', () => {
  const py = '{"sender": "backend-worker", "type": "update", "payload": {"n": 1}}';
  assert.equal(omnibusText(encodeMessagePush('news', 3, 'e1', 'backend-worker', 1, py).toString()), `news:${py}`);
  assert.equal(omnibusText(encodeMessagePush('news', 4, 'e1', 'alice', 1, '{"text":"hi"}').toString()), 'news:{"type":"message","sender":"alice","payload":{"text":"hi"}}');
  assert.equal(omnibusText(encodeMessagePush('news', 5, 'e1', null, 1, '[1,2]').toString()), 'news:{"type":"message","sender":null,"payload":[1,2]}');
  // A data key inside the payload does not confuse the verbatim slice.
  const tricky = '{"type":"t","payload":{"x":",\\"data\\":"},"data":1}';
  assert.equal(omnibusText(encodeMessagePush('c', 6, 'e1', 'x', 1, tricky).toString()), `c:${tricky}`);
  assert.equal(omnibusText(encodeDirectPush('bob', null, 1, '{"a":1}').toString()), null);
  assert.equal(omnibusText('{"type":"join","channel":"news","user":"u"}'), null);
});

test("omnibus' user authenticator: the token is the hex HMAC-SHA1 of the user id keyed by SECRET_KEY", async () => {
  // Computed with Python's hmac.new(b'django-insecure-test-secret-key', b'42', hashlib.sha1).hexdigest().
  assert.equal(omnibusUserToken('django-insecure-test-secret-key', '42'), 'a1d72958497fa734f7991a93bab73b071e25876b');
  const auth = new UserAuthenticator('django-insecure-test-secret-key');
  const ok = await auth.authenticate('id-1:42:a1d72958497fa734f7991a93bab73b071e25876b');
  assert.deepEqual([ok.identifier, ok.user], ['id-1', '42']);
  await ok.canSubscribe('news');
  await assert.rejects(ok.canPublish('news'), (e: TidingsError) => e.code === ErrorCodes.PERMISSION_DENIED.code);
  await assert.rejects(auth.authenticate('id-1:42:a1d72958497fa734f7991a93bab73b071e25876c'), (e: TidingsError) => e.code === ErrorCodes.AUTH_DENIED.code);
  await assert.rejects(auth.authenticate('id-1:43:a1d72958497fa734f7991a93bab73b071e25876b'), (e: TidingsError) => e.code === ErrorCodes.AUTH_DENIED.code);
  await assert.rejects(auth.authenticate('id-1:42'), (e: TidingsError) => e.code === ErrorCodes.AUTH_DENIED.code);
  const anon = await auth.authenticate('id-2');
  assert.equal(anon.user, null);
  await assert.rejects(anon.canSubscribe('news'), (e: TidingsError) => e.code === ErrorCodes.NOT_AUTHENTICATED.code);
  const noop = await new NoopAuthenticator().authenticate('id-3:whatever');
  assert.equal(noop.identifier, 'id-3');
  await noop.canPublish('news');
});

test('Seth-Pusher: clients get the data as JSON text; notices have its wording', () => {
  assert.equal(sethText(encodeMessagePush('news', 1, 'e', null, 1, '{"my": "data"}').toString()), '{"my":"data"}');
  assert.equal(sethText(encodeDirectPush('bob', 'ops', 1, '{"to":"bob"}').toString()), '{"to":"bob"}');
  assert.equal(sethText('{"type":"leave","channel":"c","user":"u"}'), null);
  assert.deepEqual(notice('connect', 'bob'), { body: 'User: bob connected.', target_id: 'bob', type: 'connect' });
  assert.deepEqual(notice('disconnect', 'bob'), { body: 'User: bob disconnected.', target_id: 'bob', type: 'disconnect' });
  assert.deepEqual(notice('subscribe', 'bob', 'c'), { body: 'User: bob subscribed to c', target_id: 'bob', type: 'subscribe' });
  assert.deepEqual(notice('unsubscribe', 'bob', 'c'), { body: 'User: bob unsubscribed from c', target_id: 'bob', type: 'unsubscribe' });
});

test('SockJS sessions are owned by one worker, the same for every worker, spread evenly', () => {
  assert.equal(fnv1a(''), 0x811c9dc5);
  assert.equal(fnv1a('a'), 0xe40c292c); // the FNV-1a reference value
  const counts = [0, 0, 0];
  for (let i = 0; i < 3000; i++) counts[ownerOf(Math.random().toString(36).slice(2, 10), 3)]!++;
  for (const c of counts) assert.ok(c > 800 && c < 1200, `even spread: ${counts}`);
  assert.equal(ownerOf('anything', 1), 0);
  assert.equal(ownerOf('abc', 4), ownerOf('abc', 4));
});

test('the native protocol over SockJS: payloads are read back from server websocket frames', () => {
  const small = textFrame(Buffer.from('{"a":1}'));
  const medium = textFrame(Buffer.from('x'.repeat(300)));
  const large = textFrame(Buffer.from('y'.repeat(70_000)));
  const seen: string[] = [];
  eachFramePayload(Buffer.concat([small, medium, large]), (op, p) => seen.push(`${op}:${p.length}:${p.toString().slice(0, 3)}`));
  assert.deepEqual(seen, ['1:7:{"a', '1:300:xxx', '1:70000:yyy']);
});

test("the web app's answer: the documented shape, or auth_unavailable", () => {
  assert.deepEqual(parseAuthAnswer(200, '{"allow":true,"user":"42","ttl":5}'), { answer: { allow: true, user: '42', reason: null }, ttl: 5 });
  assert.deepEqual(parseAuthAnswer(200, '{"allow":false,"reason":"no"}').answer, { allow: false, user: null, reason: 'no' });
  for (const [status, body] of [
    [500, '{"allow":true}'],
    [200, 'not json'],
    [200, '[true]'],
    [200, '{"allow":"yes"}'],
    [200, '{"allow":true,"user":5}'],
    [200, '{"allow":true,"ttl":-1}'],
  ] as const) {
    assert.equal(code(() => parseAuthAnswer(status, body)), ErrorCodes.AUTH_UNAVAILABLE.code, `${status} ${body}`);
  }
});

test("the SDK's fallback URL of an edge URL", () => {
  assert.equal(fallbackUrl('ws://h:4242/ws'), 'http://h:4242/sockjs');
  assert.equal(fallbackUrl('wss://h/base/ws?token=x'), 'https://h/base/sockjs');
});

test('settings refuse a compatibility endpoint that could not prove who a client is', () => {
  const fails = (env: Record<string, string>, setting: string) =>
    assert.throws(() => resolveConfig({ env }), (e: Error & { setting?: string }) => e.setting === setting, JSON.stringify(env));
  fails({ TIDINGS_OMNIBUS_AUTHENTICATOR: 'noop' }, 'omnibus_authenticator');
  fails({ TIDINGS_OMNIBUS_AUTHENTICATOR: 'user' }, 'django_secret_key');
  fails({ TIDINGS_OMNIBUS_AUTHENTICATOR: 'http' }, 'auth_url');
  fails({ TIDINGS_OMNIBUS_AUTHENTICATOR: 'ldap' }, 'omnibus_authenticator');
  fails({ TIDINGS_AUTH_NATIVE: 'true' }, 'auth_url');
  fails({ TIDINGS_AUTH_URL: 'ftp://x' }, 'auth_url');
  fails({ TIDINGS_OMNIBUS_BASE_URL: 'ec' }, 'omnibus_base_url');
  const ok = resolveConfig({ env: { TIDINGS_OMNIBUS_AUTHENTICATOR: 'noop', TIDINGS_ALLOW_ANONYMOUS: 'true' } });
  assert.equal(ok.omnibus_base_url, '/ec');
});

test('the HTTP authenticator: answers cached per question in a bounded LRU map, identical questions share a request', async () => {
  const { createServer } = await import('node:http');
  const { HttpAuthenticator } = await import('../../src/auth/http-authenticator.js');
  let requests = 0;
  const srv = createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => setTimeout(() => res.end('{"allow":true,"user":"u"}'), 20));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  try {
    const port = (srv.address() as { port: number }).port;
    const auth = new HttpAuthenticator({ url: `http://127.0.0.1:${port}/`, timeoutMs: 2000, cacheTtlMs: 60_000, cacheSize: 2, secret: null });
    const q = (channel: string) => ({ action: 'subscribe' as const, protocol: 'native' as const, channel });
    await Promise.all([auth.ask(q('a')), auth.ask(q('a')), auth.ask(q('a'))]);
    assert.equal(requests, 1, 'three identical questions at once: one request');
    await auth.ask(q('a'));
    assert.equal(requests, 1, 'answered from the cache');
    await auth.ask(q('b'));
    await auth.ask(q('c')); // a third question evicts the least recently used (a)
    assert.equal(auth.cacheSize, 2);
    await auth.ask(q('c'));
    assert.equal(requests, 3);
    await auth.ask(q('a'));
    assert.equal(requests, 4, 'a was evicted and asked again');
  } finally {
    srv.close();
  }
});
