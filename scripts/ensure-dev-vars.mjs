// Run before `npm run dev`: a fresh clone gets a .dev.vars with a random JWT_SECRET, so the
// dev server needs no manual step. An existing .dev.vars is never touched.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";

if (!existsSync(".dev.vars")) {
  const example = readFileSync(".dev.vars.example", "utf8");
  const secret = randomBytes(32).toString("base64url");
  writeFileSync(".dev.vars", example.replace(/^JWT_SECRET=.*$/m, `JWT_SECRET=${secret}`));
  console.log("Created .dev.vars with a random JWT_SECRET.");
}
