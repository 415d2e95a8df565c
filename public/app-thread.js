/*
 * app-thread.js: one conversation's messages: receipts and ticks, merging, history, rendering the thread.
 * Plain ES5, one of the page's ordered scripts (index.html: parley.js, app-base.js, app-thread.js,
 * app-lists.js, app.js); they share window.parleyApp. No build step.
 */
(function (window, document, App) {
  'use strict';

  // From the earlier scripts.
  var $ = App.$, S = App.state, clear = App.clear, client = App.client, clock = App.clock,
    compareMessages = App.compareMessages, dayKey = App.dayKey, dayLabel = App.dayLabel, el = App.el,
    hueOf = App.hueOf, icon = App.icon, otherMembers = App.otherMembers, parseTime = App.parseTime,
    setText = App.setText, sizeText = App.sizeText, thread = App.thread, toggleClass = App.toggleClass,
    visible = App.visible;

  /** Page size of history requests; 50 fills a tall screen twice. */
  var HISTORY_PAGE = 50;
  /** A thumbnail may still be in the making when its message arrives: retry this often/long. */
  var THUMB_RETRY_MS = 1000;
  var THUMB_RETRIES = 20;
  var STATUS_RANK = { failed: -1, pending: 0, sent: 1, delivered: 2, read: 3 };

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
      if (ev.status === 'read' && S.convs[ev.conversation]) { S.convs[ev.conversation].unread = 0; App.renderConvs(); }
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
    if (changed && S.convs[ev.conversation]) { App.renderConvs(); }
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
    // Now it has an id: it gets its actions (reply, edit…) and the server's view of it.
    if (p._el && !p.file) { rebuildMessage(p); }
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
    if (!c) { App.refreshSoon(); }
    touchConversation(stored);
    App.clearTyping(m.conversation, m.from);
    if (m.from !== S.me && c) {
      if (S.current === m.conversation && visible()) { markRead(m.conversation); } else { c.unread = (c.unread || 0) + 1; }
    }
    App.renderConvs();
    if (S.current === m.conversation) { renderThread(); }
  }

  function markRead(id) {
    var t = thread(id), i, top = 0, c = S.convs[id];
    for (i = t.list.length - 1; i >= 0; i--) { if (t.list[i].seq) { top = t.list[i].seq; break; } }
    if (c && c.unread) { c.unread = 0; App.renderConvs(); }
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
    App.renderTyping();
  }

  function buildMessage(m) {
    var c = S.convs[m.conversation], mine = m.from === S.me, li = el('li', 'msg ' + (mine ? 'mine' : 'theirs')), bubble = el('div', 'bubble');
    if (m.id) { li.setAttribute('data-mid', m.id); }
    // A picture alone carries its time on top of it, as phones' messengers do.
    if (m.attachment && !m.text && !m.deleted) { bubble.className += isImage(m.attachment) ? ' image-only' : ' file-only'; }
    li.appendChild(bubble);
    // Screen readers hear who said it; the bubble side says it visually.
    bubble.appendChild(el('span', 'vh', (mine ? 'You' : m.from) + ': '));
    if (!mine && c && c.kind === 'group') { bubble.appendChild(el('span', 'from', App.displayName(m.from))).style.color = 'hsl(' + hueOf(m.from) + ',55%,40%)'; }
    if (m.deleted) {
      bubble.appendChild(el('p', 'text tombstone', 'message deleted'));
    } else {
      if (m.reply_to) { bubble.appendChild(buildQuote(m.reply_to)); }
      if (m.attachment) { bubble.appendChild(buildAttachment(m)); }
      if (m.text) { bubble.appendChild(el('p', 'text', m.text)); }
    }
    bubble.appendChild(el('span', 'vh', ' '));
    m._meta = el('span', 'meta');
    bubble.appendChild(m._meta);
    if (!m.deleted && m.reactions && m.reactions.length) { li.appendChild(buildReactions(m)); }
    if (!m.deleted && m.id && m.status !== 'pending' && m.status !== 'failed') { li.appendChild(buildActions(m)); }
    m._el = li;
    updateMeta(m);
  }

  /** The message answered, as the reply quotes it (its current text, or that it was deleted). */
  function buildQuote(r) {
    var q = el('blockquote', 'quote');
    q.setAttribute('data-quote', r.id || '');
    q.appendChild(el('span', 'quote-from', App.displayName(r.from || '')));
    q.appendChild(el('span', 'vh', ': '));
    q.appendChild(el('span', 'quote-text' + (r.deleted ? ' tombstone' : ''), r.deleted ? 'message deleted' : r.text || ''));
    return q;
  }

  /** Reactions with their counts; mine pressed: a click adds or removes mine. */
  function buildReactions(m) {
    var box = el('div', 'reactions'), i, r, b, mineToo;
    for (i = 0; i < m.reactions.length; i++) {
      r = m.reactions[i];
      mineToo = indexOf(r.users || [], S.me) !== -1;
      b = el('button', 'reaction' + (mineToo ? ' mine' : ''), r.emoji + ' ' + (r.users || []).length);
      b.type = 'button';
      b.setAttribute('data-act', 'toggle-reaction');
      b.setAttribute('data-emoji', r.emoji);
      b.setAttribute('aria-pressed', mineToo ? 'true' : 'false');
      b.setAttribute('aria-label', r.emoji + ' ' + (r.users || []).length + ': ' + (r.users || []).join(', '));
      b.title = (r.users || []).join(', ');
      box.appendChild(b);
    }
    return box;
  }

  function indexOf(list, x) { for (var i = 0; i < list.length; i++) { if (list[i] === x) { return i; } } return -1; }

  /** What I may do with a message: reply, react; edit mine; delete mine (a group's owner and admins any). */
  function buildActions(m) {
    var c = S.convs[m.conversation], box = el('div', 'actions'), mine = m.from === S.me,
      manager = c && c.kind === 'group' && (c.owner === S.me || indexOf(c.admins || [], S.me) !== -1);
    function add(act, label) {
      // The label comes from CSS (::before): a copy of the text says who wrote what, not "Reply React".
      var b = el('button', 'act');
      b.type = 'button';
      b.setAttribute('aria-label', label);
      b.setAttribute('data-label', label);
      b.setAttribute('data-act', act);
      box.appendChild(b);
    }
    add('reply', 'Reply');
    add('react', 'React');
    if (mine && !m.attachment) { add('edit', 'Edit'); }
    if (mine || manager) { add('delete', 'Delete'); }
    return box;
  }

  /** A message changed (edited, deleted, its reactions): the stored copy takes the new view. */
  function onMessageChanged(ev) {
    var m = ev && ev.message, t, stored, i, k, other, c;
    if (!m || !m.id || !m.conversation) { return; }
    t = thread(m.conversation);
    stored = t.byId[m.id];
    if (stored) {
      // Fields a tombstone or an edit drops must go, not linger from the old copy. A `purged`
      // view (RETENTION=until-delivered) lacks the original text and file: keep ours of them.
      delete stored.reactions; delete stored.edited_at;
      if (!m.purged || m.deleted) { delete stored.attachment; }
      for (k in m) {
        if (!Object.prototype.hasOwnProperty.call(m, k) || k === 'status' || k === 'client_id') { continue; }
        if (m.purged && !m.deleted && !m.edited_at && (k === 'text' || k === 'attachment')) { continue; }
        stored[k] = m[k];
      }
      if (stored.deleted) { stored.text = ''; }
      rebuildMessage(stored);
    }
    // Replies quoting it show its current text.
    for (i = 0; i < t.list.length; i++) {
      other = t.list[i];
      if (other.reply_to && other.reply_to.id === m.id) {
        other.reply_to = { id: m.id, from: m.from, text: m.deleted ? '' : String(m.text || '').slice(0, 200) };
        if (m.deleted) { other.reply_to.deleted = true; }
        rebuildMessage(other);
      }
    }
    c = S.convs[m.conversation];
    if (c && c.last_message && c.last_message.id === m.id) { c.last_message = stored || m; App.renderConvs(); }
  }

  function updateMeta(m) {
    var meta = m._meta, d = parseTime(m.sent_at), tick, label, c = S.convs[m.conversation];
    clear(meta);
    var time = el('time', null, d ? clock(d) : '');
    if (m.sent_at) { time.setAttribute('datetime', m.sent_at); }
    meta.appendChild(time);
    if (m.edited_at && !m.deleted) { meta.appendChild(el('span', 'edited', 'edited')).title = 'edited ' + (parseTime(m.edited_at) ? clock(parseTime(m.edited_at)) : ''); }
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


  // ---- Search in the open conversation --------------------------------------------------------

  var searchState = { conv: null, q: '', next: null, busy: false };

  function search(q, more) {
    var id = S.current, list = $('search-results');
    if (!id || !q || searchState.busy) { return; }
    if (!more) { searchState = { conv: id, q: q, next: null, busy: false }; clear(list); }
    searchState.busy = true;
    setText($('search-status'), 'Searching…');
    client.search(id, q, { before: more ? searchState.next : undefined }, function (err, data) {
      var i, m, li, d;
      searchState.busy = false;
      if (S.current !== id || searchState.q !== q) { return; }
      if (err) { setText($('search-status'), err.code === 'bad_q' ? 'Search for 1 to 100 characters.' : 'Search failed: ' + err.message); return; }
      for (i = 0; i < data.messages.length; i++) {
        m = data.messages[i];
        d = parseTime(m.sent_at);
        li = el('li', 'result');
        li.setAttribute('data-mid', m.id);
        li.appendChild(el('span', 'result-from', (m.from === S.me ? 'You' : App.displayName(m.from)) + (d ? ', ' + dayLabel(d) + ' ' + clock(d) : '')));
        li.appendChild(el('span', 'vh', ': '));
        li.appendChild(el('span', 'result-text', m.text));
        list.appendChild(li);
      }
      searchState.next = data.next || null;
      App.show($('search-more'), !!data.next);
      setText($('search-status'), list.childNodes.length ? (data.next ? '' : 'No more results.') : data.next ? 'Nothing yet; look further back with More results.' : 'No messages found.');
    });
  }

  function resetSearch() {
    searchState = { conv: null, q: '', next: null, busy: false };
    clear($('search-results'));
    setText($('search-status'), '');
    App.show($('search-more'), false);
  }

  /** Scroll to a message of the open conversation, when its thread holds it, and mark it for a moment. */
  function reveal(mid) {
    var m = thread(S.current).byId[mid];
    if (!m || !m._el) { return false; }
    if (m._el.scrollIntoView) { m._el.scrollIntoView(); }
    toggleClass(m._el, 'found', true);
    setTimeout(function () { if (m._el) { toggleClass(m._el, 'found', false); } }, 2000);
    return true;
  }

  App.addMessage = addMessage;
  App.onMessageChanged = onMessageChanged;
  App.search = search;
  App.resetSearch = resetSearch;
  App.reveal = reveal;
  App.indexOf = indexOf;
  App.confirmPending = confirmPending;
  App.isImage = isImage;
  App.loadHistory = loadHistory;
  App.markRead = markRead;
  App.onMessage = onMessage;
  App.onReceipt = onReceipt;
  App.rebuildMessage = rebuildMessage;
  App.renderThread = renderThread;
  App.touchConversation = touchConversation;
  App.union = union;
  App.updateMeta = updateMeta;
}(window, document, window.parleyApp));
