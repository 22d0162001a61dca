import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "./app-env";
import { invalid } from "./errors";

// A hostile body can fail in a hundred thousand ways: the answer names the first few, briefly.
const MAX_ISSUES = 20;
const MAX_MESSAGE_LENGTH = 300;
const brief = (text: string) => (text.length > MAX_MESSAGE_LENGTH ? `${text.slice(0, MAX_MESSAGE_LENGTH)}…` : text);

/** One router per resource; validation failures become the API's one error shape. */
export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    strict: false,
    defaultHook: (result) => {
      if (!result.success) {
        const details = result.error.issues.slice(0, MAX_ISSUES).map((issue) => ({
          field: brief(issue.path.map(String).join(".") || result.target),
          message: brief(issue.message),
        }));
        throw invalid(...details);
      }
    },
  });
}
