/** The compose test's topology decision: namespaces unless a fallback is explicitly asked for. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeTopology, topologyPlan, type Topology, type TopologyFactories } from '../helpers/compose.js';

test('topologyPlan: netns by default, loopback or auto only when asked for', () => {
  assert.equal(topologyPlan(undefined), 'netns');
  assert.equal(topologyPlan(''), 'netns');
  assert.equal(topologyPlan('netns'), 'netns');
  assert.equal(topologyPlan('loopback'), 'loopback');
  assert.equal(topologyPlan('auto'), 'netns-or-loopback');
  assert.throws(() => topologyPlan('lo'), /TIDINGS_COMPOSE_TOPOLOGY=lo/);
});

function fake(kind: 'netns' | 'loopback'): Topology {
  return { kind, addressOf: () => '', spawn: () => { throw new Error('not here'); }, spawnProgram: () => { throw new Error('not here'); }, teardown: () => undefined };
}

const noNetns: TopologyFactories = {
  netns: () => {
    throw new Error('ip netns add: Operation not permitted');
  },
  loopback: () => fake('loopback'),
};
const withNetns: TopologyFactories = { netns: () => fake('netns'), loopback: () => fake('loopback') };

test('makeTopology: without namespaces the default fails (naming the way out); auto falls back; loopback never tries', () => {
  assert.throws(() => makeTopology(['a'], undefined, noNetns), /network namespaces are not available.*Operation not permitted.*TIDINGS_COMPOSE_TOPOLOGY=auto/);
  assert.throws(() => makeTopology(['a'], 'netns', noNetns), /not available/);
  assert.equal(makeTopology(['a'], 'auto', noNetns).kind, 'loopback');
  assert.equal(makeTopology(['a'], 'loopback', withNetns).kind, 'loopback');
  assert.equal(makeTopology(['a'], undefined, withNetns).kind, 'netns');
  assert.equal(makeTopology(['a'], 'auto', withNetns).kind, 'netns');
});
