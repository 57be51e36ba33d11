#!/usr/bin/env node
// The files a Tidings node needs at run time, copied from a built checkout
// into DEST: package.json and dist/{src,client,demo,admin} (the server, the
// browser SDK it serves at /tidings.js, the demo and admin pages), and with
// --node-modules the (pruned) node_modules too.
// deploy/Dockerfile builds its image from exactly this tree, and
// test/integration/image.test.ts starts a node from it, so what the image
// serves is tested without a Docker engine.
//   node scripts/runtime-tree.mjs DEST [--node-modules]
import { cpSync, existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const RUNTIME_PATHS = ['package.json', 'dist/src', 'dist/client', 'dist/demo', 'dist/admin'];

const [dest, ...flags] = process.argv.slice(2);
if (!dest) {
  process.stderr.write('usage: node scripts/runtime-tree.mjs DEST [--node-modules]\n');
  process.exit(2);
}
const root = resolve(import.meta.dirname, '..');
const paths = flags.includes('--node-modules') ? [...RUNTIME_PATHS, 'node_modules'] : RUNTIME_PATHS;
for (const p of paths) {
  const from = join(root, p);
  if (!existsSync(from)) {
    process.stderr.write(`runtime-tree: ${p} is missing: run npm run build first\n`);
    process.exit(1);
  }
  mkdirSync(join(dest, p, '..'), { recursive: true });
  // Source maps of the server stay out; test and bench builds are not under these paths.
  cpSync(from, join(dest, p), { recursive: true, filter: (src) => !(src.endsWith('.d.ts') || (src.includes('/dist/src/') && src.endsWith('.js.map'))) });
}
