/*
 * Stands in for `ajv` and `ajv-formats` in the Worker bundle (wrangler.toml [alias]). The MCP
 * SDK's client imports its Ajv validator at the top level, but we give every client the
 * CfWorker validator instead (Ajv compiles schemas with `new Function`, which Workers forbid),
 * so Ajv is never constructed; bundled, it would cost about 35 KiB of the 400 KiB budget.
 */
export default class Ajv {
  constructor() {
    throw new Error("Ajv is not bundled: pass the CfWorker JSON Schema validator.");
  }
}

export const addFormats = () => undefined;
