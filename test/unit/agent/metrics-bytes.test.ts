// ByteWriter, the buffer /metrics pages are written into: numbers as String() writes them,
// UTF-8 text, growth past the first buffer, and writing again into a page's whole buffer.
import { describe, expect, it } from 'vitest';
import { ByteWriter, whole } from '../../../src/agent/metrics/bytes';

describe('ByteWriter', () => {
  it('writes numbers as String() does, integers digit by digit and the rest through String()', () => {
    const values = [0, 7, 10, 99, 100, 4_294_967_296, Number.MAX_SAFE_INTEGER, 2 ** 53, 1e21, 0.25, -3, NaN, Infinity];
    for (let i = 0; i < 1000; i++) values.push(Math.floor(Math.random() * 2 ** (Math.random() * 53)));
    const w = new ByteWriter(16);
    for (const v of values) w.number(v).byte(0x0a);
    expect(w.done().toString().split('\n').slice(0, -1)).toEqual(values.map(String));
  });

  it('writes text as UTF-8 and bytes as they are, growing as needed', () => {
    const w = new ByteWriter(1);
    const long = 'x'.repeat(5000);
    w.text('é"\\n').bytes(Buffer.from(long)).text('✓');
    expect(w.done().toString()).toBe(`é"\\n${long}✓`);
    expect(w.length).toBe(Buffer.byteLength(`é"\\n${long}✓`));
  });

  it('writes into a reused buffer when it is big enough, and only what was written is the page', () => {
    const first = new ByteWriter(2048).text('a'.repeat(1500)).done();
    const reused = new ByteWriter(1024, whole(first)).text('short').done();
    expect(reused.buffer).toBe(first.buffer);
    expect(reused.toString()).toBe('short');
    const fresh = new ByteWriter(4096, whole(first)).text('b').done();
    expect(fresh.buffer).not.toBe(first.buffer);
  });
});
