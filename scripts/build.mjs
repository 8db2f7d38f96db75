// Builds dist/cjs with tsc, then an ESM entry that re-exports the CommonJS build, so that
// `import` and `require` share one module instance (one set of hooks, one error class each).
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

rmSync("dist", { recursive: true, force: true });
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
  stdio: "inherit",
});
const names = Object.keys(createRequire(import.meta.url)("../dist/cjs/index.js")).filter(
  (name) => name !== "__esModule",
);
mkdirSync("dist/esm", { recursive: true });
writeFileSync(
  "dist/esm/index.mjs",
  `import cjs from "../cjs/index.js";\nexport const { ${names.join(", ")} } = cjs;\n`,
);
writeFileSync("dist/esm/index.d.mts", `export * from "../cjs/index.js";\n`);
console.log(`built dist/cjs and dist/esm (${names.length} exports)`);
