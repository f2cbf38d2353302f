/** A raw NSM client on an agent's unix socket, as a unit's own NSC would be. */
import * as grpc from '@grpc/grpc-js';
import { api, Connection, ConnectionEvent, NetworkServiceRequest, MonitorScopeSelector } from '../../src/api';

export class NsmClient {
  private readonly ns: any;
  private readonly monitor: any;
  constructor(socket: string) {
    const a = api();
    const target = `unix://${socket}`;
    this.ns = new (a.ns.networkservice.NetworkService as any)(target, grpc.credentials.createInsecure());
    this.monitor = new (a.ns.connection.MonitorConnection as any)(target, grpc.credentials.createInsecure(), {
      channelOverride: this.ns.getChannel(),
    });
  }

  request(req: NetworkServiceRequest, timeoutMs = 15_000): Promise<Connection> {
    return new Promise((resolve, reject) =>
      this.ns.Request(req, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: Connection) =>
        err ? reject(err) : resolve(res),
      ),
    );
  }

  close(conn: Connection): Promise<void> {
    return new Promise((resolve, reject) =>
      this.ns.Close(conn, { deadline: Date.now() + 15_000 }, (err: grpc.ServiceError | null) => (err ? reject(err) : resolve())),
    );
  }

  /** Subscribes; returns a function that cancels the stream. */
  watch(selector: MonitorScopeSelector, onEvent: (e: ConnectionEvent) => void): () => void {
    const call = this.monitor.MonitorConnections(selector);
    call.on('data', onEvent);
    call.on('error', () => {});
    return () => call.cancel();
  }

  dispose(): void {
    grpc.Client.prototype.close.call(this.ns); // the service has a Close method that shadows close()
  }
}

export function kernelRequest(id: string, service: string, netnsName: string, ifname: string, labels: Record<string, string> = {}): NetworkServiceRequest {
  return {
    connection: { id, network_service: service, labels },
    mechanism_preferences: [{ cls: 'LOCAL', type: 'KERNEL', parameters: { name: ifname, inodeURL: `file:///run/netns/${netnsName}` } }],
  };
}
