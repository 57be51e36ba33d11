/**
 * The bench payload: a JSON array `[channel,seq,sentMicros,"pad"]`, padded to
 * the wanted size. Times are microseconds of CLOCK_MONOTONIC
 * (process.hrtime), which every process on the machine shares, minus a base
 * the run hands out, so the numbers stay short.
 */

export function nowMicros(base: number): number {
  return Number(process.hrtime.bigint() / 1000n) - base;
}

export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** Payload of exactly `size` bytes when size allows, never shorter than `[channel,seq,time]`. */
export function makePayload(channel: number, seq: number, time: number, size: number): string {
  const head = `[${channel},${seq},${time}`;
  const room = size - head.length - 4; // ,"" and ]
  return room > 0 ? `${head},"${PAD.slice(0, room)}"]` : `${head}]`;
}

const PAD = 'x'.repeat(1 << 20);

/** Matches every payload head in a frame's text: several pushes may share a frame. */
export const PAYLOAD_HEAD = /\[(\d+),(\d+),(\d+)/g;
