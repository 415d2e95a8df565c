import { expect } from 'chai';
import { useStack } from '../support/stack.js';

const preflight = (url: string, origin: string) =>
  fetch(`${url}/api/login`, {
    method: 'OPTIONS',
    headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' },
  });

describe('a page of another site uses the API (CORS)', function () {
  this.timeout(30_000);

  describe('with CORS_ORIGINS=* (the default)', function () {
    const s = useStack({ backend: 'embedded' });

    it('its preflight is answered 204, allowing POST and DELETE with Authorization, for a day', async () => {
      const res = await preflight(s.url(), 'https://app.example');
      expect(res.status).to.equal(204);
      expect(res.headers.get('access-control-allow-origin')).to.equal('*');
      expect(res.headers.get('access-control-allow-methods')).to.match(/POST/).and.match(/DELETE/);
      expect(res.headers.get('access-control-allow-headers')).to.match(/Authorization/i).and.match(/Content-Type/i);
      expect(res.headers.get('access-control-max-age')).to.equal('86400');
    });

    it('it can read an answer, an error included', async () => {
      const res = await fetch(`${s.url()}/api/events`, { headers: { Origin: 'https://app.example' } });
      expect(res.status).to.equal(401);
      expect(res.headers.get('access-control-allow-origin')).to.equal('*');
    });
  });

  describe('with CORS_ORIGINS naming the sites allowed', function () {
    const s = useStack({ backend: 'embedded', env: { CORS_ORIGINS: 'https://app.example, https://other.example' } });

    it('a listed site is allowed by name, and caches are told the answer depends on the origin', async () => {
      const res = await preflight(s.url(), 'https://other.example');
      expect(res.status).to.equal(204);
      expect(res.headers.get('access-control-allow-origin')).to.equal('https://other.example');
      expect(res.headers.get('vary')).to.match(/Origin/);
      const get = await fetch(`${s.url()}/api/events`, { headers: { Origin: 'https://app.example' } });
      expect(get.headers.get('access-control-allow-origin')).to.equal('https://app.example');
      expect(get.headers.get('vary')).to.match(/Origin/);
    });

    it('any other site gets no permission, on the preflight or the request', async () => {
      const res = await preflight(s.url(), 'https://evil.example');
      expect(res.status).to.equal(204);
      expect(res.headers.get('access-control-allow-origin')).to.equal(null);
      const get = await fetch(`${s.url()}/api/events`, { headers: { Origin: 'https://evil.example' } });
      expect(get.status).to.equal(401);
      expect(get.headers.get('access-control-allow-origin')).to.equal(null);
    });
  });

  describe('BOSH (/http-bind) with CORS_ORIGINS naming the sites allowed', function () {
    const s = useStack({ backend: 'embedded', env: { CORS_ORIGINS: 'https://app.example' } });
    const bosh = (origin: string, method: 'OPTIONS' | 'POST') =>
      fetch(`${s.url()}/http-bind`, {
        method,
        headers: { Origin: origin, 'Content-Type': 'text/xml', ...(method === 'OPTIONS' ? { 'Access-Control-Request-Method': 'POST' } : {}) },
        ...(method === 'POST' ? { body: "<body rid='1' xmlns='http://jabber.org/protocol/httpbind' to='localhost' wait='1' hold='1' ver='1.6'/>" } : {}),
      });

    it('allows the listed site to open a session, and no other', async () => {
      const pre = await bosh('https://app.example', 'OPTIONS');
      expect(pre.status).to.equal(204);
      expect(pre.headers.get('access-control-allow-origin')).to.equal('https://app.example');
      expect(pre.headers.get('access-control-allow-methods')).to.match(/POST/);
      const created = await bosh('https://app.example', 'POST');
      expect(created.status).to.equal(200);
      expect(created.headers.get('access-control-allow-origin')).to.equal('https://app.example');
      expect(await created.text()).to.match(/sid=/);
      const evil = await bosh('https://evil.example', 'OPTIONS');
      expect(evil.headers.get('access-control-allow-origin')).to.equal(null);
      expect((await bosh('https://evil.example', 'POST')).headers.get('access-control-allow-origin')).to.equal(null);
    });
  });
});
