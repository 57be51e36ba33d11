/**
 * The admin page: reads the cluster overview from this node's admin API every
 * two seconds and offers two actions, publish and disconnect. The admin secret
 * stays in this tab (sessionStorage) and goes in the Authorization header.
 */
interface EdgeRow {
  edge: string;
  health: string;
  pid: number;
  uptime_s: number;
  connections: number;
  subscriptions: number;
  delivered_rate: number;
}
interface NodeRow {
  node: string;
  health: string;
  connections: number;
  subscriptions: number;
  delivered_rate: number;
  edges: EdgeRow[];
}
interface ChannelRow {
  channel: string;
  subscribers: number;
  users: number;
  rate: number;
  offset: number;
  history: number;
}
interface Overview {
  director: { node: string; uptime_s: number; channels: number; presence_connections: number };
  totals: { nodes: number; edges: number; connections: number; subscriptions: number; published_rate: number; delivered_rate: number };
  nodes: NodeRow[];
  channel_count: number;
  channels: ChannelRow[];
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const KEY = 'tidings-admin-secret';
let secret = sessionStorage.getItem(KEY) ?? '';
let timer: number | null = null;

class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function api<T>(path: string, body?: unknown): Promise<T> {
  const res = await fetch(`api/${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${secret}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.json().catch(() => ({}))) as { error?: { code: number; message: string } };
  if (!res.ok) throw new ApiError(json.error ? `${json.error.message} (${json.error.code})` : `HTTP ${res.status}`, res.status);
  return json as T;
}

function cell(text: string | number, cls = ''): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = String(text);
  if (cls) td.className = cls;
  return td;
}

const fmt = (n: number): string => (n >= 100 ? Math.round(n).toLocaleString() : String(Math.round(n * 10) / 10));

function render(o: Overview): void {
  $('t-nodes').textContent = String(o.totals.nodes);
  $('t-connections').textContent = o.totals.connections.toLocaleString();
  $('t-subscriptions').textContent = o.totals.subscriptions.toLocaleString();
  $('t-published').textContent = fmt(o.totals.published_rate);
  $('t-delivered').textContent = fmt(o.totals.delivered_rate);
  $('t-channels').textContent = o.channel_count.toLocaleString();

  const nodes = $('nodes').querySelector('tbody')!;
  nodes.replaceChildren();
  for (const n of o.nodes) {
    const tr = document.createElement('tr');
    tr.dataset['node'] = n.node;
    const health = cell('');
    const badge = document.createElement('span');
    badge.className = `health ${n.health}`;
    badge.textContent = n.health;
    health.append(badge);
    const edges = cell(n.edges.map((e) => `${e.edge.slice(n.node.length + 1)} (pid ${e.pid}, up ${e.uptime_s} s, ${e.connections} conn.)`).join(' · '), 'edges');
    tr.append(cell(n.node), health, edges, cell(n.connections, 'n'), cell(n.subscriptions, 'n'), cell(fmt(n.delivered_rate), 'n'));
    nodes.append(tr);
  }
  if (o.nodes.length === 0) {
    const tr = document.createElement('tr');
    const td = cell('no edge has reported yet', 'muted');
    td.colSpan = 6;
    tr.append(td);
    nodes.append(tr);
  }
  $('director').textContent = `Director: ${o.director.node}, up ${o.director.uptime_s} s, ${o.director.channels} channels with state, ${o.director.presence_connections} connections in presence.`;

  const channels = $('channels').querySelector('tbody')!;
  channels.replaceChildren();
  for (const c of o.channels) {
    const tr = document.createElement('tr');
    tr.dataset['channel'] = c.channel;
    tr.append(cell(c.channel), cell(c.subscribers, 'n'), cell(c.users, 'n'), cell(fmt(c.rate), 'n'), cell(c.offset, 'n'), cell(c.history, 'n'));
    channels.append(tr);
  }
  $('channel-note').textContent = o.channel_count > o.channels.length ? `(the ${o.channels.length} busiest of ${o.channel_count})` : '';
}

async function refresh(): Promise<void> {
  const status = $('status');
  try {
    render(await api<Overview>('overview'));
    status.className = 'status live';
    status.textContent = `live · ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      signOut(err.message);
      return;
    }
    status.className = 'status error';
    status.textContent = `overview failed: ${(err as Error).message}`;
  }
}

function signOut(reason: string): void {
  if (timer !== null) clearInterval(timer);
  timer = null;
  sessionStorage.removeItem(KEY);
  $('dash').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = reason;
  $('status').className = 'status';
  $('status').textContent = 'signed out';
}

async function signIn(): Promise<void> {
  try {
    render(await api<Overview>('overview'));
  } catch (err) {
    signOut((err as Error).message);
    return;
  }
  sessionStorage.setItem(KEY, secret);
  $('login').hidden = true;
  $('dash').hidden = false;
  await refresh();
  timer = window.setInterval(() => void refresh(), 2000);
}

function result(id: string, ok: boolean, text: string): void {
  const el = $(id);
  el.className = `result ${ok ? 'ok' : 'bad'}`;
  el.textContent = text;
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  secret = $<HTMLInputElement>('secret').value;
  void signIn();
});

$('publish-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const channel = $<HTMLInputElement>('pub-channel').value.trim();
  let data: unknown;
  try {
    data = JSON.parse($<HTMLTextAreaElement>('pub-data').value);
  } catch {
    result('pub-result', false, 'the data must be JSON');
    return;
  }
  api<{ offset: number; epoch: string }>('publish', { channel, data }).then(
    (r) => {
      result('pub-result', true, `published to ${channel}: offset ${r.offset}, epoch ${r.epoch}`);
      void refresh();
    },
    (err: Error) => result('pub-result', false, err.message),
  );
});

$('disconnect-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const user = $<HTMLInputElement>('dis-user').value.trim();
  api<{ disconnected: string[] }>('disconnect', { user }).then(
    (r) => {
      result('dis-result', true, r.disconnected.length === 0 ? `${user} has no connection` : `disconnected ${r.disconnected.length} connection${r.disconnected.length === 1 ? '' : 's'} of ${user}`);
      void refresh();
    },
    (err: Error) => result('dis-result', false, err.message),
  );
});

if (secret) void signIn();
