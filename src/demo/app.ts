/**
 * The demo chat page. Everything it does over the websocket goes through the
 * client SDK (./tidings.js, served by the edge); the only other request is the
 * demo-only token endpoint. docs/sdk.md walks through it.
 */
import { ErrorCodes, RequestError, TidingsClient, type MessagePush, type Subscription } from './tidings.js';

// --- where things are --------------------------------------------------------

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const query = new URLSearchParams(location.search);
/** The page is served at <base>/ or <base>/demo. */
const base = location.pathname.replace(/\/?(demo)?$/, '');
const ownWs = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${base}/ws`;
/** ?urls=ws://a/ws,ws://b/ws lists edges to fail over between (this page's own edge by default). */
const urls = query.get('urls')?.split(',').filter(Boolean) ?? [ownWs];
/** Token endpoints: this page's origin first, then the HTTP side of every edge URL. */
const tokenEndpoints = [...new Set([`${base}/demo/token`, ...urls.map((u) => u.replace(/^ws/, 'http').replace(/\/ws$/, '/demo/token'))])];

const DEFAULT_ROOMS = ['demo.lobby', 'demo.random', 'demo.help'];

// --- state ----------------------------------------------------------------------

interface ChatMessage {
  offset: number;
  sender: string | null;
  text: string;
  time: number;
  history: boolean;
}

interface Room {
  name: string;
  sub: Subscription | null;
  messages: Map<number, ChatMessage>;
  /** Lines about the room itself (recovery, errors), shown among messages by time. */
  notes: { time: number; text: string }[];
  unread: number;
  presence: Map<string, number>;
  presenceNote: string;
  historyLoaded: boolean;
}

let me = '';
let client: TidingsClient | null = null;
let cachedToken: { token: string; expires: number } | null = null;
const rooms = new Map<string, Room>();
let active = '';

// --- token supplier -------------------------------------------------------------

/**
 * The SDK calls this before every (re)connect. A token with more than a
 * minute left is reused; otherwise a fresh one is fetched from the first
 * token endpoint that answers (this page's node may be the one that is down).
 */
async function getToken(): Promise<string> {
  const now = Date.now() / 1000;
  if (cachedToken && cachedToken.expires - now > 60) return cachedToken.token;
  return fetchToken([...rooms.keys()]);
}

async function fetchToken(roomNames: string[]): Promise<string> {
  let lastError: unknown = null;
  for (const endpoint of tokenEndpoints) {
    try {
      // text/plain keeps the cross-origin request simple (no preflight).
      const res = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ user: me, rooms: roomNames }) });
      const body = (await res.json()) as { token?: string; expires?: number; error?: { message: string } };
      if (!res.ok || !body.token) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
      cachedToken = { token: body.token, expires: body.expires ?? 0 };
      return body.token;
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError instanceof Error ? lastError : new Error('no token endpoint answered');
}

// --- rendering ------------------------------------------------------------------

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls = '', text = ''): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text) e.textContent = text;
  return e;
}

const clock = (t: number): string => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const label = (room: string): string => '#' + room.replace(/^demo\./, '');

function logEvent(text: string, strong = ''): void {
  const li = el('li');
  if (strong) li.append(el('b', '', strong + ' '));
  li.append(document.createTextNode(`${text} · ${clock(Date.now())}`));
  const list = $('events');
  list.prepend(li);
  while (list.children.length > 100) list.lastChild!.remove();
}

function renderRooms(): void {
  const list = $('room-list');
  list.replaceChildren();
  for (const r of rooms.values()) {
    const li = el('li', r.name === active ? 'active' : '');
    li.dataset['room'] = r.name;
    const name = el('span');
    name.append(el('span', `sub ${r.sub?.state ?? ''}`), document.createTextNode(label(r.name)));
    li.append(name);
    if (r.unread > 0 && r.name !== active) li.append(el('span', 'unread', String(r.unread)));
    li.onclick = () => show(r.name);
    list.append(li);
  }
}

function renderMessages(): void {
  const r = rooms.get(active);
  const list = $('messages');
  list.replaceChildren();
  if (!r) return;
  $('room-title').textContent = label(r.name);
  $('sub-state').textContent = r.sub?.state ?? 'unsubscribed';
  // Messages in offset order; room notes (recovery, errors) slotted in by time.
  const notes = [...r.notes];
  for (const m of [...r.messages.values()].sort((a, b) => a.offset - b.offset)) {
    while (notes.length > 0 && notes[0]!.time <= m.time) list.append(el('li', 'system', notes.shift()!.text));
    const li = el('li', `msg${m.sender === me ? ' mine' : ''}${m.history ? ' history' : ''}`);
    li.dataset['offset'] = String(m.offset);
    li.append(el('span', 'who', m.sender ?? 'server'), el('span', 'text', m.text), el('span', 'when', clock(m.time)));
    list.append(li);
  }
  for (const n of notes) list.append(el('li', 'system', n.text));
  list.scrollTop = list.scrollHeight;
}

function renderPresence(): void {
  const r = rooms.get(active);
  const list = $('presence');
  list.replaceChildren();
  if (!r) return;
  for (const user of [...r.presence.keys()].sort((a, b) => a.localeCompare(b))) {
    const li = el('li');
    li.dataset['user'] = user;
    // No per-user connection count: after a failover the old node's connection lingers until the
    // director notices it is gone, and a count would show a ghost "2 tabs".
    li.append(el('span', 'user', user + (user === me ? ' (you)' : '')));
    list.append(li);
  }
  $('presence-count').textContent = String(r.presence.size);
  $('presence-note').textContent = r.presenceNote;
}

function renderAll(): void {
  renderRooms();
  renderMessages();
  renderPresence();
}

function note(r: Room, text: string): void {
  r.notes.push({ time: Date.now(), text });
  if (r.notes.length > 50) r.notes.shift();
  if (r.name === active) renderMessages();
}

// --- rooms ------------------------------------------------------------------------

function addMessage(r: Room, m: MessagePush, history: boolean): void {
  const data = m.data as { text?: unknown } | null;
  const text = typeof data?.text === 'string' ? data.text : JSON.stringify(m.data);
  if (r.messages.has(m.offset)) return;
  r.messages.set(m.offset, { offset: m.offset, sender: m.sender, text, time: m.time, history });
  // Bounded: the page keeps the newest 500 messages of a room.
  if (r.messages.size > 500) r.messages.delete(Math.min(...r.messages.keys()));
}

async function loadHistory(r: Room): Promise<void> {
  try {
    const h = await client!.history(r.name, { limit: 50 });
    for (const m of h.messages) addMessage(r, m, true);
    r.historyLoaded = true;
  } catch (err) {
    if (err instanceof RequestError && err.code === ErrorCodes.METHOD_NOT_FOUND.code) {
      r.historyLoaded = true;
      note(r, 'history is not available on this server');
    }
  }
  if (r.name === active) renderMessages();
}

async function refreshPresence(r: Room): Promise<void> {
  try {
    const p = await client!.presence(r.name);
    r.presence = new Map(p.users.map((u) => [u.user, u.connections]));
    r.presenceNote = '';
  } catch (err) {
    r.presenceNote = err instanceof RequestError && err.code === ErrorCodes.METHOD_NOT_FOUND.code ? 'presence is not available on this server' : `presence: ${(err as Error).message}`;
  }
  if (r.name === active) renderPresence();
}

function join(name: string): Room {
  let r = rooms.get(name);
  if (r) return r;
  r = { name, sub: null, messages: new Map(), notes: [], unread: 0, presence: new Map(), presenceNote: '', historyLoaded: false };
  rooms.set(name, r);
  const room = r;
  const sub = client!.subscribe(name);
  room.sub = sub;
  sub.on('state', (e) => {
    renderRooms();
    if (room.name === active) $('sub-state').textContent = e.state;
  });
  sub.on('subscribed', (e) => {
    if (e.resubscribed) {
      const text = !e.recovered
        ? 'some messages sent while you were away could not be recovered'
        : e.replayed > 0
          ? `recovered ${e.replayed} missed message${e.replayed === 1 ? '' : 's'}`
          : 'nothing was missed';
      note(room, `back: ${text}`);
      logEvent(`${text} in ${label(name)}`, 'back:');
    }
    if (!room.historyLoaded) void loadHistory(room);
    void refreshPresence(room);
  });
  sub.on('message', (m) => {
    addMessage(room, m, false);
    if (room.name === active) renderMessages();
    else {
      room.unread++;
      renderRooms();
    }
  });
  const presenceChanged = (user: string, joined: boolean): void => {
    if (joined) room.presence.set(user, Math.max(1, room.presence.get(user) ?? 0));
    else room.presence.delete(user);
    if (room.name === active) renderPresence();
    void refreshPresence(room);
  };
  sub.on('join', (e) => presenceChanged(e.user, true));
  sub.on('leave', (e) => presenceChanged(e.user, false));
  sub.on('error', (e) => note(room, `subscription error: ${e.error.message}`));
  return r;
}

function show(name: string): void {
  active = name;
  const r = rooms.get(name);
  if (r) r.unread = 0;
  renderAll();
  if (r) void refreshPresence(r);
  $<HTMLInputElement>('text').focus();
}

function roomName(input: string): string | null {
  const slug = input.trim().toLowerCase().replace(/^#/, '').replace(/^demo\./, '').replace(/\s+/g, '-').replace(/[^a-z0-9_-]/g, '');
  return slug ? `demo.${slug.slice(0, 40)}` : null;
}

// --- connection -----------------------------------------------------------------

function start(name: string): void {
  me = name;
  // ?retryDelay=<seconds> sets the first reconnect delay (the browser test uses it to widen the gap).
  const asked = Number(query.get('retryDelay'));
  const initialRetryDelay = query.has('retryDelay') && asked >= 0 && asked <= 60 ? asked : 0.5;
  // fallback: behind a proxy that refuses websockets the demo goes on over SockJS (loaded from the edge only then).
  client = new TidingsClient({ urls, getToken, initialRetryDelay, maxRetryDelay: Math.max(10, initialRetryDelay), timeout: 5, pingMargin: 5, fallback: true });
  (window as unknown as { tidings: TidingsClient }).tidings = client;
  const conn = $('conn');
  client.on('state', (e) => {
    conn.className = `conn ${e.state}`;
    $('state').textContent = e.state;
    // Connecting and connected have their own lines below; a drop says why, in words.
    if (e.state === 'disconnected' || (e.state === 'connecting' && e.previous === 'connected')) {
      logEvent(`${e.reason.message}${e.reason.reconnect && e.state === 'connecting' ? ', reconnecting' : ''}`, 'disconnected:');
    }
  });
  client.on('connecting', (e) => {
    const host = e.url.replace(/^wss?:\/\//, '').replace(/\/ws$/, '');
    $('node').textContent = `→ ${host}`;
    logEvent(`connecting to ${host}…`);
  });
  client.on('connected', (e) => {
    const host = e.url.replace(/^wss?:\/\//, '').replace(/\/ws$/, '');
    $('node').textContent = `node ${e.node}`;
    $('node').title = host;
    $('node').dataset['url'] = e.url;
    logEvent(`to node ${e.node} (${host}) as ${e.user}`, 'connected');
  });
  client.on('error', (e) => logEvent(e.error.message, 'error:'));
  client.connect();
  for (const room of DEFAULT_ROOMS) join(room);
  show(DEFAULT_ROOMS[0]!);
  // Presence also refreshes now and then, for servers without join/leave pushes.
  setInterval(() => {
    const r = rooms.get(active);
    if (r && client?.connected) void refreshPresence(r);
  }, 5000);
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const name = $<HTMLInputElement>('name').value.trim();
  $('login-error').textContent = '';
  me = name;
  fetchToken(DEFAULT_ROOMS).then(
    () => {
      $('login').hidden = true;
      $('chat').hidden = false;
      start(name);
    },
    (err: Error) => {
      $('login-error').textContent = err.message;
    },
  );
});

$('room-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('room-name');
  const name = roomName(input.value);
  input.value = '';
  if (!name || !client) return;
  // Ask the token endpoint to configure the new room (presence pushes, history).
  void fetchToken([name]).catch(() => undefined);
  join(name);
  show(name);
});

$('send-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('text');
  const text = input.value.trim();
  if (!text || !client || !active) return;
  input.value = '';
  const room = rooms.get(active)!;
  client.publish(active, { text }).catch((err: Error) => note(room, `not sent: ${err.message}`));
});
