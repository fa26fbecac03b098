// The run log page. It reads the admin API next to it (../events,
// ../event, ../hooks, ../replay) and puts everything it reads into the
// page as text (textContent), never as HTML: payloads, headers and ids
// come from whoever sent the webhook.
'use strict';

(function () {
	const POLL_MS = 2000; // the run log and an open record
	const HOOKS_MS = 10000; // counts read more records; less often
	const PAGE = 50;

	const $ = (sel) => document.querySelector(sel);
	const form = $('#filters');

	const state = {
		filters: { hook: '', status: '', since: '', until: '', q: '' },
		events: [], // shown rows, newest first
		next: '', // cursor after the last page loaded
		extended: false, // older pages were loaded with "Load older"
		seen: new Set(), // keys shown before, to mark new ones
		first: true, // the first load of a filter marks nothing new
		selected: '',
		detailText: '', // the open record as last drawn
		gen: 0, // bumps on each filter change; older answers are dropped
		timer: 0,
		hooksAt: 0,
		hookNames: [],
		pageSig: undefined, // keys and statuses of the newest page
	};

	// el builds an element; text goes in as textContent only.
	function el(tag, opts, children) {
		const e = document.createElement(tag);
		if (opts) {
			if (opts.cls) e.className = opts.cls;
			if (opts.text !== undefined && opts.text !== null) e.textContent = String(opts.text);
			if (opts.title) e.title = opts.title;
			if (opts.data) for (const k in opts.data) e.dataset[k] = opts.data[k];
		}
		for (const c of children || []) if (c) e.appendChild(c);
		return e;
	}

	// Numbers a double cannot hold (64-bit ids in payloads) keep the
	// sender's digits where the browser can tell (JSON.rawJSON).
	function reviver(key, value, ctx) {
		if (typeof value === 'number' && ctx && typeof ctx.source === 'string' &&
			typeof JSON.rawJSON === 'function' && String(value) !== ctx.source && !Number.isSafeInteger(value)) {
			return JSON.rawJSON(ctx.source);
		}
		return value;
	}

	function parse(text) {
		try {
			return JSON.parse(text, reviver);
		} catch (e) {
			return null;
		}
	}

	// api fetches path (relative to the admin API) and returns the parsed
	// answer; a failure throws an Error carrying the status and the API's
	// own message.
	async function api(path, opts) {
		let res;
		try {
			res = await fetch('../' + path, Object.assign({ cache: 'no-store', credentials: 'same-origin' }, opts));
		} catch (e) {
			const err = new Error('the admin endpoint did not answer (' + e.message + ')');
			err.status = 0;
			throw err;
		}
		const text = await res.text();
		const body = parse(text);
		if (!res.ok) {
			const msg = body && typeof body.error === 'string' ? body.error : text.trim() || res.statusText;
			const err = new Error(msg);
			err.status = res.status;
			throw err;
		}
		return { status: res.status, body: body };
	}

	function showError(msg) {
		const p = $('#error');
		p.textContent = msg || '';
		p.hidden = !msg;
	}

	function setLive(mode, text) {
		$('#live-dot').className = 'dot' + (mode === 'on' ? ' on' : mode === 'err' ? ' err' : '');
		$('#live').textContent = text;
	}

	function pad(n) {
		return String(n).padStart(2, '0');
	}

	// when shows a time in the browser's zone, to the second.
	function when(iso) {
		if (!iso) return '';
		const d = new Date(iso);
		if (isNaN(d)) return String(iso);
		return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
			pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
	}

	function badge(status) {
		return el('span', { cls: 'badge s-' + String(status), text: status });
	}

	function codeClass(code) {
		return 'code-' + String(Math.floor(Number(code) / 100) || 0);
	}

	function ms(v) {
		const n = Number(v);
		if (!isFinite(n)) return '';
		return (n >= 100 ? n.toFixed(0) : n.toFixed(1)) + ' ms';
	}

	// --- filters and the address bar -----------------------------------

	// The filters and the open record live in the fragment, so a reload or
	// a copied link shows the same view.
	function readHash() {
		const p = new URLSearchParams(location.hash.slice(1));
		for (const k in state.filters) state.filters[k] = p.get(k) || '';
		state.selected = p.get('key') || '';
		for (const k in state.filters) {
			if (k === 'hook') ensureHookOption(state.filters.hook);
			form.elements[k].value = state.filters[k];
		}
	}

	function writeHash() {
		const p = new URLSearchParams();
		for (const k in state.filters) if (state.filters[k]) p.set(k, state.filters[k]);
		if (state.selected) p.set('key', state.selected);
		const h = p.toString();
		history.replaceState(null, '', h ? '#' + h : location.pathname + location.search);
	}

	// RFC 3339 from a datetime-local value (the browser's zone).
	function rfc3339(local) {
		const d = new Date(local);
		return isNaN(d) ? '' : d.toISOString();
	}

	function query(extra) {
		const p = new URLSearchParams();
		const f = state.filters;
		if (f.hook) p.set('hook', f.hook);
		if (f.status) p.set('status', f.status);
		if (f.since && rfc3339(f.since)) p.set('since', rfc3339(f.since));
		if (f.until && rfc3339(f.until)) p.set('until', rfc3339(f.until));
		if (f.q) p.set('q', f.q);
		for (const k in extra || {}) p.set(k, extra[k]);
		return p.toString();
	}

	function applyFilters() {
		for (const k in state.filters) state.filters[k] = form.elements[k].value.trim();
		state.gen++;
		state.events = [];
		state.next = '';
		state.extended = false;
		state.first = true;
		writeHash();
		renderEvents();
		poll();
	}

	form.addEventListener('submit', (e) => {
		e.preventDefault();
		applyFilters();
	});
	form.elements.hook.addEventListener('change', applyFilters);
	form.elements.status.addEventListener('change', applyFilters);
	$('#clear').addEventListener('click', () => {
		form.reset();
		applyFilters();
	});

	function ensureHookOption(name) {
		const sel = form.elements.hook;
		if (!name || Array.from(sel.options).some((o) => o.value === name)) return;
		sel.appendChild(el('option', { text: name }));
	}

	// --- hooks -----------------------------------------------------------

	function counts(byStatus) {
		const box = el('div', { cls: 'counts' });
		const names = Object.keys(byStatus || {}).sort();
		if (!names.length) box.appendChild(el('span', { cls: 'muted', text: 'none' }));
		for (const s of names) box.appendChild(el('span', { cls: 'badge s-' + s, text: s + ' ' + byStatus[s] }));
		return box;
	}

	async function loadHooks() {
		state.hooksAt = Date.now();
		let res;
		try {
			res = await api('hooks');
		} catch (e) {
			const note = $('#hooks-note');
			note.textContent = 'Hook counts unavailable: ' + e.message;
			note.hidden = false;
			return;
		}
		$('#hooks-note').hidden = true;
		const hooks = (res.body && res.body.hooks) || [];
		const tbody = $('#hooks tbody');
		tbody.replaceChildren();
		for (const h of hooks) {
			const name = el('button', { cls: 'linkish', text: h.name, title: 'Show this hook\'s records' });
			name.type = 'button';
			name.addEventListener('click', () => {
				ensureHookOption(h.name);
				form.elements.hook.value = h.name;
				applyFilters();
			});
			const nameCell = el('td', null, [name]);
			const day = (h.counts && h.counts.day) || {};
			if (day.dead > 0) {
				const rb = el('button', { cls: 'small', text: 'Replay dead', title: 'Deliver every dead record of ' + h.name + ' again' });
				rb.type = 'button';
				rb.addEventListener('click', () => replayDead(h.name));
				nameCell.appendChild(document.createTextNode(' '));
				nameCell.appendChild(rb);
			}
			tbody.appendChild(el('tr', { data: { hook: h.name } }, [
				nameCell,
				el('td', { text: h.mode || 'not configured' }),
				el('td', { text: h.log || '' }),
				el('td', null, [counts(h.counts && h.counts.hour)]),
				el('td', null, [counts(day)]),
			]));
		}
		if (!hooks.length) {
			tbody.appendChild(el('tr', null, [el('td', { cls: 'muted', text: 'No hooks configured.' })]));
			tbody.firstChild.firstChild.colSpan = 5;
		}
		state.hookNames = hooks.map((h) => h.name);
		for (const n of state.hookNames) ensureHookOption(n);
	}

	async function replayDead(hook) {
		if (!window.confirm('Deliver every dead record of ' + hook + ' again?')) return;
		const note = $('#notice');
		try {
			const res = await api('replay?' + new URLSearchParams({ hook: hook, status: 'dead' }), { method: 'POST' });
			const b = res.body || {};
			const n = (b.replayed || []).length;
			note.className = 'notice';
			note.textContent = 'Replayed (' + res.status + '): ' + n + ' dead record' + (n === 1 ? '' : 's') + ' of ' + hook +
				' queued again' + (b.skipped ? '; ' + b.skipped + ' skipped' : '') + '.';
		} catch (e) {
			note.className = 'notice error';
			note.textContent = 'Dead records of ' + hook + ' not replayed (' + (e.status || 'no answer') + '): ' + e.message;
		}
		note.hidden = false;
		state.hooksAt = 0;
		poll();
	}

	// --- the run log -----------------------------------------------------

	function attemptsSummary(ev) {
		const a = ev.attempts || [];
		if (!a.length) return el('span', { cls: 'muted', text: ev.due_at ? 'due ' + when(ev.due_at) : '0' });
		const last = a[a.length - 1];
		const span = el('span', null, [el('span', { text: a.length + ' · last ' })]);
		span.appendChild(el('span', { cls: codeClass(last.status), text: last.status ? String(last.status) : 'error' }));
		span.appendChild(el('span', { cls: 'muted', text: ' ' + ms(last.latency_ms) }));
		if (last.error) span.title = last.error;
		return span;
	}

	function actionName(ev) {
		if (ev.action_name) return ev.action_name;
		if (typeof ev.action === 'number' && ev.action >= 0) return String(ev.action);
		return '';
	}

	function renderEvents() {
		const tbody = $('#events tbody');
		tbody.replaceChildren();
		for (const ev of state.events) {
			const fresh = !state.first && !state.seen.has(ev.key);
			const tr = el('tr', {
				cls: (ev.key === state.selected ? 'selected ' : '') + (fresh ? 'fresh' : ''),
				data: { key: ev.key, id: ev.id || '', status: ev.status || '', hook: ev.hook || '' },
			}, [
				el('td', { cls: 'mono', text: when(ev.received_at), title: ev.received_at }),
				el('td', { text: ev.hook }),
				el('td', { cls: 'id mono', text: ev.id }),
				el('td', null, [badge(ev.status)]),
				el('td', { cls: codeClass(ev.inbound_status), text: ev.inbound_status || '' }),
				el('td', { text: ev.mode || '' }),
				el('td', { text: actionName(ev) }),
				el('td', null, [attemptsSummary(ev)]),
				el('td', { cls: ev.reason ? 'reason' : '', text: ev.reason || ev.auth || '' }),
			]);
			tr.tabIndex = 0;
			tr.addEventListener('click', () => openDetail(ev.key));
			tr.addEventListener('keydown', (e) => {
				if (e.key === 'Enter') openDetail(ev.key);
			});
			tbody.appendChild(tr);
		}
		for (const ev of state.events) state.seen.add(ev.key);
		const note = $('#events-note');
		const filtered = Object.values(state.filters).some((v) => v);
		note.textContent = state.events.length ? '' : filtered ? 'No records match these filters.' : 'No records yet.';
		note.hidden = state.events.length > 0;
		$('#more').hidden = !state.next;
	}

	// merge puts the newest page in front of what older pages showed.
	function merge(page) {
		if (!state.extended) return page;
		const keys = new Set(page.map((e) => e.key));
		const last = page.length ? page[page.length - 1].received_at : '';
		const older = state.events.filter((e) => !keys.has(e.key) && (!last || new Date(e.received_at) <= new Date(last)));
		return page.concat(older);
	}

	async function loadEvents() {
		const gen = state.gen;
		const res = await api('events?' + query({ limit: PAGE }));
		if (gen !== state.gen) return;
		const page = (res.body && res.body.events) || [];
		// a new record or a new status: the counts are read on the next tick
		const sig = page.map((e) => e.key + ' ' + e.status).join('\n');
		if (state.pageSig !== undefined && sig !== state.pageSig) state.hooksAt = 0;
		state.pageSig = sig;
		state.events = merge(page);
		if (!state.extended) state.next = res.body.next || '';
		renderEvents();
		state.first = false;
	}

	$('#more').addEventListener('click', async () => {
		const gen = state.gen;
		try {
			const res = await api('events?' + query({ limit: PAGE, cursor: state.next }));
			if (gen !== state.gen) return;
			const keys = new Set(state.events.map((e) => e.key));
			state.events = state.events.concat(((res.body && res.body.events) || []).filter((e) => !keys.has(e.key)));
			state.next = res.body.next || '';
			state.extended = true;
			renderEvents();
		} catch (e) {
			showError('Loading older records failed: ' + e.message);
		}
	});

	// --- one record ------------------------------------------------------

	function field(dl, name, value, cls) {
		if (value === undefined || value === null || value === '') return;
		dl.appendChild(el('dt', { text: name }));
		const dd = el('dd', { cls: cls || '' });
		if (value instanceof Node) dd.appendChild(value);
		else dd.textContent = String(value);
		dl.appendChild(dd);
	}

	// body shows a JSON value indented, or text as it is.
	function body(ev, json, text) {
		if (json in ev) return JSON.stringify(ev[json], null, 2);
		if (typeof ev[text] === 'string') return ev[text];
		return null;
	}

	function renderDetail(ev) {
		$('#d-key').textContent = ev.key;
		const dl = $('#d-fields');
		dl.replaceChildren();
		field(dl, 'Event id', ev.id, 'mono');
		field(dl, 'Hook', ev.hook);
		field(dl, 'Mode', ev.mode);
		field(dl, 'Status', badge(ev.status));
		field(dl, 'Answered sender', ev.inbound_status, codeClass(ev.inbound_status));
		field(dl, 'Request', ev.request, 'mono');
		field(dl, 'Remote IP', ev.remote_ip, 'mono');
		field(dl, 'Auth', ev.auth);
		field(dl, 'Rejected because', ev.reason, 'reason');
		field(dl, 'Action', actionName(ev));
		field(dl, 'Received', when(ev.received_at));
		field(dl, 'Updated', when(ev.updated_at));
		field(dl, 'Due', when(ev.due_at));
		if (ev.deferrals) field(dl, 'Deferred', ev.deferrals + ' times (the hook is not in the running config)');
		if (ev.truncated) field(dl, 'Truncated', 'the body was cut at log_body');
		if (ev.replayable === false) field(dl, 'Replayable', 'no' + (ev.not_replayable ? ': ' + ev.not_replayable : ''));
		if (ev.hidden) field(dl, 'Not shown', ev.hidden);

		const at = $('#d-attempts tbody');
		at.replaceChildren();
		(ev.attempts || []).forEach((a, i) => {
			at.appendChild(el('tr', { data: { status: String(a.status || 0) } }, [
				el('td', { text: i + 1 }),
				el('td', { cls: 'mono', text: when(a.at), title: a.at }),
				el('td', { cls: codeClass(a.status), text: a.status || '—' }),
				el('td', { text: ms(a.latency_ms) }),
				el('td', { cls: 'mono', text: a.error || '' }),
			]));
		});
		const tried = (ev.attempts || []).length > 0;
		$('#d-attempts').hidden = !tried;
		$('#d-attempts-note').hidden = tried;

		const ht = $('#d-headers tbody');
		ht.replaceChildren();
		const names = Object.keys(ev.headers || {}).sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
		for (const n of names) {
			for (const v of [].concat(ev.headers[n])) {
				ht.appendChild(el('tr', null, [el('td', { cls: 'mono', text: n }), el('td', { cls: 'mono', text: v })]));
			}
		}
		const hnote = $('#d-headers-note');
		hnote.textContent = ev.hidden ? 'Not shown: ' + ev.hidden : 'Not recorded.';
		hnote.hidden = names.length > 0;
		$('#d-headers').hidden = names.length === 0;

		const payload = body(ev, 'payload', 'payload_text');
		$('#d-payload').textContent = payload !== null ? payload : ev.hidden ? '(not shown: ' + ev.hidden + ')' : '(not recorded)';
		const sent = body(ev, 'sent', 'sent_text');
		$('#d-sent').textContent = sent === null ? '' : sent;
		$('#d-sent-block').hidden = sent === null;
		$('#detail').hidden = false;
	}

	async function loadDetail() {
		const key = state.selected;
		if (!key) return;
		let res;
		try {
			res = await api('event?' + new URLSearchParams({ key: key }));
		} catch (e) {
			if (key !== state.selected) return;
			if (e.status === 404) {
				const note = $('#notice');
				note.className = 'notice';
				note.textContent = 'Record ' + key + ' is gone: removed after retain, or over log_max.';
				note.hidden = false;
				closeDetail();
				return;
			}
			throw e;
		}
		if (key !== state.selected) return;
		const text = JSON.stringify(res.body);
		if (text === state.detailText) return; // unchanged: keep the reader's selection
		state.detailText = text;
		renderDetail(res.body);
	}

	function openDetail(key) {
		if (state.selected !== key) {
			state.selected = key;
			state.detailText = '';
			const r = $('#replay-result');
			r.hidden = true;
			r.textContent = '';
		}
		writeHash();
		for (const tr of $('#events tbody').children) tr.classList.toggle('selected', tr.dataset.key === key);
		loadDetail().then(() => {
			$('#detail').scrollIntoView({ block: 'start' });
		}, (e) => showError('Reading record ' + key + ' failed: ' + e.message));
	}

	function closeDetail() {
		state.selected = '';
		state.detailText = '';
		$('#detail').hidden = true;
		writeHash();
		renderEvents();
	}

	$('#close').addEventListener('click', closeDetail);

	$('#replay').addEventListener('click', async () => {
		const key = state.selected;
		const btn = $('#replay');
		const out = $('#replay-result');
		btn.disabled = true;
		try {
			const res = await api('replay?' + new URLSearchParams({ key: key }), { method: 'POST' });
			const b = res.body || {};
			out.className = 'result';
			out.textContent = 'Replayed (' + res.status + '): queued again' +
				(b.replayed && b.replayed.length ? ' as ' + b.replayed.join(', ') : '') +
				(b.skipped ? '; ' + b.skipped + ' skipped' : '') + '.';
		} catch (e) {
			out.className = 'result bad';
			out.textContent = 'Not replayed (' + (e.status || 'no answer') + '): ' + e.message;
		} finally {
			btn.disabled = false;
			out.hidden = false;
		}
		state.hooksAt = 0;
		poll();
	});

	// --- polling ---------------------------------------------------------

	let running = false;

	async function poll() {
		clearTimeout(state.timer);
		state.timer = 0;
		if (document.hidden) {
			setLive('off', 'paused while the tab is hidden');
			return;
		}
		if (running) {
			// one poll at a time; come back right after this one
			state.timer = setTimeout(poll, 100);
			return;
		}
		running = true;
		try {
			const work = [loadEvents()];
			if (state.selected) work.push(loadDetail());
			if (Date.now() - state.hooksAt >= HOOKS_MS) work.push(loadHooks());
			await Promise.all(work);
			showError('');
			setLive('on', 'live · updated ' + when(new Date().toISOString()).slice(11));
		} catch (e) {
			showError((e.status ? e.status + ': ' : '') + e.message);
			setLive('err', 'retrying every ' + POLL_MS / 1000 + 's');
		} finally {
			running = false;
		}
		if (!document.hidden && !state.timer) state.timer = setTimeout(poll, POLL_MS);
	}

	document.addEventListener('visibilitychange', () => {
		if (document.hidden) {
			clearTimeout(state.timer);
			state.timer = 0;
			setLive('off', 'paused while the tab is hidden');
		} else {
			poll();
		}
	});

	window.addEventListener('hashchange', () => {
		readHash();
		state.gen++;
		state.events = [];
		state.extended = false;
		state.first = true;
		state.detailText = '';
		if (!state.selected) $('#detail').hidden = true;
		poll();
	});

	readHash();
	poll();
})();
