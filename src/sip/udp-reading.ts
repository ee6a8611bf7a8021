/**
 * Pause and resume reading a bound UDP socket while keeping it for sending.
 *
 * With sip.workers > 1 every worker holds the one shared SIP socket, because each sends its
 * answers from it, but a socket shared by processes wakes every reader for each datagram (epoll
 * without EPOLLEXCLUSIVE): the losers read nothing, and on a virtual machine each of those wake-ups
 * costs more than the datagram's own work (docs/sip.md "Workers"). So only some workers read it
 * and the others only send. `node:dgram` has no public call to stop reading a bound socket; its
 * handle (the libuv UDP handle, kept under the socket's "state symbol") has recvStop() and
 * recvStart(), which it calls itself once bound. When that handle is not found (another Node
 * release laid the socket out differently) nothing is paused: every worker reads, as before, and
 * the caller is told so.
 */
import type dgram from "node:dgram";

interface RecvHandle {
  recvStart(): number;
  recvStop(): number;
}

function handleOf(sock: dgram.Socket): RecvHandle | undefined {
  const sym = Object.getOwnPropertySymbols(sock).find((s) => s.description === "state symbol");
  if (sym === undefined) return undefined;
  const state = (sock as unknown as Record<symbol, { handle?: unknown } | undefined>)[sym];
  const h = state?.handle as Partial<RecvHandle> | null | undefined;
  if (h === null || h === undefined || typeof h.recvStart !== "function" || typeof h.recvStop !== "function") return undefined;
  return h as RecvHandle;
}

/** Start or stop reading `sock` (bound); false when this Node gives no way to (it keeps reading). */
export function setUdpReading(sock: dgram.Socket, on: boolean): boolean {
  const h = handleOf(sock);
  if (h === undefined) return false;
  // 0, or UV_EALREADY for a start on a socket already reading (Node maps that to 0 too)
  const err = on ? h.recvStart() : h.recvStop();
  return err === 0;
}
