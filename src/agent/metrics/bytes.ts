/**
 * A growing byte buffer for writing a large text exposition directly as UTF-8: thousands of
 * series written as copies of kept byte strings and short numbers, with no string of the
 * whole page to build, flatten and encode again when it is sent.
 */
export class ByteWriter {
  private buf: Buffer;
  private at = 0;

  constructor(sizeHint = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(1024, sizeHint));
  }

  /** Bytes written so far. */
  get length(): number {
    return this.at;
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
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

  /** A number as String(n) writes it (ASCII). */
  number(n: number): this {
    const s = String(n);
    this.room(s.length);
    this.at += this.buf.write(s, this.at, 'latin1');
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
