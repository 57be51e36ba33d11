/**
 * Summaries of a V8 .cpuprofile: the hottest functions by self time, by
 * total time (self + callees: what a flame graph's widths show), and self
 * time grouped by where the code lives (our modules, zeromq.js, ws, Node's
 * internals, the garbage collector, idle).
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: Node[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

/** A stretch of CLOCK_MONOTONIC in microseconds (V8's profile clock), e.g. a run's measured phase. */
export interface Window {
  fromMicros: number;
  toMicros: number;
}

function load(file: string): Profile {
  return JSON.parse(readFileSync(file, 'utf8')) as Profile;
}

function label(n: Node): string {
  const f = n.callFrame;
  return `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
}

/** Where a function lives: src/<dir> of ours, a package, node internals, or V8's pseudo-frames. */
function area(n: Node): string {
  const { url, functionName } = n.callFrame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const ours = /\/dist\/(src|bench)\/([^/]+)\//.exec(url);
  if (ours) return `${ours[1]}/${ours[2]}`;
  const pkg = /node_modules\/((@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  return url;
}

const pct = (v: number, total: number): string => `${((100 * v) / Math.max(1, total)).toFixed(1).padStart(5)}%`;

/** Samples per node id, within the window when one is given. */
function hits(prof: Profile, window?: Window): Map<number, number> {
  const out = new Map<number, number>();
  if (!prof.samples || !prof.timeDeltas) {
    for (const n of prof.nodes) out.set(n.id, n.hitCount ?? 0);
    return out;
  }
  let t = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i]!;
    if (window && (t < window.fromMicros || t > window.toMicros)) continue;
    out.set(prof.samples[i]!, (out.get(prof.samples[i]!) ?? 0) + 1);
  }
  return out;
}

export function hottest(file: string, top = 25, window?: Window): string[] {
  const prof = load(file);
  const h = hits(prof, window);
  const self = new Map<string, number>();
  let total = 0;
  for (const n of prof.nodes) {
    const c = h.get(n.id) ?? 0;
    total += c;
    self.set(label(n), (self.get(label(n)) ?? 0) + c);
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => `${pct(v, total)}  ${k}`);
}

/**
 * Self time by area, the functions with the most total (inclusive) time, and
 * the hottest by self time; within `window` (e.g. the measured phase) when given.
 */
export function summary(file: string, top = 20, window?: Window): string[] {
  const prof = load(file);
  const h = hits(prof, window);
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  let total = 0;
  let idle = 0;
  const areas = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, c] of h) {
    if (c === 0) continue;
    const n = byId.get(id)!;
    total += c;
    if (n.callFrame.functionName === '(idle)') idle += c;
    areas.set(area(n), (areas.get(area(n)) ?? 0) + c);
    // Each function once per stack, however deep its recursion.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const key = label(byId.get(at)!);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + c);
    }
  }
  const ms = window ? (window.toMicros - window.fromMicros) / 1000 : (prof.endTime - prof.startTime) / 1000;
  const out = [`${(ms / 1000).toFixed(1)} s${window ? ' (measured phase)' : ''}, ${total} samples, ${pct(total - idle, total).trim()} busy`, '', 'self time by area:'];
  for (const [k, v] of [...areas.entries()].sort((a, b) => b[1] - a[1]).slice(0, 14)) out.push(`${pct(v, total)}  ${k}`);
  out.push('', 'total (inclusive) time:');
  for (const [k, v] of [...inclusive.entries()]
    .filter(([k]) => !k.startsWith('(root)'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top))
    out.push(`${pct(v, total)}  ${k}`);
  out.push('', 'self time:', ...hottest(file, top, window));
  return out;
}

/** Which process a profile is from: the node's primary runs the director, workers the edge. */
export function role(file: string): string {
  const urls = new Set(load(file).nodes.map((n) => n.callFrame.url));
  const has = (part: string): boolean => [...urls].some((u) => u.includes(part));
  const parts = [has('/director/director.js') && 'director', has('/forwarder/forwarder.js') && 'forwarder', has('/edge/hub.js') && 'edge'].filter(Boolean);
  return parts.length ? parts.join(' + ') : 'other';
}
