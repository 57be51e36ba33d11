/**
 * Stand-ins for what the edge server hands a ClientConnection: the `ws`
 * WebSocket (messages in; pause, resume and close codes recorded) and the
 * raw socket its outbox writes server frames to, which takes every write
 * (its buffer stays empty) and keeps each text frame's payload as its lines.
 * The unit tests of the connection share them; frames are read by the
 * parser the SockJS native transport uses (src/sockjs/native.ts).
 */
import { EventEmitter } from 'node:events';
import assert from 'node:assert/strict';
import { eachFramePayload } from '../../src/sockjs/native.js';

export class FakeWs extends EventEmitter {
  readonly protocol = '';
  paused = false;
  /** The close code the connection gave, once it closed. */
  closedWith: number | null = null;
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  close(code: number): void {
    this.closedWith = code;
  }
  terminate(): void {}
}

export class FakeSocket extends EventEmitter {
  /** Each text frame written, split into its lines. */
  readonly frames: string[][] = [];
  writableLength = 0;
  destroyed = false;
  write(buf: Buffer): boolean {
    let framed = 0;
    eachFramePayload(buf, (opcode, payload) => {
      assert.equal(opcode, 0x1, 'a text frame');
      this.frames.push(payload.toString('utf8').split('\n'));
      framed += (payload.length < 126 ? 2 : payload.length < 65536 ? 4 : 10) + payload.length;
    });
    assert.equal(framed, buf.length, 'a write holds whole frames only');
    return true;
  }
  /** Every line written so far, parsed. */
  get lines(): unknown[] {
    return this.frames.flat().map((l) => JSON.parse(l) as unknown);
  }
}
