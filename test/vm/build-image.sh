#!/bin/bash
# build-image.sh OUTDIR [MIRROR]: a Debian 12 test-VM image for qemu, as OUTDIR/{base.img,vmlinuz,initrd.img}.
# Debian's cloud kernel (wireguard, vxlan, veth, tun as modules), systemd as init, qemu-guest-agent for
# commands, and what the nsm-agent .deb needs at run time (the VMs have no network: apt cannot fetch).
# Needs root, debootstrap, e2fsprogs (mkfs.ext4 -d) and the Debian mirror. The caller (test/vm/harness.ts)
# keys its cache on this file's content, so any change here makes a new image.
set -euo pipefail
OUT=$1
MIRROR=${2:-http://deb.debian.org/debian}
R=$OUT/root
# The kernel and boot; the guest agent; the checks (ip, ping, wg, ps); the .deb's Depends/Recommends.
PKGS=linux-image-cloud-amd64,initramfs-tools,systemd,systemd-sysv,udev,dbus,kmod,qemu-guest-agent,procps
PKGS=$PKGS,iproute2,iputils-ping,wireguard-tools,wireguard-go,libstdc++6,libgcc-s1
rm -rf "$R"; mkdir -p "$OUT"
debootstrap --variant=minbase --include="$PKGS" bookworm "$R" "$MIRROR"

echo vm > "$R/etc/hostname"
printf '127.0.0.1 localhost\n' > "$R/etc/hosts"
printf 'LABEL=vmroot / ext4 rw,noatime,errors=remount-ro 0 0\n' > "$R/etc/fstab"
# The first NIC (ens3: its PCI slot is pinned) takes its address from the kernel command line:
# nsmvm.ip=10.77.0.1/24. One image serves every VM.
cat > "$R/usr/local/sbin/nsmvm-netgen" <<'EOT'
#!/bin/sh
ip=
for a in $(cat /proc/cmdline); do case "$a" in nsmvm.ip=*) ip=${a#nsmvm.ip=};; esac; done
[ -n "$ip" ] || exit 0
mkdir -p /run/systemd/network
printf '[Match]\nName=ens3\n[Link]\nRequiredForOnline=yes\n[Network]\nAddress=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' "$ip" \
  > /run/systemd/network/10-nsmvm.network
EOT
chmod 755 "$R/usr/local/sbin/nsmvm-netgen"
cat > "$R/etc/systemd/system/nsmvm-netgen.service" <<'EOT'
[Unit]
Description=Network configuration from the kernel command line (nsmvm.ip=)
DefaultDependencies=no
Before=systemd-networkd.service network-pre.target
Wants=network-pre.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/nsmvm-netgen
[Install]
WantedBy=sysinit.target
EOT
chroot "$R" systemctl enable nsmvm-netgen.service systemd-networkd.service
# network-online.target (nsm-agent.service waits for it) means: ens3 configured.
mkdir -p "$R/etc/systemd/system/systemd-networkd-wait-online.service.d"
printf '[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --timeout=30 -i ens3\n' \
  > "$R/etc/systemd/system/systemd-networkd-wait-online.service.d/ens3.conf"
# Less to do at boot under emulation (each unit costs 1-2 s).
chroot "$R" systemctl disable apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer || true
chroot "$R" systemctl mask getty@tty1.service serial-getty@ttyS0.service e2scrub_reap.service systemd-pstore.service \
  sys-kernel-debug.mount sys-kernel-tracing.mount dev-hugepages.mount modprobe@drm.service modprobe@dm_mod.service \
  modprobe@efi_pstore.service modprobe@loop.service
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' > "$R/etc/systemd/journald.conf.d/volatile.conf"
# A small initramfs: virtio only (ext4 is built into the cloud kernel).
sed -i 's/^MODULES=.*/MODULES=list/' "$R/etc/initramfs-tools/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\n' >> "$R/etc/initramfs-tools/modules"
K=$(ls "$R/lib/modules")
chroot "$R" update-initramfs -u -k "$K"
test -f "$R/lib/modules/$K/kernel/drivers/net/wireguard/wireguard.ko"
cp "$R/boot/vmlinuz-$K" "$OUT/vmlinuz"; cp "$R/boot/initrd.img-$K" "$OUT/initrd.img"
chroot "$R" apt-get clean
rm -rf "$R/var/lib/apt/lists/"*
rm -f "$OUT/base.img"; truncate -s 2G "$OUT/base.img"
mkfs.ext4 -q -F -L vmroot -d "$R" "$OUT/base.img"
rm -rf "$R"
