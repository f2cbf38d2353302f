import { describe, it, expect } from 'vitest';
import { FakeClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { tailNseRegistry, type NseRegistry } from '../../../src/core/registry';
import { healthWatched, RegistryHealth } from '../../../src/agent/registry-health';

const URL = 'tcp://10.0.0.3:5002';

function setup() {
  const clock = new FakeClock();
  const health = new RegistryHealth(URL, clock);
  let fail: AgentError | undefined;
  const inner: NseRegistry = {
    ...tailNseRegistry,
    register: async (_ctx, nse) => {
      if (fail) throw fail;
      return nse;
    },
  };
  const reg = healthWatched(inner, health);
  return { clock, health, reg, setFail: (e: AgentError | undefined) => (fail = e) };
}

describe('registry health', () => {
  it('names the registry at its URL when it cannot be reached, and records since when', async () => {
    const { clock, health, reg, setFail } = setup();
    const ctx = Ctx.background({ clock });
    expect(health.view().state).toBe('unknown');
    setFail(new AgentError('UNAVAILABLE', 'connect ECONNREFUSED 10.0.0.3:5002'));
    clock.advance(1000);
    const err = await reg.register(ctx, { name: 'a' }).catch((e) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toBe(`cannot reach the registry at ${URL}: connect ECONNREFUSED 10.0.0.3:5002`);
    const down = health.view();
    expect(down).toMatchObject({ url: URL, state: 'unreachable', error: 'connect ECONNREFUSED 10.0.0.3:5002' });
    clock.advance(5000);
    await reg.register(ctx, { name: 'a' }).catch(() => {});
    expect(health.view().since).toBe(down.since); // still the same outage

    setFail(undefined);
    await reg.register(ctx, { name: 'a' });
    expect(health.view()).toMatchObject({ state: 'reachable', since: clock.now(), error: '' });
  });

  it('an error the registry answered with means reachable; a timeout changes nothing', async () => {
    const { clock, health, reg, setFail } = setup();
    const ctx = Ctx.background({ clock });
    setFail(new AgentError('DEADLINE_EXCEEDED', 'deadline'));
    await reg.register(ctx, { name: 'a' }).catch(() => {});
    expect(health.view().state).toBe('unknown');
    setFail(new AgentError('PERMISSION_DENIED', 'no'));
    const err = await reg.register(ctx, { name: 'a' }).catch((e) => e);
    expect(err.message).toBe('no');
    expect(health.view().state).toBe('reachable');
  });
});
