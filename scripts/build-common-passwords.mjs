// Writes src/lib/common-passwords.json: the 10,000 most common passwords of the zxcvbn-ts list
// (frequency-ordered, MIT) in the form they are compared in, keeping only forms a password could
// still match after the other rules (at least 4 characters, not all digits).
// Run after upgrading @zxcvbn-ts/language-common: npm exec -- node scripts/build-common-passwords.mjs
// (Node 22 runs the TypeScript import below by stripping its types.)
import { readFileSync, writeFileSync } from "node:fs";
import { commonPasswordForm } from "../src/lib/common-password-form.ts";

const TOP = 10_000;
const source = JSON.parse(readFileSync("node_modules/@zxcvbn-ts/language-common/src/passwords.json", "utf8"));
const forms = new Set();
for (const password of source.slice(0, TOP)) {
  const form = commonPasswordForm(password);
  if (form.length >= 4 && !/^\d+$/.test(form)) forms.add(form);
}
writeFileSync("src/lib/common-passwords.json", `${JSON.stringify([...forms].sort())}\n`);
console.log(`${forms.size} forms`);
