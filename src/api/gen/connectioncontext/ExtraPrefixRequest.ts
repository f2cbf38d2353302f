// Original file: proto/networkservice/connectioncontext.proto

import type { IpFamily as _connectioncontext_IpFamily, IpFamily__Output as _connectioncontext_IpFamily__Output } from '../connectioncontext/IpFamily';

export interface ExtraPrefixRequest {
  'addr_family'?: (_connectioncontext_IpFamily | null);
  'prefix_len'?: (number);
  'required_number'?: (number);
  'requested_number'?: (number);
}

export interface ExtraPrefixRequest__Output {
  'addr_family': (_connectioncontext_IpFamily__Output | null);
  'prefix_len': (number);
  'required_number': (number);
  'requested_number': (number);
}
