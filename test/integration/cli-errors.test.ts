/**
 * Every bad value of every setting and option of the `tidings` program: exit
 * code 2 and exactly one line on stderr that names the option, or the setting
 * and where its value came from (flag, environment variable, config file).
 * Never a stack trace, never the help.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/processes.js';

type Case = [args: string[], env: Record<string, string>, stderr: RegExp];

const dir = mkdtempSync(join(tmpdir(), 'tidings-cli-errors-'));
const file = (name: string, content: string): string => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};
const badPortFile = file('port.json', JSON.stringify({ server_port: 'high' }));
const unknownKeyFile = file('unknown.json', JSON.stringify({ server_prot: 4242 }));
const devSecretFile = file('dev.json', JSON.stringify({ api_keys: ['dev-only-api-key'] }));

const CASES: Case[] = [
  // serve: every kind of setting, from each source
  [['serve', '--director-enabled', 'maybe'], {}, /^tidings: invalid setting director_enabled \(--director-enabled\): must be true or false, got "maybe"$/],
  [['serve', '--director', 'maybe'], {}, /^tidings: invalid setting director_enabled \(--director-enabled\): must be true or false/],
  [['serve'], { TIDINGS_EDGE_ENABLED: 'perhaps' }, /^tidings: invalid setting edge_enabled \(TIDINGS_EDGE_ENABLED\): must be true or false/],
  [['serve', '--server-port', 'abc'], {}, /^tidings: invalid setting server_port \(--server-port\): must be an integer, got "abc"$/],
  [['serve', '--server-port'], {}, /^tidings: invalid setting server_port \(--server-port\): must be an integer/],
  [['serve'], { TIDINGS_WORKERS: '1.5' }, /^tidings: invalid setting workers \(TIDINGS_WORKERS\): must be an integer, got "1.5"$/],
  [['serve', '--config', badPortFile], {}, /^tidings: invalid setting server_port \(config file key "server_port"\): must be an integer, got "high"$/],
  [['serve'], { TIDINGS_CONFIG: unknownKeyFile }, /^tidings: invalid setting server_prot \(config file key "server_prot"\): unknown setting$/],
  [['serve', '--config', join(dir, 'missing.json')], {}, /^tidings: invalid setting config \(--config\): cannot read .*missing\.json/],
  [['serve', '--ping-interval', '-1'], {}, /^tidings: invalid setting ping_interval \(--ping-interval\): must be at least 1, got "-1"$/],
  [['serve', '--subscriber-address', 'localhost:4243'], {}, /^tidings: invalid setting subscriber_address \(--subscriber-address\): must be a ZeroMQ address/],
  [['serve'], { TIDINGS_LOG_LEVEL: 'loud' }, /^tidings: invalid setting log_level \(TIDINGS_LOG_LEVEL\): must be one of fatal/],
  [['serve', '--log-format', 'xml'], {}, /^tidings: invalid setting log_format \(--log-format\): must be one of auto, json, pretty, got "xml"$/],
  [['serve', '--token-secret', 'short'], {}, /^tidings: invalid setting token_secret \(--token-secret\): must be at least 32 characters/],
  [['serve'], { TIDINGS_TOKEN_SECRET: 'short' }, /^tidings: invalid setting token_secret \(TIDINGS_TOKEN_SECRET\): must be at least 32 characters/],
  [['serve', '--ping-interval', '30', '--idle-timeout', '20'], {}, /^tidings: invalid setting idle_timeout \(--idle-timeout\): must be greater than ping_interval/],
  [['serve', '--forwarder'], {}, /^tidings: invalid setting director_subscriber_address .*required when forwarder_enabled is true \(--forwarder-enabled\)$/],
  [['serve', '--tls-cert-file', '/nonexistent.pem'], {}, /^tidings: invalid setting tls_key_file: tls_cert_file and tls_key_file go together \(tls_cert_file is set by --tls-cert-file\)$/],
  [['serve', '--config', devSecretFile], {}, /^tidings: invalid setting api_keys \(config file key "api_keys"\): this is a development value published in the repository/],
  [['serve'], { TIDINGS_TOKEN_SECRET: 'dev-only-token-secret-not-for-production' }, /^tidings: invalid setting token_secret \(TIDINGS_TOKEN_SECRET\): this is a development value/],
  [['serve', '--bogus'], {}, /^tidings: unknown option or value bogus \(tidings serve --help lists the options\)$/],
  [['serve', 'extra'], {}, /^tidings: unknown option or value extra/],
  [['frobnicate'], {}, /^tidings: unknown command frobnicate: give one of serve, publish, token, ticker, health, keygen$/],
  [[], {}, /^tidings: give a command: serve, publish, token, ticker, health, keygen/],
  // token
  [['token', '--user', 'a', '--ttl', 'abc', '--development'], {}, /^tidings: --ttl must be a whole number from 1 to 31536000, got "abc"$/],
  [['token', '--user', 'a', '--ttl', '-5', '--development'], {}, /^tidings: --ttl must be a whole number from 1 to 31536000, got "-5"$/],
  [['token', '--user', 'a'], {}, /^tidings: no token secret: give --token-secret, TIDINGS_TOKEN_SECRET/],
  [['token', '--user', 'a', '--token-secret', 'short'], {}, /^tidings: invalid setting token_secret \(--token-secret\): must be at least 32/],
  [['token', '--user', 'a'], { TIDINGS_TOKEN_SECRET: 'short' }, /^tidings: invalid setting token_secret \(TIDINGS_TOKEN_SECRET\): must be at least 32/],
  [['token', '--user', 'a', '--development', '--subscribe', 'bad channel'], {}, /^tidings: --subscribe "bad channel" is not a channel name or a prefix\* pattern$/],
  [['token', '--development'], {}, /^tidings: missing --user \(tidings token --help\)$/],
  // publish
  [['publish', '--channel', 'c', '--data', 'not json'], {}, /^tidings: --data must be JSON text/],
  [['publish', '--data', '{}'], {}, /^tidings: give exactly one of --channel and --user$/],
  [['publish', '--channel', 'c', '--data', '{}', '--count', '0'], {}, /^tidings: --count must be a whole number from 1 to 10000000, got "0"$/],
  [['publish', '--channel', 'c', '--data', '{}', '--timeout', 'soon'], {}, /^tidings: --timeout must be a number of seconds/],
  [['publish', '--channel', 'c', '--data', '{}', '--ack', 'maybe'], {}, /^tidings: --ack must be true or false, got "maybe"$/],
  [['publish', '--channel', 'c', '--data', '{}'], { TIDINGS_PUBLISHER_ADDRESS: 'nowhere' }, /^tidings: invalid setting publisher_address \(TIDINGS_PUBLISHER_ADDRESS\): must be a ZeroMQ address/],
  [['publish', '--channel', 'c', '--data', '{}', '--command-address', 'x'], {}, /^tidings: invalid setting command_address \(--command-address\): must be a ZeroMQ address/],
  [['publish', '--channel', 'a b', '--data', '{}'], {}, /^tidings: --channel "a b": /],
  [['publish', '--channel', 'c', '--data', '{}', '--curve-secret-key', 'short'], {}, /^tidings: --curve-secret-key must be a Z85 CURVE key/],
  // ticker, health and keygen
  [['ticker'], { TIDINGS_CURVE_SERVER_KEY_FILE: join(dir, 'missing.pub') }, /^tidings: TIDINGS_CURVE_SERVER_KEY_FILE \(--curve-server-key-file\): cannot read .*missing\.pub: ENOENT$/],
  [['keygen', 'node1'], {}, /^tidings: names need --out DIR$/],
  [['keygen', '--out', dir, 'bad/name'], {}, /^tidings: bad key name "bad\/name"/],
  [['ticker', '--interval', '0'], {}, /^tidings: --interval must be a whole number from 1 to 3600000, got "0"$/],
  [['health', '--timeout', '0'], {}, /^tidings: --timeout must be a number of seconds above 0/],
  [['health'], { TIDINGS_SERVER_PORT: '99999' }, /^tidings: invalid setting server_port \(TIDINGS_SERVER_PORT\): must be at most 65535/],
];

test('each bad value or option: exit 2 and one line naming it and where it came from', async () => {
  try {
    const failures: string[] = [];
    // A few at a time: each is a short-lived process.
    for (let i = 0; i < CASES.length; i += 6) {
      await Promise.all(
        CASES.slice(i, i + 6).map(async ([args, env, pattern]) => {
          const r = await runCli(args, env);
          const what = `tidings ${args.join(' ')} ${JSON.stringify(env)}`;
          const lines = r.stderr.split('\n').filter(Boolean);
          if (r.code !== 2) failures.push(`${what}: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`);
          else if (lines.length !== 1) failures.push(`${what}: ${lines.length} lines: ${r.stderr}`);
          else if (!pattern.test(lines[0]!)) failures.push(`${what}: ${JSON.stringify(lines[0])} does not match ${pattern}`);
          else if (r.stdout !== '') failures.push(`${what}: printed to stdout: ${r.stdout.slice(0, 200)}`);
        }),
      );
    }
    assert.deepEqual(failures, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('token --secret still works, with a one-line deprecation notice', async () => {
  const r = await runCli(['token', '--user', 'a', '--secret', 'a-token-secret-of-at-least-32-characters!']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^tidings token: --secret is deprecated, use --token-secret/);
  assert.match(r.stdout, /^ey[\w-]+\.[\w-]+\.[\w-]+\n$/);
});
