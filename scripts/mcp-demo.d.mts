import type { Server } from "node:http";
export declare function startMcpDemo(port?: number): Promise<Server>;
