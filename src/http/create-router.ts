import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "./app-env";
import { invalid } from "./errors";

/** One router per resource; validation failures become the API's one error shape. */
export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    strict: false,
    defaultHook: (result) => {
      if (!result.success) {
        const details = result.error.issues.map((issue) => ({
          field: issue.path.map(String).join(".") || result.target,
          message: issue.message,
        }));
        throw invalid(...details);
      }
    },
  });
}
