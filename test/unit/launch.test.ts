/**
 * The node's main process is launched with the same V8 flags whichever way a
 * user starts it (src/node/main-process.ts): the image's entrypoint, `npm
 * start` and the `tidings` program's first line. Without them the main
 * process' young generation grows to 2 x 16 MB under a connect burst, and a
 * busy director runs several full collections a second.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAIN_PROCESS_ENV, MAIN_PROCESS_NODE_ARGS } from '../../src/node/main-process.js';

/** dist/test/unit -> the repository */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The words between `node` and the script in a launch line (after any NAME=value assignments). */
function nodeArgs(words: readonly string[], script: RegExp): string[] {
  const node = words.findIndex((w) => !/^[A-Z_]+=/.test(w));
  const at = words.findIndex((w) => script.test(w));
  assert.ok(at > node && /(^|\/)node$/.test(words[node]!), `a node launch: ${words.join(' ')}`);
  return words.slice(node + 1, at);
}

/** The NAME=value assignments before `node` in a launch line. */
function assignments(words: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of words) {
    const m = /^([A-Z_]+)=(.*)$/.exec(w);
    if (!m) break;
    out[m[1]!] = m[2]!;
  }
  return out;
}

test('the main process gets its V8 flags and environment from the image, npm start and the tidings program alike', () => {
  assert.ok(MAIN_PROCESS_NODE_ARGS.length > 0);
  assert.ok(Object.keys(MAIN_PROCESS_ENV).length > 0);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
  const start = pkg.scripts['start']!.split(/\s+/);
  assert.deepEqual(nodeArgs(start, /cli\/main\.js$/), MAIN_PROCESS_NODE_ARGS, 'npm start');
  assert.deepEqual(assignments(start), MAIN_PROCESS_ENV, 'npm start');

  const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8');
  const entry = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile);
  assert.ok(entry, 'the Dockerfile has an exec-form ENTRYPOINT');
  assert.deepEqual(nodeArgs(JSON.parse(entry[1]!) as string[], /cli\/main\.js$/), MAIN_PROCESS_NODE_ARGS, 'the image');
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const env = Object.fromEntries([...runtime.matchAll(/^ENV ([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  for (const [name, value] of Object.entries(MAIN_PROCESS_ENV)) assert.equal(env[name], value, `the image's ENV ${name}`);

  // The bin is the compiled file: its first line is the source's (tsc keeps it).
  assert.equal(pkg.bin['tidings'], 'dist/src/cli/main.js');
  for (const file of ['src/cli/main.ts', 'dist/src/cli/main.js']) {
    const first = readFileSync(join(ROOT, file), 'utf8').split('\n', 1)[0]!;
    const env = Object.entries(MAIN_PROCESS_ENV).map(([name, value]) => `${name}=${value} `).join('');
    assert.equal(first, `#!/usr/bin/env -S ${env}node ${MAIN_PROCESS_NODE_ARGS.join(' ')}`, file);
  }
});

test('this node accepts the main process flags (a misspelt V8 flag stops node with "bad option")', () => {
  const run = spawnSync(process.execPath, [...MAIN_PROCESS_NODE_ARGS, '-e', ''], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(run.status, 0, run.stderr);
});

test('edge workers get their own young-generation cap, not the main process', async () => {
  const { workerExecArgv } = await import('../../src/node/tidings-node.js');
  const parent = ['--max-semi-space-size=4', '--initial-old-space-size=64', '--enable-source-maps'];
  // The old-generation floor is inherited (as measured, docs/operations.md); only the semi-space cap is the workers' own.
  assert.deepEqual(workerExecArgv({ worker_semi_space_mb: 2 }, parent), ['--initial-old-space-size=64', '--enable-source-maps', '--max-semi-space-size=2']);
  // 0: V8's default, whatever the main process was launched with.
  assert.deepEqual(workerExecArgv({ worker_semi_space_mb: 0 }, parent), ['--initial-old-space-size=64', '--enable-source-maps']);
});
