/**
 * The demo page in a real browser (Debian's chromium through playwright-core)
 * against a cluster of two nodes: two people chat across nodes, see each
 * other online, and when one person's node is killed the page fails over to
 * the other node and shows the messages sent meanwhile.
 * Screenshots: test-output/browser/.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startCluster, type Cluster, type ClusterNode } from '../helpers/processes.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = resolve('test-output', 'browser');

let cluster: Cluster;
let browser: Browser;
let alice: Page;
let bob: Page;

/** Open the demo on `home`, failing over to `other`, and join as `name`. */
async function openDemo(home: ClusterNode, other: ClusterNode, name: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // retryDelay=2: the first reconnect waits ~2 s, so messages sent right after a kill are surely missed live.
  await page.goto(`${home.http}/demo?urls=${home.url},${other.url}&retryDelay=2`);
  await page.fill('#name', name);
  await page.click('#login-form button');
  await page.waitForSelector('#conn.connected');
  await page.waitForSelector('#room-list li.active .sub.subscribed');
  assert.deepEqual(errors, [], 'no script errors');
  return page;
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

const message = (page: Page, text: string) => page.locator('#messages li.msg .text', { hasText: text });

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  mkdirSync(SHOTS, { recursive: true });
  // Pings every 2 s: should a killed node's edge linger, the page's watchdog still notices within 2 + 5 s.
  cluster = await startCluster(2, 1, { TIDINGS_DEMO: 'true', TIDINGS_HISTORY_SIZE: '200', TIDINGS_PING_INTERVAL: '2' });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  alice = await openDemo(n1, n2, 'alice');
  bob = await openDemo(n2, n1, 'bob');
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
});

test('two pages on two nodes chat with each other', async () => {
  const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  assert.equal(await alice.locator('#node').getAttribute('data-url'), n1.url);
  assert.equal(await bob.locator('#node').getAttribute('data-url'), n2.url);
  await say(alice, 'hello from alice on node 1');
  await message(bob, 'hello from alice on node 1').waitFor();
  await say(bob, 'hi alice, bob here on node 2');
  await message(alice, 'hi alice, bob here on node 2').waitFor();
  // Both pages show the same conversation in the same order, with the sender the server stamped.
  const lines = async (p: Page): Promise<string[]> => p.locator('#messages li.msg').evaluateAll((els) => els.map((e) => `${e.querySelector('.who')!.textContent}: ${e.querySelector('.text')!.textContent}`));
  // What the page went through, should this fail again (it failed once in CI, 1 in 7 runs, cause not found).
  const events = async (p: Page): Promise<string> => (await p.locator('#events').innerText()).replace(/\n+/g, ' | ');
  assert.deepEqual(await lines(alice), ['alice: hello from alice on node 1', 'bob: hi alice, bob here on node 2'], `alice's event log: ${await events(alice)}`);
  assert.deepEqual(await lines(bob), await lines(alice));
  await alice.screenshot({ path: resolve(SHOTS, '1-alice-chat.png') });
  await bob.screenshot({ path: resolve(SHOTS, '1-bob-chat.png') });
});

test('each page sees the other person online (presence)', async () => {
  await alice.locator('#presence li[data-user="bob"]').waitFor();
  await bob.locator('#presence li[data-user="alice"]').waitFor();
  assert.equal(await alice.locator('#presence li').count(), 2);
  await alice.screenshot({ path: resolve(SHOTS, '2-alice-presence.png') });
});

test('bob\'s node is killed: his page fails over and shows the messages sent meanwhile', async () => {
  const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  await n2.proc.kill9();
  // Wait until bob's page has noticed, so these are sent while he is away.
  await bob.waitForSelector('#conn.connecting', { timeout: 15_000 });
  const away = ['while you were away 1', 'while you were away 2', 'while you were away 3'];
  for (const text of away) {
    await say(alice, text);
    await message(alice, text).waitFor();
  }
  await bob.waitForSelector('#conn.connected', { timeout: 15_000 });
  assert.equal(await bob.locator('#node').getAttribute('data-url'), n1.url, 'bob is now on node 1');
  for (const text of away) await message(bob, text).waitFor();
  await bob.locator('#messages li.system', { hasText: 'recovered 3 missed messages' }).waitFor();
  // The event log says it in words: which node, what was recovered; no state-machine codes.
  const events = await bob.innerText('#events');
  assert.match(events, /recovered 3 missed messages in #lobby/);
  assert.equal((events.match(/connected to node/g) ?? []).length, 2, 'one line per connect: node 2, then node 1');
  assert.doesNotMatch(events, /\(30\d\d|→/);
  assert.doesNotMatch(await bob.innerText('#presence'), /tabs/, 'no ghost count of the connection the dead node held');
  const offsets = await bob.locator('#messages li.msg').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset['offset'])));
  assert.equal(offsets.length, 5, 'every message once');
  assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), 'in offset order');
  await say(bob, 'back on node 1');
  await message(alice, 'back on node 1').waitFor();
  await bob.screenshot({ path: resolve(SHOTS, '3-bob-recovered.png') });
});

test('a newcomer sees the room\'s recent history', async () => {
  const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  const carol = await openDemo(n1, n2, 'carol');
  await carol.locator('#messages li.msg.history .text', { hasText: 'back on node 1' }).waitFor();
  const texts = await carol.locator('#messages li.msg.history .text').allTextContents();
  assert.deepEqual(texts, [
    'hello from alice on node 1',
    'hi alice, bob here on node 2',
    'while you were away 1',
    'while you were away 2',
    'while you were away 3',
    'back on node 1',
  ]);
  await carol.screenshot({ path: resolve(SHOTS, '4-carol-history.png') });
});

test('after the failover both people are still shown online', async () => {
  await bob.locator('#presence li[data-user="alice"]').waitFor();
  await alice.locator('#presence li[data-user="bob"]').waitFor();
  await bob.locator('#presence li[data-user="carol"]').waitFor();
});
