import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { newBlobKey } from '../../server/blobs/blobs.js';
import { chunkKey } from '../../server/core/archive.js';
import { sweepOrphanBlobs } from '../../server/core/sweep.js';
import { Store } from '../../server/store/store.js';
import { as, register } from '../support/client.js';
import { useStack } from '../support/stack.js';
import { webp } from '../media/images.js';

const silent = pino({ level: 'silent' });

describe('sweeping blobs nothing refers to', function () {
  this.timeout(60_000);
  const suite = useStack({ backend: 'real', nodes: 1 });

  it('removes orphaned files, thumbnails and archive chunks, keeps every blob a row refers to, and spares young ones', async () => {
    const url = suite.url(0);
    const { blobs } = suite.stack.nodes[0]!.deps;
    const alice = await register(url, 'alice');
    const bob = await register(url, 'bob');
    const conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    const upload = await as(url, alice).post(`/api/conversations/${conv.id}/files`).attach('file', await webp(400, 300), 'pic.webp').expect(201);
    await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'later' }).expect(201);
    await as(url, bob).post(`/api/conversations/${conv.id}/read`).send({ up_to: 2 }).expect(204);
    await suite.stack.nodes[0]!.deps.core.archive.run(new Date(Date.now() + 1000)); // the picture's message goes to a chunk

    const referenced = (
      await suite.stack.db.query<{ k: string }>(
        `SELECT blob_key AS k FROM attachments UNION ALL SELECT thumbnails->'small'->>'key' FROM attachments
         UNION ALL SELECT thumbnails->'large'->>'key' FROM attachments UNION ALL SELECT blob_key FROM archives`,
      )
    ).map((r) => r.k);
    expect(referenced).to.have.length(4); // original, two thumbnails, one archive chunk
    const orphans = [newBlobKey('f'), newBlobKey('t'), chunkKey(conv.id, 90, 99)];
    for (const k of orphans) await blobs.put(k, Readable.from([randomBytes(64)]));

    const store = new Store(suite.stack.db);
    expect(await sweepOrphanBlobs(store, blobs, silent, { olderThanMs: 3_600_000 })).to.deep.equal({ checked: 0, orphans: 0, removed: 0 });
    expect(await sweepOrphanBlobs(store, blobs, silent, { olderThanMs: 0, dryRun: true })).to.deep.include({ orphans: 3, removed: 0 });
    for (const k of orphans) expect(await blobs.stat(k), k).to.not.equal(null);

    expect(await sweepOrphanBlobs(store, blobs, silent, { olderThanMs: 0 })).to.deep.equal({ checked: 7, orphans: 3, removed: 3 });
    for (const k of orphans) expect(await blobs.stat(k), k).to.equal(null);
    for (const k of referenced) expect(await blobs.stat(k), k).to.not.equal(null);
    // and what they serve still works: the picture, its thumbnail, the archived history
    const attachment = upload.body.message.attachment;
    await as(url, bob).get(attachment.url).expect(200);
    await as(url, bob).get(attachment.thumbnail_url).expect(200);
    const history = await as(url, bob).get(`/api/conversations/${conv.id}/messages`).expect(200);
    expect(history.body.messages.map((m: any) => m.attachment?.id ?? m.text)).to.deep.equal([attachment.id, 'later']);
  });
});
