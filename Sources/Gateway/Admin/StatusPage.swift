/// The admin listener's live status page (`GET /`) and its sign-in form.
///
/// One self-contained HTML document each: inline CSS and JavaScript, nothing fetched from
/// anywhere but this listener, so the page works on a host with no way out. The page renders
/// what `/events` sends (a `snapshot` first, a `state` about every second, and discrete events);
/// it builds each deployment section, table row and event once, keyed by name, and afterwards only
/// changes text, so what a person is reading does not move under them.
///
/// The values interpolated here (user, CSRF token, message) are HTML-escaped; the script
/// reads them from the document, never from interpolated JavaScript.
enum StatusPage {
    /// The status page for a signed-in `user`. Action buttons exist only for `operator` and
    /// `admin`: a viewer's document has none, not merely hidden ones.
    static func page(user: String, level: AdminLevel, csrfToken: String) -> String {
        let canAct = level >= .operator
        return """
            \(head(title: "gateway status", meta: #"<meta name="gateway-csrf" content="\#(escape(csrfToken))">"#))
            <body data-level="\(level.rawValue)" data-can-act="\(canAct)">
            <header class="top">
              <h1>gateway</h1>
              <span class="pair"><span class="label">state</span> <span id="gateway-state" class="state" data-field="gateway-state">…</span></span>
              <span class="pair"><span class="label">in flight</span> <span id="gateway-in-flight" class="num">–</span> / <span id="gateway-limit" class="num">–</span></span>
              <span class="pair"><span class="label">rate</span> <span id="gateway-rate" class="num">–</span></span>
              <span class="pair"><span class="label">keeper</span> <span id="keeper-pid" class="num">–</span></span>
              <span class="pair"><span class="label">worker</span> <span id="worker-pid" class="num">–</span> <span class="muted">gen <span id="worker-generation">–</span></span></span>
              <span class="pair"><span class="label">version</span> <span id="gateway-version">–</span></span>
              <span class="spacer"></span>
              <span id="connection" data-state="connecting">connecting…</span>
              <span class="pair"><span class="muted">\(escape(user)) (\(level.rawValue))</span> <button type="button" id="sign-out">sign out</button></span>
            </header>
            <p id="action-status" class="status-line" role="status" aria-live="polite"></p>
            <main>
              <div id="deployments"></div>
              <section class="card events-card">
                <h2>last events <span class="muted" id="updated"></span></h2>
                <ol id="events"></ol>
              </section>
            </main>
            <script>\(script)</script>
            </body>
            </html>

            """
    }

    /// Both documents' start: doctype, head with the shared style, and `meta` (already escaped).
    private static func head(title: String, meta: String = "") -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">\(meta.isEmpty ? "" : "\n" + meta)
        <link rel="icon" href="data:,">
        <title>\(title)</title>
        <style>\(css)</style>
        </head>
        """
    }

    /// The sign-in form: a token typed once, posted to `/session`, which answers with a session
    /// cookie (or 401 and this form again, with `message`).
    static func signIn(message: String?) -> String {
        let notice = message.map { "<p class=\"message\" role=\"alert\">\(escape($0))</p>" } ?? ""
        return """
            \(head(title: "gateway: sign in"))
            <body class="sign-in">
            <main>
              <form method="post" action="/session" class="card">
                <h1>gateway</h1>
                \(notice)
                <label for="token">admin token</label>
                <input type="password" name="token" id="token" autocomplete="current-password" required autofocus>
                <button type="submit" id="sign-in">sign in</button>
              </form>
            </main>
            </body>
            </html>

            """
    }

    /// Escapes text for an HTML element or a quoted attribute value.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    // MARK: Style

    private static let css = #"""
        :root { color-scheme: light dark; --fg: #1c2128; --muted: #5f6b77; --bg: #f4f6f8; --card: #fff;
          --line: #d8dee4; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --idle: #6e7781; }
        @media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9aa6b2; --bg: #0d1117;
          --card: #161b22; --line: #30363d; --ok: #3fb950; --warn: #d29922; --bad: #f85149; --idle: #8b949e; } }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--fg);
          font-variant-numeric: tabular-nums; }
        h1 { font-size: 1.15rem; margin: 0; }
        h2 { font-size: 1rem; margin: 0; }
        h3 { font-size: .8rem; margin: .8rem 0 .2rem; color: var(--muted); font-weight: 600;
          text-transform: uppercase; letter-spacing: .04em; }
        button { font: inherit; padding: .1rem .55rem; border: 1px solid var(--line); border-radius: 4px;
          background: var(--bg); color: var(--fg); cursor: pointer; }
        button:hover { border-color: var(--muted); }
        button:disabled { opacity: .5; cursor: progress; }
        .muted, .label { color: var(--muted); }
        .label { font-size: .8rem; }
        .num { text-align: right; }
        header.top { position: sticky; top: 0; z-index: 1; display: flex; flex-wrap: wrap; align-items: baseline;
          gap: .3rem 1.4rem; padding: .55rem 1rem; background: var(--card); border-bottom: 1px solid var(--line); }
        header.top .spacer { flex: 1; }
        #gateway-in-flight, #gateway-limit, #keeper-pid, #worker-pid { display: inline-block; min-width: 3ch; }
        #gateway-rate { display: inline-block; min-width: 7ch; }
        #connection { padding: 0 .5rem; border-radius: 999px; font-size: .85rem; border: 1px solid currentColor;
          color: var(--warn); }
        #connection[data-state="live"] { color: var(--ok); }
        #connection[data-state="disconnected"] { color: var(--bad); }
        .status-line { margin: 0; padding: .25rem 1rem; min-height: 1.9rem; white-space: nowrap; overflow: hidden;
          text-overflow: ellipsis; }
        .status-line[data-kind="error"] { color: var(--bad); }
        .status-line[data-kind="ok"] { color: var(--ok); }
        main { padding: 0 1rem 1rem; display: grid; gap: 1rem; }
        .card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .7rem .9rem; }
        .deployment + .deployment { margin-top: 1rem; }
        .dep-head { display: flex; align-items: baseline; gap: .8rem; }
        .dep-head .actions { margin-left: auto; }
        .actions { display: inline-flex; gap: .3rem; }
        .actions button { font-size: .8rem; }
        .state { font-weight: 600; }
        [data-state="RUNNING"], [data-state="READY"] { color: var(--ok); }
        [data-state="PRE_SUSPEND"], [data-state="SUSPENDING"], [data-state="STARTING"], [data-state="STOPPING"],
          [data-state="DRAINING"] { color: var(--warn); }
        [data-state="SUSPENDED"], [data-state="STOPPED"] { color: var(--idle); }
        [data-state="BACKOFF"], [data-state="FAILED"] { color: var(--bad); }
        .figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(8.5rem, 1fr)); gap: .2rem 1rem;
          margin: .5rem 0 0; }
        .figures div { min-width: 0; }
        .figures dt { font-size: .75rem; color: var(--muted); }
        .figures dd { margin: 0; font-size: 1.05rem; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
        table { width: 100%; border-collapse: collapse; table-layout: fixed; }
        th, td { padding: .15rem .4rem; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap;
          overflow: hidden; text-overflow: ellipsis; }
        th { font-size: .75rem; color: var(--muted); font-weight: 600; }
        th.num, td.num { text-align: right; }
        td .reason { color: var(--muted); margin-left: .4rem; }
        .hidden { display: none; }
        .events-card h2 { margin-bottom: .4rem; }
        #updated { font-weight: normal; font-size: .8rem; margin-left: .5rem; }
        #events { list-style: none; margin: 0; padding: 0; height: 16rem; overflow-y: auto; overflow-anchor: none;
          font: 12.5px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; border-top: 1px solid var(--line); }
        #events:empty::before { content: "no events yet"; color: var(--muted); }
        #events li { display: grid; grid-template-columns: 7.5rem 5.5rem 1fr; gap: .6rem; padding: .05rem 0;
          border-bottom: 1px solid var(--line); }
        #events li > span { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
        #events .ev-type { color: var(--muted); }
        body.sign-in main { display: flex; justify-content: center; padding-top: 12vh; }
        body.sign-in form { display: grid; gap: .6rem; width: min(22rem, 92vw); }
        body.sign-in input { font: inherit; padding: .35rem .5rem; border: 1px solid var(--line); border-radius: 4px;
          background: var(--bg); color: var(--fg); }
        body.sign-in .message { margin: 0; color: var(--bad); }
        """#

    // MARK: Script

    private static let script = #"""
        'use strict';
        (function () {
          const csrf = document.querySelector('meta[name="gateway-csrf"]').content;
          const canAct = document.body.dataset.canAct === 'true';
          const EVENT_TYPES = ['instance', 'suspend', 'roll', 'reload', 'upgrade', 'audit', 'gateway'];
          const MAX_EVENTS = 100;

          // ---- small helpers ----
          function el(tag, attrs, children) {
            const node = document.createElement(tag);
            for (const [key, value] of Object.entries(attrs || {})) {
              if (key === 'class') node.className = value;
              else if (key === 'text') node.textContent = value;
              else node.setAttribute(key, value);
            }
            for (const child of children || []) node.append(child);
            return node;
          }
          function setText(node, text) {
            text = String(text);
            if (node.textContent !== text) node.textContent = text;
          }
          function setState(node, state) {
            setText(node, state == null ? '–' : state);
            const value = state == null ? '' : String(state);
            if (node.dataset.state !== value) node.dataset.state = value;
          }
          const dash = '–';
          const fmt = {
            int: v => v == null ? dash : String(v),
            limit: v => v == null ? 'none' : String(v),
            ms: v => v == null ? dash : (v < 10 ? v.toFixed(1) : String(Math.round(v))) + ' ms',
            rate: v => v == null ? dash : (v < 10 ? v.toFixed(1) : String(Math.round(v))) + '/s',
            percent: v => v == null ? dash : v.toFixed(1) + ' %',
            bytes(v) {
              if (v == null) return dash;
              const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
              let i = 0;
              while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
              return (i === 0 ? String(v) : v.toFixed(1)) + ' ' + units[i];
            },
            duration(s) {
              if (s == null) return dash;
              if (s < 60) return s.toFixed(1) + ' s';
              const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
              if (d > 0) return d + 'd ' + String(h % 24).padStart(2, '0') + 'h';
              if (h > 0) return h + 'h ' + String(m % 60).padStart(2, '0') + 'm';
              return m + 'm ' + String(Math.floor(s % 60)).padStart(2, '0') + 's';
            },
            rejected(counts) {
              const parts = Object.entries(counts || {}).filter(([, n]) => n > 0).map(([reason, n]) => reason + ' ' + n);
              return parts.length ? parts.join(', ') : 'none';
            },
            clock(iso) {
              const date = new Date(iso);
              if (isNaN(date)) return String(iso || '');
              return date.toLocaleTimeString([], { hour12: false }) + '.' + String(date.getMilliseconds()).padStart(3, '0');
            },
          };
          function sumRejected(list) {
            const total = {};
            for (const item of list || []) {
              for (const [reason, n] of Object.entries(item.rejected || {})) total[reason] = (total[reason] || 0) + n;
            }
            return total;
          }

          // ---- rates: change of `total` between two messages over the time between them ----
          let previous = null; // {time, totals: Map}
          let lastRates = new Map();
          function rates(totals) {
            const now = performance.now();
            // Too close to the last message to say anything: keep the rates shown.
            if (previous && now - previous.time < 200) return lastRates;
            const result = new Map();
            if (previous) {
              const seconds = (now - previous.time) / 1000;
              for (const [key, total] of totals) {
                const before = previous.totals.get(key);
                // A new worker starts its counters again: no rate rather than a negative one.
                if (before != null && total >= before) result.set(key, (total - before) / seconds);
              }
            }
            previous = { time: now, totals };
            lastRates = result;
            return result;
          }

          // ---- status line and actions (operators and admins only) ----
          const statusLine = document.getElementById('action-status');
          function showStatus(text, kind) {
            statusLine.textContent = text;
            statusLine.title = text;
            statusLine.dataset.kind = kind || '';
          }
          function summarize(body, text) {
            if (body && typeof body === 'object') {
              if (body.message) return body.message;
              if (body.state) return (body.scope ? body.scope + ': ' : '') + body.state +
                (body.drained === false ? ' (' + body.active + ' still in flight)' : '');
              return JSON.stringify(body);
            }
            return text.trim() || 'done';
          }
          async function post(spec, button) {
            if (!window.confirm(spec.question)) return;
            button.disabled = true;
            showStatus(spec.what + ': sent, waiting for the answer…', '');
            try {
              const response = await fetch(spec.url, {
                method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf },
              });
              const text = await response.text();
              let body = null;
              try { body = JSON.parse(text); } catch (_) { /* not JSON */ }
              if (response.ok) showStatus(spec.what + ': ' + summarize(body, text), 'ok');
              else showStatus(spec.what + ' failed (' + response.status + '): ' +
                ((body && body.error) || text.trim() || response.statusText), 'error');
            } catch (error) {
              showStatus(spec.what + ' failed: ' + error.message, 'error');
            } finally {
              button.disabled = false;
            }
          }
          function actions(specs) {
            const box = el('span', { class: 'actions' });
            if (!canAct) return box;
            for (const spec of specs) {
              const button = el('button', { type: 'button', 'data-action': spec.action, 'data-scope': spec.scope, text: spec.action });
              button.addEventListener('click', () => post(spec, button));
              box.append(button);
            }
            return box;
          }
          function deploymentActions(name) {
            const d = encodeURIComponent(name);
            return actions([
              { action: 'suspend', scope: 'deployment', url: '/suspend?deployment=' + d, what: 'suspend ' + name,
                question: 'Suspend deployment ' + name + '? New requests get 503 until it is resumed; the answer comes once it has drained.' },
              { action: 'resume', scope: 'deployment', url: '/resume?deployment=' + d, what: 'resume ' + name,
                question: 'Resume deployment ' + name + '?' },
              { action: 'restart', scope: 'deployment', url: '/deployments/' + d + '/restart', what: 'restart ' + name,
                question: 'Rolling restart of every instance of ' + name + '?' },
            ]);
          }
          function instanceActions(deployment, index, name) {
            const d = encodeURIComponent(deployment);
            return actions([
              { action: 'suspend', scope: 'instance', url: '/suspend?deployment=' + d + '&instance=' + index, what: 'suspend ' + name,
                question: 'Suspend instance ' + name + '? It leaves the rotation and drains.' },
              { action: 'resume', scope: 'instance', url: '/resume?deployment=' + d + '&instance=' + index, what: 'resume ' + name,
                question: 'Resume instance ' + name + '?' },
              { action: 'restart', scope: 'instance', url: '/deployments/' + d + '/instances/' + index + '/restart', what: 'restart ' + name,
                question: 'Restart instance ' + name + '? It drains, stops and starts again.' },
            ]);
          }

          // ---- tables whose rows are built once per key and then only change text ----
          function table(columns) {
            const colgroup = el('colgroup', {}, columns.map(c => el('col', { style: 'width:' + c.width })));
            const head = el('tr', {}, columns.map(c => el('th', Object.assign({ class: c.num ? 'num' : '', text: c.title }, c.tip ? { title: c.tip } : {}))));
            const body = el('tbody');
            return { node: el('table', {}, [colgroup, el('thead', {}, [head]), body]), body, rows: new Map() };
          }
          // Puts the rows for `items` in order, building missing ones, and removes the rest.
          function syncRows(view, items, keyOf, build, update) {
            const seen = new Set();
            let cursor = view.body.firstChild;
            for (const item of items) {
              const key = keyOf(item);
              if (seen.has(key)) continue;
              seen.add(key);
              let row = view.rows.get(key);
              if (!row) { row = build(item, key); view.rows.set(key, row); }
              if (row.node === cursor) cursor = cursor.nextSibling;
              else view.body.insertBefore(row.node, cursor);
              update(row, item);
            }
            for (const [key, row] of view.rows) {
              if (!seen.has(key)) { row.node.remove(); view.rows.delete(key); }
            }
          }
          function cells(columns, extra) {
            const fields = {};
            const tds = columns.map(c => {
              const td = el('td', { class: c.num ? 'num' : '' });
              if (c.field) {
                const span = el('span', { 'data-field': c.field, text: dash });
                td.append(span);
                fields[c.field] = span;
                if (c.reason) { fields.reason = el('span', { class: 'reason', 'data-field': 'reason' }); td.append(fields.reason); }
              }
              if (c.actions && extra) td.append(extra);
              return td;
            });
            return { tds, fields };
          }

          const entryColumns = [
            { title: 'entry point', width: '16%', field: 'name' },
            { title: 'state', width: '11%', field: 'state' },
            { title: 'in flight', width: '8%', num: true, field: 'in_flight' },
            { title: 'limit', width: '7%', num: true, field: 'limit' },
            { title: 'rate', width: '9%', num: true, field: 'rate' },
            { title: 'total', width: '9%', num: true, field: 'total' },
            { title: 'p50', width: '9%', num: true, field: 'p50' },
            { title: 'p99', width: '9%', num: true, field: 'p99' },
            { title: 'rejected', width: '22%', field: 'rejected' },
          ];
          const backendColumns = [
            { title: 'backend', width: '22%', field: 'address' },
            { title: 'state', width: '12%', field: 'state' },
            { title: 'in rotation', width: '11%', field: 'in_rotation' },
            { title: 'active', width: '9%', num: true, field: 'active' },
            { title: 'total', width: '10%', num: true, field: 'total' },
            { title: 'failures', width: '9%', num: true, field: 'failures' },
            { title: 'ejected', width: '27%', field: 'ejected' },
          ];
          const processColumns = [
            { title: 'instance', width: '10%', field: 'instance' },
            { title: 'pid', width: '8%', num: true, field: 'pid' },
            { title: 'port', width: '7%', num: true, field: 'port' },
            { title: 'state', width: canAct ? '22%' : '30%', field: 'state', reason: true },
            { title: 'in flight', width: '7%', num: true, field: 'active' },
            { title: 'uptime', width: '9%', num: true, field: 'uptime' },
            { title: 'memory', width: '10%', num: true, field: 'rss', tip: 'resident memory of the process tree' },
            { title: 'CPU', width: '8%', num: true, field: 'cpu', tip: 'CPU of the process tree, % of one core' },
            { title: 'restarts', width: '11%', num: true, field: 'restarts' },
          ].concat(canAct ? [{ title: '', width: '17rem', actions: true }] : []);

          // ---- deployments ----
          const deploymentsBox = document.getElementById('deployments');
          const deployments = new Map();
          function figure(box, label, name, title) {
            const value = el('dd', { 'data-field': name, text: dash });
            box.append(el('div', title ? { title } : {}, [el('dt', { text: label }), value]));
            return value;
          }
          function deploymentView(name) {
            let view = deployments.get(name);
            if (view) return view;
            const state = el('span', { class: 'state', 'data-field': 'state', text: dash });
            const head = el('div', { class: 'dep-head' }, [el('h2', { text: name }), state, deploymentActions(name)]);
            const figures = el('dl', { class: 'figures' });
            const fields = {
              state,
              in_flight: figure(figures, 'in flight', 'in_flight'),
              limit: figure(figures, 'limit', 'limit'),
              rate: figure(figures, 'requests/s', 'rate'),
              total: figure(figures, 'total', 'total'),
              p50: figure(figures, 'p50', 'p50', 'latency median of the slowest entry point'),
              p99: figure(figures, 'p99', 'p99', '99th percentile latency of the slowest entry point'),
              rejected: figure(figures, 'rejected', 'rejected'),
            };
            const entries = table(entryColumns);
            const backends = table(backendColumns);
            const processes = table(processColumns);
            const processTitle = el('h3', { text: 'processes' });
            const processBox = el('div', { class: 'hidden' }, [processTitle, processes.node]);
            const node = el('section', { class: 'deployment card', 'data-deployment': name }, [
              head, figures,
              el('h3', { text: 'entry points' }), entries.node,
              el('h3', { text: 'backends' }), backends.node,
              processBox,
            ]);
            view = { node, fields, entries, backends, processes, processBox };
            deployments.set(name, view);
            return view;
          }

          function renderDeployment(view, d, rateOf) {
            const f = view.fields;
            setState(f.state, d.state);
            setText(f.in_flight, fmt.int(d.active));
            setText(f.limit, fmt.limit(d.limit));
            setText(f.rate, fmt.rate(rateOf('d:' + d.name)));
            setText(f.total, fmt.int(d.total));
            const eps = d.entry_points || [];
            // Latency means something only where requests were measured.
            const measured = eps.filter(ep => (ep.latency_ms || {}).count > 0);
            const worst = key => measured.length ? Math.max(...measured.map(ep => ep.latency_ms[key] || 0)) : null;
            setText(f.p50, fmt.ms(worst('p50')));
            setText(f.p99, fmt.ms(worst('p99')));
            const rejected = fmt.rejected(sumRejected(eps));
            setText(f.rejected, rejected);
            f.rejected.title = rejected;

            syncRows(view.entries, eps, ep => ep.name, () => {
              const { tds, fields } = cells(entryColumns);
              return { node: el('tr', {}, tds), fields };
            }, (row, ep) => {
              const r = row.fields;
              setText(r.name, ep.name);
              setState(r.state, ep.state);
              setText(r.in_flight, fmt.int(ep.active));
              setText(r.limit, fmt.limit(ep.limit));
              setText(r.rate, fmt.rate(rateOf('e:' + d.name + '/' + ep.name)));
              setText(r.total, fmt.int(ep.total));
              const latency = (ep.latency_ms || {}).count > 0 ? ep.latency_ms : {};
              setText(r.p50, fmt.ms(latency.p50));
              setText(r.p99, fmt.ms(latency.p99));
              const text = fmt.rejected(ep.rejected);
              setText(r.rejected, text);
              r.rejected.parentNode.title = text;
            });

            // In address order, not the order /stats happens to list them in: rows stay put.
            const backends = (d.backends || []).slice().sort((a, b) => a.address.localeCompare(b.address, 'en', { numeric: true }));
            syncRows(view.backends, backends, b => b.address, () => {
              const { tds, fields } = cells(backendColumns);
              return { node: el('tr', {}, tds), fields };
            }, (row, b) => {
              const r = row.fields;
              setText(r.address, b.address);
              setState(r.state, b.state);
              setText(r.in_rotation, b.in_rotation ? 'yes' : 'no');
              setText(r.active, fmt.int(b.active));
              setText(r.total, fmt.int(b.total));
              setText(r.failures, fmt.int(b.failures));
              setText(r.ejected, (b.ejected ? 'ejected' : 'no') + (b.ejections ? ' (' + b.ejections + ' so far)' : ''));
            });
          }

          function renderProcesses(view, rows) {
            view.processBox.classList.toggle('hidden', rows.length === 0);
            rows = rows.slice().sort((a, b) => (a.index - b.index) || a.instance.localeCompare(b.instance));
            syncRows(view.processes, rows, p => p.instance, p => {
              const { tds, fields } = cells(processColumns, instanceActions(p.deployment, p.index, p.instance));
              return { node: el('tr', { 'data-instance': p.instance }, tds), fields };
            }, (row, p) => {
              const r = row.fields;
              setText(r.instance, p.instance);
              r.instance.parentNode.title = Array.isArray(p.command) ? p.command.join(' ') : '';
              setText(r.pid, fmt.int(p.pid));
              setText(r.port, fmt.int(p.port));
              setState(r.state, p.state);
              // A running process whose traffic a suspend holds back shows SUSPENDED or DRAINING.
              const reason = (p.suspended_by ? 'suspended by ' + p.suspended_by + (p.process_state ? ' (process ' + p.process_state + ')' : '') : '')
                || p.reason || '';
              setText(r.reason, reason);
              r.state.parentNode.title = p.state + (reason ? ': ' + reason : '') + (p.last_exit ? ' (last exit: ' + p.last_exit + ')' : '');
              setText(r.active, fmt.int(p.active));
              setText(r.uptime, fmt.duration(p.uptime_s));
              setText(r.rss, fmt.bytes(p.rss_bytes));
              setText(r.cpu, fmt.percent(p.cpu_percent));
              const split = p.crashes != null && p.planned_restarts != null;
              setText(r.restarts, split ? p.crashes + ' / ' + p.planned_restarts : fmt.int(p.restarts));
              r.restarts.parentNode.title = split ? 'crashes / planned restarts' : 'restarts';
            });
          }

          // ---- the whole state (snapshot and state messages) ----
          const header = {
            state: document.getElementById('gateway-state'),
            inFlight: document.getElementById('gateway-in-flight'),
            limit: document.getElementById('gateway-limit'),
            rate: document.getElementById('gateway-rate'),
            keeper: document.getElementById('keeper-pid'),
            worker: document.getElementById('worker-pid'),
            generation: document.getElementById('worker-generation'),
            version: document.getElementById('gateway-version'),
            updated: document.getElementById('updated'),
          };
          function applyState(message) {
            const health = message.health || {};
            const stats = message.stats || {};
            const processList = Array.isArray(message.processes) ? message.processes
              : ((message.processes || {}).processes || []);
            const deploymentList = stats.deployments || [];

            const totals = new Map([['g', (stats.global || {}).total || 0]]);
            for (const d of deploymentList) {
              totals.set('d:' + d.name, d.total);
              for (const ep of d.entry_points || []) totals.set('e:' + d.name + '/' + ep.name, ep.total);
            }
            const shown = rates(totals);
            const rateOf = key => shown.get(key);

            setState(header.state, health.state || stats.state);
            setText(header.inFlight, fmt.int((stats.global || {}).active));
            setText(header.limit, fmt.limit((stats.global || {}).limit));
            setText(header.rate, fmt.rate(rateOf('g')));
            setText(header.keeper, fmt.int(health.keeper_pid));
            setText(header.worker, fmt.int(health.pid));
            setText(header.generation, fmt.int(health.worker_generation));
            setText(header.version, health.version || dash);
            setText(header.updated, 'updated ' + new Date().toLocaleTimeString([], { hour12: false }));

            // Deployments in the order /stats lists them, then any that only /processes names.
            const names = deploymentList.map(d => d.name);
            for (const p of processList) if (!names.includes(p.deployment)) names.push(p.deployment);
            let cursor = deploymentsBox.firstChild;
            for (const name of names) {
              const view = deploymentView(name);
              if (view.node === cursor) cursor = cursor.nextSibling;
              else deploymentsBox.insertBefore(view.node, cursor);
              const d = deploymentList.find(x => x.name === name);
              if (d) renderDeployment(view, d, rateOf);
              renderProcesses(view, processList.filter(p => p.deployment === name));
            }
            for (const [name, view] of deployments) {
              if (!names.includes(name)) { view.node.remove(); deployments.delete(name); }
            }
          }
          // ---- events: newest first, a bounded list that does not scroll under the reader ----
          const eventsBox = document.getElementById('events');
          const seenEvents = new Set();
          function addEvent(event) {
            if (!event || typeof event !== 'object') return;
            const key = event.seq + '|' + event.time;
            if (seenEvents.has(key)) return;
            seenEvents.add(key);
            const extra = Object.assign({}, event);
            for (const known of ['seq', 'time', 'type', 'message']) delete extra[known];
            const item = el('li', { 'data-seq': String(event.seq), 'data-type': String(event.type) }, [
              el('time', { datetime: String(event.time), text: fmt.clock(event.time) }),
              el('span', { class: 'ev-type', text: String(event.type) }),
              el('span', { class: 'ev-message', text: String(event.message || '') }),
            ]);
            item.dataset.key = key;
            if (Object.keys(extra).length) item.title = JSON.stringify(extra);
            // A reader who scrolled down keeps seeing the same lines; one at the top sees the new one.
            const reading = eventsBox.scrollTop > 0;
            const before = eventsBox.scrollHeight;
            eventsBox.prepend(item);
            if (reading) eventsBox.scrollTop += eventsBox.scrollHeight - before;
            while (eventsBox.children.length > MAX_EVENTS) {
              const last = eventsBox.lastElementChild;
              seenEvents.delete(last.dataset.key);
              last.remove();
            }
          }

          // ---- the connection ----
          const connection = document.getElementById('connection');
          function setConnection(state, text) {
            connection.dataset.state = state;
            setText(connection, text);
          }
          let source = null;
          let failures = 0;
          function parse(message) {
            try { return JSON.parse(message.data); } catch (error) { console.warn('bad event data', error); return null; }
          }
          function connect() {
            source = new EventSource('/events');
            source.addEventListener('open', () => { failures = 0; setConnection('live', 'live'); });
            source.addEventListener('snapshot', message => {
              const data = parse(message);
              if (!data) return;
              setConnection('live', 'live');
              applyState(data);
              for (const event of data.recent || []) addEvent(event);
            });
            source.addEventListener('state', message => {
              const data = parse(message);
              if (data) applyState(data);
            });
            for (const type of EVENT_TYPES) {
              source.addEventListener(type, message => addEvent(parse(message)));
            }
            source.addEventListener('error', () => {
              // The last values stay on the page. The browser retries by itself unless the answer
              // was not an event stream (say, a session that expired): then this page retries.
              if (source.readyState === EventSource.CLOSED) {
                source.close();
                failures += 1;
                const delay = Math.min(1000 * 2 ** Math.min(failures, 4), 15000);
                setConnection('disconnected', 'disconnected, retrying in ' + Math.round(delay / 1000) + ' s' +
                  (failures > 2 ? ' (if this persists, reload and sign in again)' : ''));
                setTimeout(connect, delay);
              } else {
                setConnection('disconnected', 'disconnected, retrying…');
              }
            });
          }

          document.getElementById('sign-out').addEventListener('click', async () => {
            try {
              await fetch('/session/end', { method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf } });
            } catch (_) { /* signed out or not, the sign-in form is next */ }
            window.location.assign('/');
          });

          connect();
        })();
        """#
}
