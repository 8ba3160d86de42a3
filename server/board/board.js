// The dispatcher board. It follows /api/v1/board/events (Server-Sent Events: a snapshot, then
// only what changed) and draws the queue, the sites and one site's page from those entities.
// Writes go to the collector's API with the token the dispatcher enters, kept for the browser
// session only. Every text from the collector goes in through textContent, never as HTML.
'use strict';

const CLASS_RANK = { emergency: 0, task: 1, consultation: 2, development: 3 };
const STATE_RANK = { down: 0, critical: 1, warning: 2, unknown: 3, ok: 4 };

const board = {
  entities: new Map(), // key -> entity, as the collector sent it
  offset: 0,           // the collector's clock minus ours, seconds
  writes: false,
  site: null,          // the site whose page is open, or null for the queue
  source: null,
  lastMessage: 0,
  recentFor: null,     // which site `recent` shows
  recentDirty: false,
};

const $ = (id) => document.getElementById(id);
const now = () => Date.now() / 1000 + board.offset;

// h('div', {class: 'x', onclick: f}, child, 'text', ...): an element, text as text nodes.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// ------------------------------------------------------------------ formatting

function span(seconds) {
  const s = Math.max(0, Math.round(Math.abs(seconds)));
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (n) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d ${hh}h`;
  if (hh > 0) return `${hh}:${two(mm)}:${two(ss)}`;
  return `${mm}:${two(ss)}`;
}

function ago(ts) {
  if (!ts) return '';
  const s = now() - ts;
  if (s < 5) return 'just now';
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min ago`;
  return `${Math.round(s / 86400)} d ago`;
}

// An age that the once-a-second tick keeps current, so that rows need not be redrawn for it.
function agoEl(ts) { return h('span', { class: 'ago', 'data-ts': ts || 0 }); }

function clockTime(ts) {
  if (!ts) return '';
  const d = new Date(ts * 1000);
  const today = new Date(now() * 1000).toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function number(v) {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 1e6 || (Math.abs(v) < 1e-3 && v !== 0)) return v.toExponential(3);
  return String(Math.round(v * 1000) / 1000);
}

function seconds(v) { return v < 1 ? `${Math.round(v * 1000)} ms` : `${number(v)} s`; }

// ------------------------------------------------------------------ the queue

// Service time left to the reaction deadline, counted down while the site is in service hours.
function left(t) {
  if (!t.has_deadline || t.status !== 'open') return null;
  return t.clock.left - (t.counting ? now() - t.clock.at : 0);
}

function byUrgency(a, b) {
  const ca = CLASS_RANK[a.class] ?? 9, cb = CLASS_RANK[b.class] ?? 9;
  if (ca !== cb) return ca - cb;
  const aa = a.status === 'acknowledged', ab = b.status === 'acknowledged';
  if (aa !== ab) return aa ? 1 : -1;
  const la = left(a), lb = left(b);
  if ((la === null) !== (lb === null)) return la === null ? 1 : -1;
  if (la !== null && la !== lb) return la - lb;
  if (a.priority !== b.priority) return a.priority < b.priority ? -1 : 1;
  return a.raised_at - b.raised_at;
}

function tickets(site) {
  const out = [];
  for (const e of board.entities.values())
    if (e.kind === 'ticket' && (site === null || e.site === site)) out.push(e);
  return out.sort(byUrgency);
}

function fillCountdown(el, t) {
  const l = left(t);
  el.className = 'countdown';
  if (t.status === 'acknowledged') {
    el.replaceChildren('acked', h('small', {}, ago(t.acknowledged_at)));
  } else if (l === null) {
    el.replaceChildren('—', h('small', {}, 'no reaction target'));
  } else if (l < 0) {
    el.classList.add('late');
    el.replaceChildren(`−${span(l)}`, h('small', {}, 'past the deadline'));
  } else {
    el.classList.add(t.counting ? (l < 300 ? 'soon' : 'running') : 'paused');
    el.replaceChildren(span(l), h('small', {}, t.counting ? 'to react' : 'paused: out of hours'));
  }
}

function ticketRow(t) {
  const where = t.agent ? `${t.agent}${t.probe ? ' / ' + t.probe : ''}` : 'whole site';
  const badges = [
    t.occurrences > 1 && h('span', { class: 'badge', title: 'times it failed again' }, `×${t.occurrences}`),
    t.flapping && h('span', { class: 'badge flap' }, 'flapping'),
    t.escalations > 0 && h('span', { class: 'badge', title: 'escalations' }, `esc ${t.escalations}`),
  ];
  const acts = h('div', { class: 'actions' });
  if (board.writes) {
    if (t.status === 'open')
      acts.append(h('button', { type: 'button', onclick: () => act('ack', t) }, 'Ack'));
    acts.append(h('button', { type: 'button', onclick: () => act('close', t) }, 'Close'));
    if (t.site) acts.append(h('button', { type: 'button', onclick: () => act('silence', t) }, 'Silence'));
  }
  return h('div', { class: `ticket ${t.class} ${t.status}`, role: 'listitem', 'data-id': t.id },
    h('div', { class: 'cls' }, t.class, h('span', { class: 'badge' }, t.priority)),
    h('div', { class: 'where' }, h('a', { href: siteHref(t.site) }, t.site || '(collector)'),
      h('small', {}, where)),
    h('div', { class: 'what' }, t.summary, badges,
      t.status === 'acknowledged'
        ? h('small', {}, `acknowledged by ${t.acknowledged_by || '?'}${t.comment ? ': ' + t.comment : ''}`)
        : h('small', {}, t.details)),
    h('div', { class: 'since', title: new Date(t.raised_at * 1000).toString() },
      `since ${clockTime(t.raised_at)}`, h('br'), agoEl(t.raised_at)),
    h('div', { class: 'countdown', 'data-ticket': t.id }),
    acts);
}

function renderQueue(container, empty, list) {
  keep(container, list.map(ticketRow));
  empty.hidden = list.length > 0;
}

// Puts fresh rows into container, keeping in place every row that looks the same as before: a
// button is not swapped away under the pointer, and a selection stays. Ages and countdowns are
// left empty by the row builders (compared without them) and filled here and by the tick.
function keep(container, fresh) {
  const old = new Map();
  for (const el of container.children) old.set(el.dozorKey, el);
  const rows = fresh.map((el) => {
    const key = el.outerHTML;
    const same = old.get(key);
    if (same) { old.delete(key); return same; }
    el.dozorKey = key;
    fillTimes(el);
    return el;
  });
  const children = container.children;
  if (rows.length !== children.length || rows.some((el, i) => children[i] !== el))
    container.replaceChildren(...rows);
}

function fillTimes(root) {
  for (const el of root.querySelectorAll('.ago[data-ts]')) el.textContent = ago(Number(el.dataset.ts));
  for (const el of root.querySelectorAll('.countdown[data-ticket]')) {
    const t = board.entities.get('ticket:' + el.dataset.ticket);
    if (t) fillCountdown(el, t);
  }
}

// ------------------------------------------------------------------ sites

function siteHref(site) { return '#site=' + encodeURIComponent(site || ''); }

function sites() {
  const out = [];
  for (const e of board.entities.values()) if (e.kind === 'site') out.push(e);
  return out.sort((a, b) => (STATE_RANK[a.state] - STATE_RANK[b.state]) ||
    (b.emergencies - a.emergencies) || a.name.localeCompare(b.name));
}

function stateLine(s) {
  const since = s.since ? ` since ${clockTime(s.since)}` : '';
  return h('span', { class: `state ${s.state}` }, s.state + since);
}

function tile(s) {
  const failing = s.warning + s.critical + s.unknown;
  return h('a', { class: `tile ${s.state}`, href: siteHref(s.name), 'data-site': s.name },
    h('div', { class: 'name' }, s.name),
    stateLine(s),
    h('div', { class: 'line' }, `probes failing ${failing}/${s.probes}`),
    h('div', { class: 'line' }, `agents up ${s.agents_up}/${s.agents}`),
    s.tickets > 0 && h('div', { class: 'line' },
      `${s.tickets} ticket${s.tickets > 1 ? 's' : ''}` +
      (s.emergencies ? `, ${s.emergencies} emergenc${s.emergencies > 1 ? 'ies' : 'y'}` : '')));
}

function silencedBy(site, agent, probe) {
  const glob = (g, v) => g === '*' || g === v ||
    (g.includes('*') && new RegExp('^' + g.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$').test(v));
  for (const e of board.entities.values())
    if (e.kind === 'silence' && e.starts_at <= now() && now() < e.ends_at &&
      glob(e.site, site) && glob(e.agent, agent) && glob(e.probe, probe)) return e;
  return null;
}

// ------------------------------------------------------------------ a site's page

function valueList(metrics) {
  return h('div', { class: 'values' }, metrics.map((m) => {
    const labels = m.labels ? Object.entries(m.labels).map(([k, v]) => `${k}=${v}`).join(', ') : '';
    return h('span', {}, `${m.name} `, h('b', {}, number(m.value)), m.unit ? ` ${m.unit}` : '',
      labels && h('small', {}, ` {${labels}}`));
  }));
}

function renderSite() {
  const site = board.site;
  const tileOf = board.entities.get('site:' + site);
  $('site-title').textContent = site;
  const state = $('site-state');
  state.replaceChildren();
  if (tileOf) {
    state.append(stateLine(tileOf), ` · probes failing ${tileOf.warning + tileOf.critical + tileOf.unknown}/${tileOf.probes}`,
      ` · agents up ${tileOf.agents_up}/${tileOf.agents}`);
  } else {
    state.append('No agent of this site has reported to this collector.');
  }
  const silence = silencedBy(site, '', '');
  if (silence) state.append(h('div', {}, `Silenced until ${clockTime(silence.ends_at)}: ${silence.comment}`));
  renderQueue($('site-queue'), $('site-queue-empty'), tickets(site));

  const agents = [], probes = [];
  for (const e of board.entities.values()) {
    if (e.site !== site) continue;
    if (e.kind === 'agent') agents.push(e);
    if (e.kind === 'probe') probes.push(e);
  }
  agents.sort((a, b) => a.id.localeCompare(b.id));
  keep($('agents').tBodies[0], agents.map((a) => h('tr', { 'data-agent': a.id },
    h('td', {}, a.id),
    h('td', {}, h('span', { class: `state ${a.up ? 'ok' : 'down'}` },
      a.up ? 'up' : `down since ${clockTime(a.down_since)}`)),
    h('td', {}, a.hostname), h('td', {}, a.version),
    h('td', { class: 'num' }, agoEl(a.last_report)),
    h('td', { class: 'num', title: 'its clock minus the collector\'s' },
      Math.abs(a.clock_skew) < 1 ? 'in step' : `${a.clock_skew > 0 ? '+' : '−'}${span(a.clock_skew)}`))));
  probes.sort((a, b) => (STATE_RANK[a.status] - STATE_RANK[b.status]) ||
    a.agent.localeCompare(b.agent) || a.name.localeCompare(b.name));
  keep($('probes').tBodies[0], probes.map((p) => h('tr', { 'data-probe': `${p.agent}/${p.name}` },
    h('td', {}, h('span', { class: `state ${p.status}` }, p.status),
      p.since ? h('div', { class: 'line' }, `since ${clockTime(p.since)}`) : ''),
    h('td', {}, p.name, h('div', { class: 'line' }, `${p.type} on ${p.agent}`)),
    h('td', {}, p.summary),
    h('td', {}, valueList(p.metrics)),
    h('td', { class: 'num' }, seconds(p.duration)),
    h('td', { class: 'num' }, agoEl(p.ts)))));
  if (board.recentFor !== site || board.recentDirty) loadRecent(site);
}

async function loadRecent(site) {
  board.recentFor = site;
  board.recentDirty = false;
  try {
    const res = await fetch(`/api/v1/tickets?site=${encodeURIComponent(site)}&status=resolved,closed&limit=20`);
    if (!res.ok) return;
    const body = await res.json();
    if (board.site !== site) return;
    $('recent').tBodies[0].replaceChildren(...body.tickets.map((t) => h('tr', {},
      h('td', { class: 'num' }, `#${t.id}`), h('td', {}, `${t.class} ${t.priority}`),
      h('td', {}, t.status), h('td', {}, t.summary),
      h('td', { class: 'num' }, t.opened_at ? clockTime(Date.parse(t.opened_at) / 1000) : ''),
      h('td', { class: 'num' }, t.resolved_at ? clockTime(Date.parse(t.resolved_at) / 1000) : ''))));
  } catch (e) {
    // The stream's indicator shows the collector is away; the list comes with the next change.
  }
}

// ------------------------------------------------------------------ drawing

let drawQueued = false;
function draw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    const list = tickets(null);
    const tiles = sites();
    const emergencies = list.filter((t) => t.class === 'emergency' && t.status === 'open').length;
    const late = list.filter((t) => (left(t) ?? 1) < 0).length;
    const down = tiles.filter((s) => s.state === 'down' || s.state === 'critical').length;
    $('summary').replaceChildren(
      h('b', {}, emergencies), ' emergencies unacknowledged · ', h('b', {}, late), ' past deadline · ',
      h('b', {}, down), ` of ${tiles.length} sites failing`);
    document.title = (emergencies ? `(${emergencies}) ` : '') + 'dozor board';
    $('signin').hidden = !board.writes;
    $('signin').textContent = sessionStorage.getItem('dozor.token') ? 'Sign out' : 'Sign in';
    if (board.site === null) {
      renderQueue($('queue'), $('queue-empty'), list);
      $('queue-count').textContent = list.length ? `(${list.length})` : '';
      keep($('sites'), tiles.map(tile));
      $('sites-count').textContent = `(${tiles.length})`;
    } else {
      renderSite();
    }
  });
}

// Once a second: the countdowns and the clock, without redrawing the rest.
function tick() {
  $('clock').textContent = new Date(now() * 1000).toLocaleTimeString();
  fillTimes(document);
  const live = $('live');
  if (board.source && board.source.readyState === EventSource.OPEN) {
    live.className = 'live on';
    live.textContent = 'live';
  } else {
    live.className = 'live off';
    live.textContent = board.lastMessage ? `reconnecting (last news ${ago(board.lastMessage)})` : 'connecting…';
  }
}

// ------------------------------------------------------------------ the stream

function follow() {
  if (board.source) board.source.close();
  const url = '/api/v1/board/events' + (board.site !== null ? '?site=' + encodeURIComponent(board.site) : '');
  const source = new EventSource(url);
  board.source = source;
  source.addEventListener('snapshot', (ev) => {
    const snap = JSON.parse(ev.data);
    board.offset = snap.at - Date.now() / 1000;
    board.writes = snap.writes;
    board.entities = new Map(Object.entries(snap.entities));
    board.lastMessage = now();
    board.recentDirty = true;
    draw();
  });
  source.addEventListener('changes', (ev) => {
    const delta = JSON.parse(ev.data);
    board.offset = delta.at - Date.now() / 1000;
    for (const [key, e] of Object.entries(delta.set)) {
      if (e.kind === 'ticket' && e.site === board.site) board.recentDirty = true;
      board.entities.set(key, e);
    }
    for (const key of delta.del) {
      const e = board.entities.get(key);
      if (e && e.kind === 'ticket' && e.site === board.site) board.recentDirty = true;
      board.entities.delete(key);
    }
    board.lastMessage = now();
    draw();
  });
  source.addEventListener('message', () => { board.lastMessage = now(); });
  source.onopen = tick;
  source.onerror = tick; // EventSource reconnects by itself, to a fresh snapshot
}

function route() {
  const m = location.hash.match(/^#site=(.*)$/);
  const site = m ? decodeURIComponent(m[1]) : null;
  $('queue-view').hidden = site !== null;
  $('site-view').hidden = site === null;
  if (site !== board.site || !board.source) {
    board.site = site;
    board.recentFor = null;
    follow();
  }
  if (location.hash === '#sites') $('sites').scrollIntoView();
  draw();
}

// ------------------------------------------------------------------ writes

function signIn() {
  return new Promise((resolve) => {
    const dlg = $('login');
    $('login-name').value = sessionStorage.getItem('dozor.by') || '';
    $('login-token').value = '';
    $('login-cancel').onclick = () => { dlg.close(); resolve(false); };
    $('login-form').onsubmit = (ev) => {
      ev.preventDefault();
      sessionStorage.setItem('dozor.by', $('login-name').value.trim());
      sessionStorage.setItem('dozor.token', $('login-token').value.trim());
      dlg.close();
      draw();
      resolve(true);
    };
    dlg.showModal();
  });
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    // Not Authorization: a proxy in front with a password of its own needs that header.
    headers: { 'Content-Type': 'application/json', 'X-Dozor-Token': sessionStorage.getItem('dozor.token') },
    body: JSON.stringify(body),
  });
  let answer = {};
  try { answer = await res.json(); } catch (e) { /* not JSON: the status says enough */ }
  if (res.status === 401) sessionStorage.removeItem('dozor.token');
  if (!res.ok) throw new Error(answer.error || `${res.status} ${res.statusText}`);
  return answer;
}

async function act(kind, t) {
  if (!sessionStorage.getItem('dozor.token') && !(await signIn())) return;
  const dlg = $('act');
  const titles = { ack: `Acknowledge #${t.id}`, close: `Close #${t.id}`, silence: 'Silence planned work' };
  $('act-title').textContent = titles[kind];
  $('act-what').textContent = `${t.site} · ${t.agent || 'whole site'}${t.probe ? ' / ' + t.probe : ''}: ${t.summary}`;
  $('act-silence').hidden = kind !== 'silence';
  $('act-scope').value = t.probe ? 'probe' : 'site';
  $('act-scope').options[0].disabled = !t.probe;
  $('act-comment').value = '';
  $('act-comment').placeholder = kind === 'silence' ? 'what the planned work is (required)' : 'what you are doing about it';
  $('act-error').hidden = true;
  $('act-ok').textContent = { ack: 'Acknowledge', close: 'Close', silence: 'Silence' }[kind];
  $('act-cancel').onclick = () => dlg.close();
  $('act-form').onsubmit = async (ev) => {
    ev.preventDefault();
    const by = sessionStorage.getItem('dozor.by') || 'board';
    const comment = $('act-comment').value.trim();
    try {
      if (kind === 'silence') {
        const matchers = { site: t.site };
        if ($('act-scope').value === 'probe') Object.assign(matchers, { agent: t.agent, probe: t.probe });
        await api('POST', '/api/v1/silences', { matchers, duration: $('act-duration').value, comment, created_by: by });
      } else {
        await api('POST', `/api/v1/tickets/${t.id}/${kind}`, { by, comment });
      }
      dlg.close();
    } catch (e) {
      $('act-error').textContent = e.message;
      $('act-error').hidden = false;
      if (!sessionStorage.getItem('dozor.token')) { dlg.close(); if (await signIn()) act(kind, t); }
    }
  };
  dlg.showModal();
  $('act-comment').focus();
}

$('signin').addEventListener('click', () => {
  if (sessionStorage.getItem('dozor.token')) {
    sessionStorage.removeItem('dozor.token');
    draw();
  } else {
    signIn();
  }
});
function theme(name) {
  document.documentElement.dataset.theme = name;
  localStorage.setItem('dozor.theme', name);
}
theme(localStorage.getItem('dozor.theme') || 'dark');
$('theme').addEventListener('click', () =>
  theme(document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark'));
window.addEventListener('hashchange', route);
route();
tick();
setInterval(tick, 1000);
// Times of day ("since 14:05") lose their date at midnight; redraw now and then.
setInterval(draw, 15000);
