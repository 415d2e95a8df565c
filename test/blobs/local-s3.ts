import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';

/** Start s3rver (a local S3-compatible server) on a random loopback port with one bucket. */
export async function startS3(): Promise<{ endpoint: string; bucket: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'parley-s3rver-'));
  const bucket = 'parley-test';
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory: dir, silent: true, configureBuckets: [{ name: bucket }] });
  const addr = await server.run();
  return {
    endpoint: `http://127.0.0.1:${addr.port}`,
    bucket,
    stop: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
