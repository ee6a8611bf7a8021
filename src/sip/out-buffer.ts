/**
 * Output buffers for serialised messages, carved from 64 KiB slabs: a slice of a slab costs about
 * a third of Buffer.allocUnsafe here (whose 8 KiB pool is renewed every few messages). A slab
 * lives as long as any message cut from it (transactions keep theirs for retransmission, about
 * 32 s at most), so the memory held stays about the bytes of live messages. Larger messages get
 * their own buffer.
 */
const SLAB_SIZE = 64 * 1024;
const SLAB_MAX_PIECE = 4096;
let slab = Buffer.allocUnsafeSlow(0);
let slabOff = 0;
export function allocOut(size: number): Buffer {
  if (size > SLAB_MAX_PIECE) return Buffer.allocUnsafe(size);
  if (slabOff + size > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabOff = 0;
  }
  const b = slab.subarray(slabOff, slabOff + size);
  slabOff = (slabOff + size + 7) & ~7;
  return b;
}
