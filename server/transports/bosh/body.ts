/**
 * The <body/> wrappers the connection manager answers with: session creation, payload bodies,
 * terminal and recoverable errors. Strings, because a response is buffered byte for byte for replay.
 */
import { BOSH_NS, MAX_PAUSE_S, POLLING_S, XBOSH_NS, answerVer, type SessionState } from './session.js';
import { NS } from './stanzas.js';
import { el, serialize, type XmlElement } from './xml.js';

/** XEP-0124 §17.2 terminal conditions we use. */
export type TerminalCondition =
  | 'bad-request'
  | 'host-unknown'
  | 'improper-addressing'
  | 'internal-server-error'
  | 'item-not-found'
  | 'policy-violation'
  | 'remote-connection-failed'
  | 'system-shutdown';

/** HTTP codes a legacy client (no `ver`) gets instead of terminal bodies (XEP-0124 §17.1). */
const LEGACY_STATUS: Record<TerminalCondition, number> = {
  'bad-request': 400,
  'host-unknown': 404,
  'improper-addressing': 400,
  'internal-server-error': 500,
  'item-not-found': 404,
  'policy-violation': 403,
  'remote-connection-failed': 502,
  'system-shutdown': 503,
};

/** A response ready to write: status and the exact bytes. */
export interface BoshResponse {
  status: number;
  body: string;
}

/** The session creation response (XEP-0124 §7.1, XEP-0206 §5). */
export function creationBody(s: SessionState, domain: string, rid: number, payload: XmlElement[]): string {
  return serialize(
    el(
      'body',
      {
        xmlns: BOSH_NS,
        'xmlns:xmpp': XBOSH_NS,
        'xmlns:stream': NS.stream,
        sid: s.sid,
        wait: s.wait,
        requests: s.requests,
        hold: s.hold,
        polling: POLLING_S,
        inactivity: s.inactivity,
        maxpause: MAX_PAUSE_S,
        ver: answerVer(s),
        from: domain,
        authid: s.sid,
        'xmpp:version': '1.0',
        ack: s.acks ? rid : undefined,
      },
      ...payload,
    ),
  );
}

/** A body carrying serialized stanzas (possibly none). */
export function payloadBody(stanzas: readonly string[], extra: Record<string, string | number | undefined> = {}): string {
  const attrs = Object.entries(extra)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}='${v}'`)
    .join('');
  const needsStream = stanzas.some((x) => x.startsWith('<stream:'));
  const head = `<body xmlns='${BOSH_NS}'${needsStream ? ` xmlns:stream='${NS.stream}'` : ''}${attrs}`;
  return stanzas.length ? `${head}>${stanzas.join('')}</body>` : `${head}/>`;
}

/**
 * A terminal binding error: HTTP 200 with type='terminate' for clients that sent `ver`, the legacy
 * HTTP code otherwise (XEP-0124 §17).
 */
export function terminal(condition: TerminalCondition, legacy: boolean): BoshResponse {
  if (legacy) return { status: LEGACY_STATUS[condition], body: '' };
  return { status: 200, body: `<body xmlns='${BOSH_NS}' type='terminate' condition='${condition}'/>` };
}

/** The answer to a client's own terminate request. */
export function terminateAck(): string {
  return `<body xmlns='${BOSH_NS}' type='terminate'/>`;
}

/** A recoverable binding error (§17.3): the client resends every body it has no answer for. */
export function recoverable(): BoshResponse {
  return { status: 200, body: `<body xmlns='${BOSH_NS}' type='error'/>` };
}
