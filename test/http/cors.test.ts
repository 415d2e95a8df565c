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
});
