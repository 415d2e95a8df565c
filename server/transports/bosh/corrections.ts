/**
 * Issue 13 over XMPP: edits as last message corrections (XEP-0308), deletes for everyone as
 * message retractions (XEP-0424), replies (XEP-0461) and reactions (XEP-0444), both ways.
 * Incoming stanzas become commands for the core (core/changes.ts); `message_changed` events
 * become stanzas. The hooks in stanzas.ts (parse, render) and xmpp.ts (run) are one line each.
 *
 * Which message a client names: a Parley message id (every stanza-id, and the id of every
 * message from others, is one) or the id the client itself gave a message it sent (its
 * client_id). Outgoing stanzas name a message as the recipient first saw it: `client_id || id`.
 */
import type { Principal } from '../../core/accounts.js';
import type { Core } from '../../core/core.js';
import { errors } from '../../core/errors.js';
import type { MessageChangedEvent } from '../../core/events.js';
import type { MessageView } from '../../core/views.js';
import { child, childElements, el, textOf, type XmlElement } from './xml.js';

/** The namespaces of this file (literal here: stanzas.ts imports this module). */
export const CORRECTION_NS = {
  correct: 'urn:xmpp:message-correct:0',
  retract: 'urn:xmpp:message-retract:1',
  reactions: 'urn:xmpp:reactions:0',
  reply: 'urn:xmpp:reply:0',
  fallback: 'urn:xmpp:fallback:0',
  hints: 'urn:xmpp:hints',
} as const;

/** Disco features of this file, for the server's disco#info list. */
export const CORRECTION_FEATURES: readonly string[] = [CORRECTION_NS.correct, CORRECTION_NS.retract, CORRECTION_NS.reactions, CORRECTION_NS.reply];

/** Most <reaction/> elements one stanza may carry (the core allows 20 per user per message). */
const MAX_REACTION_ELEMENTS = 20;

/** Where a command goes (stanzas.ts's Target, restated to keep this file free of a cycle). */
type Target = { kind: 'user'; name: string } | { kind: 'group'; conversation: string };

/** What an incoming change stanza asks of the core. */
export type ChangeCommand =
  | { kind: 'correct'; to: Target; ref: string; text: string }
  | { kind: 'retract'; to: Target; ref: string }
  | { kind: 'react'; to: Target; ref: string; emoji: string[] };

/**
 * A message stanza that changes an earlier message, or null for any other (a send with a reply
 * is a send: see replyRef). Called by parseStanza with the stanza's resolved target.
 */
export function parseChange(st: XmlElement, to: Target): ChangeCommand | { kind: 'error'; stanza: XmlElement; condition: string; type: 'modify' } | null {
  const bad = { kind: 'error' as const, stanza: st, condition: 'bad-request', type: 'modify' as const };
  const replace = child(st, 'replace', CORRECTION_NS.correct);
  if (replace) {
    const body = child(st, 'body');
    if (!replace.attrs.id || !body) return bad;
    return { kind: 'correct', to, ref: replace.attrs.id, text: textOf(body) };
  }
  const retract = child(st, 'retract', CORRECTION_NS.retract);
  if (retract) return retract.attrs.id ? { kind: 'retract', to, ref: retract.attrs.id } : bad;
  const reactions = child(st, 'reactions', CORRECTION_NS.reactions);
  if (reactions) {
    const items = childElements(reactions, 'reaction', CORRECTION_NS.reactions);
    if (!reactions.attrs.id || items.length > MAX_REACTION_ELEMENTS) return bad;
    return { kind: 'react', to, ref: reactions.attrs.id, emoji: [...new Set(items.map((r) => textOf(r).trim()))] };
  }
  return null;
}

/** The message a send replies to (XEP-0461 `<reply id=.../>`), as the client names it. */
export function replyRef(st: XmlElement): string | undefined {
  return child(st, 'reply', CORRECTION_NS.reply)?.attrs.id || undefined;
}

/** The Parley id of a message a client names in a conversation (404 item-not-found when unknown). */
export async function resolveRef(core: Core, me: Principal, conversation: string, ref: string): Promise<string> {
  const id = await core.changes.resolve(me, conversation, ref);
  if (!id) throw errors.notFound('message');
  return id;
}

/** Run a change command in its conversation: an edit, a delete for everyone, or my whole set of reactions. */
export async function runChange(core: Core, me: Principal, cmd: ChangeCommand, conversation: string): Promise<void> {
  const id = await resolveRef(core, me, conversation, cmd.ref);
  switch (cmd.kind) {
    case 'correct':
      await core.changes.edit(me, conversation, id, cmd.text);
      return;
    case 'retract':
      await core.changes.remove(me, conversation, id);
      return;
    case 'react':
      // XEP-0444 §4: the stanza carries the user's full set; it replaces the earlier one
      await core.changes.react(me, conversation, id, { add: cmd.emoji, set: true });
      return;
  }
}

/** What rendering a change needs (stanzas.ts's RenderContext has these). */
export interface ChangeRenderContext {
  domain: string;
  me: string;
  myName: string;
  kindOf: (conversation: string) => 'direct' | 'group' | undefined;
}

/** The id under which the recipient knows a message (as stanzas.ts renders it). */
function idOf(m: MessageView): string {
  return m.client_id || m.id;
}

/**
 * A `message_changed` event as stanzas: a correction, a retraction, or the reactions of the user
 * who changed theirs. Own changes in direct conversations are not echoed (no carbons), as own
 * messages are not; groups reflect them, as MUC does.
 */
export function renderChange(ev: MessageChangedEvent, ctx: ChangeRenderContext): XmlElement[] {
  const m = ev.message;
  const group = ctx.kindOf(m.conversation) === 'group';
  const by = ev.by ?? m.from;
  if (!group && by === ctx.myName) return [];
  const groupJid = `${m.conversation}@groups.${ctx.domain}`;
  const attrs = {
    xmlns: 'jabber:client',
    type: group ? 'groupchat' : 'chat',
    from: group ? `${groupJid}/${by}` : `${by}@${ctx.domain}`,
    to: ctx.me,
  };
  switch (ev.change) {
    case 'edited':
      return [
        el('message', { ...attrs, id: `${m.id}-e-${Date.parse(m.edited_at ?? '') || 0}` },
          el('body', {}, m.text),
          el('replace', { xmlns: CORRECTION_NS.correct, id: idOf(m) })),
      ];
    case 'deleted':
      return [
        el('message', { ...attrs, id: `${m.id}-r` },
          el('retract', { xmlns: CORRECTION_NS.retract, id: idOf(m) }),
          el('store', { xmlns: CORRECTION_NS.hints })),
      ];
    case 'reactions': {
      const mine = (m.reactions ?? []).filter((r) => r.users.includes(by)).map((r) => r.emoji);
      return [
        el('message', { ...attrs, id: `${m.id}-x-${by}` },
          el('reactions', { xmlns: CORRECTION_NS.reactions, id: idOf(m) }, ...mine.map((e) => el('reaction', {}, e))),
          el('store', { xmlns: CORRECTION_NS.hints })),
      ];
    }
  }
}

/** The XEP-0461 element of an outgoing message that replies to another. */
export function replyElement(m: MessageView, ctx: ChangeRenderContext): XmlElement | null {
  const r = m.reply_to;
  if (!r) return null;
  const group = ctx.kindOf(m.conversation) === 'group';
  const to = group ? `${m.conversation}@groups.${ctx.domain}/${r.from}` : `${r.from}@${ctx.domain}`;
  return el('reply', { xmlns: CORRECTION_NS.reply, to, id: r.id });
}
