/*
 * app.js: the Parley chat page. Plain ES5 on top of parley.js; no build step.
 * The DOM skeleton is in index.html; this file fills it from the client's state.
 */
(function (window, document) {
  'use strict';

  var Parley = window.Parley;
  var client = new Parley.Client({ base: '' });

  /** How long a "typing" notice stays up without a new one: the sender repeats it every ~3 s. */
  var TYPING_SHOW_MS = 5000;
  /** Page size of history requests; 50 fills a tall screen twice. */
  var HISTORY_PAGE = 50;
  /** A thumbnail may still be in the making when its message arrives: retry this often/long. */
  var THUMB_RETRY_MS = 1000;
  var THUMB_RETRIES = 20;
  /** Show "Connecting…" only when it lasts: a normal reconnect takes well under this. */
  var CONN_NOTICE_DELAY_MS = 1500;
  /** Scroll distance from the top that loads earlier history. */
  var HISTORY_EDGE_PX = 120;

  var STATUS_RANK = { failed: -1, pending: 0, sent: 1, delivered: 2, read: 3 };

  // ---- DOM helpers (IE9-safe) ---------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function on(el, type, fn) {
    if (el.addEventListener) { el.addEventListener(type, fn, false); } else if (el.attachEvent) { el.attachEvent('on' + type, function () { fn.call(el, window.event); }); }
  }

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) { e.className = className; }
    if (text !== undefined && text !== null) { e.appendChild(document.createTextNode(String(text))); }
    return e;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  function setText(node, text) { clear(node); node.appendChild(document.createTextNode(text)); }

  function show(node, yes) { if (yes) { node.removeAttribute('hidden'); } else { node.setAttribute('hidden', ''); } }

  function hasClass(node, c) { return (' ' + node.className + ' ').indexOf(' ' + c + ' ') !== -1; }

  function toggleClass(node, c, yes) {
    var has = hasClass(node, c);
    if (yes && !has) { node.className = (node.className ? node.className + ' ' : '') + c; }
    if (!yes && has) { node.className = (' ' + node.className + ' ').replace(' ' + c + ' ', ' ').replace(/^\s+|\s+$/g, ''); }
  }

  function prevent(e) { if (e.preventDefault) { e.preventDefault(); } else { e.returnValue = false; } }

  var SVG_NS = 'http://www.w3.org/2000/svg';

  /** An icon from the sprite in index.html (nothing in browsers without inline SVG). */
  function icon(name, className) {
    if (!document.createElementNS) { return el('span'); }
    var svg = document.createElementNS(SVG_NS, 'svg'), use = document.createElementNS(SVG_NS, 'use');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    if (className) { svg.setAttribute('class', className); }
    use.setAttribute('href', '#' + name);
    use.setAttributeNS('http://www.w3.org/1999/xlink', 'xlink:href', '#' + name);
    svg.appendChild(use);
    return svg;
  }

  function hueOf(name) {
    var h = 0, i;
    for (i = 0; i < name.length; i++) { h = (h * 31 + name.charCodeAt(i)) % 360; }
    return h;
  }

  function paintAvatar(node, name, group) {
    clear(node);
    if (group) { node.appendChild(icon('i-group')); } else { node.appendChild(document.createTextNode((name || '?').charAt(0).toUpperCase())); }
    node.style.backgroundColor = 'hsl(' + hueOf(name || '') + ',55%,' + (group ? '42%' : '48%') + ')';
  }

  // ---- Time formatting ----------------------------------------------------------------------

  function pad(n) { return n < 10 ? '0' + n : String(n); }

  function parseTime(iso) {
    if (!iso) { return null; }
    var d = new Date(iso);
    return isNaN(d.getTime()) ? null : d;
  }

  function clock(d) { return pad(d.getHours()) + ':' + pad(d.getMinutes()); }

  function dayKey(d) { return d.getFullYear() + '-' + d.getMonth() + '-' + d.getDate(); }

  var DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
  var MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

  function dayLabel(d) {
    var today = new Date(), y = new Date(today.getTime() - 86400000);
    if (dayKey(d) === dayKey(today)) { return 'Today'; }
    if (dayKey(d) === dayKey(y)) { return 'Yesterday'; }
    if (today.getTime() - d.getTime() < 6 * 86400000) { return DAYS[d.getDay()]; }
    return DAYS[d.getDay()] + ', ' + d.getDate() + ' ' + MONTHS[d.getMonth()] + (d.getFullYear() !== today.getFullYear() ? ' ' + d.getFullYear() : '');
  }

  function shortTime(d) {
    var today = new Date();
    if (dayKey(d) === dayKey(today)) { return clock(d); }
    if (today.getTime() - d.getTime() < 6 * 86400000) { return DAYS[d.getDay()].slice(0, 3); }
    return d.getDate() + ' ' + MONTHS[d.getMonth()].slice(0, 3);
  }

  function lastSeenText(contact) {
    if (contact.online) { return 'online'; }
    var d = parseTime(contact.last_seen);
    if (!d) { return 'offline'; }
    var mins = Math.floor((new Date().getTime() - d.getTime()) / 60000);
    if (mins < 1) { return 'last seen just now'; }
    if (mins < 60) { return 'last seen ' + mins + ' min ago'; }
    if (dayKey(d) === dayKey(new Date())) { return 'last seen today at ' + clock(d); }
    return 'last seen ' + dayLabel(d).toLowerCase() + ' at ' + clock(d);
  }

  function sizeText(n) {
    if (n < 1024) { return n + ' B'; }
    if (n < 1024 * 1024) { return (n / 1024).toFixed(n < 10240 ? 1 : 0) + ' KB'; }
    if (n < 1024 * 1024 * 1024) { return (n / 1048576).toFixed(1) + ' MB'; }
    return (n / 1073741824).toFixed(1) + ' GB';
  }

  // ---- State --------------------------------------------------------------------------------

  var S = {
    me: null,
    convs: {},        // id → conversation
    contacts: {},     // name → contact
    threads: {},      // conversation id → thread (messages)
    current: null,    // open conversation id
    typing: {},       // conversation id → {user: expiry time}
    localSeq: 0       // ordering of pending messages
  };

  function thread(id) {
    var t = S.threads[id];
    if (!t) {
      t = S.threads[id] = { byId: {}, byClient: {}, list: [], loaded: false, loading: false, complete: false, receipts: {}, readSent: 0 };
    }
    return t;
  }

  function visible() { return !(document.hidden || document.visibilityState === 'hidden'); }

  function convTitle(c) {
    if (!c) { return ''; }
    if (c.kind === 'group') { return c.title || 'Group'; }
    var others = otherMembers(c);
    return others[0] || c.title || 'Chat';
  }

  function otherMembers(c) {
    var out = [], i, m = c.members || [];
    for (i = 0; i < m.length; i++) { if (m[i] !== S.me) { out.push(m[i]); } }
    return out;
  }

  function compareMessages(a, b) {
    var as = a.seq === undefined || a.seq === null, bs = b.seq === undefined || b.seq === null;
    if (as !== bs) { return as ? 1 : -1; }
    if (!as) { return a.seq - b.seq; }
    return a._local - b._local;
  }

  // ---- Receipts and ticks -------------------------------------------------------------------

  /** The status my message has given what the receipts say (never lower than it was). */
  function deriveStatus(m) {
    var c = S.convs[m.conversation], t = thread(m.conversation), others, i, r, all = true, allDelivered = true, readBy = [], deliveredTo = [];
    if (m.from !== S.me || !m.seq) { return; }
    others = c ? otherMembers(c) : [];
    for (i = 0; i < others.length; i++) {
      r = t.receipts[others[i]] || {};
      if ((r.read || 0) >= m.seq) { readBy.push(others[i]); } else { all = false; }
      if ((r.delivered || 0) >= m.seq || (r.read || 0) >= m.seq) { deliveredTo.push(others[i]); } else { allDelivered = false; }
    }
    m.read_by = union(m.read_by, readBy);
    m.delivered_to = union(m.delivered_to, deliveredTo);
    var status = 'sent';
    if (others.length && all) { status = 'read'; } else if (others.length && allDelivered) { status = 'delivered'; }
    if ((STATUS_RANK[status] || 0) > (STATUS_RANK[m.status] || 0)) { m.status = status; }
  }

  function union(a, b) {
    var out = (a || []).slice(), i, j, found;
    for (i = 0; i < b.length; i++) {
      found = false;
      for (j = 0; j < out.length; j++) { if (out[j] === b[i]) { found = true; break; } }
      if (!found) { out.push(b[i]); }
    }
    return out;
  }

  function onReceipt(ev) {
    var t = thread(ev.conversation), r, i, m, changed = false;
    if (ev.user === S.me) {
      // My own read position from another device: the unread count follows it.
      if (ev.status === 'read' && S.convs[ev.conversation]) { S.convs[ev.conversation].unread = 0; renderConvs(); }
      return;
    }
    r = t.receipts[ev.user] || (t.receipts[ev.user] = {});
    if (ev.status === 'read') { r.read = Math.max(r.read || 0, ev.up_to); }
    r.delivered = Math.max(r.delivered || 0, ev.up_to);
    for (i = 0; i < t.list.length; i++) {
      m = t.list[i];
      if (m.from === S.me && m.seq && m.seq <= ev.up_to) {
        var before = m.status + '/' + (m.read_by || []).length;
        deriveStatus(m);
        if (before !== m.status + '/' + (m.read_by || []).length) { changed = true; if (m._el) { updateMeta(m); } }
      }
    }
    if (changed && S.convs[ev.conversation]) { renderConvs(); }
  }

  // ---- Messages -----------------------------------------------------------------------------

  /** Put a message into its thread, de-duplicated by id and (for my pending ones) client_id.
   *  Returns the stored message, or null when it was already there. */
  function addMessage(m) {
    var t = thread(m.conversation), existing;
    if (m.id && t.byId[m.id]) {
      existing = t.byId[m.id];
      if ((STATUS_RANK[m.status] || 0) > (STATUS_RANK[existing.status] || 0)) {
        existing.status = m.status;
        if (existing._el) { updateMeta(existing); }
      }
      return null;
    }
    if (m.client_id && m.from === S.me && t.byClient[m.client_id]) {
      existing = t.byClient[m.client_id];
      if (existing.id && existing.id !== m.id) { return null; }
      confirmPending(existing, m);
      return existing;
    }
    m._local = ++S.localSeq;
    if (m.id) { t.byId[m.id] = m; }
    if (m.client_id && m.from === S.me) { t.byClient[m.client_id] = m; }
    if (m.from === S.me && m.status === undefined) { m.status = 'sent'; }
    deriveStatus(m);
    t.list.push(m);
    t.list.sort(compareMessages);
    return m;
  }

  /** The server has the pending message: it takes the real id, seq and time. */
  function confirmPending(p, m) {
    var t = thread(p.conversation), k;
    for (k in m) { if (Object.prototype.hasOwnProperty.call(m, k) && k !== 'status') { p[k] = m[k]; } }
    if ((STATUS_RANK[m.status] || 1) > (STATUS_RANK[p.status] || 0)) { p.status = m.status || 'sent'; }
    if (p.status === 'pending') { p.status = 'sent'; }
    t.byId[p.id] = p;
    deriveStatus(p);
    t.list.sort(compareMessages);
  }

  function touchConversation(m) {
    var c = S.convs[m.conversation];
    if (!c) { return; }
    var last = c.last_message;
    if (!last || !last.seq || !m.seq || m.seq >= last.seq) { c.last_message = m; }
  }

  function onMessage(m) {
    var stored = addMessage(m), c = S.convs[m.conversation];
    if (!stored) { return; }
    if (!c) { refreshSoon(); }
    touchConversation(stored);
    clearTyping(m.conversation, m.from);
    if (m.from !== S.me && c) {
      if (S.current === m.conversation && visible()) { markRead(m.conversation); } else { c.unread = (c.unread || 0) + 1; }
    }
    renderConvs();
    if (S.current === m.conversation) { renderThread(); }
  }

  function markRead(id) {
    var t = thread(id), i, top = 0, c = S.convs[id];
    for (i = t.list.length - 1; i >= 0; i--) { if (t.list[i].seq) { top = t.list[i].seq; break; } }
    if (c && c.unread) { c.unread = 0; renderConvs(); }
    if (top > t.readSent) {
      t.readSent = top;
      client.markRead(id, top);
    }
  }

  function loadHistory(id, first) {
    var t = thread(id), before = null, i;
    if (t.loading || t.complete) { return; }
    if (!first) {
      for (i = 0; i < t.list.length; i++) { if (t.list[i].seq) { before = t.list[i].seq; break; } }
    }
    t.loading = true;
    if (!first) { setText($('history-status'), 'Loading earlier messages…'); }
    client.messages(id, { before: before || undefined, limit: HISTORY_PAGE }, function (err, messages) {
      var j;
      t.loading = false;
      if (S.current === id) { setText($('history-status'), ''); }
      if (err) {
        if (S.current === id) { setText($('history-status'), 'Could not load messages: ' + err.message); }
        return;
      }
      for (j = 0; j < messages.length; j++) { addMessage(messages[j]); }
      t.loaded = true;
      if (messages.length < HISTORY_PAGE) { t.complete = true; }
      if (S.current === id) {
        renderThread(first ? 'bottom' : 'keep');
        if (visible()) { markRead(id); }
        if (t.complete && t.list.length) { setText($('history-status'), 'Start of the conversation'); }
      }
    });
  }

  // ---- Rendering: message list --------------------------------------------------------------

  function renderThread(scrollHint) {
    var id = S.current, ol = $('messages'), scroller = $('scroller'), t, i, m, d, lastDay = null, sep;
    if (!id) { return; }
    t = thread(id);
    var fromBottom = scroller.scrollHeight - scroller.scrollTop;
    var atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    clear(ol);
    for (i = 0; i < t.list.length; i++) {
      m = t.list[i];
      d = parseTime(m.sent_at) || new Date();
      if (dayKey(d) !== lastDay) {
        lastDay = dayKey(d);
        sep = el('li', 'day');
        sep.setAttribute('role', 'separator');
        sep.appendChild(el('span', null, dayLabel(d)));
        ol.appendChild(sep);
      }
      if (!m._el) { buildMessage(m); }
      ol.appendChild(m._el);
    }
    if (scrollHint === 'bottom' || (scrollHint !== 'keep' && atBottom)) {
      scroller.scrollTop = scroller.scrollHeight;
    } else if (scrollHint === 'keep') {
      scroller.scrollTop = scroller.scrollHeight - fromBottom;
    }
    renderTyping();
  }

  function buildMessage(m) {
    var c = S.convs[m.conversation], mine = m.from === S.me, li = el('li', 'msg ' + (mine ? 'mine' : 'theirs')), bubble = el('div', 'bubble');
    // A picture alone carries its time on top of it, as phones' messengers do.
    if (m.attachment && !m.text) { bubble.className += isImage(m.attachment) ? ' image-only' : ' file-only'; }
    li.appendChild(bubble);
    // Screen readers hear who said it; the bubble side says it visually.
    bubble.appendChild(el('span', 'vh', (mine ? 'You' : m.from) + ': '));
    if (!mine && c && c.kind === 'group') { bubble.appendChild(el('span', 'from', m.from)).style.color = 'hsl(' + hueOf(m.from) + ',55%,40%)'; }
    if (m.attachment) { bubble.appendChild(buildAttachment(m)); }
    if (m.text) { bubble.appendChild(el('p', 'text', m.text)); }
    bubble.appendChild(el('span', 'vh', ' '));
    m._meta = el('span', 'meta');
    bubble.appendChild(m._meta);
    m._el = li;
    updateMeta(m);
  }

  function updateMeta(m) {
    var meta = m._meta, d = parseTime(m.sent_at), tick, label, c = S.convs[m.conversation];
    clear(meta);
    var time = el('time', null, d ? clock(d) : '');
    if (m.sent_at) { time.setAttribute('datetime', m.sent_at); }
    meta.appendChild(time);
    toggleClass(m._el, 'pending', m.status === 'pending');
    toggleClass(m._el, 'failed', m.status === 'failed');
    if (m.from !== S.me) { return; }
    label = m.status === 'pending' ? 'sending' : m.status === 'failed' ? 'not sent' : (m.status || 'sent');
    tick = el('span', 'tick ' + (m.status || 'sent'));
    tick.setAttribute('role', 'img');
    tick.setAttribute('aria-label', label);
    tick.setAttribute('title', label);
    if (m.status === 'pending') { tick.appendChild(icon('i-clock')); }
    else if (m.status === 'failed') { tick.appendChild(document.createTextNode('!')); }
    else { tick.appendChild(icon(m.status === 'sent' ? 'i-tick1' : 'i-tick2')); }
    meta.appendChild(tick);
    if (c && c.kind === 'group' && m.read_by && m.read_by.length && m.status !== 'pending') {
      meta.appendChild(el('span', 'readby', 'read by ' + m.read_by.length));
    }
    if (m.status === 'failed') { meta.appendChild(el('span', 'readby', 'not sent')); }
  }

  function isImage(a) { return a && /^image\//.test(a.type || '') && (a.thumbnail_url || a.width || !a.url); }

  function buildAttachment(m) {
    var a = m.attachment, box, img, link, info;
    if (isImage(a)) {
      box = el('a', 'att-img');
      img = document.createElement('img');
      img.alt = a.name || 'picture';
      sizeImage(img, a);
      if (a.url) {
        fileLink(box, a.url);
        box.target = '_blank';
        box.rel = 'noopener';
        loadThumb(img, client.fileUrl(a.thumbnail_url || a.url), 0);
      } else if (m.file && window.URL && window.URL.createObjectURL) {
        // Local preview while the upload runs; the server's thumbnail replaces it when sent.
        img.src = window.URL.createObjectURL(m.file);
      }
      box.appendChild(img);
      if (m.status === 'pending') { m._progress = box.appendChild(el('span', 'progress')); }
      return box;
    }
    box = el(a.url ? 'a' : 'span', 'att-file');
    if (a.url) {
      fileLink(box, a.url);
      box.setAttribute('download', a.name || 'file');
    }
    box.appendChild(icon('i-file', 'file-icon'));
    info = el('span', 'file-info');
    info.appendChild(el('span', 'file-name', a.name || 'file'));
    info.appendChild(el('span', 'file-size', sizeText(a.size || 0)));
    box.appendChild(info);
    if (m.status === 'pending') { m._progress = box.appendChild(el('span', 'progress')); }
    link = box;
    return link;
  }

  /** A link to a file: its grant is renewed as it is followed, so an old message's link still opens. */
  function fileLink(box, url) {
    box.href = client.fileUrl(url);
    box.onmousedown = box.onkeydown = box.ontouchstart = function () { box.href = client.fileUrl(url); };
  }

  /** Reserve the picture's box before it loads so the list does not jump. */
  function sizeImage(img, a) {
    var w = a.width, h = a.height, maxW = 260, maxH = 260, scale;
    if (!w || !h) { return; }
    scale = Math.min(1, maxW / w, maxH / h);
    img.style.width = Math.round(w * scale) + 'px';
    img.style.height = Math.round(h * scale) + 'px';
  }

  /** Thumbnails may be made after the message: retry a missing one for a while. */
  function loadThumb(img, src, attempt) {
    img.onerror = function () {
      if (attempt < THUMB_RETRIES) {
        toggleClass(img, 'waiting', true);
        setTimeout(function () { loadThumb(img, src, attempt + 1); }, THUMB_RETRY_MS);
      }
    };
    img.onload = function () { toggleClass(img, 'waiting', false); };
    img.src = attempt ? src + (src.indexOf('?') === -1 ? '?' : '&') + 'retry=' + attempt : src;
  }

  function rebuildMessage(m) {
    var old = m._el;
    m._el = null;
    buildMessage(m);
    if (old && old.parentNode) { old.parentNode.replaceChild(m._el, old); }
  }

  // ---- Rendering: typing, conversations, contacts, header ------------------------------------

  function clearTyping(convId, user) {
    if (S.typing[convId] && S.typing[convId][user]) { delete S.typing[convId][user]; if (S.current === convId) { renderTyping(); } }
  }

  function renderTyping() {
    var who = [], k, map = S.typing[S.current] || {}, t = new Date().getTime(), node = $('typing');
    for (k in map) { if (map[k] > t) { who.push(k); } }
    setText(node, who.length === 0 ? '' : who.length === 1 ? who[0] + ' is typing…' : who.join(', ') + ' are typing…');
  }

  function onTyping(ev) {
    if (ev.user === S.me) { return; }
    var map = S.typing[ev.conversation] || (S.typing[ev.conversation] = {});
    map[ev.user] = new Date().getTime() + TYPING_SHOW_MS;
    if (S.current === ev.conversation) { renderTyping(); }
    setTimeout(function () { if (S.current === ev.conversation) { renderTyping(); } }, TYPING_SHOW_MS + 50);
  }

  function sortedConvs() {
    var list = [], k;
    for (k in S.convs) { if (Object.prototype.hasOwnProperty.call(S.convs, k)) { list.push(S.convs[k]); } }
    list.sort(function (a, b) {
      var at = a.last_message ? a.last_message.sent_at || '' : '', bt = b.last_message ? b.last_message.sent_at || '' : '';
      if (at !== bt) { return at < bt ? 1 : -1; }
      return convTitle(a) < convTitle(b) ? -1 : 1;
    });
    return list;
  }

  function renderConvs() {
    var ul = $('convs'), list = sortedConvs(), i, c, li, btn, body, top, lm, snippet, d, unreadTotal = 0, badge;
    clear(ul);
    for (i = 0; i < list.length; i++) {
      c = list[i];
      li = el('li');
      btn = el('button', 'conv' + (c.id === S.current ? ' active' : ''));
      btn.type = 'button';
      btn.setAttribute('data-id', c.id);
      if (c.id === S.current) { btn.setAttribute('aria-current', 'true'); }
      var av = el('span', 'avatar');
      av.setAttribute('aria-hidden', 'true');
      paintAvatar(av, convTitle(c), c.kind === 'group');
      btn.appendChild(av);
      if (c.kind === 'direct' && S.contacts[convTitle(c)] && S.contacts[convTitle(c)].online) { av.appendChild(el('span', 'dot online')); }
      body = el('span', 'conv-body');
      top = el('span', 'conv-top');
      top.appendChild(el('span', 'conv-title', convTitle(c)));
      top.appendChild(el('span', 'vh', ', '));
      lm = c.last_message;
      d = lm && parseTime(lm.sent_at);
      if (d) { top.appendChild(el('span', 'conv-time', shortTime(d))); }
      body.appendChild(top);
      snippet = lm ? (lm.from === S.me ? 'You: ' : (c.kind === 'group' ? lm.from + ': ' : '')) + (lm.text || (lm.attachment ? (isImage(lm.attachment) ? 'Picture' : lm.attachment.name || 'File') : '')) : (c.kind === 'group' ? (c.members || []).join(', ') : 'No messages yet');
      var bottom = el('span', 'conv-bottom');
      bottom.appendChild(el('span', 'vh', ', '));
      bottom.appendChild(el('span', 'conv-last', snippet));
      if (c.unread) {
        unreadTotal += c.unread;
        badge = el('span', 'badge', c.unread > 99 ? '99+' : c.unread);
        badge.setAttribute('aria-label', c.unread + ' unread');
        bottom.appendChild(badge);
      }
      body.appendChild(bottom);
      btn.appendChild(body);
      li.appendChild(btn);
      ul.appendChild(li);
    }
    show($('convs-empty'), list.length === 0);
    document.title = (unreadTotal ? '(' + unreadTotal + ') ' : '') + 'Parley';
  }

  function renderContacts() {
    var ul = $('contacts'), names = [], k, i, c, li, btn, av, dot, body;
    for (k in S.contacts) { if (Object.prototype.hasOwnProperty.call(S.contacts, k)) { names.push(k); } }
    names.sort(function (a, b) {
      var oa = S.contacts[a].online ? 0 : 1, ob = S.contacts[b].online ? 0 : 1;
      return oa !== ob ? oa - ob : (a < b ? -1 : 1);
    });
    clear(ul);
    for (i = 0; i < names.length; i++) {
      c = S.contacts[names[i]];
      li = el('li');
      btn = el('button', 'contact');
      btn.type = 'button';
      btn.setAttribute('data-name', c.name);
      av = el('span', 'avatar');
      av.setAttribute('aria-hidden', 'true');
      paintAvatar(av, c.name);
      btn.appendChild(av);
      dot = el('span', 'dot ' + (c.online ? 'online' : 'offline'));
      btn.appendChild(dot);
      body = el('span', 'contact-body');
      body.appendChild(el('span', 'contact-name', c.name));
      body.appendChild(el('span', 'vh', ', '));
      // The words "online"/"offline" are in the accessible text even when "last seen" shows.
      body.appendChild(el('span', 'contact-seen', c.online ? 'online' : lastSeenText(c)));
      if (!c.online && lastSeenText(c) !== 'offline') { body.appendChild(el('span', 'vh', ' (offline)')); }
      btn.appendChild(body);
      li.appendChild(btn);
      ul.appendChild(li);
    }
    show($('contacts-empty'), names.length === 0);
    renderHeader();
  }

  function renderHeader() {
    var c = S.convs[S.current], sub = '', other;
    if (!c) { return; }
    setText($('chat-title'), convTitle(c));
    paintAvatar($('chat-avatar'), convTitle(c), c.kind === 'group');
    if (c.kind === 'group') {
      sub = (c.members || []).length + ' members: ' + (c.members || []).join(', ');
    } else {
      other = S.contacts[otherMembers(c)[0]];
      sub = other ? lastSeenText(other) : '';
    }
    setText($('chat-sub'), sub);
    toggleClass($('chat-sub'), 'online', !!(c.kind !== 'group' && other && other.online));
    // a conversation someone else opened (or added me to) that I have not replied to nor accepted
    show($('request-bar'), c.accepted === false);
    if (c.accepted === false) {
      setText($('request-text'), c.kind === 'group'
        ? 'You were added to this group. Its members do not see whether you are online or what you have read until you write here or accept.'
        : otherMembers(c)[0] + ' wants to chat with you. They do not see whether you are online or that you read this until you reply or accept.');
    }
    // the owner and admins add members (a plain member would be refused)
    show($('add-member-button'), c.kind === 'group' && (c.owner === S.me || (c.admins || []).indexOf(S.me) >= 0));
  }

  // ---- Loading lists ------------------------------------------------------------------------

  var refreshTimer = null;

  /** Contacts and conversations again, soon (coalesces bursts of membership events). */
  function refreshSoon() {
    if (refreshTimer) { return; }
    refreshTimer = setTimeout(function () { refreshTimer = null; refreshLists(); }, 200);
  }

  function refreshLists(cb) {
    var left = 2, failed = null;
    function one(err) { if (err) { failed = err; } if (--left === 0 && cb) { cb(failed); } }
    client.conversations(function (err, convs) {
      var i, c, old;
      if (!err) {
        for (i = 0; i < convs.length; i++) {
          c = convs[i];
          old = S.convs[c.id];
          // The live count wins over a list that may have been read before a new message.
          if (old && S.current === c.id) { c.unread = 0; }
          S.convs[c.id] = c;
        }
        renderConvs();
        renderHeader();
      }
      one(err);
    });
    client.contacts(function (err, contacts) {
      var i;
      if (!err) {
        S.contacts = {};
        for (i = 0; i < contacts.length; i++) { S.contacts[contacts[i].name] = contacts[i]; }
        renderContacts();
        renderConvs();
      }
      one(err);
    });
  }

  function onPresence(ev) {
    var c = S.contacts[ev.user];
    if (!c) { refreshSoon(); return; }
    c.online = !!ev.online;
    if (ev.last_seen !== undefined) { c.last_seen = ev.last_seen; }
    renderContacts();
    renderConvs();
  }

  function onConversation(ev) {
    var c = ev.conversation;
    if (c && c.id) {
      var old = S.convs[c.id] || {};
      var k;
      for (k in c) { if (Object.prototype.hasOwnProperty.call(c, k)) { old[k] = c[k]; } }
      S.convs[c.id] = old;
      renderConvs();
      if (S.current === c.id) { renderHeader(); }
    }
    // Membership changed: contacts (and their presence) may have too.
    refreshSoon();
  }

  // ---- Opening a conversation ---------------------------------------------------------------

  function openConversation(id) {
    var t;
    S.current = id;
    toggleClass(document.body, 'show-chat', true);
    show($('chat-none'), false);
    show($('chat-open'), true);
    show($('member-form'), false);
    setText($('history-status'), '');
    renderHeader();
    renderConvs();
    t = thread(id);
    clear($('messages'));
    renderThread('bottom');
    if (!t.loaded) { loadHistory(id, true); } else if (visible()) { markRead(id); }
    if (window.innerWidth > 700) { try { $('message-input').focus(); } catch (e) { /* old IE */ } }
  }

  function closeConversation() {
    S.current = null;
    toggleClass(document.body, 'show-chat', false);
    show($('chat-open'), false);
    show($('chat-none'), true);
    renderConvs();
  }

  function startChatWith(name) {
    name = (name || '').replace(/^\s+|\s+$/g, '').toLowerCase();
    if (!name) { return; }
    sideError('');
    client.openDirect(name, function (err, conv) {
      if (err) { return sideError(err.status === 404 ? 'No one is called "' + name + '".' : err.message); }
      S.convs[conv.id] = mergeConv(S.convs[conv.id], conv);
      $('new-chat-name').value = '';
      openConversation(conv.id);
      refreshSoon();
    });
  }

  function mergeConv(old, c) {
    var k;
    if (!old) { return c; }
    for (k in c) { if (Object.prototype.hasOwnProperty.call(c, k)) { old[k] = c[k]; } }
    return old;
  }

  function sideError(text) { setText($('side-error'), text); }

  // ---- Sending ------------------------------------------------------------------------------

  function sendText() {
    var input = $('message-input'), text = input.value.replace(/^\s+|\s+$/g, '');
    if (!text || !S.current) { return; }
    input.value = '';
    autoGrow();
    addLocal(client.send(S.current, text));
    // writing in a conversation accepts it (the server records that with the message)
    if (S.convs[S.current] && S.convs[S.current].accepted === false) { S.convs[S.current].accepted = true; renderHeader(); }
  }

  function addLocal(pending) {
    pending.status = 'pending';
    var m = addMessage(pending);
    if (!m) { return; }
    touchConversation(m);
    renderConvs();
    if (S.current === m.conversation) { renderThread('bottom'); }
  }

  function onSent(pending, message) {
    var t = thread(pending.conversation), stored = t.byClient[pending.client_id], dup = message.id && t.byId[message.id];
    if (dup && dup !== stored) {
      // The events loop delivered it first: drop the pending copy.
      removeFromThread(t, stored);
    } else if (stored) {
      var hadFile = !!stored.file;
      confirmPending(stored, message);
      if (hadFile || message.attachment) { rebuildMessage(stored); } else if (stored._el) { updateMeta(stored); }
    } else {
      addMessage(message);
    }
    touchConversation(message);
    renderConvs();
    if (S.current === pending.conversation) { renderThread(); }
  }

  function removeFromThread(t, m) {
    var i;
    if (!m) { return; }
    for (i = 0; i < t.list.length; i++) { if (t.list[i] === m) { t.list.splice(i, 1); break; } }
    if (m._el && m._el.parentNode) { m._el.parentNode.removeChild(m._el); }
  }

  function onFailed(pending, err) {
    var t = thread(pending.conversation), stored = t.byClient[pending.client_id];
    if (stored) { stored.status = 'failed'; stored.error = err.message; if (stored._el) { updateMeta(stored); stored._el.title = err.message; } }
  }

  function onProgress(pending, loaded, total) {
    var stored = thread(pending.conversation).byClient[pending.client_id];
    if (stored && stored._progress) { stored._progress.style.width = Math.round(100 * loaded / total) + '%'; }
  }

  function autoGrow() {
    var ta = $('message-input');
    ta.style.height = 'auto';
    ta.style.height = Math.min(ta.scrollHeight, 140) + 'px';
  }

  // ---- Connection notice --------------------------------------------------------------------

  var connTimer = null;

  function onStatus(st) {
    var node = $('conn');
    if (st.connected) {
      clearTimeout(connTimer);
      connTimer = null;
      show(node, false);
      toggleClass(document.body, 'offline', false);
      return;
    }
    if (connTimer) { return; }
    connTimer = setTimeout(function () {
      connTimer = null;
      if (client.connected) { return; }
      setText(node, 'Offline: reconnecting… Messages you send now go out when the connection is back.');
      show(node, true);
      toggleClass(document.body, 'offline', true);
    }, CONN_NOTICE_DELAY_MS);
  }

  // ---- Views --------------------------------------------------------------------------------

  function showLogin(message) {
    show($('boot'), false);
    show($('chat-view'), false);
    show($('login-view'), true);
    setText($('login-error'), message || '');
    try { $('login-name').focus(); } catch (e) { /* old IE */ }
  }

  function showChat() {
    var pend, i;
    S.me = client.user.name;
    S.convs = {};
    S.contacts = {};
    S.threads = {};
    S.current = null;
    show($('boot'), false);
    document.body.removeAttribute('data-ready');
    show($('login-view'), false);
    show($('chat-view'), true);
    setText($('me-name'), S.me);
    paintAvatar($('me-avatar'), S.me);
    $('login-password').value = '';
    show($('attach-button'), Parley.canUpload);
    closeConversation();
    // Messages still in the outbox from before a reload show as pending at once.
    pend = client.pending();
    for (i = 0; i < pend.length; i++) { addMessage(pend[i]); }
    refreshLists(function () {
      for (i = 0; i < pend.length; i++) { touchConversation(pend[i]); }
      renderConvs();
      document.body.setAttribute('data-ready', 'true');
      // For measuring "usable within a second of load" (test/e2e/browser.test.ts).
      if (window.performance && window.performance.mark) { window.performance.mark('parley-ready'); }
    });
    client.start();
  }

  function account(kind) {
    var name = $('login-name').value.replace(/^\s+|\s+$/g, ''), password = $('login-password').value;
    if (!name || !password) { return setText($('login-error'), 'Enter a name and a password.'); }
    if (kind === 'register' && password.length < 8) { return setText($('login-error'), 'Choose a password of at least 8 characters.'); }
    setText($('login-error'), '');
    $('login-button').disabled = $('register-button').disabled = true;
    client[kind](name, password, function (err) {
      $('login-button').disabled = $('register-button').disabled = false;
      if (err) {
        var msg = err.status === 401 ? 'Wrong name or password.' : err.status === 409 ? 'That name is taken.' : err.status === 429 ? 'Too many attempts; try again in a while.' : err.message;
        return setText($('login-error'), msg);
      }
      showChat();
    });
  }

  // ---- Wiring -------------------------------------------------------------------------------

  function closestData(target, attr, stop) {
    while (target && target !== stop) {
      if (target.getAttribute && target.getAttribute(attr)) { return target.getAttribute(attr); }
      target = target.parentNode;
    }
    return null;
  }

  function wire() {
    on($('login-form'), 'submit', function (e) { prevent(e); account('login'); });
    on($('register-button'), 'click', function () { account('register'); });
    on($('logout-button'), 'click', function () { client.logout(); });
    on($('new-chat'), 'submit', function (e) { prevent(e); startChatWith($('new-chat-name').value); });
    on($('new-group-button'), 'click', function () {
      var open = $('group-form').hasAttribute('hidden');
      show($('group-form'), open);
      $('new-group-button').setAttribute('aria-expanded', open ? 'true' : 'false');
      if (open) { $('group-title').focus(); }
    });
    on($('group-cancel'), 'click', function () { show($('group-form'), false); $('new-group-button').setAttribute('aria-expanded', 'false'); });
    on($('group-form'), 'submit', function (e) {
      prevent(e);
      var title = $('group-title').value.replace(/^\s+|\s+$/g, ''), parts = $('group-members').value.toLowerCase().split(/[\s,;]+/), members = [], i;
      for (i = 0; i < parts.length; i++) { if (parts[i] && parts[i] !== S.me) { members.push(parts[i]); } }
      if (!title) { return sideError('Give the group a name.'); }
      sideError('');
      client.createGroup(title, members, function (err, conv) {
        if (err) { return sideError(err.message); }
        $('group-title').value = $('group-members').value = '';
        show($('group-form'), false);
        $('new-group-button').setAttribute('aria-expanded', 'false');
        S.convs[conv.id] = mergeConv(S.convs[conv.id], conv);
        openConversation(conv.id);
        refreshSoon();
      });
    });
    on($('convs'), 'click', function (e) {
      var id = closestData(e.target || e.srcElement, 'data-id', this);
      if (id) { openConversation(id); }
    });
    on($('contacts'), 'click', function (e) {
      var name = closestData(e.target || e.srcElement, 'data-name', this), c = name && S.contacts[name];
      if (!name) { return; }
      if (c && c.conversation && S.convs[c.conversation]) { openConversation(c.conversation); } else { startChatWith(name); }
    });
    on($('back-button'), 'click', closeConversation);
    on($('accept-button'), 'click', function () {
      var id = S.current;
      client.accept(id, function (err) {
        if (err) { return; }
        if (S.convs[id]) { S.convs[id].accepted = true; renderHeader(); }
        refreshSoon();
      });
    });
    on($('decline-button'), 'click', function () {
      var id = S.current;
      client.decline(id, function (err) {
        if (err) { return; }
        delete S.convs[id];
        closeConversation();
        refreshSoon();
      });
    });
    on($('add-member-button'), 'click', function () { show($('member-form'), true); $('member-name').focus(); });
    on($('member-cancel'), 'click', function () { show($('member-form'), false); });
    on($('member-form'), 'submit', function (e) {
      prevent(e);
      var name = $('member-name').value.replace(/^\s+|\s+$/g, '').toLowerCase(), id = S.current;
      if (!name || !id) { return; }
      client.addMember(id, name, function (err) {
        if (err) { return setText($('history-status'), err.status === 404 ? 'No one is called "' + name + '".' : err.message); }
        $('member-name').value = '';
        show($('member-form'), false);
        var c = S.convs[id];
        if (c && c.members) { c.members = union(c.members, [name]); renderHeader(); }
        refreshSoon();
      });
    });
    on($('composer'), 'submit', function (e) { prevent(e); sendText(); });
    on($('message-input'), 'keydown', function (e) {
      if ((e.keyCode === 13 || e.key === 'Enter') && !e.shiftKey && !e.isComposing) { prevent(e); sendText(); }
    });
    on($('message-input'), 'input', function () { autoGrow(); if (S.current && this.value) { client.typing(S.current); } });
    on($('attach-button'), 'click', function () { $('file-input').click(); });
    on($('file-input'), 'change', function () {
      var files = this.files, i;
      if (!files || !S.current) { return; }
      for (i = 0; i < files.length; i++) { addLocal(client.upload(S.current, files[i], {})); }
      this.value = '';
    });
    on($('scroller'), 'scroll', function () {
      if (S.current && this.scrollTop < HISTORY_EDGE_PX) {
        var t = thread(S.current);
        if (t.loaded && !t.complete) { loadHistory(S.current, false); }
      }
    });
    on(document, 'visibilitychange', function () { if (visible() && S.current) { markRead(S.current); } });
    on(window, 'online', function () { client.reconnect(); client.retryNow(); });
    // "last seen 3 min ago" ages; once a minute is as often as it changes.
    setInterval(function () { if (S.me) { renderContacts(); } }, 60000);

    client.on('message', onMessage);
    client.on('receipt', onReceipt);
    client.on('presence', onPresence);
    client.on('typing', onTyping);
    client.on('conversation', onConversation);
    client.on('sent', onSent);
    client.on('failed', onFailed);
    client.on('progress', onProgress);
    client.on('status', onStatus);
    client.on('logout', function (info) {
      S.me = null;
      showLogin(info && info.reason === 'unauthorized' ? 'Your session ended; please log in again.' : '');
    });
  }

  wire();
  if (client.loggedIn()) { showChat(); } else { showLogin(); }
  // For tests and embedders: the page's client.
  window.parleyApp = { client: client, state: S };
}(window, document));
