// weir console: a single page over weir's HTTP API.
//
// Rules this file keeps:
// - Everything a producer, subscriber or plugin wrote is put on the page as
//   text (textContent through `h`), never parsed as HTML. There is no
//   innerHTML, eval or inline handler anywhere; the server's CSP forbids them.
// - The token lives in sessionStorage: this tab only, gone when it closes.
// - What the token may not do is not offered; the API refuses it anyway.
'use strict';
(() => {
  const TOKEN_KEY = 'weir.console.token';
  const FINAL = ['delivered', 'dead', 'held', 'canceled', 'filtered'];
  const REPLAYABLE = ['dead', 'held', 'canceled', 'filtered'];
  const STATES = ['pending', 'delivered', 'retrying', 'dead', 'held', 'canceled', 'filtered'];
  const S = { token: null, me: null, render: 0, timers: [], offline: false, watch: null };

  // ---- DOM: text only -------------------------------------------------
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    add(el, kids);
    return el;
  }
  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) {
        if (typeof v !== 'function') throw new Error('handler must be a function');
        el.addEventListener(k.slice(2), v);
      } else if (k === 'class') {
        el.className = v;
      } else if (k === 'value') {
        el.value = v;
      } else {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }
  function add(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
  }
  function clear(el) { while (el.firstChild) el.firstChild.remove(); return el; }
  const $ = (id) => document.getElementById(id);
  const link = (href, text, attrs) => h('a', Object.assign({ href }, attrs || {}), text);
  const pill = (text, cls) => h('span', { class: 'pill ' + (cls || text) }, text);
  const enc = encodeURIComponent;

  function when(iso) {
    if (!iso) return h('span', { class: 'muted' }, '—');
    const d = new Date(iso);
    const secs = Math.round((Date.now() - d.getTime()) / 1000);
    const ago = secs < 0 ? 'in ' + span(-secs) : span(secs) + ' ago';
    return h('time', { datetime: iso, title: iso }, d.toLocaleString(), ' (', ago, ')');
  }
  function span(s) {
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.round(s / 60) + ' min';
    if (s < 86400) return Math.round(s / 3600) + ' h';
    return Math.round(s / 86400) + ' d';
  }
  function ms(v) { return v === null || v === undefined ? '—' : (Math.round(v * 10) / 10) + ' ms'; }
  function pct(v) { return v === null || v === undefined ? '—' : (Math.round(v * 1000) / 10) + ' %'; }
  // JSON or text from someone else, pretty when it parses.
  function pretty(text) {
    if (typeof text !== 'string') return JSON.stringify(text, null, 2);
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (_) { return text; }
  }
  function can(scope) {
    return !!S.me && (S.me.admin || S.me.scopes.includes(scope) || S.me.scopes.includes('admin'));
  }

  // ---- the API --------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }
  async function api(method, path, body) {
    const headers = {};
    if (S.token) headers.Authorization = 'Bearer ' + S.token;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (_) {
      lostContact();
      throw new ApiError(0, 'unreachable', 'weir is not reachable');
    }
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    // A proxy in front of a weir that is down answers 502-504 itself.
    if ([502, 503, 504].includes(res.status) && !(data && data.error)) {
      lostContact();
      throw new ApiError(0, 'unreachable', 'weir is not reachable');
    }
    regainedContact();
    if (!res.ok) {
      const err = (data && data.error) || {};
      const e = new ApiError(res.status, err.code || 'http_' + res.status, err.message || res.statusText);
      if (res.status === 401 && S.me) signOut('Signed out: ' + e.message);
      throw e;
    }
    return data;
  }

  // ---- losing and regaining the server ---------------------------------
  function lostContact() {
    if (S.offline) return;
    S.offline = true;
    const b = $('banner');
    clear(b).append('weir is not answering. The page will recover by itself when it is back.');
    b.hidden = false;
    if (S.probe) return;
    const probe = async () => {
      S.probe = null;
      if (!S.offline) return;
      try {
        const r = await fetch('/healthz', { cache: 'no-store' });
        if (r.ok) { regainedContact(); recover(); return; }
      } catch (_) { /* still away */ }
      if (S.offline && !S.probe) S.probe = setTimeout(probe, 1000);
    };
    S.probe = setTimeout(probe, 1000);
  }
  function regainedContact() {
    if (!S.offline) return;
    S.offline = false;
    $('banner').hidden = true;
  }
  // Back after an outage: finish a sign-in that could not reach weir, then
  // show the page again.
  async function recover() {
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (!S.me && saved !== null) {
      try { await signIn(saved); } catch (e) { if (e.status === 401) { signOut('Signed out: ' + e.message); return; } }
    }
    route();
  }

  // ---- sign-in ----------------------------------------------------------
  async function signIn(token) {
    S.token = token;
    const me = await api('GET', '/v1/whoami');
    S.me = me;
    sessionStorage.setItem(TOKEN_KEY, token);
    return me;
  }
  function signOut(message) {
    S.render++;
    S.token = null;
    S.me = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(message);
  }
  function showSignIn(message) {
    stopTimers();
    clear($('nav'));
    clear($('who'));
    const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', placeholder: 'weir_…', spellcheck: 'false' });
    const out = h('p', { id: 'signin-error', class: 'error' }, message || '');
    const form = h('form', { class: 'card signin', id: 'signin' },
      h('h1', {}, 'Sign in to weir'),
      h('p', { class: 'muted' }, 'Paste an API token. An organisation\'s token shows only its own webhooks and deliveries. The token stays in this tab and is forgotten when the tab closes. (Leave it empty while weir has no admin_token.)'),
      h('label', {}, 'Token', input),
      h('p', {}, h('button', { class: 'primary', type: 'submit', id: 'signin-button' }, 'Sign in')),
      out);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear(out);
      try {
        await signIn(input.value.trim());
        if (!location.hash || location.hash === '#/') location.hash = '#/webhooks';
        route();
      } catch (e) {
        S.token = null;
        out.append(e.status === 401 ? 'Not signed in: ' + e.message : 'Cannot sign in: ' + e.message);
      }
    });
    clear($('main')).append(form);
    input.focus();
  }
  function drawChrome() {
    const nav = clear($('nav'));
    const here = location.hash.split('?')[0];
    const items = [
      ['#/webhooks', 'Webhooks', 'webhooks:read'],
      ['#/deliveries', 'Deliveries', 'deliveries:read'],
      ['#/plugins', 'Plugins', 'plugins:read'],
      ['#/playground', 'Playground', 'admin'],
    ];
    for (const [href, text, scope] of items) {
      if (!can(scope)) continue;
      nav.append(link(href, text, { class: here.startsWith(href) ? 'current' : null, id: 'nav-' + text.toLowerCase() }));
    }
    const who = clear($('who'));
    who.append(h('span', { id: 'whoami' }, S.me.admin ? 'admin' : 'owner ' + (S.me.owner || '(any)')),
      h('button', { id: 'signout', onclick: () => signOut('Signed out.') }, 'Sign out'));
  }

  // ---- routing ------------------------------------------------------------
  const ROUTES = [
    [/^#\/new-webhook$/, () => pageNewWebhook()],
    [/^#\/webhooks\/([^/?]+)$/, (m) => pageWebhook(decodeURIComponent(m[1]))],
    [/^#\/webhooks$/, () => pageWebhooks()],
    [/^#\/deliveries\/([^/?]+)$/, (m) => pageDelivery(decodeURIComponent(m[1]))],
    [/^#\/deliveries(?:\?(.*))?$/, (m) => pageDeliveries(new URLSearchParams(m[1] || ''))],
    [/^#\/plugins$/, () => pagePlugins()],
    [/^#\/playground$/, () => pagePlayground()],
  ];
  function stopTimers() {
    for (const t of S.timers) clearInterval(t);
    S.timers = [];
  }
  // A timer for the page of render `gen`; a page that has been left by the
  // time it asks (its render is stale) gets none.
  function every(gen, msecs, f) {
    if (gen !== S.render) return;
    S.timers.push(setInterval(() => { if (gen === S.render) f(); }, msecs));
  }
  // At most four calls at once (the per-webhook figures of a long list).
  const queue = { running: 0, waiting: [] };
  function limited(f) {
    return new Promise((resolve, reject) => {
      const run = () => {
        queue.running++;
        f().then(resolve, reject).finally(() => {
          queue.running--;
          const next = queue.waiting.shift();
          if (next) next();
        });
      };
      if (queue.running < 4) run(); else queue.waiting.push(run);
    });
  }
  async function route() {
    stopTimers();
    if (!S.me) { showSignIn(); return; }
    if (!location.hash || location.hash === '#/') { location.hash = can('webhooks:read') ? '#/webhooks' : '#/deliveries'; return; }
    drawChrome();
    const gen = ++S.render;
    const main = $('main');
    for (const [re, page] of ROUTES) {
      const m = location.hash.match(re);
      if (!m) continue;
      try {
        const content = await page(m);
        if (gen !== S.render || !S.me) return;
        clear(main).append(content);
      } catch (e) {
        if (gen !== S.render || !S.me) return;
        clear(main).append(h('p', { class: 'error', id: 'page-error' },
          e.status === 404 ? 'Not found: ' + e.message : e.message));
      }
      return;
    }
    clear(main).append(h('p', { class: 'error' }, 'No such page.'));
  }
  // Runs an action; its outcome is shown in `out`.
  function action(out, f) {
    return async (ev) => {
      if (ev) ev.preventDefault();
      clear(out);
      const btn = ev && ev.currentTarget && ev.currentTarget.tagName === 'BUTTON' ? ev.currentTarget : null;
      if (btn) btn.disabled = true;
      try { await f(); } catch (e) { clear(out).append(h('span', { class: 'error' }, e.message)); }
      if (btn) btn.disabled = false;
    };
  }

  // ---- webhooks -----------------------------------------------------------
  function status(w) {
    if (w.disabled_reason) return pill('disabled', 'disabled');
    if (!w.configured_active) return pill('paused', 'paused');
    return pill('active', 'active');
  }
  async function pageWebhooks() {
    const list = await api('GET', '/v1/webhooks?limit=1000');
    const rows = list.webhooks.map((w) => {
      const rate = h('td', { class: 'num' }, '…');
      const lat = h('td', { class: 'num' }, '…');
      limited(() => stats(w.id)).then((s) => {
        clear(rate).append(s ? pct(s.success_rate) : '—');
        clear(lat).append(s ? ms(s.latency_ms.p50) + ' / ' + ms(s.latency_ms.p99) : '—');
      });
      return h('tr', { 'data-webhook': w.id },
        h('td', {}, link('#/webhooks/' + enc(w.id), w.id), w.source === 'config' ? h('div', { class: 'muted' }, 'config.toml') : null),
        h('td', {}, status(w), w.disabled_reason ? h('div', { class: 'muted' }, w.disabled_reason) : null),
        h('td', { class: 'mono' }, w.url, w.description ? h('div', { class: 'muted' }, w.description) : null),
        h('td', { class: 'num' }, String(w.queue_depth)),
        rate, lat,
        h('td', {}, when(w.last_success_at)),
        h('td', {}, when(w.last_failure_at)));
    });
    return h('div', {},
      h('h1', {}, 'Webhooks', can('webhooks:write') ? link('#/new-webhook', 'New webhook', { class: 'button', id: 'new-webhook' }) : null),
      list.config && list.config.last_reload_error
        ? h('p', { class: 'error' }, 'config.toml was not reloaded: ', list.config.last_reload_error) : null,
      rows.length ? h('table', { id: 'webhooks' },
        h('thead', {}, h('tr', {}, ['Webhook', 'State', 'URL', 'Queue', 'Success (1 h)', 'p50 / p99', 'Last success', 'Last failure']
          .map((t, i) => h('th', { class: i >= 3 && i <= 5 ? 'num' : null }, t)))),
        h('tbody', {}, rows))
        : h('p', { class: 'muted', id: 'no-webhooks' }, 'No webhooks yet.'));
  }
  async function stats(id) {
    try { return await api('GET', '/v1/webhooks/' + enc(id) + '/stats?minutes=60'); } catch (_) { return null; }
  }

  async function pageWebhook(id) {
    const w = await api('GET', '/v1/webhooks/' + enc(id));
    const s = await stats(id);
    const out = h('div', { id: 'webhook-result' });
    const editable = w.source === 'api' && can('webhooks:write');
    const acts = h('div', { class: 'actions' });
    if (can('webhooks:write')) {
      acts.append(h('button', { id: 'send-test', onclick: action(out, async () => {
        const t = await api('POST', '/v1/webhooks/' + enc(id) + '/test');
        out.append(h('span', { class: 'notice' }, 'Test event sent: '), link('#/deliveries/' + enc(t.delivery_id), t.delivery_id, { id: 'test-delivery' }));
      }) }, 'Send test event'));
      if (w.disabled_reason) {
        acts.append(h('button', { id: 'enable', onclick: action(out, async () => {
          await api('POST', '/v1/webhooks/' + enc(id) + '/enable'); route();
        }) }, 'Enable again'));
      }
    }
    if (editable) {
      acts.append(
        h('button', { id: 'pause', onclick: action(out, async () => {
          await api('PATCH', '/v1/webhooks/' + enc(id), { active: !w.configured_active }); route();
        }) }, w.configured_active ? 'Pause' : 'Resume'),
        h('button', { id: 'edit', onclick: () => { clear(out).append(editForm(w)); } }, 'Edit'),
        h('button', { id: 'rotate', onclick: () => confirmBox(out, 'Rotate the signing secret? The old one keeps signing for 24 hours.', 'Rotate', async () => {
          const r = await api('POST', '/v1/webhooks/' + enc(id) + '/secret/rotate', {});
          clear(out).append(h('div', { class: 'secret' }, 'New secret (shown once): ', h('code', { id: 'new-secret' }, r.secret),
            h('div', { class: 'muted' }, 'The previous one stops signing ', r.previous_expires_at || 'now', '.')));
        }) }, 'Rotate secret'),
        h('button', { id: 'delete', class: 'danger', onclick: () => confirmBox(out, 'Delete webhook ' + id + '? Its queued deliveries are canceled.', 'Delete', async () => {
          await api('DELETE', '/v1/webhooks/' + enc(id)); location.hash = '#/webhooks';
        }) }, 'Delete'));
    } else if (w.source === 'config') {
      acts.append(h('span', { class: 'muted' }, 'Defined in config.toml: change it there.'));
    }
    return h('div', {},
      h('h1', {}, w.id, status(w), can('deliveries:read') ? link('#/deliveries?webhook=' + enc(id), 'Delivery log', { class: 'button', id: 'webhook-log' }) : null),
      acts, out,
      h('div', { class: 'grid2' },
        h('div', { class: 'card' }, h('dl', { class: 'facts' },
          fact('URL', h('span', { class: 'mono' }, w.url)),
          fact('Description', w.description || '—'),
          fact('Events', w.events.join(', ')),
          fact('Owners', w.owners ? w.owners.join(', ') : 'every owner'),
          fact('Disabled because', w.disabled_reason),
          fact('Plugins', w.plugins.length ? w.plugins.map((p) => p.name + ' (' + p.on_error + ')').join(' → ') : 'none'),
          fact('Signed', w.signed ? 'yes' : 'no'),
          fact('Queue', String(w.queue_depth)),
          fact('Last success', when(w.last_success_at)),
          fact('Last failure', when(w.last_failure_at)),
          fact('Failing since', w.failing_since ? when(w.failing_since) : null),
          fact('Retries', w.max_retries + ', timeout ' + w.timeout_secs + ' s, ' + w.max_in_flight + ' in flight'))),
        h('div', { class: 'card' }, h('h2', {}, 'Last hour'), s ? chart(s) : h('p', { class: 'muted' }, 'No figures.'))));
  }
  function fact(k, v) {
    if (v === null || v === undefined || v === '') return null;
    return [h('dt', {}, k), h('dd', {}, v)];
  }
  function confirmBox(out, question, yes, f) {
    clear(out).append(h('div', { class: 'confirm', id: 'confirm' }, question,
      h('button', { class: 'primary', id: 'confirm-yes', onclick: action(out, f) }, yes),
      h('button', { id: 'confirm-no', onclick: () => clear(out) }, 'Cancel')));
  }

  // The last hour per minute: stacked bars of outcomes, a line of p50 latency.
  function chart(s) {
    const NS = 'http://www.w3.org/2000/svg';
    const svg = (tag, attrs, ...kids) => {
      const el = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
      return add(el, kids);
    };
    const W = 600, H = 150, L = 34, R = 40, T = 8, B = 20;
    const n = Math.max(1, s.buckets.length);
    const bw = (W - L - R) / n;
    const top = Math.max(1, ...s.buckets.map((b) => b.delivered + b.failed));
    const lat = Math.max(1, ...s.buckets.map((b) => b.p50_ms || 0));
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const yl = (v) => T + (H - T - B) * (1 - v / lat);
    const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', id: 'chart', role: 'img' },
      svg('title', {}, 'Deliveries per minute and p50 latency, last hour'),
      svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
      svg('text', { x: 2, y: T + 8 }, String(top) + '/min'),
      svg('text', { x: W - R + 4, y: T + 8 }, Math.round(lat) + ' ms'),
      svg('text', { x: L, y: H - 5 }, '−60 min'),
      svg('text', { x: W - R - 22, y: H - 5 }, 'now'));
    const pts = [];
    s.buckets.forEach((b, i) => {
      const x = L + i * bw;
      if (b.delivered) g.append(svg('rect', { class: 'delivered', x, y: y(b.delivered), width: Math.max(1, bw - 1), height: H - B - y(b.delivered) }));
      if (b.failed) g.append(svg('rect', { class: 'failed', x, y: y(b.delivered + b.failed), width: Math.max(1, bw - 1), height: y(b.delivered) - y(b.delivered + b.failed) }));
      if (b.p50_ms !== null && b.p50_ms !== undefined) pts.push(`${x + bw / 2},${yl(b.p50_ms)}`);
    });
    if (pts.length > 1) g.append(svg('polyline', { class: 'latency', points: pts.join(' ') }));
    return h('div', {}, g,
      h('div', { class: 'legend' }, h('span', { class: 'l-delivered' }, 'delivered'), h('span', { class: 'l-failed' }, 'failed'), h('span', { class: 'l-latency' }, 'p50 latency')),
      h('p', { class: 'muted', id: 'stats-line' }, s.attempts + ' attempts, ', pct(s.success_rate), ' answered in range, p50 ', ms(s.latency_ms.p50), ', p99 ', ms(s.latency_ms.p99), '.'));
  }

  function webhookFields(w) {
    return {
      url: h('input', { id: 'f-url', value: w ? w.url : '', required: true, size: 60, placeholder: 'https://…' }),
      description: h('input', { id: 'f-description', value: w ? w.description : '', size: 60 }),
      events: h('input', { id: 'f-events', value: w ? w.events.join(', ') : '*', size: 40 }),
      plugins: h('textarea', { id: 'f-plugins', value: w ? JSON.stringify(w.plugins, null, 2) : '[]' }),
    };
  }
  function webhookBody(f) {
    let plugins;
    try { plugins = JSON.parse(f.plugins.value || '[]'); } catch (e) { throw new Error('plugins: not JSON (' + e.message + ')'); }
    return {
      url: f.url.value.trim(),
      description: f.description.value,
      events: f.events.value.split(',').map((s) => s.trim()).filter(Boolean),
      plugins,
    };
  }
  function editForm(w) {
    const f = webhookFields(w);
    const out = h('p', { id: 'edit-result' });
    return h('form', { class: 'stack card', id: 'edit-form', onsubmit: action(out, async () => {
      await api('PATCH', '/v1/webhooks/' + enc(w.id), webhookBody(f));
      route();
    }) },
    h('label', {}, 'URL', f.url), h('label', {}, 'Description', f.description),
    h('label', {}, 'Events (type globs, comma separated)', f.events),
    h('label', {}, 'Plugin chain (JSON)', f.plugins),
    h('div', {}, h('button', { class: 'primary', type: 'submit', id: 'save' }, 'Save')), out);
  }
  async function pageNewWebhook() {
    const id = h('input', { id: 'f-id', placeholder: 'generated when empty', size: 30 });
    const f = webhookFields(null);
    const out = h('div', { id: 'create-result' });
    const form = h('form', { class: 'stack card', id: 'create-form', onsubmit: action(out, async () => {
      const body = webhookBody(f);
      if (id.value.trim()) body.id = id.value.trim();
      const w = await api('POST', '/v1/webhooks', body);
      clear(form).append(h('div', { class: 'secret' },
        h('p', {}, 'Created ', link('#/webhooks/' + enc(w.id), w.id, { id: 'created-link' }), '.'),
        h('p', {}, 'Signing secret, shown only now: ', h('code', { id: 'created-secret' }, w.secret)),
        h('p', { class: 'muted' }, 'The subscriber needs it to check the webhook-signature header.')));
    }) },
    h('label', {}, 'Id', id), h('label', {}, 'URL', f.url), h('label', {}, 'Description', f.description),
    h('label', {}, 'Events (type globs, comma separated)', f.events),
    h('label', {}, 'Plugin chain (JSON: [{"name", "on_error", "config"}])', f.plugins),
    h('div', {}, h('button', { class: 'primary', type: 'submit', id: 'create' }, 'Create webhook')), out);
    return h('div', {}, h('h1', {}, 'New webhook'), form);
  }

  // ---- deliveries ---------------------------------------------------------
  const FILTERS = ['webhook', 'status', 'type', 'event', 'since', 'until'];
  function toLocalInput(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d)) return '';
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  }
  async function pageDeliveries(q) {
    const gen = S.render;
    const inputs = {
      webhook: h('input', { id: 'q-webhook', value: q.get('webhook') || '', size: 16 }),
      status: h('select', { id: 'q-status' }, h('option', { value: '' }, 'any'), STATES.map((s) => h('option', { value: s }, s))),
      type: h('input', { id: 'q-type', value: q.get('type') || '', size: 16 }),
      event: h('input', { id: 'q-event', value: q.get('event') || '', size: 18 }),
      since: h('input', { id: 'q-since', type: 'datetime-local', value: toLocalInput(q.get('since')) }),
      until: h('input', { id: 'q-until', type: 'datetime-local', value: toLocalInput(q.get('until')) }),
    };
    inputs.status.value = q.get('status') || '';
    const filters = h('form', { class: 'filters', id: 'filters', onsubmit: (ev) => {
      ev.preventDefault();
      const p = new URLSearchParams();
      for (const k of FILTERS) {
        let v = inputs[k].value.trim();
        if (v && (k === 'since' || k === 'until')) v = new Date(v).toISOString();
        if (v) p.set(k, v);
      }
      location.hash = '#/deliveries' + (p.toString() ? '?' + p : '');
    } },
    FILTERS.map((k) => h('label', {}, k, inputs[k])),
    h('button', { type: 'submit', class: 'primary', id: 'apply' }, 'Filter'));

    const query = new URLSearchParams();
    for (const k of FILTERS) if (q.get(k)) query.set(k, q.get(k));
    if (q.get('after')) query.set('after', q.get('after'));
    query.set('limit', '50');
    const first = await api('GET', '/v1/deliveries?' + query);
    const tbody = h('tbody', {});
    const seen = new Set();
    const fill = (page, mark) => {
      clear(tbody);
      for (const d of page.deliveries) {
        const fresh = mark && !seen.has(d.id + d.status + d.attempts);
        seen.add(d.id + d.status + d.attempts);
        tbody.append(h('tr', { 'data-delivery': d.id, 'data-status': d.status, class: fresh ? 'new' : null },
          h('td', {}, link('#/deliveries/' + enc(d.id), d.id, { class: 'mono' })),
          h('td', {}, d.webhook), h('td', {}, d.event_type), h('td', { class: 'mono' }, d.event_id),
          h('td', {}, pill(d.status)), h('td', { class: 'num' }, String(d.attempts)),
          h('td', {}, d.reason || ''), h('td', {}, when(d.created_at))));
      }
      if (!page.deliveries.length) tbody.append(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No deliveries match.')));
    };
    fill(first, false);

    const live = h('input', { type: 'checkbox', id: 'live', checked: !q.get('after') });
    const liveNote = h('span', { class: 'muted', id: 'live-note' });
    every(gen, 2000, async () => {
      if (!live.checked || S.offline) return;
      try {
        fill(await api('GET', '/v1/deliveries?' + query), true);
        clear(liveNote).append('updated ', new Date().toLocaleTimeString());
      } catch (_) { /* the banner says it */ }
    });

    const pager = h('div', { class: 'pager' },
      q.get('after') ? link(hashWith(q, null), 'Newest', { class: 'button', id: 'newest' }) : null,
      first.next ? link(hashWith(q, first.next), 'Older', { class: 'button', id: 'older' }) : null);

    return h('div', {},
      h('h1', {}, 'Delivery log', h('label', {}, live, ' live'), liveNote),
      filters, replayPanel(q),
      h('table', { id: 'deliveries' },
        h('thead', {}, h('tr', {}, ['Delivery', 'Webhook', 'Type', 'Event', 'Status', 'Attempts', 'Reason', 'Created'].map((t) => h('th', {}, t)))),
        tbody),
      pager);
  }
  function hashWith(q, after) {
    const p = new URLSearchParams();
    for (const k of FILTERS) if (q.get(k)) p.set(k, q.get(k));
    if (after) p.set('after', after);
    return '#/deliveries' + (p.toString() ? '?' + p : '');
  }
  // Replays every delivery matching the filter: counted first, confirmed,
  // then followed until none of them is queued any more.
  function replayPanel(q) {
    if (!can('deliveries:replay')) return null;
    const out = h('div', { id: 'replay-result' });
    const webhook = q.get('webhook'), st = q.get('status');
    if (!webhook || !REPLAYABLE.includes(st) || q.get('event') || q.get('since') || q.get('until')) {
      return h('p', { class: 'muted' }, 'To replay in bulk, filter by one webhook and a status of ', REPLAYABLE.join(', '),
        ' (and, if you like, an event type); replay single events or time ranges one delivery at a time.');
    }
    const body = { webhook, status: st };
    if (q.get('type')) body.type = q.get('type');
    const count = async () => {
      const r = await api('POST', '/v1/replay', Object.assign({ dry_run: true }, body));
      confirmBox(out, `Replay ${r.matched} ${st} deliveries of ${webhook}?`, 'Replay ' + r.matched, async () => {
        const done = await api('POST', '/v1/replay', body);
        progress(out, webhook, done.replayed);
      });
    };
    return h('div', { class: 'actions' }, h('button', { id: 'replay-all', onclick: action(out, count) }, 'Replay matching…'), out);
  }
  function progress(out, webhook, n) {
    const gen = S.render;
    const line = h('span', { class: 'notice', id: 'replay-progress' }, `Replayed ${n}.`);
    clear(out).append(line);
    if (!n) return;
    const t = setInterval(async () => {
      try {
        const live = await api('GET', '/v1/deliveries?limit=1000&status=pending&webhook=' + enc(webhook));
        const retrying = await api('GET', '/v1/deliveries?limit=1000&status=retrying&webhook=' + enc(webhook));
        const queued = live.deliveries.length + retrying.deliveries.length;
        if (gen !== S.render) { clearInterval(t); return; }
        clear(line).append(queued ? `Replayed ${n}: ${queued} of ${webhook}'s deliveries still queued…` : `Replayed ${n}: all sent.`);
        if (!queued) clearInterval(t);
      } catch (_) { /* the banner says it */ }
    }, 1000);
    S.timers.push(t);
  }

  async function pageDelivery(id) {
    const gen = S.render;
    const d = await api('GET', '/v1/deliveries/' + enc(id));
    const out = h('div', { id: 'delivery-result' });
    if (!FINAL.includes(d.status)) {
      every(gen, 1500, async () => {
        try {
          const now = await api('GET', '/v1/deliveries/' + enc(id));
          if (now.status !== d.status || now.attempts !== d.attempts) route();
        } catch (_) { /* the banner says it */ }
      });
    }
    const acts = h('div', { class: 'actions' });
    if (can('deliveries:replay') && FINAL.includes(d.status)) {
      acts.append(h('button', { id: 'replay', class: 'primary', onclick: action(out, async () => {
        await api('POST', '/v1/deliveries/' + enc(id) + '/replay');
        route();
      }) }, d.status === 'held' || d.status === 'filtered' ? 'Replay (runs the plugins again)' : 'Replay'));
    }
    const attempts = d.attempt_log.map((a, i) => h('tr', { 'data-attempt': i + 1 },
      h('td', { class: 'num' }, String(i + 1)), h('td', {}, when(a.at)), h('td', {}, a.node || ''),
      h('td', {}, a.status === null ? '—' : String(a.status)), h('td', { class: 'num' }, a.latency_ms + ' ms'),
      h('td', {}, a.error || ''), h('td', {}, a.response ? h('pre', { class: 'answer' }, a.response) : '')));
    const req = d.request;
    return h('div', {},
      h('h1', {}, 'Delivery ', h('span', { class: 'mono' }, d.id), pill(d.status)),
      acts, out,
      d.reason ? h('p', { class: d.status === 'held' || d.status === 'dead' ? 'error' : 'muted', id: 'reason' }, reasonLabel(d.status), d.reason) : null,
      h('div', { class: 'card' }, h('dl', { class: 'facts' },
        fact('Webhook', can('webhooks:read') ? link('#/webhooks/' + enc(d.webhook), d.webhook) : d.webhook),
        fact('Event', h('span', { class: 'mono' }, d.event_id)), fact('Type', d.event_type),
        fact('Attempts', String(d.attempts)), fact('Next attempt', d.next_attempt_at ? when(d.next_attempt_at) : null),
        fact('Created', when(d.created_at)), fact('Updated', when(d.updated_at)))),
      h('h2', {}, 'Attempts'),
      attempts.length ? h('table', { id: 'attempts' },
        h('thead', {}, h('tr', {}, ['#', 'At', 'Node', 'Status', 'Latency', 'Error', 'Answer'].map((t) => h('th', {}, t)))),
        h('tbody', {}, attempts)) : h('p', { class: 'muted' }, 'No attempt yet.'),
      h('div', { class: 'grid2' },
        h('div', {}, h('h2', {}, 'Request'),
          req ? [h('table', { id: 'request-headers' }, h('tbody', {}, req.headers.map(([k, v]) => h('tr', {}, h('td', { class: 'mono' }, k), h('td', { class: 'mono' }, v))))),
            (d.signed_headers && d.signed_headers.length) ? h('p', { class: 'muted' }, 'Added at each attempt: ', d.signed_headers.join(', '), '.') : null,
            h('pre', { id: 'request-body' }, pretty(req.body))]
            : h('p', { class: 'muted' }, d.status === 'held' || d.status === 'filtered'
              ? 'Nothing to send: the plugin chain ' + d.status + ' it (see the reason above).'
              : 'The plugin chain has not run yet.'),
          d.plugin_log && d.plugin_log.length ? [h('h2', {}, 'Plugin log'), h('pre', { id: 'plugin-log' }, d.plugin_log.join('\n'))] : null),
        h('div', {}, h('h2', {}, 'Event'),
          d.event ? h('pre', { id: 'event' }, JSON.stringify(Object.assign({}, d.event, { data: parseMaybe(d.event.data) }), null, 2))
            : h('p', { class: 'muted' }, 'The event is no longer kept.'))));
  }
  function parseMaybe(v) {
    if (typeof v !== 'string') return v;
    try { return JSON.parse(v); } catch (_) { return v; }
  }
  function reasonLabel(st) {
    return { held: 'Held: ', filtered: 'Filtered: ', dead: 'Gave up: ', canceled: 'Canceled: ', retrying: 'Failing: ' }[st] || 'Note: ';
  }

  // ---- plugins --------------------------------------------------------------
  async function pagePlugins() {
    const list = await api('GET', '/v1/plugins');
    const rows = list.plugins.map((p) => h('tr', { 'data-plugin': p.name },
      h('td', {}, p.name), h('td', {}, p.kind || '—'),
      h('td', {}, pill(p.state, p.state), p.error ? h('pre', { class: 'plugin-error' }, p.error) : null),
      h('td', { class: 'mono', title: p.sha256 || '' }, p.sha256 ? p.sha256.slice(0, 12) + '…' : '—'),
      h('td', {}, when(p.loaded_at)),
      h('td', {}, (p.used_by || []).map((id, i) => [i ? ', ' : '', can('webhooks:read') ? link('#/webhooks/' + enc(id), id) : id])),
      h('td', { class: 'num' }, p.calls === null || p.calls === undefined ? '—' : String(p.calls)),
      h('td', { class: 'num' }, p.failures === null || p.failures === undefined ? '—' : String(p.failures)),
      h('td', { class: 'num' }, ms(p.mean_ms))));
    return h('div', {},
      h('h1', {}, 'Plugins', can('admin') ? link('#/playground', 'Playground', { class: 'button' }) : null),
      h('table', { id: 'plugins' },
        h('thead', {}, h('tr', {}, ['Plugin', 'Kind', 'State', 'sha256', 'Loaded', 'Used by', 'Calls', 'Failures', 'Mean'].map((t) => h('th', {}, t)))),
        h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'No plugins in the plugins folder.')))),
      h('p', { class: 'muted' }, 'Calls, failures and times count this node since it started.'));
  }
  async function pagePlayground() {
    const list = await api('GET', '/v1/plugins');
    const filters = list.plugins.filter((p) => p.kind !== 'source' && p.state === 'ready');
    const plugin = h('select', { id: 'pg-plugin' }, filters.map((p) => h('option', { value: p.name }, p.name)));
    const event = h('textarea', { id: 'pg-event', value: JSON.stringify({ id: 'evt_try_1', type: 'record.create', owner_id: 'org_1', data: { form_id: 'a1b2', status: 'new' } }, null, 2) });
    const config = h('textarea', { id: 'pg-config', value: '{}' });
    const out = h('div', { id: 'pg-result' });
    const form = h('form', { class: 'stack card', id: 'playground', onsubmit: action(out, async () => {
      let ev, cfg;
      try { ev = JSON.parse(event.value); } catch (e) { throw new Error('event: not JSON (' + e.message + ')'); }
      try { cfg = JSON.parse(config.value || '{}'); } catch (e) { throw new Error('config: not JSON (' + e.message + ')'); }
      const r = await api('POST', '/v1/plugins/' + enc(plugin.value) + '/run', { event: ev, config: cfg });
      out.append(h('div', { class: 'card' }, h('dl', { class: 'facts' },
        fact('Verdict', h('span', { id: 'pg-verdict' }, pill(r.verdict, r.verdict === 'deliver' ? 'delivered' : r.verdict === 'drop' ? 'filtered' : 'dead'))),
        fact('Reason', r.reason), fact('Error', r.error), fact('Time', ms(r.time_ms))),
      r.headers && r.headers.length ? [h('h2', {}, 'Headers'), h('pre', { id: 'pg-headers' }, r.headers.map(([k, v]) => k + ': ' + v).join('\n'))] : null,
      r.body !== null && r.body !== undefined ? [h('h2', {}, 'Body'), h('pre', { id: 'pg-body' }, pretty(r.body))] : null,
      r.logs && r.logs.length ? [h('h2', {}, 'Log'), h('pre', { id: 'pg-logs' }, r.logs.join('\n'))] : null));
    }) },
    h('label', {}, 'Plugin', plugin), h('label', {}, 'Event', event), h('label', {}, 'Config (JSON)', config),
    h('div', {}, h('button', { class: 'primary', type: 'submit', id: 'pg-run' }, 'Run')));
    return h('div', {}, h('h1', {}, 'Plugin playground'),
      h('p', { class: 'muted' }, 'Runs the loaded version once, as it would run for a delivery, without sending anything.'),
      filters.length ? h('div', { class: 'grid2' }, form, out) : h('p', { class: 'muted' }, 'No filter plugin is loaded.'));
  }

  // ---- start ----------------------------------------------------------------
  window.addEventListener('hashchange', route);
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved !== null) {
    signIn(saved).then(route, (e) => {
      if (e.status === 401) signOut('Signed out: ' + e.message);
      else { S.token = null; showSignIn('Cannot reach weir: ' + e.message + '. Signing in again when it is back.'); }
    });
  } else {
    showSignIn();
  }
})();
