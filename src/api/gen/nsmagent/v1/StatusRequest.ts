// Original file: proto/agent/agent.proto


export interface StatusRequest {
}

export interface StatusRequest__Output {
}
