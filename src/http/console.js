// kefu agent console. Plain JavaScript, no build step, no dependencies.
//
// Talks to kefu's agent API with the agent's bearer token (kept in
// sessionStorage: it lasts as long as the browser tab). Every string that
// comes from the API is put into the page as text (textContent, text nodes,
// new Option), never parsed as HTML: buyer messages are untrusted input. The
// page's Content-Security-Policy backs this up (Trusted Types required).
'use strict';

(() => {
  const TOKEN_KEY = 'kefu.console.token';
  const POLL_MS = 2000;

  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    me: null,
    filter: 'active',
    // The open ticket, or the open conversation when it has no active ticket
    // (opened from search); one of them at most.
    ticketId: null,
    conversationId: null,
    detail: null,
    detailKey: '',
    // Which ticket or conversation the transcript shows, to scroll a newly
    // opened one to its end.
    renderedFor: null,
    phrases: [],
    phrasesFor: null,
    // Reply drafts per ticket, so switching tickets (or a refresh of the
    // view) never loses what the agent was writing.
    drafts: new Map(),
    searching: false,
    timer: null,
    // Generation counter: a poll started before sign-out or before another
    // ticket was opened must not paint over the newer state.
    generation: 0,
  };

  // ---------------------------------------------------------------- helpers

  /** Builds an element; children that are not Nodes become text nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key === 'title') node.title = String(value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setText(id, text) {
    $(id).textContent = text == null ? '' : String(text);
  }

  function fmtDuration(ms) {
    const minutes = Math.max(0, Math.floor(ms / 60000));
    if (minutes < 1) return 'under a minute';
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return `${hours} h ${minutes % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  /** The same, shorter, for the narrow queue: minutes stop counting past 10 h. */
  function fmtShort(ms) {
    const hours = Math.floor(Math.max(0, ms) / 3600000);
    if (hours >= 10 && hours < 24) return `${hours} h`;
    return fmtDuration(ms);
  }

  function fmtTime(ms) {
    if (ms == null) return '';
    const date = new Date(ms);
    const sameDay = date.toDateString() === new Date().toDateString();
    return sameDay
      ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      : date.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  }

  /** A short readable form of a JSON value from the API (attachments, matches). */
  function fmtValue(value) {
    if (value == null) return '';
    if (Array.isArray(value)) return value.map(fmtValue).join(', ');
    if (typeof value === 'object') {
      // A keyword match: the phrase that matched, and for which intent.
      if (typeof value.phrase === 'string') {
        return value.intent ? `“${value.phrase}” (${value.intent})` : `“${value.phrase}”`;
      }
      if (typeof value.type === 'string') return value.type;
      if (typeof value.kind === 'string') return value.kind;
      return JSON.stringify(value);
    }
    return String(value);
  }

  // ------------------------------------------------------------ status line

  let statusTimer = null;
  // Errors from the background poll are cleared by the next good poll;
  // errors from the agent's own actions stay until the next action.
  let statusFromPoll = false;

  function showStatus(message, kind = 'error', fromPoll = false) {
    const box = $('status');
    clearTimeout(statusTimer);
    box.textContent = message;
    box.className = kind;
    box.hidden = false;
    statusFromPoll = fromPoll;
    if (kind === 'info') statusTimer = setTimeout(clearStatus, 4000);
  }

  function clearStatus() {
    $('status').hidden = true;
    $('status').textContent = '';
    statusFromPoll = false;
  }

  // -------------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function errorOf(response) {
    let code = `http_${response.status}`;
    let message = `kefu answered ${response.status} ${response.statusText}`.trim();
    try {
      const body = await response.json();
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      }
    } catch (_) {
      // Not JSON: keep the status line.
    }
    return new ApiError(response.status, code, message);
  }

  /** One call to the agent API; resolves to the Response of a 2xx answer. */
  async function request(method, path, body) {
    const headers = { Authorization: `Bearer ${state.token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new ApiError(0, 'network', `kefu did not answer (${e.message}); is it running? The console keeps trying.`);
    }
    if (response.ok) return response;
    const error = await errorOf(response);
    if (response.status === 401) signOut(error.message);
    throw error;
  }

  async function api(method, path, body) {
    const response = await request(method, path, body);
    return response.status === 204 ? null : response.json();
  }

  // ------------------------------------------------------------ sign in/out

  function showLogin(message) {
    $('app').hidden = true;
    $('login').hidden = false;
    const error = $('login-error');
    error.textContent = message || '';
    error.hidden = !message;
    $('token').focus();
  }

  async function signIn(token) {
    state.token = token;
    $('login-button').disabled = true;
    try {
      state.me = await api('GET', '/v1/agent/me');
    } catch (e) {
      signOut(e.message);
      return;
    } finally {
      $('login-button').disabled = false;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    setText('who', `${state.me.name || state.me.id} (${state.me.role})`);
    $('assign-box').hidden = state.me.role !== 'supervisor';
    $('login').hidden = true;
    $('app').hidden = false;
    clearStatus();
    await openFromHash().catch(reportError);
    poll();
  }

  function signOut(message) {
    state.generation += 1;
    clearTimeout(state.timer);
    state.timer = null;
    state.token = null;
    state.me = null;
    sessionStorage.removeItem(TOKEN_KEY);
    // Nothing of this agent's session stays in the page for the next one.
    closeView();
    state.drafts.clear();
    state.phrases = [];
    state.phrasesFor = null;
    state.renderedFor = null;
    $('reply-text').value = '';
    $('note-text').value = '';
    $('queue').replaceChildren();
    $('results').replaceChildren();
    state.searching = false;
    $('results').hidden = true;
    $('back-to-queue').hidden = true;
    $('queue').hidden = false;
    $('filter').hidden = false;
    clearStatus();
    showLogin(message);
  }

  // ------------------------------------------------------------------ queue

  function queuePath() {
    const filter = state.filter;
    if (filter === 'mine') return '/v1/tickets?state=active&agent=me&limit=200';
    return `/v1/tickets?state=${encodeURIComponent(filter)}&limit=200`;
  }

  function ticketTitle(ticket) {
    return ticket.buyer_name || `Conversation ${ticket.conversation_id}`;
  }

  function queueItem(ticket, now) {
    const waiting = ticket.state === 'open'
      ? `waiting ${fmtShort(now - ticket.opened_at)}`
      : ticket.state === 'claimed'
        ? `held by ${ticket.agent_id === state.me.id ? 'you' : ticket.agent_id}`
        : `${ticket.resolution === 'handed_back' ? 'handed back' : 'resolved'} ${fmtTime(ticket.resolved_at)}`;
    let due = null;
    if (ticket.reply_due_at != null && ticket.state !== 'resolved') {
      const left = ticket.reply_due_at - now;
      due = el('span', { class: left < 10 * 60000 ? 'due' : '' },
        left < 0 ? `overdue ${fmtShort(-left)}` : `due in ${fmtShort(left)}`);
      due.title = 'the platform\u2019s reply deadline';
    }
    const current = String(ticket.id) === String(state.ticketId);
    return el('li', { class: current ? 'current' : '' },
      el('button', {
        type: 'button',
        dataset: { ticket: ticket.id },
        'aria-current': current ? 'true' : null,
        onclick: () => { location.hash = `ticket=${ticket.id}`; },
      },
      el('div', { class: 'row' },
        el('span', { class: 'grow name' }, ticketTitle(ticket)),
        el('span', { class: 'small muted' }, waiting)),
      el('div', { class: 'row small nowrap' },
        el('span', { class: `badge p${ticket.priority}` }, ticket.priority_label),
        el('span', { class: 'tag' }, ticket.reason),
        ticket.lang ? el('span', { class: 'tag', title: 'language' }, ticket.lang) : null,
        el('span', { class: 'muted' }, ticket.channel),
        ticket.reopened ? el('span', { class: 'muted', title: 'reopened' }, `↺${ticket.reopened}`) : null,
        due ? el('span', { class: 'grow' }) : null,
        due),
      el('div', { class: 'snippet' }, ticket.last_text || '')));
  }

  async function refreshQueue(generation) {
    const { tickets } = await api('GET', queuePath());
    if (generation !== state.generation) return;
    const list = $('queue');
    // Keep the keyboard focus on the same ticket across the repaint.
    const focused = document.activeElement && list.contains(document.activeElement)
      ? document.activeElement.dataset.ticket : null;
    const scroll = list.scrollTop;
    const now = Date.now();
    if (tickets.length === 0) {
      list.replaceChildren(el('li', { class: 'empty' },
        state.filter === 'active' ? 'Nobody is waiting. New escalations appear here within seconds.' : 'No tickets.'));
    } else {
      list.replaceChildren(...tickets.map((t) => queueItem(t, now)));
    }
    list.scrollTop = scroll;
    if (focused) {
      const again = list.querySelector(`button[data-ticket="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
    const open = tickets.filter((t) => t.state === 'open').length;
    setText('side-title', state.filter === 'active' ? `Queue (${open} waiting)` : 'Tickets');
    document.title = open > 0 && state.filter === 'active' ? `(${open}) kefu console` : 'kefu console';
  }

  // ----------------------------------------------------------------- search

  async function search(query) {
    const path = `/v1/conversations?q=${encodeURIComponent(query)}&limit=100`;
    const { conversations } = await api('GET', path);
    state.searching = true;
    $('queue').hidden = true;
    $('filter').hidden = true;
    $('results').hidden = false;
    $('back-to-queue').hidden = false;
    setText('side-title', `${conversations.length} found`);
    const list = $('results');
    if (conversations.length === 0) {
      list.replaceChildren(el('li', { class: 'empty' }, 'No conversation matches.'));
      return;
    }
    list.replaceChildren(...conversations.map((c) => el('li', {},
      el('button', {
        type: 'button',
        dataset: { conversation: c.id },
        onclick: () => { location.hash = `conversation=${c.id}`; },
      },
      el('div', { class: 'row' },
        el('strong', { class: 'grow snippet' }, c.buyer_name || c.external_id),
        el('span', { class: 'small muted' }, fmtTime(c.updated_at))),
      el('div', { class: 'row small muted' },
        el('span', {}, c.channel),
        el('span', {}, c.external_id),
        c.lang ? el('span', { class: 'tag' }, c.lang) : null,
        el('span', { class: 'tag' }, c.state === 'human' ? 'with a person' : 'bot'))))));
  }

  function backToQueue() {
    state.searching = false;
    $('search').value = '';
    $('results').hidden = true;
    $('back-to-queue').hidden = true;
    $('queue').hidden = false;
    $('filter').hidden = false;
    refreshQueue(state.generation).catch(reportError);
  }

  // ----------------------------------------------------------- conversation

  function saveDraft() {
    if (state.ticketId != null) state.drafts.set(String(state.ticketId), $('reply-text').value);
  }

  async function openFromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const ticket = params.get('ticket');
    const conversation = params.get('conversation');
    if (ticket && /^\d+$/.test(ticket)) return openTicket(ticket);
    if (conversation && /^\d+$/.test(conversation)) return openConversation(conversation);
    return closeView();
  }

  function closeView() {
    saveDraft();
    state.ticketId = null;
    state.conversationId = null;
    state.detail = null;
    state.detailKey = '';
    $('conv').hidden = true;
    $('placeholder').hidden = false;
  }

  async function openTicket(id) {
    if (String(state.ticketId) !== String(id)) {
      saveDraft();
      state.ticketId = String(id);
      state.conversationId = null;
      state.detailKey = '';
      $('reply-text').value = state.drafts.get(String(id)) || '';
      state.generation += 1;
    }
    markCurrent();
    await refreshDetail(state.generation);
  }

  async function openConversation(id) {
    saveDraft();
    const generation = ++state.generation;
    const data = await api('GET', `/v1/conversations/${encodeURIComponent(id)}`);
    if (generation !== state.generation) return;
    const active = (data.tickets || []).find((t) => t.state !== 'resolved');
    if (active) {
      location.replace(`#ticket=${active.id}`);
      return;
    }
    state.ticketId = null;
    state.conversationId = String(id);
    const tickets = data.tickets || [];
    render({
      ticket: null,
      conversation: data.conversation,
      transcript: data.transcript || [],
      escalations: tickets.map((t) => ({ reason: t.reason, detail: t.detail, created_at: t.opened_at })),
      notes: [],
    });
  }

  function markCurrent() {
    for (const item of $('queue').children) {
      const button = item.querySelector('button[data-ticket]');
      item.className = button && button.dataset.ticket === String(state.ticketId) ? 'current' : '';
    }
  }

  async function refreshDetail(generation) {
    if (state.ticketId == null) return;
    const id = state.ticketId;
    const detail = await api('GET', `/v1/tickets/${encodeURIComponent(id)}`);
    if (generation !== state.generation || String(state.ticketId) !== String(id)) return;
    const key = JSON.stringify(detail);
    if (key !== state.detailKey) {
      state.detailKey = key;
      render(detail);
    } else {
      // Only the waiting times moved.
      renderMeta(detail);
    }
    if (state.phrasesFor !== id) {
      state.phrasesFor = id;
      loadPhrases(id).catch((e) => {
        state.phrasesFor = null;
        reportError(e);
      });
    }
  }

  async function loadPhrases(id) {
    const { phrases, lang } = await api('GET', `/v1/tickets/${encodeURIComponent(id)}/phrases`);
    if (String(state.ticketId) !== String(id)) return;
    state.phrases = phrases || [];
    const select = $('phrase');
    const first = new Option(`Insert a quick phrase (${lang || 'buyer\u2019s language'})…`, '');
    select.replaceChildren(first, ...state.phrases.map((p, i) => {
      const short = p.text.length > 90 ? `${p.text.slice(0, 89)}…` : p.text;
      const option = new Option(`${p.intent}: ${short}`, String(i));
      option.title = p.text;
      return option;
    }));
    select.disabled = state.phrases.length === 0;
  }

  function insertPhrase() {
    const select = $('phrase');
    const phrase = state.phrases[Number(select.value)];
    select.value = '';
    if (!phrase || select.selectedIndex < 0) return;
    const box = $('reply-text');
    const start = box.selectionStart ?? box.value.length;
    const end = box.selectionEnd ?? box.value.length;
    box.setRangeText(phrase.text, start, end, 'end');
    box.focus();
    saveDraft();
  }

  function lineAuthor(line, buyerName) {
    if (line.author === 'buyer') return buyerName || 'Buyer';
    if (line.author === 'agent') return line.agent_id ? `Agent ${line.agent_id}` : 'Agent';
    return 'Bot';
  }

  function transcriptLine(line, buyerName, botDecisions) {
    const meta = el('div', { class: 'meta' },
      el('span', { class: 'author' }, lineAuthor(line, buyerName)),
      el('time', { datetime: new Date(line.created_at).toISOString(), title: new Date(line.created_at).toLocaleString() }, fmtTime(line.created_at)),
      line.lang ? el('span', { class: 'tag', title: 'detected language' }, line.lang) : null,
      ...(line.intents || []).map((intent) => el('span', { class: 'tag', title: 'intent' }, intent)));
    let decision = null;
    // A buyer line and the bot's answer to it carry the same decision:
    // show it once, on the answer.
    const shown = line.decision && (line.author !== 'buyer' || !botDecisions.has(JSON.stringify(line.decision)));
    if (shown) {
      const d = line.decision;
      const parts = [d.action, d.reason].filter(Boolean).join(': ');
      const confidence = typeof d.confidence === 'number' ? ` · confidence ${d.confidence.toFixed(2)}` : '';
      const matched = d.matched && (!Array.isArray(d.matched) || d.matched.length) ? ` · matched ${fmtValue(d.matched)}` : '';
      decision = el('div', { class: 'decision' }, `kefu decided to ${parts}${confidence}${matched}`);
    }
    const attachments = (line.attachments || []).length
      ? el('div', { class: 'decision' }, `attachments: ${fmtValue(line.attachments)}`) : null;
    return el('li', { class: line.author, dataset: { message: line.id } },
      meta,
      el('div', { class: 'text' }, line.text || ''),
      attachments,
      decision);
  }

  function renderMeta(detail) {
    const { ticket, conversation } = detail;
    const buyer = conversation.buyer || {};
    const now = Date.now();
    const parts = [
      conversation.channel,
      `conversation ${conversation.external_id}`,
      conversation.lang || ticket?.lang ? `language ${conversation.lang || ticket.lang}` : 'language unknown',
      buyer.locale ? `locale ${buyer.locale}` : null,
      buyer.country ? `country ${buyer.country}` : null,
    ];
    if (ticket) {
      parts.push(`ticket #${ticket.id}`);
      if (ticket.state === 'open') parts.push(`waiting ${fmtDuration(now - ticket.opened_at)}`);
      if (ticket.reopened) parts.push(`reopened ×${ticket.reopened}`);
      if (ticket.reply_due_at != null && ticket.state !== 'resolved') {
        const left = ticket.reply_due_at - now;
        parts.push(left < 0 ? `reply overdue by ${fmtDuration(-left)}` : `reply due in ${fmtDuration(left)}`);
      }
    }
    $('conv-meta').replaceChildren(...parts.filter(Boolean).map((p) => el('span', {}, p)));
  }

  function render(detail) {
    state.detail = detail;
    const { ticket, conversation } = detail;
    const buyer = conversation.buyer || {};
    const mine = ticket && ticket.state === 'claimed' && ticket.agent_id === state.me.id;
    const supervisor = state.me.role === 'supervisor';

    $('placeholder').hidden = true;
    $('conv').hidden = false;
    setText('conv-title', buyer.name || ticket?.buyer_name || conversation.external_id);
    let stateText;
    if (!ticket) stateText = conversation.state === 'human' ? 'with a person' : 'bot answers';
    else if (ticket.state === 'claimed') stateText = mine ? 'claimed by you' : `claimed by ${ticket.agent_id}`;
    else if (ticket.state === 'open') stateText = `open · ${ticket.priority_label}`;
    else stateText = ticket.resolution === 'handed_back' ? 'handed back to the bot' : 'resolved';
    setText('conv-state', stateText);
    renderMeta(detail);

    // Why it came to a person: the ticket's own reason first, then every
    // escalation recorded for it.
    const escalations = detail.escalations && detail.escalations.length
      ? detail.escalations
      : ticket ? [{ reason: ticket.reason, detail: ticket.detail, created_at: ticket.opened_at }] : [];
    $('why').hidden = escalations.length === 0;
    $('escalations').replaceChildren(...escalations.map((e) => el('li', {},
      el('span', { class: 'reason' }, e.reason), e.detail ? ` — ${e.detail}` : '',
      e.created_at ? el('span', { class: 'small muted' }, ` (${fmtTime(e.created_at)})`) : null)));

    // New lines arrive at the end: follow them if the agent was already
    // reading there (or just opened the ticket), otherwise keep the place.
    const list = $('transcript');
    const fresh = state.renderedFor !== (ticket ? `t${ticket.id}` : `c${conversation.id}`);
    state.renderedFor = ticket ? `t${ticket.id}` : `c${conversation.id}`;
    const atBottom = fresh || list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const buyerName = buyer.name || ticket?.buyer_name;
    const lines = detail.transcript || [];
    const botDecisions = new Set(lines.filter((l) => l.author === 'bot' && l.decision).map((l) => JSON.stringify(l.decision)));
    list.replaceChildren(...lines.map((line) => transcriptLine(line, buyerName, botDecisions)));
    if (atBottom) list.scrollTop = list.scrollHeight;

    $('notes').replaceChildren(...(detail.notes || []).map((n) => el('li', {},
      el('div', { class: 'small muted' }, `${n.agent_id} · ${fmtTime(n.created_at)}`),
      n.text)));

    const live = ticket && ticket.state !== 'resolved';
    $('claim').hidden = !ticket;
    $('resolve').hidden = !ticket;
    $('handback').hidden = !ticket;
    $('claim').disabled = !live || ticket.state === 'claimed';
    $('claim').textContent = mine ? 'Claimed by you' : 'Claim';
    $('claim').title = ticket && ticket.state === 'claimed' && !mine ? `${ticket.agent_id} holds this ticket` : '';
    $('resolve').disabled = !live || !(mine || supervisor);
    $('handback').disabled = !live || !(mine || supervisor);
    $('assign-box').hidden = !supervisor || !live;
    $('reply').hidden = !ticket;
    $('send').disabled = !mine;
    $('send').title = mine ? '' : 'Claim the ticket to reply';
    const lang = conversation.lang || ticket?.lang;
    $('reply-text').placeholder = mine
      ? `Write to the buyer${lang ? ` (their language: ${lang})` : ''}, or insert a quick phrase and edit it.`
      : 'You can draft here; claim the ticket to send.';
    setText('reply-hint', !ticket || mine ? '' : ticket.state === 'resolved'
      ? 'This ticket is resolved.'
      : ticket.state === 'claimed' ? `${ticket.agent_id} holds this ticket.` : 'Claim the ticket to reply.');
    $('note-form').hidden = !ticket;
  }

  // ---------------------------------------------------------------- actions

  function reportError(error) {
    if (error instanceof ApiError && error.status === 401) return; // already back at the login
    showStatus(error.message || String(error));
  }

  /** Runs an action on the open ticket, then repaints the ticket and queue. */
  async function act(button, work, done) {
    if (state.ticketId == null) return;
    button.disabled = true;
    try {
      await work(state.ticketId);
      clearStatus();
      if (done) showStatus(done, 'info');
    } catch (e) {
      reportError(e);
    } finally {
      button.disabled = false;
      state.detailKey = '';
      const generation = state.generation;
      await Promise.all([refreshDetail(generation), refreshQueue(generation)]).catch(reportError);
    }
  }

  const ticketPath = (id, action) => `/v1/tickets/${encodeURIComponent(id)}/${action}`;

  function claim() {
    return act($('claim'), (id) => api('POST', ticketPath(id, 'claim')), 'Claimed: the buyer\u2019s messages now come to you, not the bot.');
  }

  function resolve() {
    return act($('resolve'), (id) => api('POST', ticketPath(id, 'resolve')), 'Resolved.');
  }

  function handBack() {
    return act($('handback'), (id) => api('POST', ticketPath(id, 'handback')), 'Handed back: the bot answers this buyer again.');
  }

  function assign() {
    const agent = $('assign-agent').value.trim();
    if (!agent) {
      showStatus('Type the id of the agent to assign the ticket to.');
      return undefined;
    }
    return act($('assign'), (id) => api('POST', ticketPath(id, 'assign'), { agent }), `Assigned to ${agent}.`);
  }

  function sendReply() {
    const box = $('reply-text');
    const text = box.value.trim();
    if ($('send').disabled) {
      showStatus('Claim the ticket before replying.');
      return undefined;
    }
    if (!text) {
      showStatus('The reply is empty.');
      return undefined;
    }
    const id = state.ticketId;
    return act($('send'), async () => {
      await api('POST', ticketPath(id, 'reply'), { text });
      // Clear only what was sent: the agent may have kept typing.
      if (String(state.ticketId) === String(id) && box.value.trim() === text) box.value = '';
      state.drafts.delete(String(id));
    }, 'Reply sent; it is on its way to the buyer.');
  }

  function addNote(event) {
    event.preventDefault();
    const box = $('note-text');
    const text = box.value.trim();
    if (!text) return undefined;
    return act($('note-form').querySelector('button'), async (id) => {
      await api('POST', ticketPath(id, 'notes'), { text });
      box.value = '';
    }, 'Note added.');
  }

  async function exportConversation(format) {
    const conversation = state.detail && state.detail.conversation;
    if (!conversation) return;
    try {
      const response = await request('GET', `/v1/export?format=${format}&conversation=${encodeURIComponent(conversation.id)}`);
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = el('a', { href: url, download: `kefu-conversation-${conversation.id}.${format === 'csv' ? 'csv' : 'jsonl'}` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 30000);
    } catch (e) {
      reportError(e);
    }
  }

  // ------------------------------------------------------------------- poll

  async function poll() {
    clearTimeout(state.timer);
    const generation = state.generation;
    try {
      const work = [refreshDetail(generation)];
      if (!state.searching) work.push(refreshQueue(generation));
      await Promise.all(work);
      if (statusFromPoll) clearStatus();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) showStatus(e.message, 'error', true);
    }
    if (state.token) state.timer = setTimeout(poll, POLL_MS);
  }

  // ------------------------------------------------------------------ wiring

  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    if (token) signIn(token);
  });
  $('logout').addEventListener('click', () => signOut('Signed out.'));
  $('status').addEventListener('click', clearStatus);
  $('filter').addEventListener('change', () => {
    state.filter = $('filter').value;
    refreshQueue(state.generation).catch(reportError);
  });
  $('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const query = $('search').value.trim();
    if (query) search(query).catch(reportError);
    else backToQueue();
  });
  $('back-to-queue').addEventListener('click', backToQueue);
  $('claim').addEventListener('click', claim);
  $('resolve').addEventListener('click', resolve);
  $('handback').addEventListener('click', handBack);
  $('assign').addEventListener('click', assign);
  $('send').addEventListener('click', sendReply);
  $('phrase').addEventListener('change', insertPhrase);
  $('note-form').addEventListener('submit', addNote);
  $('export-csv').addEventListener('click', () => exportConversation('csv'));
  $('export-jsonl').addEventListener('click', () => exportConversation('jsonl'));
  $('reply-text').addEventListener('input', saveDraft);
  $('reply-text').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      sendReply();
    }
  });
  $('note-text').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $('note-form').requestSubmit();
    }
  });
  window.addEventListener('hashchange', () => {
    if (state.token) openFromHash().catch(reportError);
  });

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
  else showLogin('');
})();
