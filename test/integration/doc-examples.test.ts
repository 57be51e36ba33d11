/**
 * Every shell example of the README and docs/ (```sh blocks) runs as written
 * against a node started as `npm start` starts it (development, demo,
 * anonymous reads), with `npx tidings` being this checkout's CLI. The only
 * change is the ports: the docs' 42xx-44xx ports become free ones (the
 * node's own for 4242-4245). A block that starts servers in the background
 * (lines ending in `&`) gets ports of its own and runs until its file's last
 * block has passed. A block may be left out only with a reason, written just
 * before it as `<!-- not run: why -->`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { CLI, startSingleNode, type SingleNode } from '../helpers/processes.js';
import { freePorts } from '../helpers/ports.js';

const ROOT = resolve(CLI, '..', '..', '..', '..');
const FILES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

interface Block {
  file: string;
  line: number;
  code: string;
  skip: string | null;
}

function blocks(file: string): Block[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(sh|bash|shell)\s*$/.test(lines[i]!)) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) body.push(lines[i]!);
    const skip = /^<!-- not run: (.+) -->$/.exec(lines[start - 1] ?? '')?.[1] ?? null;
    out.push({ file, line: start + 1, code: body.join('\n'), skip });
  }
  return out;
}

let node: SingleNode;
const started: ChildProcess[] = [];

before(async () => {
  node = await startSingleNode({ TIDINGS_DEVELOPMENT: 'true', TIDINGS_DEMO: 'true', TIDINGS_ALLOW_ANONYMOUS: 'true', TIDINGS_TOKEN_SECRET: '', TIDINGS_API_KEYS: '' });
});

after(async () => {
  for (const c of started) stopGroup(c);
  await node?.stop();
});

/** Each distinct doc port gets a free port; 4242-4245 the node's own unless `own` asks for fresh ones. */
async function portMap(code: string, own: boolean): Promise<Map<string, string>> {
  const ports = [...new Set(code.match(/(?<=127\.0\.0\.1:|--server-port )4[2-4]\d\d\b/g) ?? [])];
  const fresh = await freePorts(ports.length);
  const nodePorts: Record<string, number> = { '4242': node.port, '4243': Number(node.subscriber.split(':').pop()), '4244': Number(node.publisher.split(':').pop()), '4245': Number(node.command.split(':').pop()) };
  return new Map(ports.map((p, i) => [p, String(!own && nodePorts[p] !== undefined ? nodePorts[p] : fresh[i])]));
}

function withPorts(code: string, map: Map<string, string>): string {
  return code.replace(/(?<=127\.0\.0\.1:|--server-port )4[2-4]\d\d\b/g, (p) => map.get(p) ?? p);
}

/** Output of background servers, last 8 KB each, read so a full pipe never stops them; shown on failure. */
const serverOutput = new Map<ChildProcess, string>();

/** A bash in its own process group, so everything it starts is stopped with it. */
function bash(code: string, env: Record<string, string>, background: boolean): ChildProcess {
  // npx tidings -> this checkout's CLI; everything else as the docs say.
  const script = `set -e -o pipefail\nnpx() { [ "$1" = tidings ] && shift; node ${JSON.stringify(CLI)} "$@"; }\n${code}\n${background ? 'wait' : ''}`;
  const child = spawn('bash', ['-c', script], { cwd: ROOT, env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (background) {
    serverOutput.set(child, '');
    const keep = (d: Buffer): void => void serverOutput.set(child, (serverOutput.get(child)! + d.toString()).slice(-8192));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
  }
  return child;
}

function stopGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function run(code: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = bash(code, env, false);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const t = setTimeout(() => stopGroup(child, 'SIGKILL'), 20_000);
    child.once('close', (c) => {
      clearTimeout(t);
      done({ code: c, stdout, stderr });
    });
  });
}

test('every shell example of the README and docs/ runs as written against a node', async () => {
  const all = FILES.flatMap(blocks);
  const skipped = all.filter((b) => b.skip !== null);
  const runnable = all.filter((b) => b.skip === null);
  assert.ok(runnable.length >= 8, `${runnable.length} examples run`);
  assert.ok(skipped.length <= 6, `left out: ${skipped.map((b) => `${b.file}:${b.line} (${b.skip})`).join(', ')}`);
  const failures: string[] = [];
  for (const file of FILES) {
    const mine = runnable.filter((b) => b.file === file);
    if (mine.length === 0) continue;
    const own = mine.some((b) => /&\s*$/m.test(b.code));
    const map = await portMap(mine.map((b) => b.code).join('\n'), own);
    // For examples that rely on the defaults (npm start's ports), the environment points the CLI at the node.
    const env: Record<string, string> = own ? {} : { TIDINGS_PUBLISHER_ADDRESS: node.publisher, TIDINGS_COMMAND_ADDRESS: node.command, TIDINGS_SERVER_PORT: String(node.port) };
    let servers = false;
    for (const b of mine) {
      const code = withPorts(b.code, map);
      const where = `${b.file}:${b.line}`;
      if (/&\s*$/m.test(b.code)) {
        const child = bash(code, env, true);
        started.push(child);
        servers = true;
        continue;
      }
      // After servers were started in the background, give them until they answer.
      const deadline = Date.now() + (servers ? 20_000 : 0);
      let r = await run(code, env);
      while (r.code !== 0 && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 250));
        r = await run(code, env);
      }
      const servers_ = started.map((c) => serverOutput.get(c) ?? '').join('\n');
      if (r.code !== 0) failures.push(`${where}: exit ${r.code}\n${code}\n${r.stdout}${r.stderr}${servers ? `\nservers:\n${servers_}` : ''}`);
      else if (/"error"\s*:/.test(r.stdout)) failures.push(`${where}: answered an error\n${code}\n${r.stdout}`);
      else if (r.stdout.trim() === '') failures.push(`${where}: printed nothing\n${code}`);
    }
    for (const c of started.splice(0)) {
      const exited = c.exitCode !== null ? Promise.resolve() : new Promise((res) => c.once('exit', res));
      stopGroup(c);
      await exited;
    }
  }
  assert.deepEqual(failures, []);
});
