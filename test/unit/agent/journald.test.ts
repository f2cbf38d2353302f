/** journald's native protocol: the fields of an entry, their encoding, the sink and its fallback. */
import { describe, it, expect } from 'vitest';
import { AgentError } from '../../../src/core/errors';
import { createLogger } from '../../../src/core/log';
import { encodeEntry, fieldName, journaldSink, journalFields, stderrIsJournal } from '../../../src/agent/journald';

describe('journald fields', () => {
  it('has MESSAGE as the stderr line reads, the priority, and CONNECTION_ID, NETWORK_SERVICE and CODE', () => {
    const f = journalFields('warn', 'heal: attempt failed', { agent: 'host-a', id: 'c-1', service: 'icmp-responder', error: new AgentError('NO_CANDIDATES', 'no endpoint') });
    expect(f).toEqual([
      ['MESSAGE', '"heal: attempt failed" agent=host-a id=c-1 service=icmp-responder error="no endpoint"'],
      ['PRIORITY', '4'],
      ['SYSLOG_IDENTIFIER', 'nsm-agent'],
      ['CONNECTION_ID', 'c-1'],
      ['NETWORK_SERVICE', 'icmp-responder'],
      ['CODE', 'NO_CANDIDATES'],
      ['AGENT', 'host-a'],
      ['ID', 'c-1'],
      ['SERVICE', 'icmp-responder'],
      ['ERROR', 'no endpoint'],
    ]);
    expect(journalFields('info', 'x', { code: 'SOCKET_IN_USE', network_service: 's' })).toContainEqual(['CODE', 'SOCKET_IN_USE']);
    expect(journalFields('info', 'x', { network_service: 's' })).toContainEqual(['NETWORK_SERVICE', 's']);
  });

  it('makes valid field names', () => {
    expect(fieldName('tookMs')).toBe('TOOK_MS');
    expect(fieldName('tunnel-ip')).toBe('TUNNEL_IP');
    expect(fieldName('_private')).toBe('PRIVATE');
    expect(fieldName('9lives')).toBe('LIVES');
  });

  it('encodes values with newlines in the binary form', () => {
    const buf = encodeEntry([
      ['MESSAGE', 'one line'],
      ['DETAIL', 'a\nb'],
    ]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(3n);
    expect(buf).toEqual(Buffer.concat([Buffer.from('MESSAGE=one line\nDETAIL\n'), len, Buffer.from('a\nb\n')]));
  });

  it('a logger with the sink sends datagrams, and falls back to stderr lines when the send fails', () => {
    const sent: string[] = [];
    const lines: string[] = [];
    let fail = false;
    const log = createLogger({
      level: 'info',
      fields: { agent: 'a' },
      sink: journaldSink({
        socket: '/nonexistent',
        send: (_p, data) => {
          if (fail) throw new Error('ENOENT');
          sent.push(data.toString());
        },
        fallback: (l) => lines.push(l),
      }),
    });
    log.debug('hidden');
    log.info('connected', { id: 'c-2' });
    expect(sent).toHaveLength(1);
    expect(sent[0]).toContain('CONNECTION_ID=c-2\n');
    fail = true;
    log.warn('lost');
    expect(lines).toEqual(['<4>level=warn msg=lost agent=a']);
  });

  it('knows stderr is the journal only when JOURNAL_STREAM names it', () => {
    expect(stderrIsJournal({})).toBe(false);
    expect(stderrIsJournal({ JOURNAL_STREAM: '1:2' })).toBe(false);
  });
});

describe('log level at run time', () => {
  it('follows a shared level reference, in loggers made with with() too', () => {
    const lines: string[] = [];
    const level = { current: 'info' as 'info' | 'debug' };
    const log = createLogger({ level, write: (l) => lines.push(l) }).with({ c: 1 });
    log.debug('a');
    level.current = 'debug';
    log.debug('b');
    expect(log.level).toBe('debug');
    level.current = 'info';
    log.debug('c');
    expect(lines).toEqual(['<7>level=debug msg=b c=1']);
  });
});
