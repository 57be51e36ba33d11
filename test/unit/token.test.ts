import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import { Authenticator } from '../../src/auth/authenticator.js';
import { signToken } from '../../src/auth/sign.js';
import { ErrorCodes, TidingsError } from '../../src/protocol/errors.js';

const secret = 'unit-test-secret-0123456789abcdef0123';
const auth = new Authenticator({ tokenSecret: secret, allowAnonymous: false, anonymousChannels: ['*'], maxLifetimeS: 86400 });
const key = new TextEncoder().encode(secret);

async function fails(token: string | undefined, a: Authenticator, code: number): Promise<void> {
  await assert.rejects(a.authenticate(token), (err: unknown) => err instanceof TidingsError && err.code === code);
}

test('a valid token yields the user, grants and expiry', async () => {
  const token = await signToken({ secret, user: 'alice', ttl: 60, subscribe: ['room1', 'chat.*'], publish: ['room1'] });
  const id = await auth.authenticate(token);
  assert.equal(id.user, 'alice');
  assert.deepEqual(id.subscribe, ['room1', 'chat.*']);
  assert.deepEqual(id.publish, ['room1']);
  assert.deepEqual(id.presence, ['room1', 'chat.*'], 'presence defaults to the subscribe grants');
  assert.ok(id.expires! > Date.now() / 1000);
});

test('expired, wrongly signed, malformed and alg-swapped tokens are refused', async () => {
  const expired = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(key);
  await fails(expired, auth, ErrorCodes.TOKEN_EXPIRED.code);
  const other = await signToken({ secret: 'another-secret-0123456789abcdef0123', user: 'a', ttl: 60 });
  await fails(other, auth, ErrorCodes.TOKEN_INVALID.code);
  await fails('not.a.jwt', auth, ErrorCodes.TOKEN_INVALID.code);
  const hs512 = await new SignJWT({}).setProtectedHeader({ alg: 'HS512' }).setSubject('a').sign(key);
  await fails(hs512, auth, ErrorCodes.TOKEN_INVALID.code);
  const noSub = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).sign(key);
  await fails(noSub, auth, ErrorCodes.TOKEN_INVALID.code);
  const badGrants = await new SignJWT({ grants: { subscribe: ['a b'] } }).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setExpirationTime('1h').sign(key);
  await fails(badGrants, auth, ErrorCodes.TOKEN_INVALID.code);
  const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"a"}').toString('base64url')}.`;
  await fails(unsigned, auth, ErrorCodes.TOKEN_INVALID.code);
});

test('no token: refused unless anonymous access is on, then subscribe-only', async () => {
  await fails(undefined, auth, ErrorCodes.TOKEN_INVALID.code);
  const anon = new Authenticator({ tokenSecret: null, allowAnonymous: true, anonymousChannels: ['public.*'], maxLifetimeS: 86400 });
  const id = await anon.authenticate(undefined);
  assert.equal(id.user, null);
  assert.deepEqual(id.subscribe, ['public.*']);
  assert.deepEqual(id.publish, []);
  await fails('x.y.z', anon, ErrorCodes.TOKEN_INVALID.code);
});

test('token_max_lifetime: a token must carry exp and serves at most that long after its iat', async () => {
  const now = 1_800_000_000;
  const capped = new Authenticator({ tokenSecret: secret, allowAnonymous: false, anonymousChannels: [], maxLifetimeS: 600, now: () => now });
  const sign = (claims: { iat?: number; exp?: number }): Promise<string> => {
    const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a');
    if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat);
    if (claims.exp !== undefined) jwt.setExpirationTime(claims.exp);
    return jwt.sign(key);
  };
  // jose checks exp against the real clock: give real-clock expiries far enough ahead.
  const far = Math.floor(Date.now() / 1000) + 10 * 365 * 86400;
  await fails(await sign({ iat: now }), capped, ErrorCodes.TOKEN_INVALID.code);
  await fails(await sign({}), capped, ErrorCodes.TOKEN_INVALID.code);
  assert.equal((await capped.authenticate(await sign({ iat: now - 100, exp: far }))).expires, now + 500, 'a long token is capped at iat + max');
  assert.equal((await capped.authenticate(await sign({ exp: far }))).expires, now + 600, 'without iat the cap counts from now');
  assert.equal((await capped.authenticate(await sign({ iat: now + 3000, exp: far }))).expires, now + 600, 'an iat in the future does not extend it');
  await fails(await sign({ iat: now - 601, exp: far }), capped, ErrorCodes.TOKEN_EXPIRED.code);
  const realNow = Math.floor(Date.now() / 1000);
  const short = await sign({ iat: realNow, exp: realNow + 60 });
  const real = new Authenticator({ tokenSecret: secret, allowAnonymous: false, anonymousChannels: [], maxLifetimeS: 600 });
  assert.equal((await real.authenticate(short)).expires, realNow + 60, 'a token shorter than the cap keeps its exp');
  const unlimited = new Authenticator({ tokenSecret: secret, allowAnonymous: false, anonymousChannels: [], maxLifetimeS: 0 });
  assert.equal((await unlimited.authenticate(await sign({ iat: now }))).expires, null, '0 accepts tokens without exp');
});

test('HS256 verification (hs256.ts): crit, a tampered payload or signature, bad claim types and nbf are refused; exp and nbf allow 5 s of skew', async () => {
  const now = Math.floor(Date.now() / 1000);
  const good = await new SignJWT({ grants: {} }).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setExpirationTime(now + 60).sign(key);
  assert.equal((await auth.authenticate(good)).user, 'a');
  const [h, p, s] = good.split('.') as [string, string, string];
  // Another claims set under the first token's signature.
  const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'root', exp: now + 60 })).toString('base64url')}.${s}`;
  await fails(forged, auth, ErrorCodes.TOKEN_INVALID.code);
  // The same signature bytes in a non-canonical spelling (padding, a changed unused bit), and one byte short.
  const last = s.at(-1)!;
  const sibling = 'AEIMQUYcgkosw048'.includes(last) ? String.fromCharCode(last.charCodeAt(0) + 1) : last;
  await fails(`${h}.${p}.${s.slice(0, -1)}${sibling}`, auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(`${h}.${p}.${s}=`, auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(`${h}.${p}.${s.slice(0, -2)}`, auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(`${h}.${p}.${s}.x`, auth, ErrorCodes.TOKEN_INVALID.code);
  const crit = await new SignJWT({}).setProtectedHeader({ alg: 'HS256', crit: ['exp'] }).setSubject('a').setExpirationTime(now + 60).sign(key).catch(() => null);
  // jose may refuse to sign an unknown crit: spell the header by hand then.
  const critToken = crit ?? (await handSigned({ alg: 'HS256', crit: ['x'], x: 1 }, { sub: 'a', exp: now + 60 }));
  await fails(critToken, auth, ErrorCodes.TOKEN_INVALID.code);
  // A header naming another algorithm, over a good HS256 signature.
  await fails(await handSigned({ alg: 'none' }, { sub: 'a', exp: now + 60 }), auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(await handSigned({ alg: 'HS384' }, { sub: 'a', exp: now + 60 }), auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(await handSigned({ alg: 'HS256' }, { sub: 'a', exp: String(now + 60) }), auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(await handSigned({ alg: 'HS256' }, { sub: 'a', exp: now + 60, iat: 'today' }), auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(await handSigned({ alg: 'HS256' }, { sub: 'a', exp: now + 60, nbf: now + 30 }), auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(await handSigned({ alg: 'HS256' }, ['not', 'an', 'object']), auth, ErrorCodes.TOKEN_INVALID.code);
  assert.equal((await auth.authenticate(await handSigned({ alg: 'HS256' }, { sub: 'a', exp: now + 60, nbf: now + 2 }))).user, 'a', 'nbf 2 s ahead is skew');
  // (token_max_lifetime counts from now: without it, an exp 2 s ago is still skew.)
  const uncapped = new Authenticator({ tokenSecret: secret, allowAnonymous: false, anonymousChannels: [], maxLifetimeS: 0 });
  assert.equal((await uncapped.authenticate(await handSigned({ alg: 'HS256' }, { sub: 'a', exp: now - 2 }))).user, 'a', 'exp 2 s ago is skew');
  await fails(await handSigned({ alg: 'HS256' }, { sub: 'a', exp: now - 30 }), auth, ErrorCodes.TOKEN_EXPIRED.code);
});

test('HS256 (hs256.ts): header and claims set must be canonical base64url of a JSON object, even under a good signature', async () => {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (v: string): string => Buffer.from(v).toString('base64url');
  const claims = b64(JSON.stringify({ sub: 'a', exp: now + 60 }));
  const header = b64('{"alg":"HS256"}');
  assert.equal((await auth.authenticate(rawSigned(`${header}.${claims}`))).user, 'a');
  // Padding, base64 (not base64url) characters, a length no base64 has, JSON that is not an object, no JSON at all.
  await fails(rawSigned(`${header}.${claims}==`), auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(rawSigned(`${header}.${claims.slice(0, 4)}+${claims.slice(5)}`), auth, ErrorCodes.TOKEN_INVALID.code);
  // A claims set whose base64url is 4n characters, with one more (Buffer would drop it and decode the same JSON).
  const whole = ['a', 'ab', 'abc', 'abcd'].map((sub) => b64(JSON.stringify({ sub, exp: now + 60 }))).find((c) => c.length % 4 === 0)!;
  assert.ok((await auth.authenticate(rawSigned(`${header}.${whole}`))).user);
  await fails(rawSigned(`${header}.${whole}A`), auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(rawSigned(`${header}=.${claims}`), auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(rawSigned(`${header}.${b64('"a"')}`), auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(rawSigned(`${header}.${b64('null')}`), auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(rawSigned(`${header}.${b64('{"sub":"a"')}`), auth, ErrorCodes.TOKEN_INVALID.code);
  await fails(rawSigned(`${b64('["HS256"]')}.${claims}`), auth, ErrorCodes.TOKEN_INVALID.code);
});

/** `input` (header.claims, as spelled) with the test secret's HS256 signature. */
function rawSigned(input: string): string {
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** A token signed with the test secret whatever its header says (jose checks what it signs). */
async function handSigned(header: object, claims: unknown): Promise<string> {
  const { createHmac } = await import('node:crypto');
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}
