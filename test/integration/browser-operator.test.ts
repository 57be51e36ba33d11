/**
 * What a newcomer and an operator see, in a real browser (Debian's chromium
 * through playwright-core) against one node started as `npm start` starts it
 * (development, demo, anonymous reads): the demo's first screen, the README's
 * quick-start publish arriving in the demo, and the admin page (nodes,
 * connections, channels, publish and disconnect forms).
 * Screenshots: test-output/screenshots/ (docs/images/ holds copies).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CLI, startSingleNode, type SingleNode } from '../helpers/processes.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = resolve('test-output', 'screenshots');
const ROOT = resolve(CLI, '..', '..', '..', '..');
const ADMIN = 'dev-only-admin-secret'; // the development value npm start uses

let node: SingleNode;
let browser: Browser;
let carol: Page;

async function newPage(width: number, height: number): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return { page, errors };
}

/** Run a shell line as written in the docs, `npx tidings` being this checkout's CLI. */
function shell(line: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn('bash', ['-c', `npx() { [ "$1" = tidings ] && shift; node ${JSON.stringify(CLI)} "$@"; }\n${line}`], {
      env: { PATH: process.env['PATH'] ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('close', (code) => {
      clearTimeout(t);
      done({ code, stdout, stderr });
    });
  });
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  mkdirSync(SHOTS, { recursive: true });
  node = await startSingleNode({ TIDINGS_DEVELOPMENT: 'true', TIDINGS_DEMO: 'true', TIDINGS_ALLOW_ANONYMOUS: 'true', TIDINGS_TOKEN_SECRET: '', TIDINGS_API_KEYS: '' });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

test('the demo\'s first screen: only the login card, a one-line header on a phone, a favicon', async () => {
  for (const [width, height] of [[390, 844], [1200, 720]] as const) {
    const { page, errors } = await newPage(width, height);
    await page.goto(`${node.http}/`);
    await page.waitForSelector('#login-form');
    assert.equal(await page.isVisible('#login'), true);
    for (const pane of ['#chat', '#rooms', '#room', '#side', '#messages']) assert.equal(await page.isVisible(pane), false, `${pane} hidden before login at ${width} px`);
    const header = await page.locator('header').boundingBox();
    const title = await page.locator('header h1').boundingBox();
    const conn = await page.locator('#conn').boundingBox();
    assert.ok(header && title && conn);
    assert.ok(Math.abs(title.y + title.height / 2 - (conn.y + conn.height / 2)) < 4, `title and connection state on one line at ${width} px`);
    assert.ok(header.height < 64, `header ${header.height} px high at ${width} px`);
    assert.match((await page.getAttribute('link[rel="icon"]', 'href')) ?? '', /^data:image\/svg\+xml,/);
    assert.match(await page.innerText('#login'), /npx tidings publish --channel demo\.lobby/, 'the login card shows the quick-start publish');
    await page.screenshot({ path: join(SHOTS, `demo-first-screen-${width}.png`) });
    assert.deepEqual(errors, []);
    await page.context().close();
  }
});

test('the README\'s quick-start publish arrives in the demo\'s lobby, and publish says what it did', async () => {
  const { page, errors } = await newPage(1200, 720);
  carol = page;
  await page.goto(`${node.http}/`);
  await page.fill('#name', 'carol');
  await page.click('#login-form button');
  await page.waitForSelector('#conn.connected');
  await page.waitForSelector('#room-list li.active .sub.subscribed');

  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const line = /^npx tidings publish .*$/m.exec(readme)?.[0];
  assert.ok(line, 'the README has a publish line');
  const r = await shell(line, { TIDINGS_PUBLISHER_ADDRESS: node.publisher, TIDINGS_COMMAND_ADDRESS: node.command });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^sent 1 message to channel demo\\.lobby through ${node.publisher.replace(/[.]/g, '\\.')}`));
  const text = (JSON.parse(/--data '([^']*)'/.exec(line)![1]!) as { text: string }).text;
  await page.locator('#messages li.msg .text', { hasText: text }).waitFor();

  // The event log reads as sentences, not state-machine codes.
  const events = await page.innerText('#events');
  assert.match(events, /connected to node \S+ \(127\.0\.0\.1:\d+\) as carol/);
  assert.doesNotMatch(events, /\(30\d\d|→/);
  assert.equal((events.match(/connected to node/g) ?? []).length, 1, 'one line per connect');
  await page.screenshot({ path: join(SHOTS, 'demo-quick-start-publish.png') });
  assert.deepEqual(errors, []);
});

test('the admin page: a wrong secret is refused; nodes, connections and channels; publish and disconnect forms', async () => {
  assert.ok(carol, 'runs after the quick-start test (carol is connected)');
  const { page, errors } = await newPage(1280, 900);
  await page.goto(`${node.http}/admin`);
  await page.fill('#secret', 'not-the-secret');
  await page.click('#login-form button');
  await page.locator('#login-error', { hasText: /admin secret missing or wrong/ }).waitFor();
  assert.equal(await page.isVisible('#dash'), false);

  await page.fill('#secret', ADMIN);
  await page.click('#login-form button');
  await page.waitForSelector('#dash:not([hidden])');
  // Edges report every 2 s: wait for carol's connection to be counted.
  await page.locator('#nodes tbody tr[data-node] .health.ok').waitFor();
  await page.waitForFunction(() => Number(document.getElementById('t-connections')!.textContent) >= 1);
  const lobby = page.locator('#channels tr[data-channel="demo.lobby"]');
  await lobby.waitFor();
  await page.waitForFunction(() => document.querySelector('#channels tr[data-channel="demo.lobby"] td:nth-child(2)')?.textContent === '1');
  assert.equal(await lobby.locator('td').nth(2).innerText(), '1', 'one user');
  assert.match(await page.innerText('#status'), /^live/);

  await page.fill('#pub-channel', 'demo.lobby');
  await page.fill('#pub-data', '{"text": "hello from the admin page"}');
  await page.click('#publish-form button');
  await page.locator('#pub-result.ok', { hasText: /published to demo\.lobby: offset \d+/ }).waitFor();
  await carol.locator('#messages li.msg', { hasText: 'hello from the admin page' }).waitFor();
  assert.equal(await carol.locator('#messages li.msg', { hasText: 'hello from the admin page' }).locator('.who').innerText(), 'admin');
  await page.screenshot({ path: join(SHOTS, 'admin.png'), fullPage: true });

  await page.fill('#dis-user', 'carol');
  await page.click('#disconnect-form button');
  await page.locator('#dis-result.ok', { hasText: 'disconnected 1 connection of carol' }).waitFor();
  await carol.waitForSelector('#conn.disconnected');
  await page.fill('#dis-user', 'carol');
  await page.click('#disconnect-form button');
  await page.locator('#dis-result.ok', { hasText: 'carol has no connection' }).waitFor();
  assert.deepEqual(errors, []);
});
