// Original file: proto/agent/agent.proto

import type { Long } from '@grpc/proto-loader';

export interface TrafficStatus {
  'side'?: (string);
  'rx_bytes'?: (number | string | Long);
  'tx_bytes'?: (number | string | Long);
  'rx_packets'?: (number | string | Long);
  'tx_packets'?: (number | string | Long);
  'handshake_age_ms'?: (number | string | Long);
}

export interface TrafficStatus__Output {
  'side': (string);
  'rx_bytes': (string);
  'tx_bytes': (string);
  'rx_packets': (string);
  'tx_packets': (string);
  'handshake_age_ms': (string);
}
