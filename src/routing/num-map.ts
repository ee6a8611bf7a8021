/**
 * NumMap: open-addressing hash map from non-zero integral doubles (< 2^53) to int32 values >= 0.
 *
 * One Float64Array holds [key, value] pairs (key 0 = empty slot), so a probe touches one cache
 * line. Linear probing, load <= 5/8, backward-shift deletion (no tombstones). get() allocates
 * nothing. Used for the page table and the prefix index of RouteTable.
 */

/** 2^-32: multiplying by it is exact (a power of two) and cheaper than dividing by 2^32. */
const INV_TWO32 = 2.3283064365386963e-10;

/** Hash of an integral double key (mixes both 32-bit halves, murmur3 finaliser). */
export function hashKey(key: number): number {
  let h = (key >>> 0) ^ Math.imul((key * INV_TWO32) | 0, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

export interface NumMapState {
  slots: Float64Array;
  size: number;
  mask: number;
}

export class NumMap {
  /** [key, value] pairs; key 0 = empty. */
  slots: Float64Array;
  size = 0;
  private mask: number;

  constructor(expected = 8) {
    let n = 16;
    while (n * 5 < expected * 8) n *= 2;
    this.slots = new Float64Array(n * 2);
    this.mask = n - 1;
  }

  get byteLength(): number {
    return this.slots.byteLength;
  }

  /** The map's state as transferable parts (see RouteTable.exportState). */
  exportState(): NumMapState {
    return { slots: this.slots, size: this.size, mask: this.mask };
  }

  /** A map over the given state (the arrays are taken, not copied). */
  static fromState(s: NumMapState): NumMap {
    const m = new NumMap(0);
    m.slots = s.slots;
    m.size = s.size;
    m.mask = s.mask;
    return m;
  }

  /** Value for key, or -1. Hot path. */
  get(key: number): number {
    const slots = this.slots;
    const mask = this.mask;
    let i = hashKey(key) & mask;
    for (;;) {
      const k = slots[i * 2];
      if (k === key) return slots[i * 2 + 1];
      if (k === 0) return -1;
      i = (i + 1) & mask;
    }
  }

  /** Sets key (non-zero) to value (>= 0); returns the old value or -1. */
  set(key: number, value: number): number {
    const slots = this.slots;
    const mask = this.mask;
    let i = hashKey(key) & mask;
    for (;;) {
      const k = slots[i * 2];
      if (k === key) {
        const old = slots[i * 2 + 1];
        slots[i * 2 + 1] = value;
        return old;
      }
      if (k === 0) break;
      i = (i + 1) & mask;
    }
    if ((this.size + 1) * 8 > (mask + 1) * 5) {
      this.resize((mask + 1) * 2);
      this.insertNew(key, value);
    } else {
      slots[i * 2] = key;
      slots[i * 2 + 1] = value;
    }
    this.size++;
    return -1;
  }

  /** Removes key; returns its value or -1. */
  delete(key: number): number {
    const slots = this.slots;
    const mask = this.mask;
    let i = hashKey(key) & mask;
    for (;;) {
      const k = slots[i * 2];
      if (k === key) break;
      if (k === 0) return -1;
      i = (i + 1) & mask;
    }
    const old = slots[i * 2 + 1];
    // Backward-shift deletion: pull later members of the probe run into the hole.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const k = slots[j * 2];
      if (k === 0) break;
      const home = hashKey(k) & mask;
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (stays) continue;
      slots[i * 2] = k;
      slots[i * 2 + 1] = slots[j * 2 + 1];
      i = j;
    }
    slots[i * 2] = 0;
    slots[i * 2 + 1] = 0;
    this.size--;
    return old;
  }

  forEach(fn: (key: number, value: number) => void): void {
    const slots = this.slots;
    for (let i = 0; i < slots.length; i += 2) if (slots[i] !== 0) fn(slots[i], slots[i + 1]);
  }

  /** Grows the table so that `n` keys fit without further resizing. */
  reserve(n: number): void {
    let slots = this.mask + 1;
    while (n * 8 > slots * 5) slots *= 2;
    if (slots !== this.mask + 1) this.resize(slots);
  }

  private insertNew(key: number, value: number): void {
    const slots = this.slots;
    const mask = this.mask;
    let i = hashKey(key) & mask;
    while (slots[i * 2] !== 0) i = (i + 1) & mask;
    slots[i * 2] = key;
    slots[i * 2 + 1] = value;
  }

  private resize(n: number): void {
    const old = this.slots;
    this.slots = new Float64Array(n * 2);
    this.mask = n - 1;
    for (let i = 0; i < old.length; i += 2) if (old[i] !== 0) this.insertNew(old[i], old[i + 1]);
  }
}
