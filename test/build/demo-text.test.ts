// What `npm start` tells a newcomer to try, from the config it runs: once it named only the two PostgreSQL databases
// (not the SSH host beside them) and pointed at an approve link whose request id appeared nowhere they could see.
import { describe, expect, it } from 'vitest';
import { demoConfigYaml, demoTryText, peopleResources } from '../../scripts/demo-config';
import { parseConfig } from '../../server/config';
import { kindWords } from '../../shared/domain/kinds';

const config = parseConfig(demoConfigYaml({ ports: { server: 7800, web: 7810, sshd: 7822, pg: 7832, target: 7823, mariadb: 7833 }, dir: '/tmp/demo', audience: 'http://localhost:7800/api', issuer: 'http://localhost:7801' }), 'demo');
const text = demoTryText({
  serverUrl: 'http://localhost:7800', resources: peopleResources(config),
  autoApproved: (policy) => Boolean(config.policies[policy]?.autoApprove),
  sockets: { alice: '.stint-demo/agents/alice/agent.sock', bob: '.stint-demo/agents/bob/agent.sock' },
});

describe('npm start: the Try text', () => {
  it('names every resource of the demo by the name the tray shows, with its kind and the command its card copies', () => {
    expect(peopleResources(config).length).toBeGreaterThanOrEqual(3);
    for (const resource of peopleResources(config)) {
      expect(text).toContain(`"${resource.name}"`);
      if (config.policies[resource.policy]?.autoApprove) expect(text).toContain(`"${resource.name}" (${kindWords(resource.kind).name}: paste the ${kindWords(resource.kind).client} command`);
    }
    expect(text).toContain('"Web host (staging)" (SSH host: paste the ssh command');
  });

  it('says where the approve link\'s request id is, with a command that prints it', () => {
    expect(text).toContain('http://localhost:7800/approve/<request id>');
    expect(text).toContain('the admin console http://localhost:7800/admin/');
    expect(text).toContain('node bin/stint.mjs --agent .stint-demo/agents/bob/agent.sock approvals');
    // The line the demo journey and README readers use to reach alice's agent stays as it was.
    expect(text).toMatch(/^From a terminal, the same agents: node bin\/stint\.mjs --agent \S+alice\S+ grants$/m);
  });
});
