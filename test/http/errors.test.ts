import { expect } from 'chai';
import express from 'express';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { pino } from 'pino';
import supertest from 'supertest';
import { errorHandler } from '../../server/http/errors.js';
import { PG_URL, requireServices } from '../support/services.js';

describe('a value PostgreSQL refuses, when a check at the edge misses it, is a 400 and not a 500', function () {
  this.timeout(20_000);
  let pool: pg.Pool;
  let server: http.Server;
  let url: string;
  before(async function () {
    await requireServices(this);
    pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
    // A route with no validation at all: what a future route that forgot its check would be.
    const app = express();
    app.get('/echo', async (req, res) => {
      const { rows } = await pool.query(`SELECT $1::${req.query['as'] === 'int' ? 'int' : 'text'} AS v`, [req.query['v']]);
      res.json(rows[0]);
    });
    app.get('/bug', () => {
      throw new Error('a real bug');
    });
    app.use(errorHandler(pino({ level: 'silent' })));
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((r) => server?.close(r));
    await pool?.end();
  });

  it('a NUL (22021) and a non-number for an int (22P02) → 400 bad_input; a plain value works', async () => {
    const nul = await supertest(url).get('/echo?v=a%00b');
    expect(nul.status, JSON.stringify(nul.body)).to.equal(400);
    expect(nul.body.error.code).to.equal('bad_input');
    const notInt = await supertest(url).get('/echo?as=int&v=seven');
    expect(notInt.status).to.equal(400);
    expect(notInt.body.error.code).to.equal('bad_input');
    expect((await supertest(url).get('/echo?v=fine').expect(200)).body.v).to.equal('fine');
  });

  it('an error that is not about the input stays a 500', async () => {
    const res = await supertest(url).get('/bug');
    expect(res.status).to.equal(500);
    expect(res.body.error.code).to.equal('internal');
  });
});
