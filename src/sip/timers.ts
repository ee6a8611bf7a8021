/**
 * Injectable timer interface, the SIP stack's hot-path variant of util/clock.ts: transactions
 * implement TimerTarget and are called back with a numeric kind, so no closure is created per
 * timer (a call sets several). Tests drive it with a manual implementation (test/sip/manual-timers.ts).
 */

export interface TimerTarget {
  onTimer(kind: number): void;
}

export type TimerHandle = unknown;

export interface Timers {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Call target.onTimer(kind) after `ms` milliseconds. */
  set(ms: number, target: TimerTarget, kind: number): TimerHandle;
  clear(handle: TimerHandle): void;
}

/** One pending timer: a node of its duration's list. */
class Entry {
  prev: Entry | null = null;
  next: Entry | null = null;
  /** The list it is in; null once fired or cleared. */
  list: TimerList | null;
  constructor(
    list: TimerList,
    readonly target: TimerTarget,
    readonly kind: number,
    readonly at: number,
  ) {
    this.list = list;
  }
}

/**
 * The pending timers of one duration, in the order they were set: with one duration and a
 * monotonic clock that is the order they expire in, so only the head needs a Node timer.
 */
class TimerList {
  head: Entry | null = null;
  tail: Entry | null = null;
  timer: NodeJS.Timeout | null = null;
  /** When `timer` fires (monotonic ms). */
  armedAt = 0;
  private firing = false;
  /** `timer` is ref'd (keeps the process alive): entries are pending. */
  private held = false;
  private readonly run = (): void => this.expire();

  constructor(
    private readonly owner: TimerLists,
    readonly ms: number,
  ) {}

  add(e: Entry): void {
    const t = this.tail;
    if (t === null) this.head = e;
    else {
      t.next = e;
      e.prev = t;
    }
    this.tail = e;
    if (this.timer !== null) {
      // armed for an entry set earlier (it fires no later than this one is due)
      if (!this.held) {
        this.timer.ref();
        this.held = true;
      }
    } else if (!this.firing) this.arm(e.at, e.at - this.owner.now()); // while expiring, the list re-arms itself once done
  }

  remove(e: Entry): void {
    const p = e.prev;
    const n = e.next;
    if (p === null) this.head = n;
    else p.next = n;
    if (n === null) this.tail = p;
    else n.prev = p;
    e.prev = e.next = null;
    e.list = null;
    // nothing pending: the Node timer stays (the next set of this duration most likely comes
    // before it fires) but no longer keeps the process alive
    if (this.head === null && this.timer !== null && this.held) {
      this.timer.unref();
      this.held = false;
    }
  }

  private arm(at: number, delay: number): void {
    this.armedAt = at;
    this.timer = setTimeout(this.run, delay > 1 ? Math.ceil(delay) : 1);
    this.held = true;
  }

  /** Nothing pending when the Node timer fired: the owner forgets the list. */
  private idle(): void {
    this.owner.drop(this);
  }

  private expire(): void {
    this.timer = null;
    this.firing = true;
    // Node timers run on the loop's cached millisecond clock: up to a millisecond early against
    // performance.now(), so what is due within 1 ms fires now rather than after another timer
    const limit = this.owner.now() + 1;
    for (;;) {
      const e = this.head;
      if (e === null || e.at > limit) break;
      this.head = e.next;
      if (this.head === null) this.tail = null;
      else this.head.prev = null;
      e.next = null;
      e.list = null;
      try {
        e.target.onTimer(e.kind);
      } catch (err) {
        // a throwing target must not stop the others of this list: rethrown outside the loop
        queueMicrotask(() => {
          throw err;
        });
      }
    }
    this.firing = false;
    const h = this.head;
    if (h === null) this.idle();
    else this.arm(h.at, h.at - this.owner.now());
  }
}

/**
 * Timers as one list per duration (SIP's are a few fixed ones: T1 multiples, T4, ring and
 * INVITE timeouts), one Node timer per list for its earliest entry: set and clear are a list
 * append and unlink instead of a Node Timeout each.
 */
export class TimerLists implements Timers {
  private readonly lists = new Map<number, TimerList>();

  now(): number {
    return performance.now();
  }

  set(ms: number, target: TimerTarget, kind: number): TimerHandle {
    let l = this.lists.get(ms);
    if (l === undefined) {
      l = new TimerList(this, ms);
      this.lists.set(ms, l);
    }
    const e = new Entry(l, target, kind, this.now() + ms);
    l.add(e);
    return e;
  }

  clear(handle: TimerHandle): void {
    if (!(handle instanceof Entry)) return;
    const l = handle.list;
    if (l !== null) l.remove(handle);
  }

  /** @internal an empty list */
  drop(l: TimerList): void {
    if (this.lists.get(l.ms) === l) this.lists.delete(l.ms);
  }

  /** Lists with pending timers (tests, diagnostics). */
  get listCount(): number {
    return this.lists.size;
  }
}

/** Timers of every SIP stack in the process; one shared instance is fine (lists are per duration). */
export const realTimers: Timers = new TimerLists();
