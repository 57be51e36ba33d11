/** The `tidings` program: settings errors exit 2 with one line, help lists every setting, tokens and the config file work. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, serve, TOKEN_SECRET } from '../helpers/processes.js';
import { freePorts } from '../helpers/ports.js';
import { SETTINGS, envName, flagName } from '../../src/config/settings.js';
import { Authenticator } from '../../src/auth/authenticator.js';

test('a bad setting stops start-up with exit code 2 and one line naming it', async () => {
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['serve'], { TIDINGS_SERVER_PORT: 'abc' }, /^tidings: invalid setting server_port \(TIDINGS_SERVER_PORT\): must be an integer, got "abc"\n$/],
    [['serve', '--workers', '0'], {}, /^tidings: invalid setting workers \(--workers\): must be at least 1, got "0"\n$/],
    [['serve', '--forwarder'], {}, /^tidings: invalid setting director_subscriber_address .*required when forwarder_enabled is true \(--forwarder-enabled\)\n$/],
    [['serve'], { TIDINGS_LOG_LEVEL: 'chatty' }, /^tidings: invalid setting log_level/],
  ];
  for (const [args, env, pattern] of cases) {
    const r = await runCli(args, env);
    assert.equal(r.code, 2, `${args.join(' ')} ${JSON.stringify(env)}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
});

test('the config file is read, and env and flags override it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-cli-'));
  try {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ server_port: 'high' }));
    const r1 = await runCli(['serve', '--config', bad]);
    assert.equal(r1.code, 2);
    assert.match(r1.stderr, /server_port \(config file key "server_port"\)/);
    const notJson = join(dir, 'broken.json');
    writeFileSync(notJson, '{');
    const r2 = await runCli(['serve'], { TIDINGS_CONFIG: notJson });
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /invalid setting config \(TIDINGS_CONFIG\): .*not valid JSON/);

    // File says one port, the environment another, the flag a third: the flag wins.
    const [filePort, envPort, flagPort, sub, pub, cmd] = await freePorts(6);
    const cfg = join(dir, 'good.json');
    writeFileSync(cfg, JSON.stringify({ server_port: filePort, subscriber_address: `tcp://127.0.0.1:${sub}`, publisher_address: `tcp://127.0.0.1:${pub}`, command_address: `tcp://127.0.0.1:${cmd}`, log_level: 'debug' }));
    const p = serve('cli-precedence', { TIDINGS_CONFIG: cfg, TIDINGS_SERVER_PORT: String(envPort), TIDINGS_LOG_LEVEL: '' }, ['--server-port', String(flagPort)]);
    try {
      await p.waitFor(/"msg":"node ready"/);
      assert.equal((await fetch(`http://127.0.0.1:${flagPort}/healthz`)).status, 200);
      await assert.rejects(fetch(`http://127.0.0.1:${envPort}/healthz`));
      assert.match(p.text(), /"level":20/, 'log_level from the file applies (debug lines are written)');
    } finally {
      await p.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('serve --help documents every setting with its environment variable and default', async () => {
  const r = await runCli(['serve', '--help']);
  assert.equal(r.code, 0);
  const flat = r.stdout.replace(/\s+/g, ' ');
  for (const s of SETTINGS) {
    assert.ok(flat.includes(`--${flagName(s.name)}`), s.name);
    assert.ok(r.stdout.replace(/\s+/g, '').includes(envName(s.name)), envName(s.name));
  }
  assert.ok(flat.includes('[default: 4242]'));
});

test('tidings token signs a token the server accepts', async () => {
  const r = await runCli(['token', '--user', 'alice', '--subscribe', 'room1', 'chat.*', '--publish', 'room1', '--ttl', '60'], { TIDINGS_TOKEN_SECRET: TOKEN_SECRET });
  assert.equal(r.code, 0, r.stderr);
  const id = await new Authenticator({ tokenSecret: TOKEN_SECRET, allowAnonymous: false, anonymousChannels: [], maxLifetimeS: 86400 }).authenticate(r.stdout.trim());
  assert.equal(id.user, 'alice');
  assert.deepEqual(id.subscribe, ['room1', 'chat.*']);
  const weak = await runCli(['token', '--user', 'a'], { TIDINGS_TOKEN_SECRET: 'short' });
  assert.equal(weak.code, 2);
});
