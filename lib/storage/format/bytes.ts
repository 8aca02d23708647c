/**
 * Byte-level building blocks of the stored formats (codec.ts beside this file): unsigned varints (exact
 * up to 2^53, so sums fit), zigzag for signed deltas, and fixed-width bit packing. Arithmetic,
 * not 32-bit operators, wherever a value may pass 2^31.
 */

/** Thrown by a reader on bytes that are not what the format says: stored data is never trusted. */
export class CorruptData extends Error {
  override name = 'CorruptData';
}

export class ByteWriter {
  private buf = new Uint8Array(256);
  private len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  byte(v: number): this {
    this.room(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint needs a safe non-negative integer, got ${v}`);
    this.room(8);
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
    return this;
  }

  zigzag(v: number): this {
    return this.varint(v < 0 ? -2 * v - 1 : 2 * v);
  }

  bytes(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  /** `values` packed at `width` bits each (width ≤ 53), least significant bits first. */
  packed(values: ArrayLike<number>, width: number): this {
    const out = new Uint8Array(Math.ceil((values.length * width) / 8));
    let bit = 0;
    for (let i = 0; i < values.length; i++) {
      let v = values[i]!;
      for (let left = width; left > 0;) {
        const take = Math.min(left, 8 - (bit % 8));
        out[bit >> 3]! |= (v % 2 ** take) << (bit % 8);
        v = Math.floor(v / 2 ** take);
        bit += take;
        left -= take;
      }
    }
    return this.bytes(out);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export class ByteReader {
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  byte(): number {
    if (this.pos >= this.buf.length) throw new CorruptData('truncated');
    return this.buf[this.pos++]!;
  }

  varint(): number {
    let v = 0;
    for (let scale = 1; ; scale *= 0x80) {
      const b = this.byte();
      v += (b & 0x7f) * scale;
      if (b < 0x80) break;
      if (scale > 2 ** 49) throw new CorruptData('varint too long');
    }
    return v;
  }

  zigzag(): number {
    const v = this.varint();
    return v % 2 === 1 ? -(v + 1) / 2 : v / 2;
  }

  bytes(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) throw new CorruptData('truncated');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  packed(count: number, width: number): number[] {
    if (width > 53) throw new CorruptData(`bit width ${width}`);
    const src = this.bytes(Math.ceil((count * width) / 8));
    const out = new Array<number>(count);
    let bit = 0;
    for (let i = 0; i < count; i++) {
      let v = 0;
      let scale = 1;
      for (let left = width; left > 0;) {
        const take = Math.min(left, 8 - (bit % 8));
        v += ((src[bit >> 3]! >> (bit % 8)) % 2 ** take) * scale;
        scale *= 2 ** take;
        bit += take;
        left -= take;
      }
      out[i] = v;
    }
    return out;
  }
}

/** Bits needed for the largest of `values` (0 for none or all zero). */
export function bitWidth(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) if (values[i]! > max) max = values[i]!;
  let width = 0;
  while (2 ** width <= max) width++;
  return width;
}

export const zigzag = (v: number): number => (v < 0 ? -2 * v - 1 : 2 * v);
export const unzigzag = (v: number): number => (v % 2 === 1 ? -(v + 1) / 2 : v / 2);
