import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoopLag, TICK_MS } from '../../src/runtime/loop-lag.js';

test('LoopLag: a tick on time is no lag; a late tick and a turn running past the next tick are', () => {
  let now = 1000;
  const lag = new LoopLag(() => now);
  lag.start();
  lag.stop(); // ticks are driven by hand here
  now += TICK_MS;
  lag.tick();
  assert.equal(lag.lagMs(), 0, 'on time');
  now += TICK_MS + 300;
  lag.tick();
  assert.equal(lag.lagMs(), 300, 'the last tick was 300 ms late');
  now += 5;
  assert.equal(lag.lagMs(), 300, 'remembered until the next tick');
  now += TICK_MS - 5;
  lag.tick();
  assert.equal(lag.lagMs(), 0, 'the next tick on time clears it');
  now += TICK_MS + 150;
  assert.equal(lag.lagMs(), 150, 'a turn still running 150 ms past the next tick');
});
