/*
 * app-lists.js: the side lists and header: typing, conversations, contacts, presence, opening a conversation.
 * Plain ES5, one of the page's ordered scripts (index.html: parley.js, app-base.js, app-thread.js,
 * app-lists.js, app.js); they share window.parleyApp. No build step.
 */
(function (window, document, App) {
  'use strict';

  // From the earlier scripts.
  var $ = App.$, S = App.state, clear = App.clear, client = App.client, convTitle = App.convTitle,
    el = App.el, lastSeenText = App.lastSeenText, otherMembers = App.otherMembers,
    paintAvatar = App.paintAvatar, parseTime = App.parseTime, setText = App.setText,
    shortTime = App.shortTime, show = App.show, thread = App.thread, toggleClass = App.toggleClass,
    visible = App.visible, isImage = App.isImage, loadHistory = App.loadHistory, markRead = App.markRead,
    renderThread = App.renderThread;

  /** How long a "typing" notice stays up without a new one: the sender repeats it every ~3 s. */
  var TYPING_SHOW_MS = 5000;

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
      if (c.kind === 'direct' && S.contacts[otherMembers(c)[0]] && S.contacts[otherMembers(c)[0]].online) { av.appendChild(el('span', 'dot online')); }
      body = el('span', 'conv-body');
      top = el('span', 'conv-top');
      top.appendChild(el('span', 'conv-title', convTitle(c)));
      top.appendChild(el('span', 'vh', ', '));
      lm = c.last_message;
      d = lm && parseTime(lm.sent_at);
      if (d) { top.appendChild(el('span', 'conv-time', shortTime(d))); }
      body.appendChild(top);
      snippet = lm ? (lm.from === S.me ? 'You: ' : (c.kind === 'group' ? App.displayName(lm.from) + ': ' : '')) + (lm.deleted ? 'message deleted' : lm.text || (lm.attachment ? (isImage(lm.attachment) ? 'Picture' : lm.attachment.name || 'File') : '')) : (c.kind === 'group' ? (c.members || []).join(', ') : 'No messages yet');
      var bottom = el('span', 'conv-bottom');
      bottom.appendChild(el('span', 'vh', ', '));
      bottom.appendChild(el('span', 'conv-last', snippet));
      if (c.muted) { bottom.appendChild(el('span', 'muted-mark', 'muted')); }
      if (c.unread) {
        // Muted conversations keep their count, but not in the page title.
        if (!c.muted) { unreadTotal += c.unread; }
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
      body.appendChild(el('span', 'contact-name', App.displayName(c.name) + (S.names[c.name] ? ' (' + c.name + ')' : '')));
      if (S.blocks[c.name]) { body.appendChild(el('span', 'contact-seen', 'blocked')); }
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
    // the owner and admins add members (a plain member would be refused), or anyone when the owner lets members add
    var manager = c.kind === 'group' && (c.owner === S.me || App.indexOf(c.admins || [], S.me) >= 0);
    show($('add-member-button'), manager || (c.kind === 'group' && c.who_can_add === 'members'));
    setText($('mute-button'), c.muted ? 'Unmute' : 'Mute');
    show($('block-button'), c.kind === 'direct' && !!otherMembers(c)[0]);
    if (c.kind === 'direct') { setText($('block-button'), S.blocks[otherMembers(c)[0]] ? 'Unblock' : 'Block'); }
    show($('group-button'), c.kind === 'group');
    if (c.kind === 'group') { App.renderGroupPanel(c, manager); }
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
    // Who I block (an older server has no such route: nothing is blocked then).
    client.blocks(function (err, names) {
      var i;
      if (err) { return; }
      S.blocks = {};
      for (i = 0; i < names.length; i++) { S.blocks[names[i]] = true; }
      renderContacts();
    });
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
        for (i = 0; i < contacts.length; i++) {
          S.contacts[contacts[i].name] = contacts[i];
          if (contacts[i].display_name) { S.names[contacts[i].name] = contacts[i].display_name; }
        }
        renderContacts();
        renderConvs();
      }
      one(err);
    });
  }

  /** Someone's display name changed (mine too). */
  function onProfile(ev) {
    if (!ev || !ev.user) { return; }
    if (ev.display_name) { S.names[ev.user] = ev.display_name; } else { delete S.names[ev.user]; }
    if (ev.user === S.me) { setText($('me-name'), App.displayName(S.me)); }
    renderContacts();
    renderConvs();
    if (S.current) { renderThreadAgain(); }
  }

  /** Names show in every bubble: build them again. */
  function renderThreadAgain() {
    var t = thread(S.current), i;
    for (i = 0; i < t.list.length; i++) { t.list[i]._el = null; }
    renderThread();
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
    var c = ev.conversation, id = c && typeof c === 'object' ? c.id : c || ev.id;
    if ((ev.change === 'muted' || ev.change === 'unmuted') && id) {
      if (S.convs[id]) { S.convs[id].muted = ev.change === 'muted'; renderConvs(); if (S.current === id) { renderHeader(); } }
      return;
    }
    // I left or was removed: the conversation goes from my list.
    if ((ev.change === 'member_left' || ev.change === 'member_removed') && c && c.members && App.indexOf(c.members, S.me) === -1) {
      delete S.convs[c.id];
      if (S.current === c.id) { closeConversation(); }
      renderConvs();
      return;
    }
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
    show($('search-form'), false);
    show($('group-panel'), false);
    show($('invite-url'), false);
    show($('invite-copy'), false);
    show($('account-view'), false);
    show($('join-view'), false);
    App.resetSearch();
    App.composeMode(null);
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
    show($('account-view'), false);
    show($('join-view'), false);
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

  App.clearTyping = clearTyping;
  App.closeConversation = closeConversation;
  App.mergeConv = mergeConv;
  App.onConversation = onConversation;
  App.onPresence = onPresence;
  App.onProfile = onProfile;
  App.onTyping = onTyping;
  App.openConversation = openConversation;
  App.refreshLists = refreshLists;
  App.refreshSoon = refreshSoon;
  App.renderContacts = renderContacts;
  App.renderConvs = renderConvs;
  App.renderHeader = renderHeader;
  App.renderTyping = renderTyping;
  App.sideError = sideError;
  App.startChatWith = startChatWith;
}(window, document, window.parleyApp));
