// Original file: proto/networkservice/connectioncontext.proto


export interface Route {
  'prefix'?: (string);
  'nextHop'?: (string);
}

export interface Route__Output {
  'prefix': (string);
  'nextHop': (string);
}
