/**
 * didgate SIP stack (knows nothing of DIDs).
 *
 * Layers
 *   parse.ts        parseMessage(buf, {limits, stream, strict}) -> SipMessage | SipParseError (never throws)
 *   message.ts      SipMessage: raw Buffer + header offsets, values decoded lazily; toBuffer() copies
 *                   unchanged header lines byte-exact and writes only edited ones (into slabs from
 *                   out-buffer.ts).
 *   response.ts     createResponse (RFC 3261 8.2.6), random tags and branches.
 *   transport.ts    UDP / TCP / TLS listeners and connections (framing, CRLF keep-alive, reuse, caps).
 *   transaction.ts  RFC 3261 section 17 client/server transactions (+ RFC 6026 Accepted), timers A-M.
 *   stack.ts        SipStack: owns transports + transaction tables; the API below.
 *   rr.ts           record-routing without dialog state (signed Record-Route, loose routing of
 *                   in-dialog requests, rewriting in responses) and loop detection.
 *   resolve.ts      RFC 3263 target resolution (SRV, A/AAAA; no NAPTR), cached.
 *
 * Creating a stack
 *   const stack = await SipStack.create({
 *     listen: ["udp://0.0.0.0:5060", "tcp://[::1]:5060", { url: "tls://0.0.0.0:5061", tls: { cert, key } }],
 *     logger, registry,            // pino Logger, prom-client Registry (optional)
 *     t1: 500, t2: 4000, t4: 5000, // timer config (ms); timers: a manual Timers for deterministic tests
 *     limits: { maxMessageSize, maxHeaders, maxHeaderLength },
 *     transport: { idleTimeoutMs, maxConnectionsPerIp, maxConnections, tlsVerify, tlsCa },
 *   }, handler);
 *   stack.listeners            Listener[] (transport, address, port, sentBy for Via/Record-Route)
 *   await stack.close()        terminates all transactions, clears timers, closes every socket
 *
 * Handler (SipStackHandler)
 *   onRequest(tx: ServerTransaction)      every new request except ACK; retransmissions are absorbed.
 *       tx.request (SipMessage; top Via already has received/rport filled, RFC 3581)
 *       tx.source  { transport, address, port, listener, connection }
 *       tx.cancels (for CANCEL: the matching INVITE ServerTransaction or null), tx.cancelled (INVITE)
 *       tx.events  { onCancel, onAck, onAckTimeout, onTransportError, onTerminated } (optional)
 *       For INVITE the stack has already sent "100 Trying" (autoTrying, default on).
 *   onAck?(ack, source)                   ACK matching no transaction (ACK for 2xx): forward statelessly.
 *   onStrayResponse?(res, source)         response matching no client transaction (late 2xx).
 *   onParseError?(err, source)            after the stack answered 400 (when a response could be formed).
 *
 * Answering (server transactions)
 *   tx.reply(status, reason?, { headers, body, contentType })   builds with createResponse, To-tag = tx.toTag
 *   tx.respond(res: SipMessage)           send a response you built or forwarded (after res.popVia()).
 *     Responses go back over the request's connection when open, else per RFC 3261 18.2.2 / RFC 3581.
 *     Non-2xx finals to INVITE are retransmitted on UDP (timer G) until ACK; 2xx retransmissions
 *     from the TU pass through (Accepted state, RFC 6026).
 *
 * Sending requests (client transactions)
 *   const ctx = stack.request(req, { transport: "udp", host: "10.1.2.3", port: 5060 }, {
 *     onResponse(res, tx) {},   // 1xx, final, and 2xx retransmissions for INVITE
 *     onTimeout(tx) {},         // timer B/F
 *     onTransportError(tx, err) {},
 *   }, { branch?, addVia? });
 *   The stack pushes its Via (sent-by of the matching listener, new branch, rport) unless addVia:false.
 *   ctx.cancel(handler?)  sends CANCEL (RFC 3261 9.1) once a provisional arrived. ACK for non-2xx is automatic.
 *   destinationFromUri(uri) -> Destination (transport param, sips -> tls, maddr, default ports; no SRV).
 *
 * Stateless sending
 *   stack.sendStateless(req, dest, { branch?, addVia? })   e.g. ACK for 2xx, forwarded statelessly.
 *   stack.sendResponseStateless(res, source?)              to the top Via (forwarding a stray 2xx).
 *
 * Helpers
 *   createResponse(req, status, reason?, { toTag, headers, body, contentType })
 *   canRespond(partial)                   whether a failed parse can still be answered
 *   stack.isLocal(host, port) / stack.isLocalUri(uri)       loose routing: "is this Route me?"
 *   stack.viaValue(transport, host, branch), stack.newBranch(), stack.listenerFor(transport, host)
 *   SipMessage: method, requestUri (settable), parsedRequestUri, status, reason, topVia, vias,
 *     pushVia/popVia/replaceTopVia, routes/topRoute/popRoute/pushRoute, recordRoutes/pushRecordRoute,
 *     maxForwards (settable)/decrementMaxForwards(), callId, cseq, from/to/fromTag/toTag,
 *     get/getAll/getList/has/set/append/prepend/remove/popFirst, setBody, clone, toBuffer.
 *
 * Metrics (on the given Registry): didgate_sip_messages_total{direction,transport,kind,method,code},
 *   didgate_sip_parse_errors_total{transport,reason}, didgate_sip_retransmissions_total{direction,kind},
 *   didgate_sip_transactions{side,type}, didgate_sip_transport_errors_total{transport,reason},
 *   didgate_sip_connections{transport}, didgate_sip_dropped_total{reason}.
 */
export { HeaderField, SipMessage, defaultReason } from "./message.js";
export {
  DEFAULT_LIMITS,
  SipParseError,
  parseMessage,
  parseOrThrow,
  type ParseErrorReason,
  type ParseLimits,
  type ParseOptions,
} from "./parse.js";
export { canRespond, createResponse, randomToken, type ResponseOptions } from "./response.js";
export { HDR, Via, canonicalName, parseCSeq, parseVia, type CSeq } from "./headers.js";
export { NameAddr, SipUri, parseNameAddr, parseUri } from "./uri.js";
export { splitList, type Param } from "./syntax.js";
export { realTimers, type TimerHandle, type TimerTarget, type Timers } from "./timers.js";
export { StreamFramer, type FrameSink } from "./framer.js";
export { SipMetrics } from "./metrics.js";
export {
  Connection,
  Listener,
  TransportLayer,
  parseListenUrl,
  UDP_RECV_BUFFER,
  type ListenSpec,
  type Source,
  type Target,
  type TlsOptions,
  type TransportKind,
  type TransportOptions,
} from "./transport.js";
export {
  ClientTransaction,
  ServerTransaction,
  type ClientTxHandler,
  type ClientTxState,
  type ServerTxEvents,
  type ServerTxState,
  type TimerConfig,
  type TxContext,
} from "./transaction.js";
export {
  SipStack,
  destinationFromUri,
  responseTargetFromVia,
  type Destination,
  type RequestOptions,
  type SipStackHandler,
  type SipStackOptions,
} from "./stack.js";
export {
  DialogSigner,
  FORGED_REASONS,
  flowToken,
  hopOfAddress,
  hopOfNameAddr,
  hopOfUri,
  inviteBinding,
  isLooped,
  loopBranch,
  loopHash,
  parseFlowToken,
  recordRouteFor,
  rewriteRecordRoute,
  routeInDialog,
  type DialogBinding,
  type DialogRoute,
  type Flow,
  type ForgedReason,
} from "./rr.js";
export { TargetResolver, targetKey, uriTransport, type ResolveResult, type ResolvedTarget, type ResolverOptions } from "./resolve.js";
