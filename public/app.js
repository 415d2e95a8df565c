/*
 * app.js: sending, the connection notice, login and chat views, wiring the DOM and the client; starts the page.
 * Plain ES5, one of the page's ordered scripts (index.html: parley.js, app-base.js, app-thread.js,
 * app-lists.js, app.js); they share window.parleyApp. No build step.
 */
(function (window, document, App) {
  'use strict';

  // From the earlier scripts.
  var $ = App.$, S = App.state, client = App.client, on = App.on, paintAvatar = App.paintAvatar,
    prevent = App.prevent, setText = App.setText, show = App.show, thread = App.thread,
    toggleClass = App.toggleClass, visible = App.visible, addMessage = App.addMessage,
    confirmPending = App.confirmPending, loadHistory = App.loadHistory, markRead = App.markRead,
    onMessage = App.onMessage, onReceipt = App.onReceipt, rebuildMessage = App.rebuildMessage,
    renderThread = App.renderThread, touchConversation = App.touchConversation, union = App.union,
    updateMeta = App.updateMeta, closeConversation = App.closeConversation, mergeConv = App.mergeConv,
    onConversation = App.onConversation, onPresence = App.onPresence, onTyping = App.onTyping,
    openConversation = App.openConversation, refreshLists = App.refreshLists, refreshSoon = App.refreshSoon,
    renderContacts = App.renderContacts, renderConvs = App.renderConvs, renderHeader = App.renderHeader,
    sideError = App.sideError, startChatWith = App.startChatWith, clear = App.clear;

  /** Show "Connecting…" only when it lasts: a normal reconnect takes well under this. */
  var CONN_NOTICE_DELAY_MS = 1500;
  /** Scroll distance from the top that loads earlier history. */
  var HISTORY_EDGE_PX = 120;

  // ---- Sending ------------------------------------------------------------------------------

  function sendText() {
    var input = $('message-input'), text = input.value.replace(/^\s+|\s+$/g, ''), mode = compose, id = S.current;
    if (!text || !S.current) { return; }
    input.value = '';
    autoGrow();
    composeMode(null);
    if (mode && mode.edit) {
      client.editMessage(id, mode.edit.id, text, function (err, message) {
        if (err) { return setText($('history-status'), 'Could not edit: ' + err.message); }
        App.onMessageChanged({ message: message });
      });
      return;
    }
    addLocal(client.send(S.current, text, mode && mode.reply ? { reply_to: mode.reply } : null));
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


  // ---- Reply and edit: the composer's mode --------------------------------------------------

  /** null, {reply: message} or {edit: message}. */
  var compose = null;

  function composeMode(mode) {
    compose = mode;
    show($('compose-bar'), !!mode);
    show($('react-bar'), false);
    if (!mode) { return; }
    var m = mode.reply || mode.edit;
    setText($('compose-what'), mode.edit ? 'Editing your message' : 'Replying to ' + (m.from === S.me ? 'yourself' : App.displayName(m.from)) + ': ' + String(m.text || (m.attachment ? 'a file' : '')).slice(0, 80));
    if (mode.edit) { $('message-input').value = m.text || ''; autoGrow(); }
    try { $('message-input').focus(); } catch (e) { /* old IE */ }
  }

  var REACTIONS = ['\ud83d\udc4d', '\u2764\ufe0f', '\ud83d\ude02', '\ud83d\ude2e', '\ud83d\ude22', '\ud83c\udf89'];

  function pickReaction(m) {
    var bar = $('react-bar'), i, b;
    clear(bar);
    for (i = 0; i < REACTIONS.length; i++) {
      b = App.el('button', 'reaction', REACTIONS[i]);
      b.type = 'button';
      b.setAttribute('data-emoji', REACTIONS[i]);
      b.setAttribute('aria-label', 'React ' + REACTIONS[i]);
      bar.appendChild(b);
    }
    bar.setAttribute('data-mid', m.id);
    show(bar, true);
  }

  function toggleReaction(m, emoji) {
    var mine = false, i, r = m.reactions || [];
    for (i = 0; i < r.length; i++) { if (r[i].emoji === emoji && App.indexOf(r[i].users || [], S.me) !== -1) { mine = true; } }
    client[mine ? 'unreact' : 'react'](m.conversation, m.id, emoji, function (err, message) {
      if (err) { return setText($('history-status'), 'Could not react: ' + err.message); }
      App.onMessageChanged({ message: message });
    });
  }

  function onMessageAction(e) {
    var target = e.target || e.srcElement, act = closestData(target, 'data-act', this), mid = closestData(target, 'data-mid', this), m;
    if (!act || !mid || !S.current) { return; }
    m = thread(S.current).byId[mid];
    if (!m) { return; }
    if (act === 'reply') { composeMode({ reply: m }); }
    else if (act === 'edit') { composeMode({ edit: m }); }
    else if (act === 'react') { pickReaction(m); }
    else if (act === 'toggle-reaction') { toggleReaction(m, closestData(target, 'data-emoji', this)); }
    else if (act === 'delete') {
      if (window.confirm && !window.confirm('Delete this message for everyone?')) { return; }
      client.deleteMessage(m.conversation, m.id, function (err, message) {
        if (err) { return setText($('history-status'), 'Could not delete: ' + err.message); }
        App.onMessageChanged({ message: message });
      });
    }
  }

  // ---- Group management ---------------------------------------------------------------------

  function renderGroupPanel(c, manager) {
    var owner = c.owner === S.me;
    show($('rename-form'), manager);
    show($('who-row'), owner);
    show($('transfer-form'), owner);
    show($('invite-row'), manager || c.who_can_add === 'members');
    $('who-can-add').value = c.who_can_add || 'admins';
  }

  function groupCall(fn) {
    var id = S.current;
    setText($('group-error'), '');
    fn(id, function (err, conv) {
      if (err) { return setText($('group-error'), err.message); }
      if (conv && conv.id) { S.convs[conv.id] = mergeConv(S.convs[conv.id], conv); renderHeader(); renderConvs(); }
      refreshSoon();
    });
  }

  // ---- Notifications and the title ----------------------------------------------------------

  function canNotify() { return typeof window.Notification === 'function'; }

  function renderNotifyBar() { show($('notify-bar'), canNotify() && window.Notification.permission === 'default'); }

  /** A message from someone else while this tab is hidden: a desktop notification (not for muted chats). */
  function notifyMessage(m) {
    var c = S.convs[m.conversation], n;
    if (!canNotify() || window.Notification.permission !== 'granted' || m.from === S.me || visible() || (c && c.muted)) { return; }
    try {
      // One per message, however many tabs show it (the tag replaces).
      n = new window.Notification(c && c.kind === 'group' ? App.convTitle(c) + ': ' + App.displayName(m.from) : App.displayName(m.from), {
        body: m.text || (m.attachment ? 'sent a file' : ''), tag: 'parley-' + m.id
      });
      n.onclick = function () { try { window.focus(); } catch (e) { /* ignore */ } openConversation(m.conversation); n.close(); };
    } catch (e) { /* some browsers only allow notifications from a service worker */ }
  }

  // ---- Account ------------------------------------------------------------------------------

  function showAccount() {
    show($('chat-none'), false);
    show($('chat-open'), false);
    show($('join-view'), false);
    show($('account-view'), true);
    S.current = null;
    toggleClass(document.body, 'show-chat', true);
    renderConvs();
    $('display-name').value = S.names[S.me] || '';
    setText($('name-status'), '');
    setText($('password-status'), '');
    setText($('delete-status'), '');
    loadDevices();
    renderBlocks();
  }

  function closeAccount() { show($('account-view'), false); closeConversation(); }

  function loadDevices() {
    var ul = $('devices');
    client.devices(function (err, devices) {
      var i, d, li, b, seen;
      clear(ul);
      if (err) { ul.appendChild(App.el('li', 'hint', err.status === 404 ? 'This server does not list devices.' : err.message)); return; }
      for (i = 0; i < devices.length; i++) {
        d = devices[i];
        li = App.el('li', 'device');
        seen = App.parseTime(d.last_used_at);
        li.appendChild(App.el('span', 'device-name', (d.name || 'device') + (d.current ? ' (this device)' : '')));
        li.appendChild(App.el('span', 'hint', (d.address ? d.address + ', ' : '') + (seen ? 'last used ' + App.dayLabel(seen).toLowerCase() + ' ' + App.clock(seen) : '')));
        if (!d.current) {
          b = App.el('button', 'link', 'Revoke');
          b.type = 'button';
          b.setAttribute('data-device', d.id);
          b.setAttribute('aria-label', 'Revoke ' + (d.name || 'device'));
          li.appendChild(b);
        }
        ul.appendChild(li);
      }
    });
  }

  function renderBlocks() {
    var ul = $('blocks'), k, li, b, any = false;
    clear(ul);
    for (k in S.blocks) {
      if (!Object.prototype.hasOwnProperty.call(S.blocks, k)) { continue; }
      any = true;
      li = App.el('li', 'device');
      li.appendChild(App.el('span', 'device-name', k));
      b = App.el('button', 'link', 'Unblock');
      b.type = 'button';
      b.setAttribute('data-unblock', k);
      b.setAttribute('aria-label', 'Unblock ' + k);
      li.appendChild(b);
      ul.appendChild(li);
    }
    if (!any) { ul.appendChild(App.el('li', 'hint', 'Nobody.')); }
  }

  function setBlocked(name, yes) {
    client[yes ? 'block' : 'unblock'](name, function (err) {
      if (err) { return setText($('history-status'), err.message); }
      if (yes) { S.blocks[name] = true; } else { delete S.blocks[name]; }
      renderHeader();
      App.renderContacts();
      renderBlocks();
    });
  }

  // ---- Joining by invite link (/join/<code>) ------------------------------------------------

  function inviteCode() {
    var m = /\/join\/([A-Za-z0-9_-]+)/.exec(window.location.pathname || '') || /[#&]join=([A-Za-z0-9_-]+)/.exec(window.location.hash || '');
    return m ? m[1] : null;
  }

  function leaveJoinPage() {
    if (window.history && window.history.replaceState && /\/join\//.test(window.location.pathname)) { window.history.replaceState(null, '', '/'); }
  }

  function showJoin(code) {
    show($('chat-none'), false);
    show($('chat-open'), false);
    show($('join-view'), true);
    show($('join-button'), false);
    setText($('join-text'), 'Looking up the invitation…');
    client.invite(code, function (err, inv) {
      if (err) { return setText($('join-text'), err.code === 'invite_gone' || err.status === 404 || err.status === 410 ? 'This invitation has expired or was revoked.' : 'Could not open the invitation: ' + err.message); }
      setText($('join-text'), 'Join "' + (inv.title || 'group') + '" (' + inv.members + ' members)?');
      show($('join-button'), true);
      $('join-button').setAttribute('data-code', code);
    });
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
    S.names = {};
    S.blocks = {};
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
    renderNotifyBar();
    client.me(function (err, user) {
      if (err || !user || !user.display_name) { return; }
      S.names[user.name] = user.display_name;
      setText($('me-name'), App.displayName(S.me));
    });
    if (inviteCode()) { showJoin(inviteCode()); }
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
    on($('messages'), 'click', onMessageAction);
    on($('react-bar'), 'click', function (e) {
      var emoji = closestData(e.target || e.srcElement, 'data-emoji', this), m = S.current && thread(S.current).byId[this.getAttribute('data-mid')];
      show(this, false);
      if (emoji && m) { toggleReaction(m, emoji); }
    });
    on($('compose-cancel'), 'click', function () { if (compose && compose.edit) { $('message-input').value = ''; } composeMode(null); });
    on($('search-button'), 'click', function () {
      var open = $('search-form').hasAttribute('hidden');
      show($('search-form'), open);
      this.setAttribute('aria-expanded', open ? 'true' : 'false');
      if (open) { $('search-input').focus(); } else { App.resetSearch(); }
    });
    on($('search-close'), 'click', function () { show($('search-form'), false); $('search-button').setAttribute('aria-expanded', 'false'); App.resetSearch(); });
    on($('search-form'), 'submit', function (e) { prevent(e); App.search($('search-input').value, false); });
    on($('search-more'), 'click', function () { App.search($('search-input').value, true); });
    on($('search-results'), 'click', function (e) { var mid = closestData(e.target || e.srcElement, 'data-mid', this); if (mid) { App.reveal(mid); } });
    on($('mute-button'), 'click', function () {
      var c = S.convs[S.current], id = S.current, muted = !(c && c.muted);
      if (!c) { return; }
      client[muted ? 'mute' : 'unmute'](id, function (err) {
        if (err) { return setText($('history-status'), err.message); }
        if (S.convs[id]) { S.convs[id].muted = muted; }
        renderHeader();
        renderConvs();
      });
    });
    on($('block-button'), 'click', function () {
      var c = S.convs[S.current], name = c && App.otherMembers(c)[0];
      if (name) { setBlocked(name, !S.blocks[name]); }
    });
    on($('blocks'), 'click', function (e) { var name = closestData(e.target || e.srcElement, 'data-unblock', this); if (name) { setBlocked(name, false); } });
    on($('group-button'), 'click', function () {
      var open = $('group-panel').hasAttribute('hidden'), c = S.convs[S.current];
      show($('group-panel'), open);
      this.setAttribute('aria-expanded', open ? 'true' : 'false');
      if (open && c) { $('rename-title').value = c.title || ''; setText($('group-error'), ''); }
    });
    on($('rename-form'), 'submit', function (e) {
      var title = $('rename-title').value.replace(/^\s+|\s+$/g, '');
      prevent(e);
      if (title) { groupCall(function (id, cb) { client.settings(id, { title: title }, cb); }); }
    });
    on($('who-can-add'), 'change', function () { var v = this.value; groupCall(function (id, cb) { client.settings(id, { who_can_add: v }, cb); }); });
    on($('transfer-form'), 'submit', function (e) {
      var name = $('transfer-name').value.replace(/^\s+|\s+$/g, '').toLowerCase();
      prevent(e);
      if (name) { groupCall(function (id, cb) { client.transfer(id, name, function (err) { if (!err) { $('transfer-name').value = ''; } cb(err); }); }); }
    });
    on($('invite-button'), 'click', function () {
      var id = S.current;
      client.createInvite(id, function (err, inv) {
        if (err) { return setText($('group-error'), err.message); }
        var url = /^https?:/.test(inv.url) ? inv.url : window.location.protocol + '//' + window.location.host + inv.url;
        $('invite-url').value = url;
        show($('invite-url'), true);
        show($('invite-copy'), true);
      });
    });
    on($('invite-copy'), 'click', function () {
      var input = $('invite-url'), b = this;
      function copied() { setText(b, 'Copied'); setTimeout(function () { setText(b, 'Copy link'); }, 1500); }
      if (window.navigator.clipboard && window.navigator.clipboard.writeText) {
        window.navigator.clipboard.writeText(input.value).then(copied, function () { input.select(); });
      } else {
        input.select();
        try { if (document.execCommand('copy')) { copied(); } } catch (err) { /* select it for the user to copy */ }
      }
    });
    on($('leave-button'), 'click', function () {
      var id = S.current;
      if (window.confirm && !window.confirm('Leave this group?')) { return; }
      client.leave(id, function (err) {
        if (err) { return setText($('group-error'), err.message); }
        delete S.convs[id];
        closeConversation();
        refreshSoon();
      });
    });
    on($('join-button'), 'click', function () {
      client.joinInvite(this.getAttribute('data-code'), function (err, conv) {
        if (err) { return setText($('join-text'), err.code === 'invite_gone' ? 'This invitation has expired or was revoked.' : 'Could not join: ' + err.message); }
        leaveJoinPage();
        show($('join-view'), false);
        S.convs[conv.id] = mergeConv(S.convs[conv.id], conv);
        openConversation(conv.id);
        refreshSoon();
      });
    });
    on($('join-cancel'), 'click', function () { leaveJoinPage(); show($('join-view'), false); closeConversation(); });
    on($('notify-button'), 'click', function () {
      // Asked on a click: browsers refuse (or hide) a permission prompt that no gesture asked for.
      var r = canNotify() && window.Notification.requestPermission(function () { renderNotifyBar(); });
      if (r && r.then) { r.then(renderNotifyBar, renderNotifyBar); }
    });
    on($('account-button'), 'click', showAccount);
    on($('account-close'), 'click', closeAccount);
    on($('name-form'), 'submit', function (e) {
      prevent(e);
      client.setDisplayName($('display-name').value.replace(/^\s+|\s+$/g, ''), function (err, user) {
        if (err) { return setText($('name-status'), err.message); }
        App.onProfile({ user: S.me, display_name: user && user.display_name });
        setText($('name-status'), 'Saved.');
      });
    });
    on($('password-form'), 'submit', function (e) {
      var pw = $('pw-new').value;
      prevent(e);
      if (pw.length < 8) { return setText($('password-status'), 'Choose a password of at least 8 characters.'); }
      client.changePassword($('pw-current').value, pw, function (err) {
        if (err) { return setText($('password-status'), err.status === 401 ? 'The current password is wrong.' : err.message); }
        $('pw-current').value = $('pw-new').value = '';
        setText($('password-status'), 'Password changed. Your other devices were logged out.');
        loadDevices();
      });
    });
    on($('devices'), 'click', function (e) {
      var id = closestData(e.target || e.srcElement, 'data-device', this);
      if (id) { client.revokeDevice(id, function () { loadDevices(); }); }
    });
    on($('delete-form'), 'submit', function (e) {
      var keep = document.getElementsByName('keep'), messages = 'keep', i;
      prevent(e);
      for (i = 0; i < keep.length; i++) { if (keep[i].checked) { messages = keep[i].value; } }
      if (window.confirm && !window.confirm('Delete your account? This cannot be undone.')) { return; }
      client.deleteAccount($('delete-password').value, messages, function (err) {
        if (err) { return setText($('delete-status'), err.status === 401 || err.status === 403 ? 'The password is wrong.' : err.message); }
        $('delete-password').value = '';
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
    client.on('message', notifyMessage);
    client.on('message_changed', App.onMessageChanged);
    client.on('profile', App.onProfile);
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
      show($('account-view'), false);
      showLogin(info && info.reason === 'unauthorized' ? 'Your session ended; please log in again.' : info && info.reason === 'deleted' ? 'Your account was deleted.' : '');
    });
  }

  App.composeMode = composeMode;
  App.renderGroupPanel = renderGroupPanel;

  wire();
  if (client.loggedIn()) { showChat(); } else { showLogin(); }
}(window, document, window.parleyApp));
