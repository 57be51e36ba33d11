/**
 * A node's edge worker processes: they get their settings over IPC, so no
 * secret shows in /proc/<worker>/environ or its command line; and a worker
 * that keeps dying waits longer each time, but one that ran for
 * worker_restart_reset starts again from the shortest delay.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { serve, sleep, TOKEN_SECRET, API_KEY, type TidingsProcess } from '../helpers/processes.js';
import { freePorts } from '../helpers/ports.js';
import { TestClient } from '../helpers/client.js';

const SECRET = 'channelstream-secret-in-env-0123';
const ADMIN_SECRET = 'admin-secret-on-the-command-line';
const RESET_S = 1;
let node: { proc: TidingsProcess; url: string; http: string };

/** PIDs of a process' children (node:cluster forks from the main thread). */
function children(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

/** The node's one edge worker other than `not`, as soon as it exists; with `listening`, once it listens. */
async function worker(not: number[] = [], listening = true): Promise<number> {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    const kids = children(node.proc.pid).filter((p) => !not.includes(p));
    if (kids.length === 1) {
      if (!listening) return kids[0]!;
      const r = await fetch(`${node.http}/healthz`).catch(() => null);
      if (r?.status === 200 && children(node.proc.pid).includes(kids[0]!)) return kids[0]!;
    }
    await sleep(10);
  }
  throw new Error(`no worker:\n${node.proc.text().slice(-2000)}`);
}

before(async () => {
  const [port, sub, pub, cmd] = await freePorts(4);
  const proc = serve(
    'node',
    {
      TIDINGS_SERVER_PORT: String(port),
      TIDINGS_SUBSCRIBER_ADDRESS: `tcp://127.0.0.1:${sub}`,
      TIDINGS_PUBLISHER_ADDRESS: `tcp://127.0.0.1:${pub}`,
      TIDINGS_COMMAND_ADDRESS: `tcp://127.0.0.1:${cmd}`,
      TIDINGS_TOKEN_SECRET: TOKEN_SECRET,
      TIDINGS_API_KEYS: API_KEY,
      TIDINGS_SECRET: SECRET,
      TIDINGS_WORKER_RESTART_RESET: String(RESET_S),
    },
    ['--admin-secret', ADMIN_SECRET],
  );
  try {
    await proc.waitFor(/"msg":"node ready"/);
  } catch (err) {
    await proc.kill9();
    throw err;
  }
  node = { proc, url: `ws://127.0.0.1:${port}/ws`, http: `http://127.0.0.1:${port}` };
});
after(async () => {
  await node?.proc.stop();
});

test('no secret in a running edge worker\'s environment or command line; the worker still has them', async () => {
  const pid = await worker();
  const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  assert.match(environ, /(^|\0)PATH=/, 'the environment is readable (the check below means something)');
  for (const secret of [TOKEN_SECRET, API_KEY, SECRET, ADMIN_SECRET]) {
    assert.ok(!environ.includes(secret), `environ holds no ${secret}`);
    assert.ok(!cmdline.includes(secret), `cmdline holds no ${secret}`);
  }
  assert.doesNotMatch(environ, /TIDINGS_/);
  // The node's own environment and command line do hold them (the operator's choice): the worker is what changed.
  assert.ok(readFileSync(`/proc/${node.proc.pid}/environ`, 'utf8').includes(TOKEN_SECRET));
  assert.ok(readFileSync(`/proc/${node.proc.pid}/cmdline`, 'utf8').includes(ADMIN_SECRET));
  const debug = await fetch(`${node.http}/debug/`, { headers: { 'x-admin-secret': ADMIN_SECRET } });
  assert.equal(debug.status, 200, 'the worker has the admin secret given on the command line');
  const c = await TestClient.connect(node.url, 'alice');
  assert.ok(await c.call('subscribe', { channel: 'room' }), 'the worker checks tokens with the secret it got over IPC');
  c.close();
});

test('restart delay grows while a worker keeps dying and starts again after it ran worker_restart_reset', async () => {
  const deaths = (): Array<{ restartInMs: number; ranMs: number }> =>
    node.proc
      .text()
      .split('\n')
      .filter((l) => l.includes('"msg":"edge worker died; restarting"'))
      .map((l) => JSON.parse(l));
  const w1 = await worker();
  process.kill(w1, 'SIGKILL');
  // Forked again after 100 ms; killed as soon as it exists (while it starts): a quick death.
  const w2 = await worker([w1], false);
  process.kill(w2, 'SIGKILL');
  const w3 = await worker([w1, w2], false);
  // Let this one run past worker_restart_reset: its death restarts at 100 ms again.
  await sleep(RESET_S * 1000 + 100);
  process.kill(w3, 'SIGKILL');
  await worker([w1, w2, w3]);
  const d = deaths();
  assert.equal(d.length, 3, JSON.stringify(d));
  assert.ok(d[1]!.ranMs < RESET_S * 1000, `the second worker died quickly (${d[1]!.ranMs} ms)`);
  assert.deepEqual(d.map((x) => x.restartInMs), [100, 200, 100], JSON.stringify(d));
  assert.equal((await fetch(`${node.http}/readyz`)).status, 200);
});
