// Original file: proto/agent/agent.proto


export interface DisconnectRequest {
  'id'?: (string);
}

export interface DisconnectRequest__Output {
  'id': (string);
}
