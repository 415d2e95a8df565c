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
    sideError = App.sideError, startChatWith = App.startChatWith;

  /** Show "Connecting…" only when it lasts: a normal reconnect takes well under this. */
  var CONN_NOTICE_DELAY_MS = 1500;
  /** Scroll distance from the top that loads earlier history. */
  var HISTORY_EDGE_PX = 120;

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
}(window, document, window.parleyApp));
