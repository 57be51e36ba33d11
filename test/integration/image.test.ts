/**
 * The Docker image's file layout, without a Docker engine: deploy/Dockerfile
 * copies the tree scripts/runtime-tree.mjs builds, so this test builds the same
 * tree in a temporary directory, starts a node from it, and fetches what a
 * browser needs (the SDK, the demo, the admin page). The health checks that
 * docker-compose.yml gives each service are run against that node too.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, existsSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { CLI, TidingsProcess } from '../helpers/processes.js';
import { freePorts } from '../helpers/ports.js';

const ROOT = resolve(CLI, '..', '..', '..', '..');
let tree: string;
let node: TidingsProcess;
let http: string;
let env: Record<string, string>;

function run(args: string[], extra: Record<string, string> = {}): Promise<{ code: number | null; stdout: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [join(tree, 'dist/src/cli/main.js'), ...args], { env: { PATH: process.env['PATH'] ?? '', ...env, ...extra }, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('close', (code) => {
      clearTimeout(t);
      done({ code, stdout });
    });
  });
}

before(async () => {
  tree = mkdtempSync(join(tmpdir(), 'tidings-image-'));
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/runtime-tree.mjs'), tree], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // The image's node_modules is the pruned production install; here the checkout's stands in for it.
  symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'));
  const [port, sub, pub, cmd] = await freePorts(4);
  env = {
    NODE_ENV: 'production',
    TIDINGS_SERVER_HOST: '127.0.0.1',
    TIDINGS_SERVER_PORT: String(port),
    TIDINGS_SUBSCRIBER_ADDRESS: `tcp://127.0.0.1:${sub}`,
    TIDINGS_PUBLISHER_ADDRESS: `tcp://127.0.0.1:${pub}`,
    TIDINGS_COMMAND_ADDRESS: `tcp://127.0.0.1:${cmd}`,
    TIDINGS_DEVELOPMENT: 'true',
    TIDINGS_DEMO: 'true',
  };
  http = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [join(tree, 'dist/src/cli/main.js'), 'serve'], { cwd: tree, env: { PATH: process.env['PATH'] ?? '', TIDINGS_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  node = new TidingsProcess('image', child);
  await node.waitFor(/"msg":"node ready"/);
});

after(async () => {
  await node?.stop();
  if (tree) rmSync(tree, { recursive: true, force: true });
});

test('the Dockerfile copies exactly the runtime tree, and the build context leaves out local builds', () => {
  const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8');
  assert.match(dockerfile, /^RUN node scripts\/runtime-tree\.mjs \/runtime --node-modules$/m);
  assert.match(dockerfile, /^COPY --from=build \/runtime \.\/$/m);
  assert.equal((dockerfile.match(/^COPY --from=build/gm) ?? []).length, 1, 'nothing else is copied into the image');
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const p of ['node_modules', 'dist', '.git', 'test-output']) assert.ok(ignored.includes(p), `.dockerignore lists ${p}`);
  assert.equal(existsSync(join(tree, 'dist/test')), false, 'no tests in the image');
});

test('a node started from the image\'s tree serves the SDK, the demo and the admin page', async () => {
  const expect: Array<[string, RegExp, RegExp]> = [
    ['/tidings.js', /javascript/, /TidingsClient/],
    ['/', /text\/html/, /Tidings demo chat/],
    ['/demo.js', /javascript/, /demo\/token/],
    ['/demo.css', /text\/css/, /\[hidden\]/],
    ['/admin/', /text\/html/, /Tidings admin/],
    ['/admin/admin.js', /javascript/, /api\/overview|overview/],
    ['/admin/admin.css', /text\/css/, /\.tile/],
  ];
  for (const [path, type, body] of expect) {
    const res = await fetch(http + path);
    assert.equal(res.status, 200, `${path} answers 200`);
    assert.match(res.headers.get('content-type') ?? '', type, `${path} content type`);
    assert.match(await res.text(), body, `${path} body`);
  }
});

test('every compose service has a health check that fits it, and each passes against a running node', async () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, { command?: string[]; healthcheck?: { test?: string[]; disable?: boolean } }>;
  };
  const checks = new Map<string, string[]>();
  for (const [name, s] of Object.entries(compose.services)) {
    if (s.command?.[0] === 'keygen') {
      assert.equal(s.healthcheck?.disable, true, 'the one-shot keygen service has no health check');
      continue;
    }
    const t = s.healthcheck?.test;
    assert.ok(t && t[0] === 'CMD' && t[1] === 'node' && t[2] === 'dist/src/cli/main.js' && t[3] === 'health', `${name} has a tidings health check`);
    checks.set(name, t.slice(4));
    // A service that serves no HTTP (the ticker worker) checks its ZeroMQ path instead.
    assert.deepEqual(t.slice(4), s.command?.[0] === 'serve' ? ['--ready'] : ['--publisher'], `${name}'s check fits what it runs`);
  }
  assert.deepEqual([...checks.keys()].sort(), ['director', 'node1', 'node2', 'worker']);
  for (const args of [[], ['--ready'], ['--publisher']]) {
    const r = await run(['health', ...args]);
    assert.equal(r.code, 0, `health ${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stdout, /^healthy: /);
  }
  // And unhealthy when nothing answers: exit 1 with the reason.
  const [closed] = await freePorts(1);
  const down = await run(['health', '--timeout', '2'], { TIDINGS_SERVER_PORT: String(closed) });
  assert.equal(down.code, 1);
  assert.match(down.stdout, /^unhealthy: http:\/\/127\.0\.0\.1:\d+\/healthz: .*ECONNREFUSED/);
  const noDirector = await run(['health', '--publisher', '--timeout', '2'], { TIDINGS_PUBLISHER_ADDRESS: `tcp://127.0.0.1:${closed}` });
  assert.equal(noDirector.code, 1);
  assert.match(noDirector.stdout, /^unhealthy: /);
});
