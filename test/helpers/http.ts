/** Small HTTP helpers for tests: JSON requests and Prometheus metric reading. */
import { API_KEY } from './processes.js';

export async function postJson(url: string, body: unknown, headers: Record<string, string> = { authorization: `Bearer ${API_KEY}` }): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* left as text */
  }
  return { status: res.status, body: parsed };
}

/**
 * Sum of a metric's samples whose labels contain all of `labels` (0 when there is none; with `required`, no
 * such sample is an error: for a gauge whose 0 is the awaited condition, a wrong name must not pass).
 */
export async function metric(httpBase: string, name: string, labels: Record<string, string> = {}, required = false, timeoutMs?: number): Promise<number> {
  const signal = timeoutMs === undefined ? null : AbortSignal.timeout(timeoutMs);
  const text = await (await fetch(`${httpBase}/metrics`, { signal })).text();
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{([^}]*)\})?\s+([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const lbl = m[3] ?? '';
    if (Object.entries(labels).every(([k, v]) => lbl.includes(`${k}="${v}"`))) {
      sum += Number(m[4]);
      found = true;
    }
  }
  if (!found) {
    if (required) throw new Error(`no sample of ${name} ${JSON.stringify(labels)} at ${httpBase}/metrics`);
    return 0;
  }
  return sum;
}
