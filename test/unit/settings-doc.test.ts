import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { SETTINGS, envName } from '../../src/config/settings.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

test('docs/configuration.md documents every setting with its environment variable', () => {
  const doc = readFileSync(join(root, 'docs', 'configuration.md'), 'utf8');
  const rows = doc.split('\n').filter((l) => l.startsWith('| `'));
  const documented = rows.map((r) => r.split('|')[1]!.trim().replace(/`/g, '')).sort();
  assert.deepEqual(documented, SETTINGS.map((s) => s.name).sort());
  for (const s of SETTINGS) assert.ok(doc.includes(envName(s.name)), envName(s.name));
});
