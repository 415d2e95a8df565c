import { multinodeSuite } from './multinode.js';

// The same suite with no services: two nodes in this process on the embedded PGlite and in-process
// buses sharing one hub, so a developer without PostgreSQL and Redis still runs it.
multinodeSuite('several nodes without services (embedded database, in-process bus)', {}, 'embedded');
