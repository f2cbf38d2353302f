import { it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Container, rootfs } from './lib/container';
it('debug', async () => {
  const c = await Container.boot(rootfs());
  try {
    mkdirSync(c.path('root/pkgs'), { recursive: true });
    copyFileSync('/tmp/resolved-pkgs/nsm-agent_0.1.0_amd64.deb', c.path('root/pkgs/a.deb'));
    const inst = c.exec(['dpkg', '-i', '/root/pkgs/a.deb'], { timeout: 120_000 });
    console.log('INSTALL', inst.code);
    c.sh('ip netns add nsmt-ep && ip -n nsmt-ep link set lo up');
    c.sh('systemd-run --unit nsmt-dnsmasq ip netns exec nsmt-ep dnsmasq -k -C /dev/null --no-resolv --no-hosts --pid-file= --host-record=web.mesh.test,10.99.0.7');
    const conf = c.path('etc/nsm-agent/agent.yaml');
    writeFileSync(conf, readFileSync(conf, 'utf8').replace(/^endpoints: \[\]$/m, 'endpoints: [{name: dns-ep, services: [dns-svc], cidr: 172.16.90.100/31, netns: nsmt-ep, dns: [{servers: [172.16.90.100], searchDomains: [mesh.test]}]}]') + 'logLevel: debug\n');
    c.sh('systemctl restart nsm-agent');
    console.log(c.exec(['nsm-agent', 'connect', 'kernel://dns-svc/nsm-dns']).stdout);
    await new Promise((r) => setTimeout(r, 3000));
    console.log(c.exec(['nsm-agent', 'status']).stdout);
    console.log(c.exec(['sh', '-c', 'journalctl -u nsm-agent --no-pager -n 30 | grep -i "dns\\|resolv"; journalctl -u systemd-resolved --no-pager -n 20; resolvectl status; ip -o addr; systemctl status dbus --no-pager | head -5']).stdout);
  } finally {
    await c.stop();
  }
}, 300_000);
