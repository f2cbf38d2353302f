import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { AgentError, ERROR_CODES, toStatus, fromStatus, describeError } from '../../../src/core/errors';

describe('errors', () => {
  it('docs/errors.md lists every code with its gRPC status', () => {
    const doc = readFileSync(path.join(__dirname, '../../../docs/errors.md'), 'utf8');
    for (const [code, st] of Object.entries(ERROR_CODES)) {
      expect(doc, code).toMatch(new RegExp(`\\| \`${code}\` \\| ${status[st]} \\|`));
    }
  });

  it('maps codes to gRPC statuses at the boundary', () => {
    expect(toStatus(new AgentError('POOL_EXHAUSTED', 'full'))).toMatchObject({ code: status.RESOURCE_EXHAUSTED, details: 'full' });
    expect(toStatus(new Error('boom'))).toMatchObject({ code: status.INTERNAL, details: 'boom' });
  });

  it('keeps the status of an error received from a peer', () => {
    const e = Object.assign(new Error('x'), { code: status.NOT_FOUND, details: 'no such thing', metadata: new Metadata() });
    const a = AgentError.from(e);
    expect(a.code).toBe('NOT_FOUND');
    expect(toStatus(a)).toMatchObject({ code: status.NOT_FOUND, details: 'no such thing' });
    expect(fromStatus(status.PERMISSION_DENIED, 'no').code).toBe('PERMISSION_DENIED');
  });

  it('carries the stable code and the failed component across gRPC in trailing metadata', () => {
    const st = toStatus(new AgentError('NETNS_NOT_FOUND', 'network namespace /run/netns/x does not exist'));
    expect(st.code).toBe(status.NOT_FOUND);
    expect(st.metadata.get('nsm-agent-error-code')).toEqual(['NETNS_NOT_FOUND']);
    const back = AgentError.from(Object.assign(new Error('x'), st));
    expect(back).toMatchObject({ code: 'NETNS_NOT_FOUND', message: 'network namespace /run/netns/x does not exist', component: undefined });
    const remote = toStatus(new AgentError('POOL_EXHAUSTED', 'full', { component: 'the registry at tcp://r:5002' }));
    expect(AgentError.from(Object.assign(new Error('x'), remote))).toMatchObject({ code: 'POOL_EXHAUSTED', component: 'the registry at tcp://r:5002' });
    // a stable code that does not agree with the status is not believed
    const md = new Metadata();
    md.set('nsm-agent-error-code', 'POOL_EXHAUSTED');
    expect(fromStatus(status.NOT_FOUND, 'x', undefined, md).code).toBe('NOT_FOUND');
    md.set('nsm-agent-error-code', 'NO_SUCH_CODE');
    expect(fromStatus(status.NOT_FOUND, 'x', undefined, md).code).toBe('NOT_FOUND');
  });

  it('describes an error with the cause first, then its code and the component that failed', () => {
    expect(describeError(new AgentError('SERVICE_NOT_FOUND', 'network service x is not found'))).toBe(
      'network service x is not found (SERVICE_NOT_FOUND from this agent)',
    );
    const sysErr = Object.assign(new Error('EPERM: operation not permitted, RTM_NEWLINK'), { code: 'EPERM', syscall: 'RTM_NEWLINK' });
    expect(describeError(AgentError.wrap(sysErr, 'create veth pair', 'DATAPLANE'))).toBe(
      'create veth pair: EPERM: operation not permitted, RTM_NEWLINK (DATAPLANE from the kernel)',
    );
    expect(describeError(AgentError.at(new AgentError('UNAVAILABLE', 'down'), 'the agent at tcp://b:5001'))).toBe('down (UNAVAILABLE from the agent at tcp://b:5001)');
    expect(describeError(new AgentError('UNAVAILABLE', 'cannot reach the registry at tcp://r:5002: refused', { component: 'the registry at tcp://r:5002' }))).toBe(
      'cannot reach the registry at tcp://r:5002: refused (UNAVAILABLE)',
    );
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
