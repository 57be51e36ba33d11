/**
 * Publishers, each server's own way: Tidings over ZeroMQ with the project's
 * Publisher, the ws peers over a publisher websocket, socket.io with its
 * client, NATS with PUB over its TCP port.
 */
import { connect as netConnect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { io as ioClient, type Socket as IoSocket } from 'socket.io-client';
import { Publisher } from '../../src/publisher/publisher.js';
import type { RunningServer } from './servers.js';

export interface BenchPublisher {
  /** Queue one message; resolves when the caller may send more. */
  publish(channel: string, payload: string): Promise<void> | void;
  close(): Promise<void>;
}

export async function openPublisher(server: RunningServer): Promise<BenchPublisher> {
  switch (server.kind) {
    case 'tidings':
    case 'tidings-curve':
      return tidings(server.publishTo, server.publisherCurve ?? null);
    case 'ws-naive':
    case 'ws-batched':
      return wsPeer(server.publishTo);
    case 'socketio':
      return socketio(server.publishTo);
    case 'nats':
      return nats(server.publishTo);
  }
}

async function tidings(address: string, curve: { secretKey: string; serverKey: string } | null): Promise<BenchPublisher> {
  const pub = new Publisher({ address, maxQueue: 1_000_000, curve });
  pub.start();
  await pub.waitReady(10_000);
  return {
    publish: (channel, payload) => pub.publish(channel, JSON.parse(payload)),
    close: () => pub.close(),
  };
}

async function wsPeer(url: string): Promise<BenchPublisher> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    publish: (channel, payload) => ws.send(`${channel}|${payload}`),
    close: async () => ws.close(),
  };
}

async function socketio(url: string): Promise<BenchPublisher> {
  const socket: IoSocket = ioClient(url, { transports: ['websocket'], reconnection: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  return {
    publish: (room, payload) => void socket.emit('pub', room, payload),
    close: async () => void socket.close(),
  };
}

async function nats(hostPort: string): Promise<BenchPublisher> {
  const [host, port] = hostPort.split(':') as [string, string];
  const socket: Socket = netConnect({ host, port: Number(port) });
  socket.setNoDelay(true);
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', (d: Buffer) => {
      const t = d.toString();
      if (t.includes('PONG')) resolve();
      if (t.includes('PING')) socket.write('PONG\r\n');
    });
    socket.write('CONNECT {"verbose":false,"pedantic":false,"echo":false}\r\nPING\r\n');
  });
  let armed = false;
  const flush = (): void => {
    armed = false;
    socket.write(buffered);
    buffered = '';
  };
  return {
    publish: (subject, payload) => {
      buffered += `PUB ${subject} ${Buffer.byteLength(payload)}\r\n${payload}\r\n`;
      if (!armed) {
        armed = true;
        setImmediate(flush);
      }
    },
    close: async () => {
      if (buffered) flush();
      await new Promise<void>((r) => socket.end(() => r()));
    },
  };
}
