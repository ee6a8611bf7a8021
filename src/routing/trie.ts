/**
 * Flat decimal digit trie over an Int32Array, storing one int32 value (>= 1) per node.
 *
 * A general longest-prefix-match structure for small pattern sets (for example caller patterns like
 * "+44*"); RouteTable itself uses pages and a prefix hash (page-map.ts, prefix-index.ts), which
 * are smaller and faster for its sizes. This module also holds the shared constants.
 * Layout: a node is NODE_STRIDE consecutive int32 slots, 10 child offsets (0 = no child; the
 * root lives at offset 0 and is never anybody's child) and one value slot (NO_VALUE = 0 = none;
 * values are >= 1, so fresh zeroed memory is an empty node).
 * Nodes are referred to by their slot offset, so a walk is `node = nodes[node + digit]`.
 * Deleted values prune empty leaf chains; freed nodes go on a free list (linked through slot 0).
 *
 * Pure and allocation-free on the read path. Callers pass digit ranges of a string
 * (`s.slice(start, end)` conceptually) that they have already validated to be ASCII digits.
 */

export const NO_VALUE = 0;
export const NODE_STRIDE = 11;
const VAL = 10;
/** Max digits of a key (E.164). */
export const MAX_DIGITS = 15;

export class DigitTrie {
  /** Node storage; replaced (grown) by inserts, so read it through the instance. */
  nodes: Int32Array;
  /** Number of nodes holding a value (the root counts when it has one). */
  count = 0;
  /** Depth (digits) of the value returned by the last longestMatch(), 0 for the root. */
  depth = 0;
  private used = NODE_STRIDE; // slots in use (high-water mark), root included
  private freeHead = 0; // head of the free node list (0 = empty)
  private freeNodes = 0;
  private readonly path = new Int32Array(MAX_DIGITS + 1);

  constructor(initialNodes = 64) {
    this.nodes = new Int32Array(Math.max(2, initialNodes) * NODE_STRIDE);
  }

  /** Nodes allocated and live (root included). */
  get nodeCount(): number {
    return this.used / NODE_STRIDE - this.freeNodes;
  }

  /** Bytes held by the node array. */
  get byteLength(): number {
    return this.nodes.byteLength;
  }

  /**
   * Longest stored key that is a prefix of digits s[start, end) (the root, zero digits,
   * included). Returns its value or NO_VALUE (0), and sets `depth`. Hot path: no allocation.
   * Precondition: every char in [start, end) is '0'..'9'.
   */
  longestMatch(s: string, start: number, end: number): number {
    const t = this.nodes;
    let node = 0;
    let best = t[VAL];
    let bestEnd = start;
    for (let i = start; i < end; i++) {
      const child = t[node + s.charCodeAt(i) - 48];
      if (child === 0) break;
      node = child;
      const v = t[node + VAL];
      if (v !== 0) {
        best = v;
        bestEnd = i + 1;
      }
    }
    this.depth = bestEnd - start;
    return best;
  }

  /** Value stored exactly at digits s[start, end), or NO_VALUE. */
  get(s: string, start: number, end: number): number {
    const t = this.nodes;
    let node = 0;
    for (let i = start; i < end; i++) {
      node = t[node + s.charCodeAt(i) - 48];
      if (node === 0) return NO_VALUE;
    }
    return t[node + VAL];
  }

  /** Stores value (>= 1) at digits s[start, end); returns the value it replaced or NO_VALUE. */
  set(s: string, start: number, end: number, value: number): number {
    let node = 0;
    for (let i = start; i < end; i++) {
      const slot = node + s.charCodeAt(i) - 48;
      let child = this.nodes[slot];
      if (child === 0) {
        child = this.allocNode(); // may replace this.nodes
        this.nodes[slot] = child;
      }
      node = child;
    }
    const t = this.nodes;
    const old = t[node + VAL];
    t[node + VAL] = value;
    if (old === 0) this.count++;
    return old;
  }

  /** Removes the value at digits s[start, end); returns it (NO_VALUE if there was none). */
  delete(s: string, start: number, end: number): number {
    const t = this.nodes;
    const path = this.path;
    let node = 0;
    let depth = 0;
    path[0] = 0;
    for (let i = start; i < end; i++) {
      node = t[node + s.charCodeAt(i) - 48];
      if (node === 0) return NO_VALUE;
      path[++depth] = node;
    }
    const old = t[node + VAL];
    if (old === 0) return NO_VALUE;
    t[node + VAL] = NO_VALUE;
    this.count--;
    // Prune now-empty leaves bottom-up (never the root).
    for (let d = depth; d > 0; d--) {
      const n = path[d];
      if (t[n + VAL] !== 0 || hasChild(t, n)) break;
      const parent = path[d - 1];
      t[parent + s.charCodeAt(start + d - 1) - 48] = 0;
      this.freeNode(n);
    }
    return old;
  }

  /** Calls fn(digits, value) for every stored value, shorter keys first along each branch. */
  forEach(fn: (digits: string, value: number) => void): void {
    const t = this.nodes;
    const walk = (node: number, digits: string): void => {
      const v = t[node + VAL];
      if (v !== 0) fn(digits, v);
      for (let d = 0; d < 10; d++) {
        const c = t[node + d];
        if (c !== 0) walk(c, digits + String.fromCharCode(48 + d));
      }
    };
    walk(0, "");
  }

  /** Shrinks the node array to its high-water mark (after a bulk build). */
  trim(): void {
    if (this.nodes.length > this.used + NODE_STRIDE) this.nodes = this.nodes.slice(0, this.used + NODE_STRIDE);
  }

  private allocNode(): number {
    let n: number;
    if (this.freeHead !== 0) {
      n = this.freeHead;
      this.freeHead = this.nodes[n];
      this.freeNodes--;
    } else {
      n = this.used;
      if (n + NODE_STRIDE > this.nodes.length) {
        const bigger = new Int32Array(this.nodes.length * 2);
        bigger.set(this.nodes);
        this.nodes = bigger;
      }
      this.used = n + NODE_STRIDE;
    }
    this.nodes.fill(0, n, n + NODE_STRIDE);
    return n;
  }

  private freeNode(n: number): void {
    this.nodes[n] = this.freeHead;
    this.freeHead = n;
    this.freeNodes++;
  }
}

function hasChild(t: Int32Array, node: number): boolean {
  for (let d = 0; d < 10; d++) if (t[node + d] !== 0) return true;
  return false;
}
