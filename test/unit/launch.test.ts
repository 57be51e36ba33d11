/**
 * The node's main process is launched with the same V8 flags whichever way a
 * user starts it (src/node/main-process.ts): the image's entrypoint, `npm
 * start` and the `tidings` program's first line. Without them the main
 * process' young generation grows to 2 x 16 MB under a connect burst.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAIN_PROCESS_NODE_ARGS } from '../../src/node/main-process.js';

/** dist/test/unit -> the repository */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The words between `node` and the script in a launch line. */
function nodeArgs(words: readonly string[], script: RegExp): string[] {
  const at = words.findIndex((w) => script.test(w));
  assert.ok(at > 0 && /(^|\/)node$/.test(words[0]!), `a node launch: ${words.join(' ')}`);
  return words.slice(1, at);
}

test('the main process gets its V8 flags from the image, npm start and the tidings program alike', () => {
  assert.ok(MAIN_PROCESS_NODE_ARGS.length > 0);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
  assert.deepEqual(nodeArgs(pkg.scripts['start']!.split(/\s+/), /cli\/main\.js$/), MAIN_PROCESS_NODE_ARGS, 'npm start');

  const entry = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8'));
  assert.ok(entry, 'the Dockerfile has an exec-form ENTRYPOINT');
  assert.deepEqual(nodeArgs(JSON.parse(entry[1]!) as string[], /cli\/main\.js$/), MAIN_PROCESS_NODE_ARGS, 'the image');

  // The bin is the compiled file: its first line is the source's (tsc keeps it).
  assert.equal(pkg.bin['tidings'], 'dist/src/cli/main.js');
  for (const file of ['src/cli/main.ts', 'dist/src/cli/main.js']) {
    const first = readFileSync(join(ROOT, file), 'utf8').split('\n', 1)[0]!;
    assert.equal(first, `#!/usr/bin/env -S node ${MAIN_PROCESS_NODE_ARGS.join(' ')}`, file);
  }
});

test('edge workers get their own young-generation cap, not the main process', async () => {
  const { workerExecArgv } = await import('../../src/node/tidings-node.js');
  const parent = ['--max-semi-space-size=4', '--enable-source-maps'];
  assert.deepEqual(workerExecArgv({ worker_semi_space_mb: 2 }, parent), ['--enable-source-maps', '--max-semi-space-size=2']);
  // 0: V8's default, whatever the main process was launched with.
  assert.deepEqual(workerExecArgv({ worker_semi_space_mb: 0 }, parent), ['--enable-source-maps']);
});
