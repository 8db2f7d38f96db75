// The Galera suite: the same two TypeORM projects as jest.config.js, on the cluster that
// scripts/test-galera.sh starts (three nodes; their addresses in GALERA_NODE<n>_HOST / _PORT).
const base = require("./jest.config.js");

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  projects: base.projects.map((project) => ({
    ...project,
    testMatch: ["<rootDir>/test/galera/**/*.test.ts"],
    testPathIgnorePatterns: ["/node_modules/"],
  })),
  globalSetup: undefined,
  globalTeardown: undefined,
  testTimeout: 120_000,
};
