/**
 * The Status answer as a gRPC client of nsmagent.v1.Agent decodes it (every field present,
 * enums as names, 64-bit integers as strings): what the CLI's own codecs would decode from what
 * they would encode (reshapeMessage, without the bytes), so that `status` on the systemd socket
 * answers exactly what the gRPC call does, and loads neither grpc-js nor protobufjs to do it.
 */
import { Codecs, reshapeMessage, type DescriptorNode, type MessageType } from '../api/codec';
import { descriptor } from '../api/descriptor';

let response: MessageType | undefined;

export function statusAsOnTheWire(status: unknown): Record<string, unknown> {
  response ??= new Codecs(descriptor() as DescriptorNode).method('nsmagent.v1.Agent', 'Status')!.res;
  return reshapeMessage(response, status as Record<string, unknown>);
}
