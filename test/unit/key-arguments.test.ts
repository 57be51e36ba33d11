/** joinKeyArguments: a Z85 key that begins with "-" stays the value of its flag. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { joinKeyArguments, KEY_VALUED_FLAGS } from '../../src/cli/key-arguments.js';

const KEY = '-Wz0nHj*/=2v6R5P7YaIQuEi9lZ>sG@B3NqKp&Mx';

test('a key flag followed by a value that begins with "-" is joined to it', () => {
  assert.deepEqual(joinKeyArguments(['publish', '--curve-server-key', KEY, '--channel', 'c']), ['publish', `--curve-server-key=${KEY}`, '--channel', 'c']);
  assert.deepEqual(joinKeyArguments(['serve', '--curve-node-keys', `${KEY},abc`]), ['serve', `--curve-node-keys=${KEY},abc`]);
});

test('other flags, values without "-", the = form and "--" are left as given', () => {
  const args = ['publish', '--channel', '-odd', '--curve-server-key', 'abc', `--curve-secret-key=${KEY}`, '--curve-server-key', '--', '--curve-secret-key', KEY];
  assert.deepEqual(joinKeyArguments(args), args);
  assert.deepEqual(joinKeyArguments(['--curve-secret-key']), ['--curve-secret-key']);
});

test('every inline key setting of serve and both worker key flags are key-valued; key files are not', () => {
  for (const flag of ['curve-secret-key', 'curve-server-key', 'curve-director-key', 'curve-node-keys', 'curve-worker-keys']) assert.ok(KEY_VALUED_FLAGS.has(flag), flag);
  assert.ok(![...KEY_VALUED_FLAGS].some((f) => f.endsWith('-file')));
});
