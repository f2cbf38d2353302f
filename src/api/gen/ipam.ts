// @ts-nocheck
import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { IPAMClient as _ipam_IPAMClient, IPAMDefinition as _ipam_IPAMDefinition } from './ipam/IPAM';
import type { PrefixRequest as _ipam_PrefixRequest, PrefixRequest__Output as _ipam_PrefixRequest__Output } from './ipam/PrefixRequest';
import type { PrefixResponse as _ipam_PrefixResponse, PrefixResponse__Output as _ipam_PrefixResponse__Output } from './ipam/PrefixResponse';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  ipam: {
    IPAM: SubtypeConstructor<typeof grpc.Client, _ipam_IPAMClient> & { service: _ipam_IPAMDefinition }
    PrefixRequest: MessageTypeDefinition<_ipam_PrefixRequest, _ipam_PrefixRequest__Output>
    PrefixResponse: MessageTypeDefinition<_ipam_PrefixResponse, _ipam_PrefixResponse__Output>
    Type: EnumTypeDefinition
  }
}

