/**
 * XEP-0313 Message Archive Management (v2, `urn:xmpp:mam:2`) with XEP-0059 Result Set Management,
 * over Parley's history (core/mam.ts: the JSON history's membership rule and reading, archived
 * messages included). A query to the user's own JID with a `with` field pages their direct
 * conversation with that user; a query to a room JID pages the group. Every result's id is the
 * Parley message id, the same as the live message's `<stanza-id/>` and the JSON `id`.
 */
import { AppError } from '../../core/errors.js';
import { HISTORY_MAX } from '../../core/messaging.js';
import { QUERY_DEFAULT, type HistoryQuery } from '../../core/mam.js';
import type { MessageView } from '../../core/views.js';
import { CORRECTION_NS, replyElement } from './corrections.js';
import { iqError, iqResult, send, toOwnAccount, type IqContext } from './iq-context.js';
import { NS, parseJid } from './stanzas.js';
import { child, childElements, el, textOf, type XmlElement } from './xml.js';

export const MAM_NS = 'urn:xmpp:mam:2';
export const RSM_NS = 'http://jabber.org/protocol/rsm';
const DATA_NS = 'jabber:x:data';
const FORWARD_NS = 'urn:xmpp:forward:0';

/** disco#info features of the user's account (bare JID) and of rooms: MAM v2 and RSM paging. */
export const MAM_FEATURES = [MAM_NS, RSM_NS] as const;

/** XEP-0082 date-time (what MAM's start and end carry); null when not one. */
function parseStamp(v: string): Date | null {
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/.test(v)) return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** The form's fields, by var (single values). */
function formFields(query: XmlElement): Map<string, string> | null {
  const x = child(query, 'x', DATA_NS);
  const out = new Map<string, string>();
  if (!x) return out;
  for (const f of childElements(x, 'field', DATA_NS)) {
    const name = f.attrs.var;
    if (!name) return null;
    out.set(name, textOf(child(f, 'value', DATA_NS)).trim());
  }
  return out;
}

/** A page request as parsed from the stanza; a string is the reason it is a bad request. */
export function parseQuery(query: XmlElement): { q: HistoryQuery; with?: string } | string {
  const fields = formFields(query);
  if (!fields) return 'a form field without var';
  const formType = fields.get('FORM_TYPE');
  if (formType !== undefined && formType !== MAM_NS) return 'unknown FORM_TYPE';
  const q: HistoryQuery = { max: QUERY_DEFAULT };
  for (const [name, value] of fields) {
    switch (name) {
      case 'FORM_TYPE':
        break;
      case 'with':
        break;
      case 'start':
      case 'end': {
        const d = parseStamp(value);
        if (!d) return `${name} is not a date-time`;
        q[name] = d;
        break;
      }
      case 'after-id':
        q.afterId = value;
        break;
      case 'before-id':
        q.beforeId = value;
        break;
      default:
        return `unsupported field ${name}`;
    }
  }
  const set = child(query, 'set', RSM_NS);
  if (set) {
    const max = child(set, 'max', RSM_NS);
    if (max) {
      const n = Number(textOf(max).trim());
      if (!Number.isInteger(n) || n < 0) return 'max must be a whole number';
      q.max = Math.min(n, HISTORY_MAX);
    }
    const after = child(set, 'after', RSM_NS);
    const before = child(set, 'before', RSM_NS);
    if (after) q.afterId = textOf(after).trim();
    if (before) q.beforeId = textOf(before).trim();
    if (child(set, 'index', RSM_NS)) return 'index is not supported';
  }
  if (q.afterId === '') return 'after needs an id';
  const w = fields.get('with');
  return w !== undefined ? { q, with: w } : { q };
}

function attachmentUrl(attachment: unknown): string | undefined {
  const url = typeof attachment === 'object' && attachment !== null ? (attachment as { url?: unknown }).url : undefined;
  return typeof url === 'string' ? url : undefined;
}

/**
 * One archived message as the live one looks (stanzas.ts renderEvent): same `id` attribute (own
 * messages: the client's id; else the Parley id), body (its current text once edited), OOB link,
 * reply and `<stanza-id/>`; a message deleted for everyone is a `<retracted/>` tombstone.
 */
export function archivedMessage(m: MessageView, ctx: IqContext, where: { group: true; room: string } | { group: false; peer: string }): XmlElement {
  const mine = m.from === ctx.me.name;
  const bareMe = `${ctx.me.name}@${ctx.domain}`;
  const url = attachmentUrl(m.attachment);
  return el(
    'message',
    {
      xmlns: NS.client,
      type: where.group ? 'groupchat' : 'chat',
      from: where.group ? `${where.room}/${m.from}` : `${m.from}@${ctx.domain}`,
      to: where.group ? bareMe : mine ? where.peer : bareMe,
      id: m.client_id || m.id,
    },
    // Deleted for everyone: a tombstone (XEP-0424 §5), no body
    m.deleted ? el('retracted', { xmlns: CORRECTION_NS.retract, stamp: m.edited_at ?? m.sent_at }) : el('body', {}, m.text || (url ?? '')),
    !m.deleted && url !== undefined ? el('x', { xmlns: NS.oob }, el('url', {}, url)) : null,
    m.deleted ? null : replyElement(m, { domain: ctx.domain, me: ctx.jid, myName: ctx.me.name, kindOf: () => (where.group ? 'group' : 'direct') }),
    el('stanza-id', { xmlns: NS.sid, id: m.id, by: where.group ? where.room : bareMe }),
  );
}

/** The MAM IQs: the query form (get) and queries (set), to the own account or to a room. */
export async function handleMam(st: XmlElement, ctx: IqContext): Promise<boolean> {
  const query = child(st, 'query', MAM_NS);
  if (!query || st.attrs.type === undefined) return false;
  const to = parseJid(st.attrs.to);
  const toRoom = to !== null && to.local !== '' && to.domain === `groups.${ctx.domain}` && !to.resource;
  if (!toOwnAccount(st, ctx) && !toRoom) return false;
  if (st.attrs.type === 'get') {
    // The form: which fields a query may use
    const field = (v: string, type?: string, value?: string) => el('field', { var: v, type }, value !== undefined ? el('value', {}, value) : null);
    send(ctx, iqResult(st, ctx, el('query', { xmlns: MAM_NS },
      el('x', { xmlns: DATA_NS, type: 'form' }, field('FORM_TYPE', 'hidden', MAM_NS), field('with', 'jid-single'), field('start', 'text-single'),
        field('end', 'text-single'), field('after-id', 'text-single'), field('before-id', 'text-single')))));
    return true;
  }
  const parsed = parseQuery(query);
  if (typeof parsed === 'string') {
    send(ctx, iqError(st, ctx, 'modify', 'bad-request'));
    return true;
  }
  const queryid = query.attrs.queryid;
  const archive = toRoom ? `${to.local}@${to.domain}` : `${ctx.me.name}@${ctx.domain}`;
  let conversation: string | null;
  let where: Parameters<typeof archivedMessage>[2];
  if (toRoom) {
    conversation = await ctx.roomOf(to.local);
    if (conversation === null) {
      send(ctx, iqError(st, ctx, 'cancel', 'item-not-found'));
      return true;
    }
    where = { group: true, room: ctx.roomJid(conversation) };
  } else {
    const w = parseJid(parsed.with);
    if (!w || !w.local || w.domain !== ctx.domain) {
      // The whole account's archive (no `with`, or a room as `with`) is not served: per conversation only.
      send(ctx, iqError(st, ctx, 'cancel', parsed.with === undefined ? 'feature-not-implemented' : 'item-not-found'));
      return true;
    }
    conversation = await ctx.core.historyQueries.directWith(ctx.me, w.local);
    where = { group: false, peer: `${w.local.toLowerCase()}@${ctx.domain}` };
  }
  const fin = (complete: boolean, messages: readonly MessageView[]) =>
    iqResult(st, ctx, el('fin', { xmlns: MAM_NS, complete: complete ? 'true' : undefined, queryid },
      el('set', { xmlns: RSM_NS },
        messages.length ? el('first', {}, messages[0]!.id) : null,
        messages.length ? el('last', {}, messages[messages.length - 1]!.id) : null)));
  if (conversation === null) {
    // No conversation with that user yet: an empty, complete archive.
    send(ctx, fin(true, []));
    return true;
  }
  let page;
  try {
    page = await ctx.core.historyQueries.page(ctx.me, conversation, parsed.q);
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    send(ctx, iqError(st, ctx, 'cancel', err.status === 403 ? 'forbidden' : 'item-not-found'));
    return true;
  }
  for (const m of page.messages) {
    send(ctx, el('message', { xmlns: NS.client, to: ctx.jid, from: archive },
      el('result', { xmlns: MAM_NS, queryid, id: m.id },
        el('forwarded', { xmlns: FORWARD_NS },
          el('delay', { xmlns: NS.delay, stamp: m.sent_at }),
          archivedMessage(m, ctx, where)))));
  }
  send(ctx, fin(page.complete, page.messages));
  return true;
}
