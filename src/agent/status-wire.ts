/**
 * The Status answer as a gRPC client of nsmagent.v1.Agent decodes it (every field present,
 * enums as names, 64-bit integers as strings): encoded and decoded with the CLI's own codecs,
 * so that `status` on the systemd socket answers exactly what the gRPC call does, and loads
 * neither grpc-js nor protobufjs to do it.
 */
import { Codecs, decodeMessage, encodeMessage, type DescriptorNode, type MessageType } from '../api/codec';
import { descriptor } from '../api/descriptor';

let response: MessageType | undefined;

export function statusAsOnTheWire(status: unknown): Record<string, unknown> {
  response ??= new Codecs(descriptor() as DescriptorNode).method('nsmagent.v1.Agent', 'Status')!.res;
  return decodeMessage(response, Buffer.from(encodeMessage(response, status as Record<string, unknown>)));
}
