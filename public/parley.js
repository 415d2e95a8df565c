/*
 * parley.js: a small client for the Parley JSON API, for the page in this directory and for
 * anyone who wants to embed Parley. Plain ES5 and XMLHttpRequest: no modules, no fetch, no
 * Promise, so it runs in old browsers and behind proxies that only pass plain HTTP.
 * Reference: docs/client.md.
 *
 *   var client = new Parley.Client({ base: '' });
 *   client.login('alice', 'secret-pass', function (err, user) { ... });
 *   client.on('message', function (message) { ... });
 *   client.start();
 *   client.send(conversationId, 'hello');
 */
(function (root) {
  'use strict';

  // ---- Timing constants -------------------------------------------------------------------

  /** Seconds a poll asks the server to hold it: the server's maximum (25 s keeps a byte flowing
   *  inside Heroku's and most proxies' 30 s idle limits). Lowered at run time when a proxy cuts
   *  held requests sooner (see adaptWait). */
  var MAX_WAIT = 25;
  /** Never hold for less than this: below it, long-poll degenerates into busy polling. */
  var MIN_WAIT = 5;
  /** Extra time the client grants a held request beyond `wait` before giving up on it: a
   *  buffering proxy and a busy server can each add a few seconds. */
  var POLL_GRACE_MS = 10000;
  /** Ordinary API calls: long enough for a slow mobile link, short enough to retry soon. */
  var REQUEST_TIMEOUT_MS = 30000;
  /** Uploads may be large on a slow link; their progress events show they are alive. */
  var UPLOAD_TIMEOUT_MS = 10 * 60 * 1000;
  /** Reconnect backoff: first retry after ~0.5 s, doubling to at most 30 s, with full jitter
   *  so thousands of clients cut off by one proxy restart do not come back in step. */
  var BACKOFF_BASE_MS = 500;
  var BACKOFF_MAX_MS = 30000;
  /** Consecutive network failures in one poll mode before trying the next mode (GET → POST →
   *  JSONP): one failure is usually the network, three in a row suggest the mode itself. */
  var MODE_SWITCH_FAILURES = 3;
  /** One "typing" notice per conversation per 3 s: the other side shows it for ~5 s. */
  var TYPING_INTERVAL_MS = 3000;
  /** A file grant lives at least an hour: fetch a new one every 20 minutes. */
  var GRANT_REFRESH_MS = 20 * 60 * 1000;
  var GRANT_RETRY_MS = 10 * 1000;
  /** Message ids remembered for de-duplication of replayed events. */
  var SEEN_LIMIT = 2000;
  /** Tabs sharing one poll (option shareTabs): the leader renews its lock this often; a lock
   *  not renewed for TAB_STALE_MS is free (the leader tab closed or froze), and a tab that takes
   *  it waits TAB_CONFIRM_MS and checks it still holds it (localStorage has no compare-and-set:
   *  of two tabs writing at once, the last write wins and the other backs off). */
  var TAB_BEAT_MS = 1000;
  var TAB_STALE_MS = 3500;
  var TAB_CONFIRM_MS = 200;

  // ---- Small helpers ----------------------------------------------------------------------

  var hasOwn = Object.prototype.hasOwnProperty;

  function now() { return new Date().getTime(); }

  function noop() {}

  /** JSON, or a minimal stand-in for browsers without it (IE7 and older have no CSP, so the
   *  parse fallback may use Function; the server only sends JSON it produced itself). */
  var JSONX = (typeof JSON !== 'undefined' && JSON.parse && JSON.stringify) ? JSON : {
    parse: function (s) { return (new Function('return (' + s + ');'))(); },
    stringify: function stringify(v) {
      var i, out, k;
      if (v === null || v === undefined) { return 'null'; }
      if (typeof v === 'number' || typeof v === 'boolean') { return isFinite(v) || typeof v === 'boolean' ? String(v) : 'null'; }
      if (typeof v === 'string') {
        return '"' + v.replace(/[\\"\u0000-\u001f\u2028\u2029]/g, function (c) {
          return '\\u' + ('0000' + c.charCodeAt(0).toString(16)).slice(-4);
        }) + '"';
      }
      if (Object.prototype.toString.call(v) === '[object Array]') {
        out = [];
        for (i = 0; i < v.length; i++) { out.push(stringify(v[i])); }
        return '[' + out.join(',') + ']';
      }
      out = [];
      for (k in v) { if (hasOwn.call(v, k) && v[k] !== undefined && typeof v[k] !== 'function') { out.push(stringify(k) + ':' + stringify(v[k])); } }
      return '{' + out.join(',') + '}';
    }
  };

  /** localStorage when it works (it throws in some private modes), else a memory map: the
   *  session then lasts as long as the page. */
  function pickStorage(candidate) {
    try {
      if (candidate) {
        candidate.setItem('parley.probe', '1');
        candidate.removeItem('parley.probe');
        return candidate;
      }
    } catch (e) { /* fall through to memory */ }
    var data = {};
    return {
      getItem: function (k) { return hasOwn.call(data, k) ? data[k] : null; },
      setItem: function (k, v) { data[k] = String(v); },
      removeItem: function (k) { delete data[k]; }
    };
  }

  function defaultStorage() {
    try { return root.localStorage; } catch (e) { return null; }
  }

  function readJSON(storage, key) {
    var raw = storage.getItem(key);
    if (!raw) { return null; }
    try { return JSONX.parse(raw); } catch (e) { return null; }
  }

  function writeJSON(storage, key, value) {
    try {
      if (value === null || value === undefined) { storage.removeItem(key); } else { storage.setItem(key, JSONX.stringify(value)); }
    } catch (e) { /* quota full: keep going in memory */ }
  }

  function encodeForm(fields) {
    var parts = [], k;
    for (k in fields) {
      if (hasOwn.call(fields, k) && fields[k] !== undefined && fields[k] !== null) {
        parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(String(fields[k])));
      }
    }
    return parts.join('&');
  }

  function addQuery(url, query) {
    var q = encodeForm(query);
    if (!q) { return url; }
    return url + (url.indexOf('?') === -1 ? '?' : '&') + q;
  }

  /** A client-side id for a message, unique enough that a retried send is recognised as the
   *  same message by the server (docs/api.md: client_id is unique per sender and conversation). */
  function makeClientId() {
    var c = root.crypto || root.msCrypto, s = '', i, a;
    if (c && c.getRandomValues) {
      a = new Uint32Array(3);
      c.getRandomValues(a);
      for (i = 0; i < a.length; i++) { s += a[i].toString(36); }
    } else {
      for (i = 0; i < 3; i++) { s += Math.floor(Math.random() * 4294967296).toString(36); }
    }
    return 'c' + now().toString(36) + s;
  }

  /** Full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff And Jitter"). */
  function backoffDelay(attempt) {
    var cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, Math.min(attempt, 16)));
    return Math.floor(cap / 2 + Math.random() * cap / 2);
  }

  function sameOrigin(base) {
    if (!base || base.charAt(0) === '/') { return true; }
    var loc = root.location;
    if (!loc) { return false; }
    var origin = loc.protocol + '//' + loc.host;
    return base.indexOf(origin) === 0 && (base.length === origin.length || base.charAt(origin.length) === '/');
  }

  function xhrSupported() { return typeof root.XMLHttpRequest !== 'undefined'; }

  function corsSupported() {
    if (!xhrSupported()) { return false; }
    try { return 'withCredentials' in new root.XMLHttpRequest(); } catch (e) { return false; }
  }

  /** An error as the callbacks see it: code and message from the server's JSON when there is
   *  one; `network` when no answer came; `http_<status>` when the answer was not ours. */
  function ParleyError(code, message, status) {
    this.name = 'ParleyError';
    this.code = code;
    this.message = message || code;
    this.status = status || 0;
  }
  ParleyError.prototype = new Error();
  ParleyError.prototype.constructor = ParleyError;

  /** Whether trying the same request again later may succeed. */
  function retryable(err) {
    return !err || err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500;
  }

  // ---- Client -----------------------------------------------------------------------------

  /**
   * A Parley client. Options:
   *  - base: URL prefix of the server ('' = this page's origin).
   *  - storage: a localStorage-like object (default localStorage, or memory when unavailable).
   *  - mode: first events mode, 'get' (default), 'post' or 'jsonp'.
   *  - shareTabs: true to share one events poll among this browser's tabs (same origin and
   *    user): one tab, elected through localStorage, polls and relays the events to the others
   *    (BroadcastChannel where there is one, else storage events). Needs a working
   *    localStorage; without one every client polls for itself.
   */
  function Client(options) {
    options = options || {};
    this.base = (options.base || '').replace(/\/+$/, '');
    this.storage = pickStorage(options.storage === undefined ? defaultStorage() : options.storage);
    this.user = null;
    this.token = null;
    this.cursor = null;
    this.connected = false;
    this.wait = MAX_WAIT;
    this._listeners = {};
    this._running = false;
    this._pollSerial = 0;
    this._pollTimer = null;
    this._pollAbort = null;
    this._failures = 0;
    this._modeFailures = 0;
    this._tokenInQuery = false;
    this._outbox = [];
    this._flushing = false;
    this._flushTimer = null;
    this._sendFailures = 0;
    this._typingAt = {};
    this._seen = {};
    this._seenOrder = [];
    this._shareTabs = !!options.shareTabs && this.storage === defaultStorage() && !!this.storage && typeof root.addEventListener === 'function';
    /** Whether this client polls (always, unless tabs share a poll and another tab leads). */
    this.leader = !this._shareTabs;
    this._tabId = makeClientId();
    this._tabTimer = null;
    this._tabConfirm = null;
    this._tabChannel = null;
    this._tabRelayN = 0;
    this.modes = this._availableModes();
    this.mode = options.mode && this._indexOfMode(options.mode) !== -1 ? options.mode : this.modes[0];
    this._restore();
  }

  Client.prototype._availableModes = function () {
    var modes = [], xhrOk = sameOrigin(this.base) ? xhrSupported() : corsSupported();
    if (xhrOk) { modes.push('get'); modes.push('post'); }
    if (typeof document !== 'undefined' && document.createElement) { modes.push('jsonp'); }
    return modes;
  };

  Client.prototype._indexOfMode = function (m) {
    for (var i = 0; i < this.modes.length; i++) { if (this.modes[i] === m) { return i; } }
    return -1;
  };

  // ---- Events (emitter) ----

  /** Listen to a client event: message, receipt, presence, typing, conversation,
   *  message_changed, profile (the server's event types), event (every server event, unknown
   *  types too), status ({connected}), sent, failed, progress, logout, leader (shareTabs: this
   *  tab now polls, or no longer). Returns the client. */
  Client.prototype.on = function (type, fn) {
    (this._listeners[type] || (this._listeners[type] = [])).push(fn);
    return this;
  };

  /** Stop listening. */
  Client.prototype.off = function (type, fn) {
    var list = this._listeners[type] || [], i;
    for (i = list.length - 1; i >= 0; i--) { if (list[i] === fn) { list.splice(i, 1); } }
    return this;
  };

  Client.prototype.emit = function (type) {
    var list = (this._listeners[type] || []).slice(), args = Array.prototype.slice.call(arguments, 1), i;
    for (i = 0; i < list.length; i++) {
      // One broken listener must not stop the events loop or the other listeners.
      try { list[i].apply(this, args); } catch (e) { if (root.console && root.console.error) { root.console.error(e); } }
    }
  };

  // ---- Persistence ----

  Client.prototype._key = function (what) { return 'parley.' + what + '.' + this.user.name; };

  Client.prototype._restore = function () {
    var s = readJSON(this.storage, 'parley.session');
    if (s && s.token && s.name) {
      this.user = { name: s.name };
      this.token = s.token;
      this.cursor = this.storage.getItem(this._key('cursor'));
      this._outbox = readJSON(this.storage, this._key('outbox')) || [];
    }
  };

  Client.prototype._saveOutbox = function () {
    var keep = [], i;
    // Files cannot be stored; text messages survive a reload and are sent afterwards.
    for (i = 0; i < this._outbox.length; i++) { if (!this._outbox[i].file) { keep.push(this._outbox[i].message); } }
    writeJSON(this.storage, this._key('outbox'), keep.length ? keep : null);
  };

  Client.prototype._setSession = function (user, token) {
    this.user = { name: user.name };
    this.token = token;
    writeJSON(this.storage, 'parley.session', { name: user.name, token: token });
    this.cursor = this.storage.getItem(this._key('cursor'));
    this._outbox = readJSON(this.storage, this._key('outbox')) || [];
  };

  Client.prototype._clearSession = function () {
    this.stop();
    if (this._flushTimer) { clearTimeout(this._flushTimer); this._flushTimer = null; }
    this.storage.removeItem('parley.session');
    this.user = null;
    this.token = null;
    this._grant = null;
    this.cursor = null;
    this._outbox = [];
  };

  /** True when a saved session (name and token) was found: the caller may start at once. */
  Client.prototype.loggedIn = function () { return !!this.token; };

  // ---- HTTP ----

  /**
   * One API call: method, path ('/api/...'), JSON body or null, callback(err, data, status).
   * Adds the token, parses JSON, turns every failure into a ParleyError. Returns an abort
   * function.
   */
  Client.prototype.request = function (method, path, body, cb, opts) {
    var self = this, xhr, done = false, timer, url = this.base + path, headers = {}, payload = null, k, inQuery, token = this.token;
    var account = path.indexOf('/api/login') === 0 || path.indexOf('/api/register') === 0;
    opts = opts || {};
    cb = cb || noop;
    inQuery = !!(token && (this._tokenInQuery || opts.tokenInQuery));
    if (inQuery) { url = addQuery(url, { access_token: token }); }
    else if (token) { headers.Authorization = 'Bearer ' + token; }
    if (opts.form) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      payload = encodeForm(body);
    } else if (opts.formData) {
      payload = body; // the browser writes the multipart boundary
    } else if (body !== null && body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSONX.stringify(body);
    }
    if (!xhrSupported()) {
      cb(new ParleyError('unsupported', 'This browser cannot make requests (no XMLHttpRequest)'));
      return noop;
    }
    xhr = new root.XMLHttpRequest();
    function finish(err, data) {
      if (done) { return; }
      done = true;
      clearTimeout(timer);
      xhr.onreadystatechange = noop;
      if (err && err.status === 401 && token && token === self.token && !account && !opts.noAuthRetry) {
        if (!inQuery) {
          // A proxy that strips the Authorization header looks like a bad token: try once with
          // the token in the query string; if that works, every later request does the same.
          // (Per request, not per client: several requests may be refused at once.)
          var retry = {}, o;
          for (o in opts) { if (hasOwn.call(opts, o)) { retry[o] = opts[o]; } }
          retry.tokenInQuery = true;
          self.request(method, path, body, function (err2, data2, status2) {
            if (!err2 && self.token === token) { self._tokenInQuery = true; }
            cb(err2, data2, status2);
          }, retry);
          return;
        }
        // Refused with the token in both places: the session is over.
        self._unauthorized();
      }
      cb(err, data, xhr.status);
    }
    xhr.open(method, url, true);
    for (k in headers) { if (hasOwn.call(headers, k)) { xhr.setRequestHeader(k, headers[k]); } }
    if (opts.onProgress && xhr.upload) {
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) { opts.onProgress(e.loaded, e.total); } };
    }
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) { return; }
      var status = xhr.status, text = xhr.responseText, data = null, parsed = false;
      if (text) {
        try { data = JSONX.parse(text); parsed = true; } catch (e) { parsed = false; }
      }
      if (status >= 200 && status < 300) {
        if (text && !parsed) { return finish(new ParleyError('bad_response', 'The answer was not JSON (a proxy in the way?)', status)); }
        return finish(null, data);
      }
      if (status === 0) { return finish(new ParleyError('network', 'No connection to the server', 0)); }
      if (parsed && data && data.error) { return finish(new ParleyError(data.error.code, data.error.message, status)); }
      finish(new ParleyError('http_' + status, 'The server answered ' + status, status));
    };
    timer = setTimeout(function () {
      try { xhr.abort(); } catch (e) { /* already done */ }
      finish(new ParleyError('network', 'The request timed out', 0));
    }, opts.timeout || REQUEST_TIMEOUT_MS);
    xhr.send(payload);
    return function abort() {
      if (done) { return; }
      done = true;
      clearTimeout(timer);
      xhr.onreadystatechange = noop;
      try { xhr.abort(); } catch (e) { /* ignore */ }
    };
  };

  Client.prototype._unauthorized = function () {
    if (!this.token) { return; }
    this._clearSession();
    this.emit('logout', { reason: 'unauthorized' });
  };

  // ---- Accounts ----

  function accountCall(path) {
    return function (name, password, cb) {
      var self = this;
      cb = cb || noop;
      this.request('POST', path, { name: name, password: password }, function (err, data) {
        if (err) { return cb(err); }
        self._setSession(data.user, data.token);
        cb(null, data.user);
      });
    };
  }

  /** Create an account and log in: cb(err, user). */
  Client.prototype.register = accountCall('/api/register');

  /** Log in: cb(err, user). The token and the events cursor are kept in storage (per user). */
  Client.prototype.login = accountCall('/api/login');

  /** Log out: the token stops working; cb(err). The local session is dropped even if offline. */
  Client.prototype.logout = function (cb) {
    var self = this;
    cb = cb || noop;
    if (!this.token) { return cb(null); }
    this.request('POST', '/api/logout', null, function (err) {
      cb(err && err.status !== 401 ? err : null);
    }, { noAuthRetry: true });
    this._clearSession();
    self.emit('logout', { reason: 'logout' });
  };

  // ---- Reads and simple writes ----

  function enc(s) { return encodeURIComponent(s); }

  function pick(field, cb) {
    return function (err, data) { cb(err, err ? null : (data && field ? data[field] : data)); };
  }

  /** cb(err, contacts): [{name, online, last_seen, conversation}]. */
  Client.prototype.contacts = function (cb) { return this.request('GET', '/api/contacts', null, pick('contacts', cb || noop)); };

  /** cb(err, conversations): [{id, kind, title, members, unread, last_message}]. */
  Client.prototype.conversations = function (cb) { return this.request('GET', '/api/conversations', null, pick('conversations', cb || noop)); };

  /** The direct conversation with `name`, created when new: cb(err, conversation). */
  Client.prototype.openDirect = function (name, cb) { return this.request('POST', '/api/conversations', { 'with': name }, pick('conversation', cb || noop)); };

  /** A new group: cb(err, conversation). */
  Client.prototype.createGroup = function (title, members, cb) { return this.request('POST', '/api/conversations', { title: title, members: members }, pick('conversation', cb || noop)); };

  /** Add `name` to a group: cb(err). */
  /** Consent to a conversation someone else opened or added me to: they may now see my presence and what I read. */
  Client.prototype.accept = function (conversationId, cb) { return this.request('POST', '/api/conversations/' + enc(conversationId) + '/accept', {}, cb || noop); };
  /** Decline it: I leave it and hear nothing more from it. */
  Client.prototype.decline = function (conversationId, cb) { return this.request('POST', '/api/conversations/' + enc(conversationId) + '/decline', {}, cb || noop); };
  Client.prototype.addMember = function (conversationId, name, cb) { return this.request('POST', '/api/conversations/' + enc(conversationId) + '/members', { name: name }, cb || noop); };

  /** Remove `name` from a group: cb(err). */
  Client.prototype.removeMember = function (conversationId, name, cb) { return this.request('DELETE', '/api/conversations/' + enc(conversationId) + '/members/' + enc(name), null, cb || noop); };

  /** History, oldest first: opts {before: seq, limit}; cb(err, messages). */
  Client.prototype.messages = function (conversationId, opts, cb) {
    opts = opts || {};
    return this.request('GET', addQuery('/api/conversations/' + enc(conversationId) + '/messages', { before: opts.before, limit: opts.limit }), null, pick('messages', cb || noop));
  };

  /** Search a conversation's messages for `q` (case-insensitive, newest first): opts {limit,
   *  before}; cb(err, {messages, next}) — pass `next` as `before` to look further back. */
  Client.prototype.search = function (conversationId, q, opts, cb) {
    opts = opts || {};
    return this.request('GET', addQuery('/api/conversations/' + enc(conversationId) + '/search', { q: q, limit: opts.limit, before: opts.before }), null, cb || noop);
  };

  function convPath(id, rest) { return '/api/conversations/' + enc(id) + (rest || ''); }
  function msgPath(id, mid, rest) { return convPath(id, '/messages/' + enc(mid) + (rest || '')); }

  /** Edit my message: cb(err, message). */
  Client.prototype.editMessage = function (conversationId, messageId, text, cb) { return this.request('POST', msgPath(conversationId, messageId, '/edit'), { text: text }, pick('message', cb || noop)); };
  /** Delete a message for everyone (mine, or as a group's owner/admin): cb(err, tombstone). */
  Client.prototype.deleteMessage = function (conversationId, messageId, cb) { return this.request('POST', msgPath(conversationId, messageId, '/delete'), {}, pick('message', cb || noop)); };
  /** Earlier texts of an edited message: cb(err, [{text, edited_at}]). */
  Client.prototype.edits = function (conversationId, messageId, cb) { return this.request('GET', msgPath(conversationId, messageId, '/edits'), null, pick('edits', cb || noop)); };
  /** Add / remove one of my reactions: cb(err, message). */
  Client.prototype.react = function (conversationId, messageId, emoji, cb) { return this.request('POST', msgPath(conversationId, messageId, '/reactions'), { emoji: emoji }, pick('message', cb || noop)); };
  Client.prototype.unreact = function (conversationId, messageId, emoji, cb) { return this.request('POST', msgPath(conversationId, messageId, '/reactions/remove'), { emoji: emoji }, pick('message', cb || noop)); };

  /** Group settings: fields {title, history, who_can_add}; cb(err, conversation). */
  Client.prototype.settings = function (conversationId, fields, cb) { return this.request('POST', convPath(conversationId, '/settings'), fields, pick('conversation', cb || noop)); };
  /** Leave a group: cb(err). */
  Client.prototype.leave = function (conversationId, cb) { return this.request('POST', convPath(conversationId, '/leave'), {}, cb || noop); };
  /** Pass a group's ownership to a member: cb(err). */
  Client.prototype.transfer = function (conversationId, name, cb) { return this.request('POST', convPath(conversationId, '/owner'), { name: name }, cb || noop); };
  /** A new invite link for a group: cb(err, {code, url, expires_at, created_by}). */
  Client.prototype.createInvite = function (conversationId, cb) { return this.request('POST', convPath(conversationId, '/invites'), {}, pick('invite', cb || noop)); };
  /** What an invite code leads to: cb(err, {title, members, expires_at}). */
  Client.prototype.invite = function (code, cb) { return this.request('GET', '/api/invites/' + enc(code), null, pick('invite', cb || noop)); };
  /** Join a group by invite code: cb(err, conversation). */
  Client.prototype.joinInvite = function (code, cb) { return this.request('POST', '/api/invites/' + enc(code) + '/join', {}, pick('conversation', cb || noop)); };
  /** Mute / unmute a conversation (for me): cb(err). */
  Client.prototype.mute = function (conversationId, cb) { return this.request('POST', convPath(conversationId, '/mute'), {}, cb || noop); };
  Client.prototype.unmute = function (conversationId, cb) { return this.request('POST', convPath(conversationId, '/unmute'), {}, cb || noop); };

  /** My account: cb(err, {name, display_name}). */
  Client.prototype.me = function (cb) { return this.request('GET', '/api/me', null, pick('user', cb || noop)); };
  /** Set my display name ('' clears it): cb(err, user). */
  Client.prototype.setDisplayName = function (name, cb) { return this.request('POST', '/api/me', { display_name: name }, pick('user', cb || noop)); };
  /** Change my password (my other devices are logged out): cb(err). */
  Client.prototype.changePassword = function (current, password, cb) { return this.request('POST', '/api/me/password', { current: current, password: password }, cb || noop); };
  /** My devices: cb(err, [{id, name, created_at, last_used_at, address, current}]). */
  Client.prototype.devices = function (cb) { return this.request('GET', '/api/me/devices', null, pick('devices', cb || noop)); };
  /** Log a device out: cb(err). */
  Client.prototype.revokeDevice = function (id, cb) { return this.request('POST', '/api/me/devices/' + enc(id) + '/revoke', {}, cb || noop); };
  /** Delete my account: messages 'keep' or 'remove'; cb(err). Logs out here on success. */
  Client.prototype.deleteAccount = function (password, messages, cb) {
    var self = this;
    cb = cb || noop;
    return this.request('POST', '/api/me/delete', { password: password, messages: messages }, function (err) {
      if (err) { return cb(err); }
      self._clearSession();
      self.emit('logout', { reason: 'deleted' });
      cb(null);
    });
  };
  /** Who I block: cb(err, [names]). */
  Client.prototype.blocks = function (cb) { return this.request('GET', '/api/blocks', null, pick('blocks', cb || noop)); };
  Client.prototype.block = function (name, cb) { return this.request('POST', '/api/blocks', { name: name }, cb || noop); };
  Client.prototype.unblock = function (name, cb) { return this.request('DELETE', '/api/blocks/' + enc(name), null, cb || noop); };

  /** Tell the server I have read up to `seq` (its senders see "read"): cb(err). */
  Client.prototype.markRead = function (conversationId, seq, cb) { return this.request('POST', '/api/conversations/' + enc(conversationId) + '/read', { up_to: seq }, cb || noop); };

  /** Say "I am typing" (throttled to one request per conversation every few seconds). */
  Client.prototype.typing = function (conversationId) {
    var t = now();
    if (this._typingAt[conversationId] && t - this._typingAt[conversationId] < TYPING_INTERVAL_MS) { return; }
    this._typingAt[conversationId] = t;
    this.request('POST', '/api/conversations/' + enc(conversationId) + '/typing', null, noop);
  };

  /** A file URL (attachment.url or thumbnail_url) that works in <img src> and <a href>: those
   *  cannot send headers, so a short-lived file grant rides in the query (GET /api/files/grant;
   *  it opens files only, for about an hour), never the token. Only a server without grants
   *  gets access_token. */
  Client.prototype.fileUrl = function (url) {
    if (!url) { return url; }
    var full = /^[a-z][a-z0-9+.-]*:/i.test(url) ? url : this.base + url;
    if (this._grant) { return addQuery(full, { grant: this._grant }); }
    if (this._grant === false && this.token) { return addQuery(full, { access_token: this.token }); }
    return full;
  };

  /** Fetch a file grant, and again before it runs out; cb() once there is one (or none to be had). */
  Client.prototype._refreshGrant = function (cb) {
    var self = this;
    cb = cb || noop;
    if (this._grantTimer) { clearTimeout(this._grantTimer); this._grantTimer = null; }
    if (!this.token) { cb(); return; }
    this.request('GET', '/api/files/grant', null, function (err, data, status) {
      var again = GRANT_REFRESH_MS;
      if (!err && data && data.grant) { self._grant = data.grant; }
      else if (status === 404) { self._grant = false; } // an older server: tokens in file URLs
      else { again = GRANT_RETRY_MS; }
      // Every 20 minutes: a grant lives at least an hour, so links already shown keep working.
      if (self._running) { self._grantTimer = setTimeout(function () { self._refreshGrant(); }, again); }
      cb();
    });
  };

  // ---- Sending: the outbox ----

  /**
   * Send a text message. Returns the pending message at once ({client_id, conversation, from,
   * text, sent_at, status: 'pending'}); the outbox sends it (and keeps retrying with the same
   * client_id while offline, across reloads); 'sent' (pending, message) or 'failed' (pending,
   * err) follow; cb(err, message) too. opts (optional, before cb): {reply_to: message}, the
   * message this one answers (its id is sent; the pending copy quotes it).
   */
  Client.prototype.send = function (conversationId, text, opts, cb) {
    if (typeof opts === 'function') { cb = opts; opts = null; }
    var pending = this._pending(conversationId, text), r = opts && opts.reply_to;
    if (r && r.id) { pending.reply_to = { id: r.id, from: r.from, text: String(r.text || '').slice(0, 200) }; }
    // The message ends the typing; the next keystroke may announce typing again at once.
    delete this._typingAt[conversationId];
    this._outbox.push({ message: pending, cb: cb || null });
    this._saveOutbox();
    this._flush();
    return pending;
  };

  /**
   * Send a file (a File or Blob from an <input type=file>), with optional opts.text. Returns the
   * pending message (its `file` is the File, for a local preview); 'progress' (pending, loaded,
   * total) reports the upload. Needs FormData: check Parley.canUpload first.
   */
  Client.prototype.upload = function (conversationId, file, opts, cb) {
    opts = opts || {};
    var pending = this._pending(conversationId, opts.text || '');
    pending.file = file;
    pending.attachment = { name: file.name || 'file', type: file.type || '', size: file.size || 0 };
    this._outbox.push({ message: pending, file: file, cb: cb || null });
    this._flush();
    return pending;
  };

  Client.prototype._pending = function (conversationId, text) {
    return {
      client_id: makeClientId(),
      conversation: conversationId,
      from: this.user ? this.user.name : null,
      text: text,
      sent_at: new Date().toISOString ? new Date().toISOString() : String(new Date()),
      status: 'pending'
    };
  };

  /** Messages waiting in the outbox (pending copies), for showing them after a reload. */
  Client.prototype.pending = function () {
    var out = [], i;
    for (i = 0; i < this._outbox.length; i++) { out.push(this._outbox[i].message); }
    return out;
  };

  /** Try the outbox now (after the network came back, say) instead of at the next backoff. */
  Client.prototype.retryNow = function () {
    if (this._flushTimer) { clearTimeout(this._flushTimer); this._flushTimer = null; }
    this._sendFailures = 0;
    this._flush();
  };

  Client.prototype._flush = function () {
    var self = this, item, m, path, form;
    if (this._flushing || this._flushTimer || !this._outbox.length || !this.token) { return; }
    this._flushing = true;
    // One at a time, in order: the conversation shows messages in the order they were written.
    item = this._outbox[0];
    m = item.message;
    path = '/api/conversations/' + enc(m.conversation);
    function after(err, data) {
      self._flushing = false;
      if (!self.token || self._outbox[0] !== item) { return; }
      if (err && retryable(err)) {
        self._sendFailures++;
        self._flushTimer = setTimeout(function () { self._flushTimer = null; self._flush(); }, backoffDelay(self._sendFailures));
        return;
      }
      self._sendFailures = 0;
      self._outbox.shift();
      self._saveOutbox();
      if (err) {
        m.status = 'failed';
        self.emit('failed', m, err);
      } else {
        self._remember(data.message.id);
        self.emit('sent', m, data.message);
      }
      if (item.cb) { item.cb(err, err ? null : data.message); }
      self._flush();
    }
    if (item.file) {
      form = new root.FormData();
      form.append('client_id', m.client_id);
      if (m.text) { form.append('text', m.text); }
      form.append('file', item.file, m.attachment.name);
      this.request('POST', path + '/files', form, after, {
        formData: true,
        timeout: UPLOAD_TIMEOUT_MS,
        onProgress: function (loaded, total) { self.emit('progress', m, loaded, total); }
      });
    } else {
      this.request('POST', path + '/messages', { text: m.text, client_id: m.client_id, reply_to: m.reply_to ? m.reply_to.id : undefined }, after);
    }
  };

  // ---- Events loop ----

  /** Start the events loop (long-poll from the saved cursor). Events arrive through on(). */
  Client.prototype.start = function () {
    var self = this;
    if (this._running || !this.token) { return; }
    this._running = true;
    this._failures = 0;
    // The grant first: the first events render pictures, whose URLs need it.
    this._refreshGrant(function () {
      if (!self._running) { return; }
      if (self._shareTabs) { self._tabsStart(); } else { self._poll(); }
      self._flush();
    });
  };

  /** Stop the events loop; the cursor stays saved for the next start. */
  Client.prototype.stop = function () {
    if (this._shareTabs) { this._tabsStop(); }
    this._running = false;
    if (this._grantTimer) { clearTimeout(this._grantTimer); this._grantTimer = null; }
    this._pollSerial++;
    if (this._pollTimer) { clearTimeout(this._pollTimer); this._pollTimer = null; }
    if (this._pollAbort) { this._pollAbort(); this._pollAbort = null; }
    this._setConnected(false);
  };

  /** Poll again now (after the browser says it is back online, say). */
  Client.prototype.reconnect = function () {
    if (!this._running) { return; }
    this.stop();
    this.start();
  };

  Client.prototype._setConnected = function (c) {
    if (this.connected === c) { return; }
    this.connected = c;
    if (this._shareTabs && this.leader) { this._tabSend({ t: 'status', connected: c }); this._tabWriteLock(); }
    this.emit('status', { connected: c, mode: this.mode });
  };

  Client.prototype._schedulePoll = function (delay) {
    var self = this;
    if (this._pollTimer) { clearTimeout(this._pollTimer); }
    this._pollTimer = setTimeout(function () { self._pollTimer = null; self._poll(); }, delay);
  };

  Client.prototype._poll = function () {
    var self = this, serial = ++this._pollSerial, started = now(), fields, wait = this.wait;
    if (!this._running || !this.token || !this.leader) { return; }
    fields = { wait: wait };
    if (this.cursor) { fields.since = this.cursor; }
    function done(err, data) {
      if (serial !== self._pollSerial || !self._running) { return; }
      self._pollAbort = null;
      if (err) { return self._pollFailed(err, now() - started); }
      if (!data || typeof data.cursor === 'undefined' || !data.events) {
        return self._pollFailed(new ParleyError('bad_response', 'Unexpected events answer', 200), now() - started);
      }
      self._failures = 0;
      self._modeFailures = 0;
      self._setConnected(true);
      // Relayed before the cursor is saved: a leader closing in between leaves a new leader to
      // fetch the batch again (messages are de-duplicated), never a batch the other tabs miss.
      if (self._shareTabs) { self._tabSend({ t: 'events', events: data.events, cursor: String(data.cursor) }); }
      self._deliver(data.events);
      self.cursor = String(data.cursor);
      try { self.storage.setItem(self._key('cursor'), self.cursor); } catch (e) { /* memory only */ }
      // The connection works again: anything queued goes out now rather than at its backoff.
      if (self._flushTimer) { self.retryNow(); }
      self._schedulePoll(0);
    }
    var timeout = wait * 1000 + POLL_GRACE_MS;
    if (this.mode === 'jsonp') {
      this._pollAbort = this._jsonp('/api/events', fields, done, timeout);
    } else if (this.mode === 'post') {
      this._pollAbort = this.request('POST', '/api/events', fields, done, { form: true, timeout: timeout });
    } else {
      this._pollAbort = this.request('GET', addQuery('/api/events', fields), null, done, { timeout: timeout });
    }
  };

  Client.prototype._pollFailed = function (err, elapsed) {
    var self = this;
    if (!this.token) { return; }
    if (err.status === 401) { return this._unauthorized(); }
    if (err.code === 'bad_cursor') {
      // docs/api.md: a cursor the server does not accept → poll without one.
      this.cursor = null;
      this.storage.removeItem(this._key('cursor'));
      return this._schedulePoll(0);
    }
    this._failures++;
    this._setConnected(false);
    this._adaptWait(err, elapsed);
    if (err.code === 'bad_response' || (err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429) || err.status === 501) {
      // The answer was mangled or refused: that is the mode, not the network.
      this._nextMode();
    } else if (++this._modeFailures >= MODE_SWITCH_FAILURES) {
      this._nextMode();
    }
    this._schedulePoll(backoffDelay(this._failures - 1));
    self.emit('error', err);
  };

  /** A held poll that dies without an answer after many seconds was most likely cut by a proxy
   *  with a shorter idle timeout than ours: hold for less next time. */
  Client.prototype._adaptWait = function (err, elapsed) {
    if (!(err.status === 0 || err.status === 502 || err.status === 504)) { return; }
    var heldFor = Math.floor(elapsed / 1000);
    if (heldFor >= MIN_WAIT && heldFor <= this.wait + POLL_GRACE_MS / 1000 - 1) {
      this.wait = Math.max(MIN_WAIT, Math.min(this.wait, heldFor) - 5);
    }
  };

  Client.prototype._nextMode = function () {
    var i = this._indexOfMode(this.mode);
    this._modeFailures = 0;
    if (this.modes.length < 2) { return; }
    this.mode = this.modes[(i + 1) % this.modes.length];
    this.emit('mode', this.mode);
  };


  // ---- One poll for all tabs (option shareTabs) ----

  Client.prototype._tabKey = function (what) { return 'parley.tabs.' + what + '.' + this.user.name; };

  Client.prototype._tabsStart = function () {
    var self = this, name = this.user.name;
    this.leader = false;
    if (!this._tabListening) {
      this._tabListening = true;
      root.addEventListener('storage', function (e) { self._tabStorage(e); }, false);
      // The leader hands over at once when its tab goes (else the lock goes stale in seconds);
      // a page restored from the back-forward cache joins the tabs again.
      root.addEventListener('onpagehide' in root ? 'pagehide' : 'unload', function () { self._tabsStop(); }, false);
      root.addEventListener('pageshow', function (e) { if (e && e.persisted && self._running && !self._tabTimer) { self._tabsStart(); } }, false);
    }
    if (typeof root.BroadcastChannel === 'function') {
      try {
        this._tabChannel = new root.BroadcastChannel('parley.tabs.' + name);
        this._tabChannel.onmessage = function (e) { if (self.user && self.user.name === name) { self._tabReceive(e.data); } };
      } catch (e) { this._tabChannel = null; }
    }
    this._tabTick();
    this._tabTimer = setInterval(function () { self._tabTick(); }, TAB_BEAT_MS);
  };

  Client.prototype._tabsStop = function () {
    var lock;
    if (this._tabTimer) { clearInterval(this._tabTimer); this._tabTimer = null; }
    if (this._tabConfirm) { clearTimeout(this._tabConfirm); this._tabConfirm = null; }
    if (this.leader && this.user) {
      lock = readJSON(this.storage, this._tabKey('leader'));
      if (lock && lock.id === this._tabId) { writeJSON(this.storage, this._tabKey('leader'), null); }
      this._tabSend({ t: 'bye' });
    }
    if (this._tabChannel) { try { this._tabChannel.close(); } catch (e) { /* closed */ } this._tabChannel = null; }
    this._tabResign();
  };

  Client.prototype._tabWriteLock = function () {
    writeJSON(this.storage, this._tabKey('leader'), { id: this._tabId, at: now(), connected: this.connected });
  };

  /** Once a second: the leader renews its lock; the others take a lock gone stale or free. */
  Client.prototype._tabTick = function () {
    var self = this, lock, t = now();
    if (!this._running || !this.user) { return; }
    lock = readJSON(this.storage, this._tabKey('leader'));
    if (this.leader) {
      // Another tab took over while this one was frozen or throttled: let it lead.
      if (lock && lock.id !== this._tabId && t - lock.at < TAB_STALE_MS) { return this._tabResign(); }
      return this._tabWriteLock();
    }
    if (lock && lock.id !== this._tabId && t - lock.at < TAB_STALE_MS) {
      this._setConnected(!!lock.connected);
      return;
    }
    if (this._tabConfirm) { return; }
    this._tabWriteLock();
    this._tabConfirm = setTimeout(function () {
      var l = readJSON(self.storage, self._tabKey('leader'));
      self._tabConfirm = null;
      if (self._running && !self.leader && l && l.id === self._tabId) { self._tabLead(); }
    }, TAB_CONFIRM_MS);
  };

  /** This tab leads: it polls from the cursor the last leader saved. */
  Client.prototype._tabLead = function () {
    var saved = this.storage.getItem(this._key('cursor'));
    this.leader = true;
    if (saved) { this.cursor = saved; }
    this._failures = 0;
    this._tabWriteLock();
    this.emit('leader', true);
    this._poll();
  };

  Client.prototype._tabResign = function () {
    if (!this.leader) { return; }
    this.leader = !this._shareTabs;
    this._pollSerial++;
    if (this._pollTimer) { clearTimeout(this._pollTimer); this._pollTimer = null; }
    if (this._pollAbort) { this._pollAbort(); this._pollAbort = null; }
    this.emit('leader', false);
  };

  /** To the other tabs: BroadcastChannel, else a storage key whose every change they hear. */
  Client.prototype._tabSend = function (msg) {
    msg.from = this._tabId;
    if (this._tabChannel) {
      try { this._tabChannel.postMessage(msg); return; } catch (e) { /* fall back to storage */ }
    }
    msg.n = ++this._tabRelayN;
    writeJSON(this.storage, this._tabKey('relay'), msg);
  };

  Client.prototype._tabStorage = function (e) {
    var msg;
    if (!this._running || !this.user || !e) { return; }
    if (e.key === this._tabKey('leader')) {
      // The leader left (its lock removed): take over now rather than when it would go stale.
      if (!e.newValue && !this.leader) { this._tabTick(); }
    } else if (e.key === this._tabKey('relay') && e.newValue && !this._tabChannel) {
      try { msg = JSONX.parse(e.newValue); } catch (err) { return; }
      this._tabReceive(msg);
    }
  };

  Client.prototype._tabReceive = function (msg) {
    if (!msg || msg.from === this._tabId || !this._running) { return; }
    if (msg.t === 'events' && msg.events) {
      if (this.leader) { return; }
      this._setConnected(true);
      this._deliver(msg.events);
      if (msg.cursor) { this.cursor = msg.cursor; }
    } else if (msg.t === 'status' && !this.leader) {
      this._setConnected(!!msg.connected);
    } else if (msg.t === 'bye' && !this.leader) {
      this._tabTick();
    }
  };

  var jsonpCounter = 0;
  var JSONP_STATUS = { unauthorized: 401, forbidden: 403, not_found: 404, rate_limited: 429, unavailable: 503 };

  /** JSONP for servers on another origin without CORS, or proxies that break XHR: a script
   *  tag whose answer calls back a one-off global. */
  Client.prototype._jsonp = function (path, fields, cb, timeout) {
    var name = 'ParleyJsonp' + now().toString(36) + (jsonpCounter++), script, timer, done = false, head;
    var query = {}, k;
    for (k in fields) { if (hasOwn.call(fields, k)) { query[k] = fields[k]; } }
    query.access_token = this.token;
    query.callback = name;
    function cleanup() {
      clearTimeout(timer);
      try { delete root[name]; } catch (e) { root[name] = undefined; }
      if (script && script.parentNode) { script.parentNode.removeChild(script); }
    }
    function finish(err, data) {
      if (done) { return; }
      done = true;
      // Keep a stub: a late answer must not hit an undefined function.
      cleanup();
      root[name] = noop;
      cb(err, data);
    }
    root[name] = function (data) {
      // JSONP answers every error with 200 and the error in the body: recover its status.
      if (data && data.error) { return finish(new ParleyError(data.error.code, data.error.message, JSONP_STATUS[data.error.code] || 400)); }
      finish(null, data);
    };
    script = document.createElement('script');
    script.async = true;
    script.src = addQuery(this.base + path, query);
    script.onerror = function () { finish(new ParleyError('network', 'JSONP request failed', 0)); };
    timer = setTimeout(function () { finish(new ParleyError('network', 'JSONP request timed out', 0)); }, timeout);
    head = document.getElementsByTagName('head')[0] || document.documentElement;
    head.appendChild(script);
    return function abort() { if (!done) { done = true; cleanup(); root[name] = noop; } };
  };

  Client.prototype._remember = function (id) {
    if (hasOwn.call(this._seen, id)) { return false; }
    this._seen[id] = true;
    this._seenOrder.push(id);
    if (this._seenOrder.length > SEEN_LIMIT) { delete this._seen[this._seenOrder.shift()]; }
    return true;
  };

  Client.prototype._deliver = function (events) {
    var i, ev;
    for (i = 0; i < events.length; i++) {
      ev = events[i];
      if (!ev || !ev.type) { continue; }
      // A replayed batch (cursor saved before a crash, or our own send answer arriving first)
      // must not show a message twice.
      if (ev.type === 'message' && ev.message && ev.message.id && !this._remember(ev.message.id)) { continue; }
      this.emit('event', ev);
      if (ev.type === 'message') { this.emit('message', ev.message); }
      else if (ev.type === 'receipt' || ev.type === 'presence' || ev.type === 'typing' || ev.type === 'conversation' ||
        ev.type === 'message_changed' || ev.type === 'profile') { this.emit(ev.type, ev); }
      // Other types: 'event' only (a newer server's events an older page does not know).
    }
  };

  // ---- Exports ----

  root.Parley = {
    Client: Client,
    ParleyError: ParleyError,
    /** Whether this browser can upload files (FormData with XHR). */
    canUpload: typeof root.FormData !== 'undefined' && xhrSupported(),
    JSON: JSONX,
    makeClientId: makeClientId,
    backoffDelay: backoffDelay,
    version: '0.1.0'
  };
}(typeof window !== 'undefined' ? window : this));
