// `npm run test:faults`: the proof under faults (issue 18). The same two TypeORM projects and the
// same database set-up as jest.config.js, over test/faults/. LOCKING_FAULTS_PROFILE picks the size:
// "full" (default; the figures of docs/reliability.md) or "reduced" (what .ci/run runs).
const base = require("./jest.config.js");

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  projects: base.projects.map((project) => ({
    ...project,
    testMatch: ["<rootDir>/test/faults/**/*.test.ts"],
    testPathIgnorePatterns: ["/node_modules/"],
  })),
  testTimeout: 30 * 60_000,
};
