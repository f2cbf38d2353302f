import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { AgentError, ERROR_CODES, toStatus, fromStatus } from '../../../src/core/errors';

describe('errors', () => {
  it('docs/errors.md lists every code with its gRPC status', () => {
    const doc = readFileSync(path.join(__dirname, '../../../docs/errors.md'), 'utf8');
    for (const [code, st] of Object.entries(ERROR_CODES)) {
      expect(doc, code).toMatch(new RegExp(`\\| \`${code}\` \\| ${status[st]} \\|`));
    }
  });

  it('maps codes to gRPC statuses at the boundary', () => {
    expect(toStatus(new AgentError('POOL_EXHAUSTED', 'full'))).toEqual({ code: status.RESOURCE_EXHAUSTED, details: 'full' });
    expect(toStatus(new Error('boom'))).toEqual({ code: status.INTERNAL, details: 'boom' });
  });

  it('keeps the status of an error received from a peer', () => {
    const e = Object.assign(new Error('x'), { code: status.NOT_FOUND, details: 'no such thing', metadata: new Metadata() });
    const a = AgentError.from(e);
    expect(a.code).toBe('NOT_FOUND');
    expect(toStatus(a)).toEqual({ code: status.NOT_FOUND, details: 'no such thing' });
    expect(fromStatus(status.PERMISSION_DENIED, 'no').code).toBe('PERMISSION_DENIED');
  });

  it('turns errno errors from the kernel into DATAPLANE and keeps the context when wrapping', () => {
    const sysErr = Object.assign(new Error('EEXIST: file exists, RTM_NEWLINK'), { code: 'EEXIST', syscall: 'RTM_NEWLINK', errno: -17 });
    expect(AgentError.from(sysErr).code).toBe('DATAPLANE');
    const w = AgentError.wrap(new AgentError('NOT_FOUND', 'gone'), 'select endpoint');
    expect(w.code).toBe('NOT_FOUND');
    expect(w.message).toBe('select endpoint: gone');
  });

  it('uses the status numbers of grpc-js (written out in errors.ts so that the CLI need not load grpc-js)', () => {
    const shared = Object.entries(ERROR_CODES).filter(([code]) => code in status);
    expect(shared.length).toBeGreaterThanOrEqual(10);
    for (const [code, n] of shared) expect(n, code).toBe(status[code as keyof typeof status]);
    expect(ERROR_CODES.POOL_EXHAUSTED).toBe(status.RESOURCE_EXHAUSTED);
    expect(ERROR_CODES.DATAPLANE).toBe(status.INTERNAL);
  });
});
