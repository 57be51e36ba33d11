/**
 * Summarises sampling heap profiles written by bench/alloc-profile.ts: bytes
 * by allocating function and by the last frames of their stacks, module
 * loading left out (it is the same in every run), and with `--messages N`
 * bytes per message (N: the run's published messages, results.json's
 * `published`; the warm-up's messages are not in it, so the figure is a
 * little high, alike for every build).
 *
 *   node dist/bench/alloc-summary.js <profile.heapprofile> [--messages N] [--top 20]
 */
import { readFileSync } from 'node:fs';
import { textFlag } from './lib/flags.js';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children: Node[];
}
interface Profile {
  head: Node;
  samples: Array<{ size: number; nodeId: number }>;
}

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => textFlag(args, name);
const file = args[0];
if (!file) throw new Error('usage: alloc-summary.js <profile.heapprofile> [--messages N] [--top 20]');
const messages = Number(opt('messages') ?? 0);
const top = Number(opt('top') ?? 20);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

const stacks = new Map<number, string[]>();
const walk = (n: Node, stack: string[]): void => {
  const f = n.callFrame;
  const here = [...stack, `${f.functionName || '(anonymous)'} ${f.url.replace(/.*\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}`];
  stacks.set(n.id, here);
  for (const c of n.children) walk(c, here);
};
walk(profile.head, []);
const LOADING = /modules\/(cjs|esm)|Module\._|compileFunction|node:inspector/;
const bySelf = new Map<string, number>();
const byTail = new Map<string, number>();
let total = 0;
let loading = 0;
for (const s of profile.samples) {
  const stack = stacks.get(s.nodeId)!;
  total += s.size;
  if (stack.some((f) => LOADING.test(f))) {
    loading += s.size;
    continue;
  }
  const leaf = stack[stack.length - 1]!;
  bySelf.set(leaf, (bySelf.get(leaf) ?? 0) + s.size);
  const tail = stack.slice(-5).reverse().join(' < ');
  byTail.set(tail, (byTail.get(tail) ?? 0) + s.size);
}
const counted = total - loading;
const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`;
console.log(`${mb(total)} sampled, ${mb(loading)} of it module loading; the rest ${mb(counted)}${messages > 0 ? `, ${(counted / messages).toFixed(0)} bytes per message` : ''}`);
const show = (title: string, m: Map<string, number>): void => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${((100 * v) / counted).toFixed(1).padStart(5)}%  ${k}`);
};
show('by allocating function:', bySelf);
show('by stack (allocating function first):', byTail);
