// Original file: proto/agent/agent.proto


export interface ConnectRequest {
  'url'?: (string);
  'netns'?: (string);
  'id'?: (string);
}

export interface ConnectRequest__Output {
  'url': (string);
  'netns': (string);
  'id': (string);
}
