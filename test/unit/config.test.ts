import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, redactConfig, resolveConfig } from '../../src/config/resolve.js';
import { SETTINGS, envName } from '../../src/config/settings.js';

test('defaults: a single node with no set-up', () => {
  const c = resolveConfig({});
  assert.equal(c.server_port, 4242);
  assert.equal(c.subscriber_address, 'tcp://127.0.0.1:4243');
  assert.equal(c.publisher_address, 'tcp://127.0.0.1:4244');
  assert.equal(c.command_address, 'tcp://127.0.0.1:4245');
  assert.equal(c.director_enabled, true);
  assert.equal(c.forwarder_enabled, false);
  assert.equal(c.edge_enabled, true);
  assert.equal(c.workers, 1);
  assert.ok(Object.isFrozen(c));
});

test('precedence: flag > env > file > default', () => {
  const file = { server_port: 1000, workers: 3, log_level: 'debug' };
  const env = { TIDINGS_SERVER_PORT: '2000', TIDINGS_WORKERS: '4' };
  const flags = { server_port: '3000' };
  const c = resolveConfig({ flags, env, file });
  assert.equal(c.server_port, 3000, 'flag wins');
  assert.equal(c.workers, 4, 'env beats file');
  assert.equal(c.log_level, 'debug', 'file beats default');
  assert.equal(c.ping_interval, 25, 'default');
});

test('every setting has an omnibus-style environment name', () => {
  for (const n of ['SERVER_HOST', 'SERVER_PORT', 'SERVER_BASE_URL', 'DIRECTOR_ENABLED', 'FORWARDER_ENABLED', 'SUBSCRIBER_ADDRESS', 'PUBLISHER_ADDRESS', 'COMMAND_ADDRESS', 'DIRECTOR_SUBSCRIBER_ADDRESS', 'DIRECTOR_PUBLISHER_ADDRESS', 'DIRECTOR_COMMAND_ADDRESS', 'WORKERS', 'SECRET', 'ADMIN_SECRET', 'TOKEN_SECRET', 'API_KEYS', 'ALLOW_POSTING_FROM', 'ALLOW_ANONYMOUS', 'LOG_LEVEL']) {
    assert.ok(SETTINGS.some((s) => envName(s.name) === `TIDINGS_${n}`), n);
  }
});

test('an empty environment variable counts as unset', () => {
  const c = resolveConfig({ env: { TIDINGS_LOG_LEVEL: '', TIDINGS_SERVER_PORT: '' }, file: { server_port: 5000 } });
  assert.equal(c.log_level, 'info');
  assert.equal(c.server_port, 5000);
});

test('values are coerced by type', () => {
  const c = resolveConfig({ env: { TIDINGS_ALLOW_ANONYMOUS: 'yes', TIDINGS_API_KEYS: 'a, b,,c', TIDINGS_PING_INTERVAL: '2.5' }, flags: { demo: true } });
  assert.equal(c.allow_anonymous, true);
  assert.deepEqual(c.api_keys, ['a', 'b', 'c']);
  assert.equal(c.ping_interval, 2.5);
  assert.equal(c.demo, true);
  assert.ok(Object.isFrozen(c.api_keys));
});

function rejects(sources: Parameters<typeof resolveConfig>[0], setting: string, pattern: RegExp): void {
  assert.throws(
    () => resolveConfig(sources),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, 'a ConfigError');
      assert.equal(err.setting, setting);
      assert.match(err.message, pattern);
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    },
  );
}

test('bad values name the setting and where it came from', () => {
  rejects({ env: { TIDINGS_SERVER_PORT: 'abc' } }, 'server_port', /server_port \(TIDINGS_SERVER_PORT\): must be an integer, got "abc"/);
  rejects({ flags: { server_port: '70000' } }, 'server_port', /--server-port.*at most 65535/);
  rejects({ file: { workers: 0 } }, 'workers', /config file key "workers".*at least 1/);
  rejects({ env: { TIDINGS_DIRECTOR_ENABLED: 'maybe' } }, 'director_enabled', /true or false/);
  rejects({ env: { TIDINGS_SUBSCRIBER_ADDRESS: 'localhost:4243' } }, 'subscriber_address', /ZeroMQ address/);
  rejects({ env: { TIDINGS_LOG_LEVEL: 'loud' } }, 'log_level', /one of/);
  rejects({ file: { no_such_thing: 1 } }, 'no_such_thing', /unknown setting/);
  rejects({ env: { TIDINGS_TOKEN_SECRET: 'short' } }, 'token_secret', /at least 32/);
  rejects({ env: { TIDINGS_FORWARDER_ENABLED: 'true' } }, 'director_subscriber_address', /required when forwarder_enabled/);
  rejects({ env: { TIDINGS_PING_INTERVAL: '30', TIDINGS_IDLE_TIMEOUT: '20' } }, 'idle_timeout', /greater than ping_interval/);
  rejects({ env: { TIDINGS_SERVER_BASE_URL: 'ws/' } }, 'server_base_url', /start with \//);
  rejects({ flags: { director_enabled: false, edge_enabled: false } }, 'edge_enabled', /no role enabled/);
});

test('secrets are redacted for logs', () => {
  const c = resolveConfig({ env: { TIDINGS_SECRET: 's3cret', TIDINGS_API_KEYS: 'k1' } });
  const r = redactConfig(c);
  assert.equal(r['secret'], '[redacted]');
  assert.equal(r['api_keys'], '[redacted]');
  assert.equal(r['admin_secret'], null);
  assert.ok(!JSON.stringify(r).includes('s3cret'));
});
