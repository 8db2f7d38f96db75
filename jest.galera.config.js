// The Galera suite: the same two TypeORM projects as jest.config.js, on the two-node cluster that
// scripts/test-galera.sh starts (node ports in GALERA_NODE1_PORT / GALERA_NODE2_PORT).
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
