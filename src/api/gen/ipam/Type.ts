// Original file: proto/ipam/ipam.proto

export const Type = {
  UNDEFINED: 'UNDEFINED',
  ALLOCATE: 'ALLOCATE',
  DELETE: 'DELETE',
} as const;

export type Type =
  | 'UNDEFINED'
  | 0
  | 'ALLOCATE'
  | 1
  | 'DELETE'
  | 2

export type Type__Output = typeof Type[keyof typeof Type]
