/**
 * What didgate does by itself with an inbound message (docs/sms.md "Replies, forwards, keywords"):
 *
 * - Opt-out words (the whole text: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT) record the sender
 *   as opted out of the number (OptOutStore: Redis when configured, shared by every edge) and
 *   send the route's stop confirmation; START, UNSTOP, YES remove the opt-out and confirm. Sending
 *   from that number to an opted-out recipient is refused by src/edge/sms-outbound.ts.
 * - A route keyword (the first word, any case, `sms.keywords`) replaces the route's webhook and
 *   forward for that message and may send a fixed reply; HELP and INFO, unless a route keyword,
 *   answer the route's help text.
 * - `sms.forward` sends every message on to those numbers, from the number it was sent to, as the
 *   forward template says.
 * - A webhook that answered a message with `200 {"reply": "…"}` has that text sent back (reply()).
 *
 * Everything sent is an outbound message from the number the message was sent to, to the sender
 * (or the forward numbers), through SmsOutbound.sendAuto: the outbound table, the spool in Redis
 * mode, opt-outs respected (except the stop confirmation itself). Nothing is sent to a sender that
 * is not a phone number (alphanumeric), and nothing is sent or forwarded for a message whose sender
 * is one of didgate's own numbers: that is how a forward chain between two numbers that forward to
 * each other ends after one step.
 *
 * The SMS edge calls inbound() once per message before handing it to delivery (an opt-out is
 * recorded first: when that fails the message gets a temporary failure and the SMSC retries), and
 * the plan's commit() once the message was accepted, so an SMSC's retry sends nothing twice.
 */
import { LRUCache } from "lru-cache";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import type { MessageReceivedBody } from "../delivery/types.js";
import { isE164, type Route, type SmsKeyword } from "../routing/route.js";
import { MATCH_DEFAULT, type RouteStore } from "../routing/table.js";
import { errMessage } from "../util/errors.js";
import { WindowCounts } from "../util/window-counts.js";
import { firstWord, optKeyword, type OptOutStore } from "./optout.js";
import type { SubmitOutcome } from "./sms-outbound.js";

/** What a message was, for the metric (a closed set). */
export type KeywordKind = "stop" | "start" | "help" | "keyword";
/** Why something is sent (metric label, a closed set). */
type ReplyKind = "sync" | "keyword" | "stop" | "start" | "help";

export const DEFAULT_OPTOUT_TEXTS = {
  stop: "You are unsubscribed and will receive no more messages from this number. Reply START to resubscribe.",
  start: "You are subscribed again. Reply STOP to unsubscribe, HELP for help.",
  help: "Reply STOP to unsubscribe, START to resubscribe. Msg & data rates may apply.",
} as const;

export const DEFAULT_FORWARD_TEMPLATE = "From {from}: {text}";
/** Longest text of a forwarded message (characters); the rest of a longer one is cut. */
const MAX_FORWARD_CHARS = 1600;

/**
 * Automatic answers (webhook replies, keyword, STOP/START/HELP answers) from one DID to one
 * recipient: at most ANSWERS_PER_WINDOW per ANSWER_WINDOW_MS. Each answer is an outbound message
 * the number's owner pays for, and the sender address of an inbound message is whatever the
 * carrier or a spoofer put there: without a bound, a stream of HELP texts "from" a premium number
 * turns didgate into a paid message pump. The table of counters is bounded (least recently used
 * pairs are forgotten first).
 */
const ANSWERS_PER_WINDOW = 5;
const ANSWER_WINDOW_MS = 60_000;
const ANSWER_PAIRS_MAX = 100_000;

/**
 * Forwards of one sender's messages to one DID: at most FORWARDS_PER_WINDOW per ANSWER_WINDOW_MS.
 * A forward goes to a number outside didgate, which may itself forward (another provider's
 * number, a phone's auto-reply) back to the DID, directly or through others: didgate cannot see
 * such a chain, and without a bound one message would circle in it for ever, each turn a paid
 * message of up to 1600 characters to every forward number. A spoofed sender flooding a
 * forwarding DID is bounded by the same count. Over it, a message that also goes to a webhook or
 * SMPP target is not forwarded (counted as rate_limited); one for a route that only forwards is
 * declined with a temporary failure, so the SMSC sends it again later and nothing is lost.
 */
const FORWARDS_PER_WINDOW = 10;

export class SmsKeywordMetrics {
  readonly keywords: Counter<"kind">;
  readonly replies: Counter<"kind" | "outcome">;
  readonly forwards: Counter<"outcome">;
  constructor(registry: Registry) {
    this.keywords = new Counter({ name: "didgate_sms_keywords_total", help: "Inbound messages that were an opt-out word (stop), an opt-in word (start), a help word (help) or a route keyword (keyword)", labelNames: ["kind"], registers: [registry] });
    this.replies = new Counter({ name: "didgate_sms_replies_total", help: "Replies sent back to the sender of an inbound message, by why (sync: the webhook's answer; keyword; stop, start, help: opt-out answers) and outbound outcome", labelNames: ["kind", "outcome"], registers: [registry] });
    this.forwards = new Counter({ name: "didgate_sms_forwards_total", help: "Inbound messages sent on to a route's forward numbers, by outbound outcome (one per number)", labelNames: ["outcome"], registers: [registry] });
  }
}

export interface SmsKeywordsOptions {
  store: RouteStore<Route>;
  optouts: OptOutStore;
  /** Sends a message from one of our numbers (SmsOutbound.sendAuto). */
  send: (m: { from: string; to: string; text: string; tenant: string | null; ignoreOptOut?: boolean }) => Promise<SubmitOutcome>;
  /** Answers to the opt-out words where the route sets none (config smpp.optout; read per message, so a reload applies). */
  texts?: () => { stop_reply?: string | undefined; start_reply?: string | undefined; help_reply?: string | undefined };
  logger: Logger;
  registry: Registry;
}

/** One inbound message, as the SMS edge routed it. */
export interface InboundMessage {
  /** The number it was sent to (E.164) and its route. */
  did: string;
  route: Route;
  /** The sender: E.164 when it is a number, else as given (alphanumeric). */
  from: string;
  /** Its text (undefined for binary messages). */
  text: string | undefined;
  /** Parts of a long message that never all came. */
  partial: boolean;
  id: string;
  /**
   * A copy of a message accepted before (an SMSC's retry within the dedup window): a stop word is
   * recorded again (harmless, and the safe side when it is in fact a new STOP), a start word is
   * not (a late retry of START would undo a STOP sent since).
   */
  repeat?: boolean;
}

/** Where the message goes, and what is sent once it was accepted. */
export interface InboundPlan {
  webhook: string | undefined;
  smpp: string | undefined;
  /** Something is done with it here (a keyword, an opt-out word, a forward): accepted even without a webhook or SMPP target. */
  handled: boolean;
  kind: KeywordKind | undefined;
  /** Send the replies and forwards (once, after the message was accepted). */
  commit(): void;
  /** The message was not accepted: its place in the sender's forward count is given back. */
  release(): void;
}

export class SmsKeywords {
  readonly metrics: SmsKeywordMetrics;
  /** "did recipient" -> answers sent in the current window (the entry expires with its window). */
  private readonly answered = new LRUCache<string, { n: number; stop?: true }>({ max: ANSWER_PAIRS_MAX, ttl: ANSWER_WINDOW_MS, ttlAutopurge: false });
  /** "did sender" -> messages forwarded in the current window (bounded like `answered`). */
  private readonly forwarded = new WindowCounts(ANSWER_WINDOW_MS, ANSWER_PAIRS_MAX);

  constructor(private readonly o: SmsKeywordsOptions) {
    this.metrics = new SmsKeywordMetrics(o.registry);
  }

  /**
   * Decide what happens to an inbound message; an opt-out or opt-in is recorded now. "temporary"
   * when it could not be; "rate_limited" when the route only forwards and this sender's messages
   * to the DID were forwarded FORWARDS_PER_WINDOW times in the window.
   */
  async inbound(m: InboundMessage): Promise<InboundPlan | "temporary" | "rate_limited"> {
    const sms = m.route.sms;
    let webhook = sms?.webhook;
    let smpp = sms?.smpp;
    let forward = sms?.forward;
    let kind: KeywordKind | undefined;
    let reply: string | undefined;
    /** A STOP that opted its sender out now (not one already opted out). */
    let fresh = false;
    const texts = sms?.optout;
    const number = isE164(m.from);
    if (m.text !== undefined && !m.partial) {
      const ok = optKeyword(m.text);
      let kw: SmsKeyword | undefined;
      if (ok === "stop" || ok === "start") {
        kind = ok;
        if (number && ok === "start" && m.repeat === true) {
          this.o.logger.info({ id: m.id, did: m.did }, "opt-in not applied again: a repeated copy of an accepted START");
        } else if (number) {
          try {
            if (ok === "stop") fresh = await this.o.optouts.optOut(m.did, m.from);
            else await this.o.optouts.optIn(m.did, m.from);
          } catch (err) {
            this.o.logger.warn({ id: m.id, did: m.did, kind, err: errMessage(err) }, "opt-out not recorded: message declined with a temporary failure");
            return "temporary";
          }
        }
        reply = ok === "stop" ? (texts?.stopReply ?? this.o.texts?.().stop_reply ?? DEFAULT_OPTOUT_TEXTS.stop) : (texts?.startReply ?? this.o.texts?.().start_reply ?? DEFAULT_OPTOUT_TEXTS.start);
      } else if ((kw = sms?.keywords?.get(firstWord(m.text))) !== undefined) {
        kind = "keyword";
        if (kw.webhook !== undefined) {
          webhook = kw.webhook;
          smpp = undefined;
        }
        if (kw.forward !== undefined) forward = kw.forward;
        reply = kw.reply;
      } else if (ok === "help") {
        kind = "help";
        reply = texts?.helpReply ?? this.o.texts?.().help_reply ?? DEFAULT_OPTOUT_TEXTS.help;
      }
    }
    // A forward handles only what is forwarded: a binary or incomplete message to a route that
    // only forwards would otherwise be accepted and reach no one.
    const forwards = forward !== undefined && forward.length > 0 && m.text !== undefined && !m.partial;
    let limited = false;
    /** This message's place in the count, taken now (messages of one sender arrive concurrently: counted only when forwarded, all would pass), given back if it is not accepted. */
    let giveBack: (() => void) | null = null;
    // (a repeat of an accepted message is answered as accepted without being forwarded again)
    if (forwards && m.repeat !== true && !this.isOurs(m.from)) {
      giveBack = this.forwarded.take(m.did + " " + m.from, FORWARDS_PER_WINDOW);
      if (giveBack === null) {
        if (webhook === undefined && smpp === undefined) {
          this.metrics.forwards.inc({ outcome: "rate_limited" });
          this.o.logger.info({ id: m.id, did: m.did }, "not forwarded now: too many messages from this sender to this number (declined with a temporary failure)");
          return "rate_limited";
        }
        limited = true;
      }
    }
    const handled = kind !== undefined || forwards;
    let settled = false;
    return {
      webhook,
      smpp,
      handled,
      kind,
      commit: () => {
        if (settled) return;
        settled = true;
        this.commit(m, kind, reply, limited ? "limited" : forward, fresh);
      },
      release: () => {
        if (settled) return;
        settled = true;
        giveBack?.();
      },
    };
  }

  /** A webhook answered message `body` with a reply: send it to the sender. */
  reply(body: MessageReceivedBody, text: string): void {
    if (!this.mayAnswer(body.from)) {
      this.o.logger.info({ id: body.id, did: body.to }, "webhook reply not sent: the sender is not a phone number or is a number of ours");
      return;
    }
    // The webhook may answer long after the message came (spool retries, a replay from the dead
    // letter queue): the number may have been released or moved to another tenant since, and a
    // reply from it would then be sent from someone else's number.
    const r = this.o.store.current.lookup(body.to);
    if (r === undefined || (r.tenant ?? null) !== body.tenant) {
      this.o.logger.info({ id: body.id, did: body.to }, "webhook reply not sent: the number is no longer this tenant's");
      return;
    }
    this.sendReply("sync", { from: body.to, to: body.from, text, tenant: body.tenant }, body.id);
  }

  private commit(m: InboundMessage, kind: KeywordKind | undefined, reply: string | undefined, forward: readonly string[] | "limited" | undefined, fresh: boolean): void {
    if (kind !== undefined) {
      this.metrics.keywords.inc({ kind });
      this.o.logger.info({ id: m.id, did: m.did, kind }, "sms keyword");
    }
    const ours = this.isOurs(m.from);
    const tenant = m.route.tenant ?? null;
    if (reply !== undefined && reply !== "" && kind !== undefined) {
      if (isE164(m.from) && !ours) {
        const why: ReplyKind = kind === "keyword" ? "keyword" : kind;
        // the stop confirmation goes to a recipient who has just opted out (carriers expect that
        // one), and a HELP is answered whether or not its sender opted out (the program's help
        // text, how to opt back in, is what an opted-out user asking HELP needs)
        this.sendReply(why, { from: m.did, to: m.from, text: reply, tenant, ...(kind === "stop" || kind === "help" ? { ignoreOptOut: true } : {}) }, m.id, kind === "stop" && fresh);
      } else this.o.logger.info({ id: m.id, did: m.did, kind }, "keyword answer not sent: the sender is not a phone number or is a number of ours");
    }
    if (forward === undefined || forward.length === 0 || m.text === undefined || m.partial) return;
    if (ours) {
      this.o.logger.info({ id: m.id, did: m.did }, "not forwarded: the sender is a number of ours (a forward of a forward)");
      return;
    }
    if (forward === "limited") {
      this.metrics.forwards.inc({ outcome: "rate_limited" });
      this.o.logger.info({ id: m.id, did: m.did }, "not forwarded: too many messages from this sender to this number");
      return;
    }
    // (counted in inbound(), when the message came)
    const text = forwardText(m.route.sms?.forwardTemplate ?? DEFAULT_FORWARD_TEMPLATE, m.from, m.did, m.text);
    for (const to of forward) {
      if (to === m.did || to === m.from) continue;
      void this.o.send({ from: m.did, to, text, tenant }).then(
        (outcome) => {
          this.metrics.forwards.inc({ outcome });
          this.o.logger.info({ id: m.id, did: m.did, to, result: outcome }, "sms forwarded");
        },
        (err: unknown) => this.o.logger.warn({ id: m.id, did: m.did, err: errMessage(err) }, "sms forward failed"),
      );
    }
  }

  /**
   * Send an automatic answer within the pair's budget. `newStop`: the confirmation of a STOP that
   * opted the recipient out just now; it goes even when the budget is spent (a chatty exchange
   * must not swallow it), once per window, so STOP/START cycles from a spoofed sender stay bounded.
   */
  private sendReply(kind: ReplyKind, msg: { from: string; to: string; text: string; tenant: string | null; ignoreOptOut?: boolean }, id: string, newStop = false): void {
    const pair = msg.from + " " + msg.to;
    const seen = this.answered.get(pair, { updateAgeOnGet: false });
    if (seen !== undefined && seen.n >= ANSWERS_PER_WINDOW && newStop && seen.stop === undefined) {
      seen.stop = true;
    } else if (seen !== undefined && seen.n >= ANSWERS_PER_WINDOW) {
      this.metrics.replies.inc({ kind, outcome: "rate_limited" });
      this.o.logger.info({ id, did: msg.from, kind }, "sms reply not sent: too many automatic answers to this recipient from this number");
      return;
    }
    if (seen === undefined) this.answered.set(pair, { n: 1 });
    else seen.n++;
    void this.o.send(msg).then(
      (outcome) => {
        this.metrics.replies.inc({ kind, outcome });
        this.o.logger.info({ id, did: msg.from, kind, result: outcome }, "sms reply");
      },
      (err: unknown) => this.o.logger.warn({ id, did: msg.from, kind, err: errMessage(err) }, "sms reply failed"),
    );
  }

  /** A sender a reply may go to: a phone number that is not one of ours. */
  private mayAnswer(from: string): boolean {
    return isE164(from) && !this.isOurs(from);
  }

  /** A number with a route of its own (not the default route): one of didgate's numbers. */
  private isOurs(n: string): boolean {
    if (!isE164(n)) return false;
    const t = this.o.store.current;
    return t.lookup(n) !== undefined && t.match.kind !== MATCH_DEFAULT;
  }
}

/**
 * The text of a forwarded message: the template with {from}, {to} and {text} replaced, cut at
 * MAX_FORWARD_CHARS. Built piece by piece and stopped at the cut: a template of many {text} would
 * otherwise build hundreds of thousands of characters per message only to drop them. The cut never
 * splits a surrogate pair (half an emoji is not a character any handset can show).
 */
export function forwardText(template: string, from: string, to: string, text: string): string {
  let out = "";
  let last = 0;
  for (const m of template.matchAll(/\{(from|to|text)\}/g)) {
    out += template.slice(last, m.index) + (m[1] === "from" ? from : m[1] === "to" ? to : text);
    last = m.index + m[0].length;
    if (out.length > MAX_FORWARD_CHARS) break;
  }
  if (out.length <= MAX_FORWARD_CHARS) out += template.slice(last);
  if (out.length <= MAX_FORWARD_CHARS) return out;
  const high = out.charCodeAt(MAX_FORWARD_CHARS - 1);
  return out.slice(0, high >= 0xd800 && high <= 0xdbff ? MAX_FORWARD_CHARS - 1 : MAX_FORWARD_CHARS);
}
