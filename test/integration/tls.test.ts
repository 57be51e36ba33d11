/** TLS: with tls_cert_file and tls_key_file a node serves https:// and wss://. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import WebSocket from 'ws';
import { startSingleNode, runCli, TOKEN_SECRET } from '../helpers/processes.js';
import { signToken } from '../../src/auth/sign.js';

test('a node with a certificate serves https and wss; a missing key file is a setting error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const ca = readFileSync(cert);
  const node = await startSingleNode({ TIDINGS_TLS_CERT_FILE: cert, TIDINGS_TLS_KEY_FILE: key });
  try {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`https://127.0.0.1:${node.port}/healthz`, { ca }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
    const token = await signToken({ secret: TOKEN_SECRET, user: 'secure', ttl: 60, subscribe: ['*'] });
    const ws = new WebSocket(`wss://127.0.0.1:${node.port}/ws?token=${token}`, { ca });
    const first = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d) => resolve(d.toString()));
      ws.once('error', reject);
    });
    assert.equal(JSON.parse(first).type, 'connected');
    assert.equal(JSON.parse(first).user, 'secure');
    ws.close();
    // Plain ws:// to a TLS port does not get through.
    const plain = new WebSocket(`ws://127.0.0.1:${node.port}/ws`);
    await new Promise<void>((resolve) => {
      plain.once('error', () => resolve());
      plain.once('open', () => resolve());
    });
    assert.notEqual(plain.readyState, WebSocket.OPEN);
    const r = await runCli(['serve'], { TIDINGS_TLS_CERT_FILE: cert, TIDINGS_TLS_KEY_FILE: join(dir, 'missing.pem') });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /invalid setting tls_key_file: cannot read/);
  } finally {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
