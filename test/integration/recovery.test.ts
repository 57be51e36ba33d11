/**
 * History and recovery: while a publisher runs at a steady rate, an edge
 * worker (kill -9) or a whole forwarder node (kill -9) dies; its clients
 * reconnect elsewhere and resubscribe from their last {offset, epoch}. Every
 * client must end with every offset exactly once: 0 missing, 0 duplicated.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startCluster, startSingleNode, sleep, type Cluster } from '../helpers/processes.js';
import { TestClient } from '../helpers/client.js';
import { postJson } from '../helpers/http.js';
import { Publisher } from '../../src/publisher/publisher.js';

let cluster: Cluster;
before(async () => {
  // 500 messages/s and a reconnect that takes a few hundred ms: keep enough history.
  cluster = await startCluster(2, 2, { TIDINGS_HISTORY_SIZE: '5000' });
});
after(async () => {
  await cluster?.stop();
});

/** A subscriber that survives reconnects and keeps every offset it saw. */
class Follower {
  client!: TestClient;
  readonly seen: number[] = [];
  epoch = '';
  recoveredFlags: boolean[] = [];
  replayed = 0;
  private pushesRead = 0;

  constructor(
    readonly user: string,
    readonly channel: string,
  ) {}

  async attach(url: string): Promise<void> {
    this.client = await TestClient.connect(url, this.user);
    this.pushesRead = 0;
    const last = this.seen.length ? this.seen[this.seen.length - 1]! : null;
    const params: Record<string, unknown> = { channel: this.channel };
    if (last !== null) params['recover'] = { offset: last, epoch: this.epoch };
    const r = await this.client.call('subscribe', params);
    if (last === null) {
      this.epoch = r.epoch;
      this.seen.push(r.offset); // the position the stream starts after
    } else {
      this.recoveredFlags.push(r.recovered);
      this.replayed += r.replayed;
    }
  }

  /** Move newly arrived pushes into `seen`. */
  drain(): void {
    const msgs = this.client.messages(this.channel);
    for (; this.pushesRead < msgs.length; this.pushesRead++) this.seen.push(msgs[this.pushesRead]!.offset!);
  }

  get last(): number {
    this.drain();
    return this.seen[this.seen.length - 1]!;
  }

  /** Offsets after the starting position: each exactly once, consecutive. */
  describe(): string {
    const gaps: string[] = [];
    for (let i = 1; i < this.seen.length; i++) if (this.seen[i] !== this.seen[i - 1]! + 1) gaps.push(`${this.seen[i - 1]}->${this.seen[i]}@${i}`);
    return `gaps ${gaps.slice(0, 10).join(' ')}; recovered ${JSON.stringify(this.recoveredFlags)} replayed ${this.replayed}`;
  }

  check(finalOffset: number): { missing: number; duplicated: number } {
    this.drain();
    const [start, ...got] = this.seen;
    const counts = new Map<number, number>();
    for (const o of got) counts.set(o, (counts.get(o) ?? 0) + 1);
    let missing = 0;
    let duplicated = 0;
    for (let o = start! + 1; o <= finalOffset; o++) {
      const c = counts.get(o) ?? 0;
      if (c === 0) missing++;
      if (c > 1) duplicated += c - 1;
    }
    return { missing, duplicated };
  }
}

/** Publish `count` messages at `rate` per second; resolves with the last offset. */
async function steadyPublisher(address: string, commandAddress: string, channel: string, count: number, rate: number): Promise<number> {
  const pub = new Publisher({ address, commandAddress });
  pub.start();
  const started = Date.now();
  for (let i = 0; i < count; i++) {
    const due = started + (i * 1000) / rate;
    if (due > Date.now()) await sleep(due - Date.now());
    await pub.publish(channel, { i });
  }
  await pub.flush();
  // One acknowledged publish at the end tells where the stream stands.
  const last = await pub.publishAcked(channel, { i: 'end' });
  await pub.close();
  return last.offset;
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function runKillScenario(kill: () => Promise<void>, reattachUrl: (f: Follower, i: number) => string, channel: string): Promise<void> {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const followers = Array.from({ length: 12 }, (_, i) => new Follower(`f${i}`, channel));
  for (const f of followers) await f.attach(n1.url);
  void n2;
  const publishing = steadyPublisher(cluster.director.publisher, cluster.director.command, channel, 1500, 500);
  await sleep(1000);
  await kill();
  // Reconnect every follower whose connection died, from its last position.
  const deadline = Date.now() + 10000;
  const dead = (f: Follower): boolean => f.client.closeCode !== null;
  while (followers.some((f) => !dead(f)) && Date.now() < deadline && followers.filter(dead).length === 0) await sleep(20);
  await sleep(200);
  let moved = 0;
  for (const [i, f] of followers.entries()) {
    if (!dead(f)) continue;
    f.drain();
    await f.attach(reattachUrl(f, i));
    moved++;
  }
  assert.ok(moved > 0, 'the kill closed some connections');
  const finalOffset = await publishing;
  for (const f of followers) {
    await f.client.waitFor(() => f.last >= finalOffset, 15000, `${f.user} to reach offset ${finalOffset}`);
    const { missing, duplicated } = f.check(finalOffset);
    assert.equal(missing, 0, `${f.user}: 0 missing offsets (${f.describe()})`);
    assert.equal(duplicated, 0, `${f.user}: 0 duplicated offsets`);
    assert.ok(f.recoveredFlags.every((r) => r === true), `${f.user}: every resubscribe says recovered`);
  }
  const replayed = followers.reduce((a, f) => a + f.replayed, 0);
  process.stdout.write(`# ${moved} clients moved, ${replayed} messages replayed from history, final offset ${finalOffset}\n`);
  for (const f of followers) f.client.close();
}

test('kill -9 of an edge worker: its clients reconnect to the node and recover with no gap and no duplicate', async () => {
  const n1 = cluster.nodes[0]!;
  const workers = childPids(n1.proc.pid);
  assert.equal(workers.length, 2, 'node1 has two edge workers');
  await runKillScenario(
    async () => {
      process.kill(workers[0]!, 'SIGKILL');
    },
    () => n1.url, // node:cluster sends the new connections to the surviving (or restarted) worker
    'steady.worker',
  );
  // The node restarts the dead worker.
  const deadline = Date.now() + 10000;
  while (childPids(n1.proc.pid).length < 2 && Date.now() < deadline) await sleep(50);
  assert.equal(childPids(n1.proc.pid).length, 2, 'the dead worker was replaced');
});

test('kill -9 of a whole forwarder node: its clients move to the other node and recover with no gap and no duplicate', async () => {
  const [n1, n2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  await runKillScenario(() => n1.proc.kill9(), () => n2.url, 'steady.node');
});

test('history: newest messages, since a position, no_history opt-out, size bound and epoch', async () => {
  const node = await startSingleNode({ TIDINGS_HISTORY_SIZE: '50' });
  try {
    const c = await TestClient.connect(node.url, 'historian');
    for (let i = 0; i < 100; i++) {
      const r = await postJson(`${node.http}/api/publish`, { channel: 'hist', data: { i }, no_history: i === 95 });
      assert.equal(r.status, 200);
    }
    const latest = await c.call('history', { channel: 'hist', limit: 5 });
    assert.equal(latest.offset, 100);
    assert.deepEqual(latest.messages.map((m: any) => m.offset), [95, 97, 98, 99, 100], 'offset 96 (i = 95) opted out of history');
    assert.equal(latest.complete, true);
    const since = await c.call('history', { channel: 'hist', since: { offset: 90, epoch: latest.epoch }, limit: 100 });
    assert.deepEqual(since.messages.map((m: any) => m.offset), [91, 92, 93, 94, 95, 97, 98, 99, 100]);
    const old = await c.call('history', { channel: 'hist', since: { offset: 10, epoch: latest.epoch }, limit: 100 });
    assert.equal(old.complete, false, 'history_size 50: offsets 11..50 are gone');
    assert.equal(old.messages.length, 50, 'the ring holds the newest 50 stored messages');
    assert.equal(old.messages[0].offset, 50, '99 stored (96 skipped): the newest 50 start at offset 50');
    // Recovery from a position history no longer covers says so.
    const r1 = await c.call('subscribe', { channel: 'hist', recover: { offset: 10, epoch: latest.epoch } });
    assert.equal(r1.recovered, false);
    const other = await TestClient.connect(node.url, 'historian2');
    const r2 = await other.call('subscribe', { channel: 'hist', recover: { offset: 98, epoch: 'some-other-epoch' } });
    assert.equal(r2.recovered, false, 'a different epoch is never recovered');
    const third = await TestClient.connect(node.url, 'historian3');
    const r3 = await third.call('subscribe', { channel: 'hist', recover: { offset: 97, epoch: latest.epoch } });
    assert.equal(r3.recovered, true);
    assert.equal(r3.replayed, 3);
    await third.waitFor(() => third.messages('hist').length === 3);
    assert.deepEqual(third.messages('hist').map((m) => m.offset), [98, 99, 100]);
    const viaApi = await postJson(`${node.http}/api/history`, { channel: 'hist', limit: 2 });
    assert.equal(viaApi.status, 200);
    assert.deepEqual(viaApi.body.messages.map((m: any) => m.data.i), [98, 99]);
    for (const x of [c, other, third]) x.close();
  } finally {
    await node.stop();
  }
});
