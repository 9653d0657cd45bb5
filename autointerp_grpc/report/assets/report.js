(() => {
'use strict';
// This script runs as soon as the parser reaches it: the summary, the scorers and the first
// page of the table are drawn from the small report-data document before the browser has read
// the charts and the cards' data that follow it in the file.
const D = JSON.parse(document.getElementById('report-data').textContent);
const S = D.summary;
const T = D.table;
const PAGE = 100;

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'style') node.style.cssText = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
const fmt = (v, d = 3) => (v === null || v === undefined) ? '–' : Number(v).toFixed(d);
const int = v => Number(v || 0).toLocaleString('en-US');
const money = v => (v === null || v === undefined) ? 'n/a' : '$' + Number(v).toFixed(4);

// ---- summary ----
function tile(key, label, value, bad) {
  return el('div', {class: 'tile' + (bad ? ' bad' : ''), dataset: {summary: key}},
    el('div', {class: 'v'}, value), el('div', {class: 'k'}, label));
}
function renderSummary() {
  const box = document.getElementById('summary-tiles');
  const tiles = [
    tile('features', 'latents', int(S.features)),
    tile('ok', 'ok', int(S.ok)),
    tile('failed', 'failed', int(S.failed), S.failed > 0),
    tile('scorers', 'scorers', S.scorers.join(', ') || '–'),
  ];
  if (S.model) tiles.push(tile('model', 'model', S.model));
  tiles.push(
    tile('heldOut', 'scored held out', int(S.heldOut)),
    tile('inSample', 'scored in-sample', int(S.inSample)),
    tile('llmCalls', 'LLM calls', int(S.llmCalls)),
    tile('promptTokens', 'prompt tokens', int(S.promptTokens)),
    tile('completionTokens', 'completion tokens', int(S.completionTokens)),
    tile('cost', 'cost' + (S.cost !== null && S.pricedFeatures < S.features
      ? ` (${int(S.pricedFeatures)} latents priced)` : ''), money(S.cost)),
  );
  if (S.cachedPromptTokens) {
    const share = S.promptTokens ? ` (${fmt(100 * S.cachedPromptTokens / S.promptTokens, 0)}%)` : '';
    tiles.push(tile('cachedPromptTokens', "from the provider's prompt cache",
      int(S.cachedPromptTokens) + share));
  }
  if (S.storeHits || S.savedCost !== null) {
    tiles.push(tile('storeHits', 'response-store hits', int(S.storeHits)));
    tiles.push(tile('savedCost', 'saved by the store', money(S.savedCost)));
  }
  if (S.bestOfK) tiles.push(tile('bestOfK', 'best-of-k latents', int(S.bestOfK)));
  tiles.push(tile('seconds', 'server seconds', fmt(S.seconds, 1)));
  box.replaceChildren(...tiles);
  const notes = [];
  if (S.superseded) notes.push(`${int(S.superseded)} earlier line(s) of re-run latents superseded by their last line`);
  if (S.unreadable) notes.push(`${int(S.unreadable)} unreadable line(s) skipped`);
  if (D.input) notes.push(`records from ${D.input} for ${int(D.withRecords)} latent(s)`);
  document.getElementById('summary-notes').replaceChildren(...notes.map(n => el('li', {}, n)));
  const reasons = document.getElementById('reasons');
  if (S.reasons.length) {
    reasons.replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'failed in'), el('th', {}, 'code'), el('th', {class: 'num'}, 'latents'))),
      el('tbody', {}, ...S.reasons.map(r => el('tr', {dataset: {code: r.code, where: r.where}},
        el('td', {}, r.where), el('td', {}, r.code), el('td', {class: 'num'}, int(r.count)))))));
  } else {
    reasons.replaceChildren(el('p', {class: 'muted'}, 'No failures.'));
  }
}

// ---- scorers ----
function renderScorers() {
  const rows = D.scorers.map(s => el('tr', {dataset: {method: s.method}},
    el('td', {}, s.method), el('td', {}, s.metric || '–'), el('td', {class: 'num'}, int(s.n)),
    el('td', {class: 'num'}, int(s.errors)), el('td', {class: 'num'}, fmt(s.mean)),
    el('td', {class: 'num'}, fmt(s.median)),
    el('td', {class: 'num'}, fmt(s.chance) + (s.chanceVaries ? ' (mean)' : '')),
    el('td', {class: 'num'}, fmt(s.meanWidth)), el('td', {class: 'num'}, fmt(s.medianWidth))));
  const corr = D.correlations.map(c => el('li', {dataset: {pair: c.x + '/' + c.y}},
    `${c.x} vs ${c.y}: Spearman ρ = ${c.rho === null ? 'undefined' : fmt(c.rho)} over ${int(c.n)} latents`));
  document.getElementById('scorers').replaceChildren(
    el('table', {}, el('thead', {}, el('tr', {}, ...['scorer', 'metric', 'n', 'errors', 'mean',
      'median', 'chance', 'mean 95% width', 'median width'].map((h, i) =>
      el('th', {class: i > 1 ? 'num' : ''}, h)))), el('tbody', {}, ...rows)),
    corr.length ? el('ul', {}, ...corr) : '');
}

// ---- latent table (columns of D.table; a page of rows at a time) ----
const METHODS = D.scorers.map(s => s.method);
const FAILED = new Map();
for (const f of D.failures) { if (!FAILED.has(f.id)) FAILED.set(f.id, []); FAILED.get(f.id).push(f); }
function status(id, inSample) {
  const f = FAILED.get(id);
  if (f) return f.map(x => (x.where === 'feature' ? '' : x.where + ' ') + x.code).join(', ');
  return inSample ? 'ok (in-sample)' : 'ok';
}
const ROWS = T.ids.map((id, i) => ({
  i, id, explanation: T.explanations[i] || '', failed: FAILED.has(id),
  inSample: !!T.inSample[i], status: status(id, T.inSample[i]), coverage: T.coverage[i],
  notes: T.notes[i], scores: METHODS.map((m, j) => typeof T.cells[j][i] === 'number' ? T.cells[j][i] : null),
}));
const COLUMNS = [
  {key: 'id', label: 'latent', get: r => r.id},
  {key: 'explanation', label: 'explanation', get: r => r.explanation},
  ...METHODS.map((m, j) => ({key: 's:' + m, label: m, num: true, get: r => r.scores[j]})),
  {key: 'coverage', label: 'coverage', num: true, get: r => r.coverage},
  {key: 'notes', label: 'notes', num: true, get: r => r.notes.length},
  {key: 'status', label: 'status', get: r => r.status},
];
const state = {sort: null, dir: 1, filter: '', show: 'all', page: 0, view: ROWS};
function applyView() {
  const q = state.filter.toLowerCase();
  let view = ROWS.filter(r => (state.show === 'all' || (state.show === 'failed' && r.failed)
      || (state.show === 'ok' && !r.failed) || (state.show === 'in-sample' && r.inSample))
    && (!q || r.id.toLowerCase().includes(q) || r.explanation.toLowerCase().includes(q)));
  if (state.sort) {
    const col = COLUMNS.find(c => c.key === state.sort);
    const dir = state.dir;
    view.sort((a, b) => {
      const x = col.get(a), y = col.get(b);
      if (x === null || x === undefined) return (y === null || y === undefined) ? a.i - b.i : 1;
      if (y === null || y === undefined) return -1;
      const c = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
      return c ? c * dir : a.i - b.i;
    });
  }
  state.view = view;
  const pages = Math.max(1, Math.ceil(view.length / PAGE));
  state.page = Math.min(state.page, pages - 1);
  renderRows();
}
function scoreCell(i, j) {
  const cell = T.cells[j][i];
  if (cell === null || cell === undefined) return el('td', {class: 'num'}, '–');
  if (typeof cell === 'string') return el('td', {class: 'num error'}, cell);
  const lower = T.lower[j][i], upper = T.upper[j][i];
  return el('td', {class: 'num'}, fmt(cell),
    lower !== null ? el('div', {class: 'ci'}, `[${fmt(lower, 2)}, ${fmt(upper, 2)}]`) : '');
}
function renderRows() {
  const start = state.page * PAGE;
  const shown = state.view.slice(start, start + PAGE);
  const body = document.querySelector('#latents tbody');
  body.replaceChildren(...shown.map(r =>
    el('tr', {class: r.failed ? 'failed' : '', dataset: {id: r.id}, onclick: () => openCard(r.i)},
      el('td', {}, r.id), el('td', {}, r.explanation),
      ...METHODS.map((m, j) => scoreCell(r.i, j)),
      el('td', {class: 'num'}, r.coverage === null ? '–' : (100 * r.coverage).toFixed(0) + '%'),
      el('td', {title: r.notes.join('\n')}, r.notes.length ? `${r.notes.length}: ${r.notes[0].slice(0, 80)}` : ''),
      el('td', {class: 'status'}, r.status))));
  const pages = Math.max(1, Math.ceil(state.view.length / PAGE));
  document.getElementById('count').textContent = state.view.length
    ? `latents ${int(start + 1)}–${int(start + shown.length)} of ${int(state.view.length)}` +
      (state.view.length < ROWS.length ? ` (filtered from ${int(ROWS.length)})` : '')
    : 'no latent matches';
  document.getElementById('page').textContent = `page ${state.page + 1} of ${pages}`;
  document.querySelectorAll('#latents th').forEach(th => {
    th.classList.toggle('sorted-asc', th.dataset.key === state.sort && state.dir === 1);
    th.classList.toggle('sorted-desc', th.dataset.key === state.sort && state.dir === -1);
  });
}
function renderTable() {
  const head = el('tr', {}, ...COLUMNS.map(c => el('th', {
    class: 'sortable' + (c.num ? ' num' : ''), dataset: {key: c.key},
    onclick: () => { state.dir = state.sort === c.key ? -state.dir : (c.num ? -1 : 1);
      state.sort = c.key; state.page = 0; applyView(); }}, c.label)));
  document.querySelector('#latents thead').replaceChildren(head);
  let timer = null;
  document.getElementById('filter').addEventListener('input', e => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.filter = e.target.value; state.page = 0; applyView(); }, 120);
  });
  document.getElementById('show').addEventListener('change', e => {
    state.show = e.target.value; state.page = 0; applyView(); });
  document.getElementById('prev').addEventListener('click', () => {
    if (state.page > 0) { state.page--; renderRows(); } });
  document.getElementById('next').addEventListener('click', () => {
    if ((state.page + 1) * PAGE < state.view.length) { state.page++; renderRows(); } });
  applyView();
}

// ---- cards ----
function shade(value, max) {
  if (!(max > 0) || !(value > 0)) return '';
  const a = Math.min(1, value / max);
  return `background: rgba(255, 140, 0, ${(0.12 + 0.78 * a).toFixed(3)})`;
}
function recordView(rec, max) {
  return el('div', {class: 'record'}, rec.start > 0 ? el('span', {class: 'muted'}, '… ') : '',
    ...rec.tokens.map((t, k) => el('span', {style: shade(rec.values[k], max),
      title: `${rec.values[k]}`}, t)), rec.cut ? el('span', {class: 'muted'}, ' …') : '');
}
function kv(label, value) { return el('div', {}, el('span', {class: 'muted'}, label + ': '), value); }

// Every latent's card data: one JSON line per latent, gzipped and base64-encoded at the end of
// the file; unpacked once (after the charts, or when a card is first opened), each line parsed
// only when its card is opened.
let CARDS = null;
function loadCards() {
  if (CARDS === null) CARDS = (async () => {
    if (typeof DecompressionStream === 'undefined')
      throw new Error('this browser cannot unpack the cards\' data (it has no DecompressionStream: '
        + 'Chrome 80+, Firefox 113+ and Safari 16.4+ have it)');
    const raw = atob(document.getElementById('report-cards').textContent.trim());
    const bytes = new Uint8Array(raw.length);
    for (let k = 0; k < raw.length; k++) bytes[k] = raw.charCodeAt(k);
    const text = await new Response(new Blob([bytes]).stream()
      .pipeThrough(new DecompressionStream('gzip'))).text();
    const lines = text ? text.split('\n') : [];
    window.__reportCardsReady = performance.now();
    return lines;
  })();
  return CARDS;
}
let opening = 0;
async function openCard(i) {
  const ticket = ++opening;
  const card = document.getElementById('card');
  let lines;
  try {
    lines = await loadCards();
  } catch (err) {
    card.replaceChildren(el('h2', {id: 'card-id'}, T.ids[i]), el('p', {class: 'error'}, String(err.message || err)));
    card.hidden = false;
    return;
  }
  if (ticket !== opening) return;  // another card was asked for meanwhile
  const {latent: lat, records: rec} = JSON.parse(lines[i]);
  const parts = [el('h2', {id: 'card-id'}, lat.id),
    el('div', {class: 'explanation', id: 'card-explanation'}, lat.explanation || '(no explanation)')];
  for (const f of FAILED.get(lat.id) || [])
    parts.push(el('div', {class: 'error'}, `${f.where === 'feature' ? 'failed' : f.where + ' failed'}: ${f.code}: ${f.message}`));
  const u = lat.usage || {};
  parts.push(kv('records', `${lat.trainRecords || 0} seen by the explainer, ${lat.testRecords || 0} held out and scored` +
    (lat.validationRecords ? `, ${lat.validationRecords} ranked the candidates` : '') +
    (lat.inSample ? ' — scored in-sample' : '')));
  parts.push(kv('usage', `${int(u.llmCalls)} LLM calls, ${int(u.promptTokens)} + ${int(u.completionTokens)} tokens, cost ${money(u.cost)}` +
    (u.cachedResponses ? `, ${int(u.cachedResponses)} from the response store` : '') +
    `, ${fmt(lat.seconds, 2)} s`));
  if ((lat.notes || []).length) parts.push(el('ul', {class: 'notes'}, ...lat.notes.map(n => el('li', {}, n))));
  if ((lat.scores || []).length) {
    parts.push(el('h3', {}, 'Scores'), el('table', {id: 'card-scores'},
      el('thead', {}, el('tr', {}, ...['scorer', 'score', '95% interval', 'chance', 'coverage', 'control', 'notes'].map(h => el('th', {}, h)))),
      el('tbody', {}, ...lat.scores.map(o => {
        const ci = o.confidenceInterval, c = o.coverage, ctl = o.control;
        const extras = Object.entries(o.extraMetrics || {}).map(([k, v]) => `${k} ${fmt(v)}`);
        const cov = c && c.total ? `${c.answered}/${c.total}` + (c.activatingTotal || c.nonActivatingTotal
          ? ` (act ${c.activatingAnswered}/${c.activatingTotal}, non ${c.nonActivatingAnswered}/${c.nonActivatingTotal})` : '') : '–';
        return el('tr', {dataset: {method: o.method}}, el('td', {}, o.method + (o.metric ? ` (${o.metric})` : '')),
          el('td', {class: 'num' + (o.error ? ' error' : '')}, o.score !== undefined ? fmt(o.score) : (o.error ? o.error.code : '–')),
          el('td', {class: 'num'}, ci ? `[${fmt(ci.lower)}, ${fmt(ci.upper)}]` : '–'),
          el('td', {class: 'num'}, fmt(o.chance)), el('td', {}, cov),
          el('td', {}, ctl ? fmt(ctl.score) : '–'),
          el('td', {}, [...(o.error ? [o.error.message] : []), ...(o.notes || []), ...extras].join('; ')));
      }))));
  }
  if ((lat.candidates || []).length) {
    parts.push(el('h3', {}, 'Best-of-k candidates (validation score)'), el('table', {id: 'card-candidates'},
      el('tbody', {}, ...lat.candidates.map(c => el('tr', {},
        el('td', {class: 'num'}, c.score !== undefined ? fmt(c.score) : '–'),
        el('td', {}, c.explanation, c.explanation === lat.explanation ? el('strong', {}, '  ← chosen') : ''))))));
  }
  if (rec) {
    parts.push(el('h3', {}, `Top activating records (${rec.act.length} of ${rec.activating}; shaded by activation, latent max ${fmt(rec.max)})`),
      el('div', {id: 'card-records'}, ...rec.act.map(r => recordView(r, rec.max))));
    if (rec.non.length) parts.push(el('h3', {}, `Non-activating records (${rec.non.length} of ${rec.nonActivating})`),
      el('div', {}, ...rec.non.map(r => recordView(r, rec.max))));
  } else {
    parts.push(el('p', {class: 'muted'}, D.input ? `No records for this latent in ${D.input}.`
      : 'Records: run `autointerp report` with --input FEATURES to see them.'));
  }
  parts.push(el('p', {class: 'muted'}, 'Per-example answers: the results file carries none (each scorer reports its score, interval and coverage only).'));
  parts.push(el('button', {onclick: () => { card.hidden = true; }}, 'close'));
  card.replaceChildren(...parts);
  card.hidden = false;
  card.scrollIntoView({block: 'start'});
}

// ---- failures ----
function renderFailures() {
  const box = document.getElementById('failures');
  if (!D.failures.length) { box.replaceChildren(el('p', {class: 'muted'}, 'None.')); return; }
  const index = new Map(T.ids.map((id, i) => [id, i]));
  const shown = D.failures.slice(0, 500);
  box.replaceChildren(el('table', {}, el('thead', {}, el('tr', {}, ...['latent', 'failed in', 'code', 'message'].map(h => el('th', {}, h)))),
    el('tbody', {}, ...shown.map(f => el('tr', {onclick: () => openCard(index.get(f.id)), style: 'cursor: pointer'},
      el('td', {}, f.id), el('td', {}, f.where), el('td', {}, f.code), el('td', {}, f.message))))),
    D.failures.length > shown.length ? el('p', {class: 'muted'}, `… and ${D.failures.length - shown.length} more: filter the table by "failed".`) : '');
}

// ---- charts: drawn one at a time, after the first paint (called once plotly.js is read) ----
function hasWebGL() {
  try {
    const canvas = document.createElement('canvas');
    return !!(canvas.getContext('webgl2') || canvas.getContext('webgl'));
  } catch (err) {
    return false;
  }
}
const later = f => requestAnimationFrame(() => setTimeout(f, 0));
window.__reportDrawCharts = () => {
  const FIGS = JSON.parse(document.getElementById('report-figures').textContent);
  const box = document.getElementById('charts');
  const done = () => { window.__reportCharts = performance.now(); later(() => loadCards().catch(() => {})); };
  if (!FIGS.length) { box.replaceChildren(el('p', {class: 'muted'}, 'No scores to chart.')); done(); return; }
  const webgl = hasWebGL();
  const divs = FIGS.map(f => el('div', {class: 'chart', id: f.id}));
  box.replaceChildren(...divs);
  let k = 0;
  const next = () => {
    if (k === FIGS.length) { done(); return; }
    const f = FIGS[k], div = divs[k];
    k++;
    // Without WebGL a big scatter plot is drawn as SVG: slower, but drawn.
    const traces = webgl ? f.figure.data
      : f.figure.data.map(t => t.type === 'scattergl' ? Object.assign({}, t, {type: 'scatter'}) : t);
    Plotly.newPlot(div, traces, f.figure.layout, {displayModeBar: false, responsive: true})
      .then(() => later(next));
  };
  later(next);
};

renderSummary();
renderScorers();
renderTable();
renderFailures();
window.__reportRendered = performance.now();
later(() => { window.__reportPainted = performance.now(); });
})();
