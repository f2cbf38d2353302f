/**
 * A growing byte buffer for writing a large text exposition directly as UTF-8: thousands of
 * series written as copies of kept byte strings and short numbers, with no string of the
 * whole page to build, flatten and encode again when it is sent.
 */
export class ByteWriter {
  private buf: Buffer;
  private at = 0;

  /**
   * Writes into `reuse` (a buffer of an earlier page no longer in use) while it is big enough,
   * else into a buffer of its own of at least `sizeHint` bytes. Never a slice of Node's shared
   * pool: the whole buffer may be handed out again (see {@link whole}).
   */
  constructor(sizeHint = 64 * 1024, reuse?: Buffer) {
    this.buf = reuse && reuse.length >= sizeHint ? reuse : Buffer.allocUnsafeSlow(Math.max(1024, sizeHint));
  }

  /** Bytes written so far. */
  get length(): number {
    return this.at;
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }

  bytes(b: Buffer): this {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
    return this;
  }

  /** `s` as UTF-8. */
  text(s: string): this {
    this.room(Buffer.byteLength(s));
    this.at += this.buf.write(s, this.at, 'utf8');
    return this;
  }

  /** A number as String(n) writes it (ASCII): the digits of a safe non-negative integer directly. */
  number(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) {
      const s = String(n);
      this.room(s.length);
      this.at += this.buf.write(s, this.at, 'latin1');
      return this;
    }
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    this.room(digits);
    let x = n;
    for (let i = this.at + digits - 1; i >= this.at; i--) {
      const q = Math.floor(x / 10);
      this.buf[i] = 0x30 + (x - q * 10);
      x = q;
    }
    this.at += digits;
    return this;
  }

  /** One byte (an ASCII character code). */
  byte(c: number): this {
    this.room(1);
    this.buf[this.at++] = c;
    return this;
  }

  /** What was written (a view of the buffer: the writer is not to be used after). */
  done(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

/** The whole buffer a ByteWriter's done() is a view of, to write into again. */
export function whole(written: Buffer): Buffer {
  return Buffer.from(written.buffer, written.byteOffset, written.buffer.byteLength - written.byteOffset);
}
