/** Mechanism constants and parameter keys, exactly as NSM's api names them. */
export const CLS = { LOCAL: 'LOCAL', REMOTE: 'REMOTE' } as const;
export const TYPE = { KERNEL: 'KERNEL', WIREGUARD: 'WIREGUARD', VXLAN: 'VXLAN' } as const;
export const PARAM = {
  NAME: 'name',
  INODE_URL: 'inodeURL',
  SRC_IP: 'src_ip',
  DST_IP: 'dst_ip',
  /** A host behind NAT: its own (private) address, when `src_ip` / `dst_ip` carry the public one (upstream swapip). */
  SRC_ORIGINAL_IP: 'orig_src_ip',
  DST_ORIGINAL_IP: 'orig_dst_ip',
  SRC_PORT: 'src_port',
  DST_PORT: 'dst_port',
  SRC_PUBLIC_KEY: 'src_public_key',
  DST_PUBLIC_KEY: 'dst_public_key',
  VNI: 'vni',
  MTU: 'MTU',
} as const;
export const PAYLOAD = { IP: 'IP', ETHERNET: 'ETHERNET' } as const;

/** Linux IFNAMSIZ - 1. */
export const MAX_IFNAME = 15;
