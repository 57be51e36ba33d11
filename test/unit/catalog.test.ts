import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { CloseCodes, ErrorCodes, errorByCode, closeByNumber } from '../../src/protocol/errors.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const doc = readFileSync(join(root, 'docs', 'protocol.md'), 'utf8');

function tableRows(header: string): string[][] {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.startsWith(header));
  assert.ok(start >= 0, `table "${header}" in docs/protocol.md`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.split('|').slice(1, -1).map((c) => c.trim().replace(/`/g, '')));
  }
  return rows;
}

test('docs/protocol.md lists exactly the error codes of the catalog', () => {
  const rows = tableRows('| code | name | HTTP status |');
  const documented = rows.map((r) => `${r[0]} ${r[1]} ${r[2]}`).sort();
  const actual = Object.values(ErrorCodes).map((e) => `${e.code} ${e.name} ${e.status}`).sort();
  assert.deepEqual(documented, actual);
});

test('docs/protocol.md lists exactly the close codes of the catalog', () => {
  const rows = tableRows('| close code | name | reconnect |');
  const documented = rows.map((r) => `${r[0]} ${r[1]} ${r[2]}`).sort();
  const actual = Object.values(CloseCodes).map((c) => `${c.code} ${c.name} ${c.reconnect ? 'yes' : 'no'}`).sort();
  assert.deepEqual(documented, actual);
});

test('codes and names are unique and in their ranges', () => {
  const errors = Object.values(ErrorCodes);
  assert.equal(new Set(errors.map((e) => e.code)).size, errors.length);
  assert.equal(new Set(errors.map((e) => e.name)).size, errors.length);
  for (const e of errors) {
    assert.ok(e.status >= 400 && e.status < 600, e.name);
    assert.equal(errorByCode(e.code), e);
  }
  const closes = Object.values(CloseCodes);
  assert.equal(new Set(closes.map((c) => c.code)).size, closes.length);
  for (const c of closes) {
    assert.ok((c.code >= 1000 && c.code <= 1011) || (c.code >= 4000 && c.code <= 4999), c.name);
    assert.ok(Buffer.byteLength(c.reason) <= 123, 'a close reason fits a control frame');
    assert.equal(closeByNumber(c.code), c);
  }
});
