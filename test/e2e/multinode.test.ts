import { multinodeSuite } from './multinode.js';

multinodeSuite('several nodes behind a load balancer that is not sticky');
