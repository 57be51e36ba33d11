#!/usr/bin/env node
// Runs the compiled test files with node's test runner: unit tests first, then
// integration tests one file at a time (they start clusters of real processes
// and share two cores).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function files(dir) {
  let out = [];
  let entries = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries.sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(files(p));
    else if (e.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const only = process.argv.slice(2);
const unit = files('dist/test/unit');
const integration = files('dist/test/integration');
const selected = (list) => (only.length ? list.filter((f) => only.some((o) => f.includes(o))) : list);

const list = [...selected(unit), ...selected(integration)];
// One runner invocation, one summary; files run one at a time because the
// integration files start clusters of real processes on two cores.
const r = spawnSync(
  process.execPath,
  ['--test', '--test-reporter=spec', '--test-concurrency=1', '--test-timeout=180000', ...list],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
