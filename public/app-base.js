/*
 * app-base.js: the page's shared ground: DOM and time helpers, the state S and thread bookkeeping.
 * Plain ES5, one of the page's ordered scripts (index.html: parley.js, app-base.js, app-thread.js,
 * app-lists.js, app.js); they share window.parleyApp. No build step.
 */
(function (window, document) {
  'use strict';

  var Parley = window.Parley;
  var client = new Parley.Client({ base: '', shareTabs: true });

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
    names: {},        // user name → display name (when they set one)
    blocks: {},       // names I block → true
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
    return displayName(others[0]) || c.title || 'Chat';
  }

  /** How a user shows: their display name when they set one, else their name. */
  function displayName(name) { return (name && S.names[name]) || name || ''; }

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

  // The page's namespace (tests and embedders read client and state; the later scripts the rest).
  var App = window.parleyApp = { client: client, state: S };

  App.$ = $;
  App.clear = clear;
  App.clock = clock;
  App.compareMessages = compareMessages;
  App.convTitle = convTitle;
  App.dayKey = dayKey;
  App.dayLabel = dayLabel;
  App.displayName = displayName;
  App.el = el;
  App.hueOf = hueOf;
  App.icon = icon;
  App.lastSeenText = lastSeenText;
  App.on = on;
  App.otherMembers = otherMembers;
  App.paintAvatar = paintAvatar;
  App.parseTime = parseTime;
  App.prevent = prevent;
  App.setText = setText;
  App.shortTime = shortTime;
  App.show = show;
  App.sizeText = sizeText;
  App.thread = thread;
  App.toggleClass = toggleClass;
  App.visible = visible;
}(window, document));
