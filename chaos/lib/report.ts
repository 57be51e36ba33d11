/** The chaos table, as Markdown (printed and written to a file alike). */
import type { ScenarioResult } from './harness.js';

const seconds = (ms: number | null): string => (ms === null ? 'never' : (ms / 1000).toFixed(2));

export const COLUMNS = [
  'scenario',
  'subscribers (affected)',
  'published',
  'acknowledged',
  'delivered',
  'missing',
  'duplicated',
  'reordered',
  'not recovered',
  'recovery s',
  'publish recovery s',
] as const;

export function row(r: ScenarioResult): string[] {
  const f = r.figures;
  const missing = f.missing === 0 ? '0' : `${f.missing} (${f.subscribersMissing} subs)`;
  return [
    r.title,
    `${f.subscribers} (${f.affected})`,
    String(f.published),
    String(f.acknowledged),
    String(f.delivered),
    missing,
    String(f.duplicated),
    String(f.reordered),
    String(f.unrecovered),
    seconds(f.recoveryMs),
    seconds(f.publishRecoveryMs),
  ];
}

export function markdownTable(results: readonly ScenarioResult[]): string {
  const lines = [`| ${COLUMNS.join(' | ')} |`, `|${COLUMNS.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of results) lines.push(`| ${row(r).join(' | ')} |`);
  return lines.join('\n') + '\n';
}
