/**
 * nsm-agent's command line. `run` is the daemon; the other commands are clients of a running
 * agent on its unix socket (--socket, NSM_AGENT_SOCKET, default /run/nsm-agent/agent.sock).
 * Exit codes: 0 ok, 1 failure reported by the agent or the kernel, 2 usage or configuration error.
 */
import { parseArgs } from 'node:util';
import { AgentError, describeError } from '../core/errors';
import { ConfigError } from './config/error';
import { socketPath } from './socket-path';
import { VERSION } from './version';

/** The client commands, loaded by those that use them (`unit start` runs before units: it loads the least). */
const commands = () => import('./cli/commands');

const USAGE = `usage: nsm-agent <command> [options]

  run [--config FILE] [--cleanup-on-exit]   run the agent in the foreground (systemd runs this);
                                            FILE defaults to $NSM_AGENT_CONFIG, then
                                            /etc/nsm-agent/agent.yaml if it exists
  status [--json]                           identity, registry, endpoints and connections
  connect URL [--netns NAME | --netns-path PATH] [--id ID] [--json]
                                            request a network service, e.g. kernel://icmp-responder/nsm-1
  disconnect ID                             close a connection
  services [--json]                         network services in the registry
  endpoints [--json]                        network service endpoints in the registry
  apply -f FILE [--json]                    register NetworkService manifests (networkservicemesh.io/v1):
                                            created, configured or unchanged per service
  delete -f FILE | delete service NAME...   remove network services from the registry
  demo [--keep]                             a small mesh on this machine: connect, ping, show, remove
  identity create-ca|issue|show ...        a small PKI for hosts without SPIRE (nsm-agent identity help)
  reload [--json]                           re-read agent.yaml and apply endpoint/connection changes
  unit start|stop UNIT | unit list [--json] connections and endpoints of units with [X-NetworkServiceMesh]
                                            (start/stop are run by nsm-connect@.service)
  version

  COMMAND --help, -h   the command's own usage
  --socket PATH        the agent's socket (default: $NSM_AGENT_SOCKET or /run/nsm-agent/agent.sock);
                       before or after the command`;

/** Each command's own usage, for `nsm-agent COMMAND --help` (and -h). */
const HELP: Record<string, string> = {
  run: `usage: nsm-agent run [--config FILE] [--cleanup-on-exit] [--socket PATH]

Runs the agent in the foreground (what systemd runs).
  -c, --config FILE    agent.yaml; default $NSM_AGENT_CONFIG, then /etc/nsm-agent/agent.yaml
                       if it exists, else built-in defaults
  --cleanup-on-exit    remove every vWire when stopping (default: leave them for the next start)
  --socket PATH        serve on PATH instead of listen.unix`,
  status: `usage: nsm-agent status [--json] [--socket PATH]

Identity, registry (and whether it answers), listeners, endpoints and connections.
  --json    the same as JSON`,
  connect: `usage: nsm-agent connect URL [--netns NAME | --netns-path PATH] [--id ID] [--json] [--socket PATH]

Requests a network service and holds the connection until disconnect.
  URL                [kernel://]SERVICE[/IFNAME][?LABEL=VALUE&...], e.g. kernel://icmp-responder/nsm-1
  --netns NAME       put the interface in /run/netns/NAME (default: the host namespace)
  --netns-path PATH  put the interface in the namespace at PATH (e.g. /proc/PID/ns/net)
  --id ID            the connection's id (printable ASCII, no spaces; 80 characters always fit); default NAME-HEX
  --json             print the connection as JSON`,
  disconnect: `usage: nsm-agent disconnect ID [--socket PATH]

Closes a connection (ID as status shows it).`,
  services: `usage: nsm-agent services [--json] [--socket PATH]

Network services in the registry.`,
  endpoints: `usage: nsm-agent endpoints [--json] [--socket PATH]

Network service endpoints in the registry.`,
  apply: `usage: nsm-agent apply -f FILE [--json] [--socket PATH]

Registers the NetworkService manifests (networkservicemesh.io/v1) of FILE ('-': standard input,
at most 1 MiB) and prints per service whether it was created, configured or unchanged.`,
  delete: `usage: nsm-agent delete -f FILE [--socket PATH]
       nsm-agent delete service NAME... [--socket PATH]

Removes NetworkServices from the registry: those of the manifests in FILE, or by name.`,
  reload: `usage: nsm-agent reload [--json] [--socket PATH]

Re-reads agent.yaml (what ExecReload= runs) and applies endpoint and connection changes; lists
what happened to each held connection it touched. --json prints the result, or the error, as JSON.`,
  unit: `usage: nsm-agent unit start|stop UNIT [--json] [--socket PATH]
       nsm-agent unit list [--json] [--socket PATH]

Connections and endpoints of systemd units with [X-NetworkServiceMesh] (start and stop are run
by nsm-connect@.service).`,
  demo: `usage: nsm-agent demo [--keep]

A small mesh on this machine: three agents in namespaces, connect, ping, show, remove.
  --keep    leave it running until Ctrl-C`,
  version: `usage: nsm-agent version

Prints the version.`,
};

class UsageError extends Error {}

interface Parsed {
  values: Record<string, string | boolean | undefined> & { socket?: string; json?: boolean };
  positionals: string[];
}

function parse(args: string[], options: Record<string, { type: 'string' | 'boolean'; short?: string }>): Parsed {
  try {
    return parseArgs({ args, options: { socket: { type: 'string' }, json: { type: 'boolean' }, ...options }, allowPositionals: true }) as Parsed;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

const str = (v: string | boolean | undefined): string | undefined => (typeof v === 'string' ? v : undefined);

function print(json: boolean | undefined, value: unknown, text: () => string): void {
  process.stdout.write((json ? JSON.stringify(value, null, 2) : text()) + '\n');
}

/**
 * Global flags may come before the command: `nsm-agent --socket P status` is
 * `nsm-agent status --socket P`.
 */
function hoistGlobals(argv: string[]): string[] {
  const globals: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--socket' && i + 1 < argv.length) globals.push(a, argv[++i]!);
    else if (a.startsWith('--socket=') || a === '--json') globals.push(a);
    else break;
  }
  const [command, ...rest] = argv.slice(i);
  return command === undefined ? globals : [command, ...rest, ...globals];
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = hoistGlobals(argv);
  if (command && HELP[command] && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(HELP[command] + '\n');
    return 0;
  }
  switch (command) {
    case 'run': {
      const { values } = parse(rest, { config: { type: 'string', short: 'c' }, 'cleanup-on-exit': { type: 'boolean' } });
      const { prepareV8, loadDaemon, startDone } = await import('./daemon-load');
      prepareV8();
      const loaded = loadDaemon();
      // Once started (before the agent gives back the memory of its start, compiled code
      // included): the cache then holds what the start compiled too.
      const onStarted = () => {
        loaded.saveCache();
        startDone();
      };
      const { runDaemon } = loaded.daemon;
      return runDaemon({ configFile: str(values['config']), socket: values.socket, cleanupOnExit: !!values['cleanup-on-exit'], onStarted, codeCache: loaded.cache });
    }
    case 'status': {
      const { values } = parse(rest, {});
      const { getStatus, printStatus } = await import('./cli/status-call');
      const s = await getStatus(socketPath(values.socket));
      print(values.json, s, () => printStatus(s));
      return 0;
    }
    case 'connect': {
      const cmd = await commands();
      const { values, positionals } = parse(rest, { netns: { type: 'string' }, 'netns-path': { type: 'string' }, id: { type: 'string' } });
      const url = positionals[0];
      if (!url || positionals.length > 1) throw new UsageError('connect needs exactly one URL');
      if (values['netns'] && values['netns-path']) throw new UsageError('give --netns or --netns-path, not both');
      const netns = str(values['netns-path']) ?? str(values['netns']) ?? 'host';
      const c = await cmd.connect(socketPath(values.socket), url, netns, str(values['id']));
      print(values.json, c, () => `${c.clientId}: ${c.service} via ${c.endpoint}, ${c.interface} in ${c.netns} ${c.srcIps.join(',')} -> ${c.dstIps.join(',')} ${c.state}`);
      return 0;
    }
    case 'disconnect': {
      const cmd = await commands();
      const { values, positionals } = parse(rest, {});
      const id = positionals[0];
      if (!id || positionals.length > 1) throw new UsageError('disconnect needs exactly one connection id');
      await cmd.disconnect(socketPath(values.socket), id);
      return 0;
    }
    case 'services': {
      const cmd = await commands();
      const { values } = parse(rest, {});
      const list = await cmd.services(socketPath(values.socket));
      print(values.json, list, () => cmd.printServices(list));
      return 0;
    }
    case 'endpoints': {
      const cmd = await commands();
      const { values } = parse(rest, {});
      const list = await cmd.endpoints(socketPath(values.socket));
      print(values.json, list, () => cmd.printEndpoints(list));
      return 0;
    }
    case 'apply': {
      const cmd = await commands();
      const { values, positionals } = parse(rest, { file: { type: 'string', short: 'f' } });
      const file = str(values['file']);
      if (!file || positionals.length) throw new UsageError('apply needs -f FILE');
      const list = await cmd.apply(socketPath(values.socket), file);
      print(values.json, list, () => list.map((r) => `networkservice/${r.name} ${r.outcome}`).join('\n'));
      return 0;
    }
    case 'delete': {
      const cmd = await commands();
      const { values, positionals } = parse(rest, { file: { type: 'string', short: 'f' } });
      const file = str(values['file']);
      const [kind, ...names] = positionals;
      if (file ? positionals.length > 0 : !(kind === 'service' || kind === 'services' || kind === 'networkservice') || !names.length) {
        throw new UsageError('delete needs -f FILE or service NAME...');
      }
      const list = await cmd.deleteServices(socketPath(values.socket), file ? cmd.manifestNames(file) : names);
      print(values.json, list, () => list.map((r) => `networkservice/${r.name} ${r.outcome}`).join('\n'));
      return list.some((r) => r.outcome !== 'deleted') ? 1 : 0;
    }
    case 'demo': {
      const { values } = parse(rest, { keep: { type: 'boolean' } });
      const { runDemo } = await import('./demo');
      return runDemo({ keep: !!values['keep'] });
    }
    case 'reload': {
      const { values } = parse(rest, {});
      const u = await import('./cli/units');
      const r = await u.reload(socketPath(values.socket));
      print(values.json, r, () => u.printReload(r));
      return r.errors.length ? 1 : 0;
    }
    case 'unit': {
      const { values, positionals } = parse(rest, {});
      const [sub, unit, ...extra] = positionals;
      const u = await import('./cli/units');
      if (sub === 'list' && !unit) {
        const list = await u.unitList(socketPath(values.socket));
        print(values.json, list, () => u.printUnits(list));
        return 0;
      }
      if ((sub !== 'start' && sub !== 'stop') || !unit || extra.length) throw new UsageError('unit needs start UNIT, stop UNIT or list');
      if (sub === 'start') {
        const s = await u.unitStart(socketPath(values.socket), unit);
        print(values.json, s, () => u.printUnits([s]));
      } else {
        const s = await u.unitStop(socketPath(values.socket), unit);
        print(values.json, s, () => `${unit}: ${s.stopped ? 'stopped' : 'was not known to the agent'}${s.agent ? '' : ' (agent not running)'}${s.netns ? ', namespace removed' : ''}`);
      }
      return 0;
    }
    case 'identity': {
      const { runIdentity } = await import('./cli/identity');
      return runIdentity(rest.includes('-h') && rest.length === 1 ? ['--help'] : rest);
    }
    case 'version':
    case '--version':
      if (rest.length) throw new UsageError('version takes no arguments');
      process.stdout.write(`nsm-agent ${VERSION}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return command ? 0 : 2;
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

/** Runs a command and sets the exit code; the entry point of bin/nsm-agent. */
export function cli(argv: string[]): void {
  main(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      const command = hoistGlobals(argv)[0] ?? '';
      let code: string;
      if (err instanceof UsageError) {
        process.stderr.write(`nsm-agent: ${err.message}\n\n${HELP[command] ?? USAGE}\n`);
        process.exitCode = 2;
        code = 'INVALID_ARGUMENT';
      } else if (err instanceof ConfigError) {
        process.stderr.write(`nsm-agent: configuration error: ${err.message}\n`);
        process.exitCode = 2;
        code = 'INVALID_ARGUMENT';
      } else {
        process.stderr.write(`nsm-agent: ${describeError(err)}\n`);
        process.exitCode = 1;
        code = AgentError.from(err).code;
      }
      // --json callers read standard output: the failure is there as JSON too.
      if (argv.includes('--json')) {
        const e = err instanceof AgentError ? err : undefined;
        const error = { code, message: (err as Error).message ?? String(err), component: e?.component ?? (process.exitCode === 1 ? 'this agent' : 'nsm-agent') };
        process.stdout.write(JSON.stringify({ error }, null, 2) + '\n');
      }
    },
  );
}

if (require.main === module) cli(process.argv.slice(2));
