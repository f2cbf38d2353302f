/**
 * grpc.health.v1.Health: every served service is reported SERVING once its handlers are
 * registered, as NSM components do; the empty name means the whole server.
 */
import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from '../../api/grpc-js';
import { api } from '../../api';

type Status = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export class HealthService {
  private readonly statuses = new Map<string, Status>([['', 'SERVING']]);
  private readonly watchers = new Set<{ service: string; write: (s: Status) => void }>();

  set(service: string, status: Status): void {
    this.statuses.set(service, status);
    for (const w of this.watchers) if (w.service === service) w.write(status);
  }

  /** Marks every service as NOT_SERVING (on shutdown). */
  shutdown(): void {
    for (const s of [...this.statuses.keys()]) this.set(s, 'NOT_SERVING');
  }

  addTo(server: grpc.Server): void {
    server.addService(api().health.grpc.health.v1.Health.service, {
      Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const status = this.statuses.get(call.request.service);
        if (!status) cb({ code: grpcJs.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
        else cb(null, { status });
      },
      Watch: (call: grpc.ServerWritableStream<{ service: string }, unknown>) => {
        const w = { service: call.request.service, write: (status: Status) => call.write({ status }) };
        w.write(this.statuses.get(w.service) ?? 'SERVICE_UNKNOWN');
        this.watchers.add(w);
        call.on('cancelled', () => this.watchers.delete(w));
      },
    });
  }
}
