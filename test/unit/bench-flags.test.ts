/** The bench scripts' flag parser: values read, and a missing value or a bad number refused by name. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { numberFlag, textFlag } from '../../bench/lib/flags.js';

test('bench flags: a value is read, an absent flag takes its default, a missing value or a bad number is refused by name', () => {
  const args = ['--repeat', '5', '--out', '/tmp/x', '--only', 'a,b'];
  assert.equal(textFlag(args, 'out'), '/tmp/x');
  assert.equal(textFlag(args, 'servers'), undefined);
  assert.equal(numberFlag(args, 'repeat', 3), 5);
  assert.equal(numberFlag(args, 'seconds', 4), 4);
  assert.throws(() => textFlag(['--out'], 'out'), /--out needs a value/);
  assert.throws(() => textFlag(['--out', '--quick'], 'out'), /--out needs a value/);
  assert.throws(() => numberFlag(['--repeat', 'three'], 'repeat', 3), /--repeat must be a number, not "three"/);
  assert.throws(() => numberFlag(['--repeat', ''], 'repeat', 3), /--repeat must be a number/);
  assert.equal(numberFlag(['--rate', '-1.5'], 'rate', 0), -1.5);
});
