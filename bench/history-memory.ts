/**
 * Memory per history byte on the director.
 *
 * For each message size, a child process (node --expose-gc) fills the
 * director's history structures (ChannelHistory + HistoryBudget over 100
 * channels) with pushes encoded exactly as the director encodes them (with
 * the short-lived topic and header frames it allocates beside each), runs
 * the garbage collector, and compares its memory with the same process before
 * filling: the baseline of the same run. Figures: memory (V8 heap + external
 * buffers, and resident set) per byte charged to the history budget (each push
 * plus ENTRY_OVERHEAD) and per byte of the pushes themselves.
 *
 *   npm run build && node dist/bench/history-memory.js [--total-mb 100]
 *
 * The results of a run are in docs/operations.md ("History and memory").
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ChannelHistory, ENTRY_OVERHEAD, HistoryBudget } from '../src/director/history.js';
import { assemblePush, messagePushParts } from '../src/director/push-encoding.js';
import { channelTopic } from '../src/cluster/topics.js';
import { DownKind, encodeHeader } from '../src/cluster/wire.js';
import { numberFlag } from './lib/flags.js';


const SIZES = [100, 1000, 16_000, 60_000];
const CHANNELS = 100;

const arg = (name: string, def: number): number => numberFlag(process.argv, name, def);

interface Row {
  mixed: boolean;
  size: number;
  messages: number;
  pushMB: number;
  chargedMB: number;
  heapExternalMB: number;
  rssMB: number;
}

function settle(): NodeJS.MemoryUsage {
  const gc = (globalThis as { gc?: () => void }).gc!;
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage();
}

/**
 * In the child: fill history with `totalMb` of pushes of `size` bytes of data.
 * `mixed`: every other message goes to a channel that keeps only its newest
 * one, so what history keeps lies between what it dropped, as with channels
 * of different rates and retention.
 */
function child(size: number, totalMb: number, mixed: boolean): Row {
  const count = Math.max(1000, Math.round((totalMb * 1e6) / size));
  const budget = new HistoryBudget(Number.MAX_SAFE_INTEGER);
  const limits = { maxCount: 10_000_000, maxAgeMs: 0, maxBytes: Number.MAX_SAFE_INTEGER };
  const channels = Array.from({ length: CHANNELS }, (_, i) => new ChannelHistory(mixed && i % 2 === 1 ? { ...limits, maxCount: 1 } : limits, budget));
  const data = JSON.stringify({ t: 'x'.repeat(Math.max(0, size - 10)) });
  const before = settle();
  let pushBytes = 0;
  let frameBytes = 0;
  const now = Date.now();
  for (let i = 0; i < count; i++) {
    const ch = i % CHANNELS;
    const offset = Math.floor(i / CHANNELS) + 1;
    // Encoded and stored as the memory engine does: the push text written once into history memory (a channel's
    // slabs once it holds enough, see history.ts).
    const { head, tail } = messagePushParts(`mem.${ch}`, 'bench', now, data);
    const push = channels[ch]!.store(offset, now, assemblePush(head, offset, 'Qh5QE6fn', tail));
    // The frames the director sends with each push, short-lived, as in Director.publishChannel.
    frameBytes += channelTopic(`mem.${ch}`).length + encodeHeader(DownKind.Message, offset, 'Qh5QE6fn').length;
    pushBytes += push.length;
  }
  const after = settle();
  if (mixed) pushBytes = budget.used - budget.count * ENTRY_OVERHEAD;
  if (frameBytes === 0) throw new Error('no frames');
  return {
    mixed,
    size,
    messages: budget.count,
    pushMB: pushBytes / 1e6,
    chargedMB: budget.used / 1e6,
    heapExternalMB: (after.heapUsed + after.external - before.heapUsed - before.external) / 1e6,
    rssMB: (after.rss - before.rss) / 1e6,
  };
}

if (process.argv.includes('--child')) {
  process.stdout.write(JSON.stringify(child(arg('size', 1000), arg('total-mb', 100), process.argv.includes('--mixed'))));
  process.exit(0);
}

const totalMb = arg('total-mb', 100);
const rows: Row[] = [];
for (const mixed of [false, true]) {
  for (const size of SIZES) {
    const args = ['--expose-gc', fileURLToPath(import.meta.url), '--child', '--size', String(size), '--total-mb', String(totalMb), ...(mixed ? ['--mixed'] : [])];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (r.status !== 0) throw new Error(`child for ${size} B failed: ${r.stderr}`);
    rows.push(JSON.parse(r.stdout) as Row);
  }
}
console.log(`History memory (ENTRY_OVERHEAD ${ENTRY_OVERHEAD} B), ${totalMb} MB of data per size over ${CHANNELS} channels, after GC:\n`);
console.log('| retention | data size | messages kept | pushes kept (MB) | charged (MB) | heap + external (MB) | per charged byte | per push byte | RSS growth (MB) | RSS per charged byte |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.mixed ? 'mixed' : 'all kept'} | ${r.size} B | ${r.messages} | ${r.pushMB.toFixed(1)} | ${r.chargedMB.toFixed(1)} | ${r.heapExternalMB.toFixed(1)} | ` +
      `${(r.heapExternalMB / r.chargedMB).toFixed(2)} | ${(r.heapExternalMB / r.pushMB).toFixed(2)} | ${r.rssMB.toFixed(1)} | ${(r.rssMB / r.chargedMB).toFixed(2)} |`,
  );
}
