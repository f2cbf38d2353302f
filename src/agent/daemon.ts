/**
 * `nsm-agent run`: the daemon in the foreground. Validates the configuration before touching
 * anything, starts the agent, tells systemd it is ready, and stops cleanly on SIGTERM/SIGINT.
 */
import { createLogger } from '../core/log';
import { loadConfig } from './config';
import { Agent } from './agent';
import * as sys from '../sys';

export interface RunOptions {
  configFile?: string;
  socket?: string;
  cleanupOnExit: boolean;
}

export async function runDaemon(opts: RunOptions): Promise<number> {
  const cfg = loadConfig(opts.configFile ?? process.env['NSM_AGENT_CONFIG']);
  if (opts.socket) cfg.listen.unix = opts.socket;
  else if (process.env['NSM_AGENT_SOCKET'] && !opts.configFile) cfg.listen.unix = process.env['NSM_AGENT_SOCKET'];
  const log = createLogger({ level: cfg.logLevel, fields: { agent: cfg.name } });
  const agent = new Agent(cfg, { log });
  try {
    await agent.start();
  } catch (err) {
    log.error('start failed', { error: err });
    await agent.stop({ cleanup: true }).catch(() => {});
    return 1;
  }
  sys.sdNotify(`READY=1\nSTATUS=serving on ${cfg.listen.unix}`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal });
      sys.sdNotify('STOPPING=1');
      agent
        .stop({ cleanup: true })
        .catch((err) => log.error('stop failed', { error: err }))
        .finally(() => resolve(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
