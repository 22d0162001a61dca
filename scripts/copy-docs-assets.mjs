// The API reference at /docs runs Scalar's standalone bundle. It is served from public/ with the
// playground, not from a CDN, so /docs works offline and behind strict networks.
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("public/scalar", { recursive: true });
copyFileSync("node_modules/@scalar/api-reference/dist/browser/standalone.js", "public/scalar/standalone.js");
