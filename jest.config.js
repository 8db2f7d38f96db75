// Two jest projects run every test against each supported TypeORM line. `typeorm` (and its deep
// imports) is mapped to an npm alias folder, for the tests and for the library code in src/.

/** @param {string} displayName @param {string} aliasFolder */
function project(displayName, aliasFolder) {
  const typeorm = `<rootDir>/node_modules/${aliasFolder}`;
  return {
    displayName,
    rootDir: __dirname,
    testEnvironment: "node",
    globals: { TYPEORM_LINE: displayName },
    testMatch: ["<rootDir>/test/**/*.test.ts"],
    // The Galera suite needs its own cluster: `npm run test:galera` (jest.galera.config.js); the
    // fault runs are long: `npm run test:faults` (jest.faults.config.js).
    testPathIgnorePatterns: ["/node_modules/", "<rootDir>/test/galera/", "<rootDir>/test/faults/"],
    // LOCKING_TEST_BATCH_WRITES=0 (=1): every installation with batchWrites off (on) (test/support/batch-writes-setup.ts).
    setupFiles: ["<rootDir>/test/support/batch-writes-setup.ts"],
    // A mutation run's sandboxes (a copy of the project) must not be seen as a second package.
    modulePathIgnorePatterns: ["<rootDir>/.stryker-tmp/"],
    moduleFileExtensions: ["ts", "js", "json", "node"],
    transform: {
      // isolatedModules false: full TypeScript program, so emitDecoratorMetadata has types.
      "^.+\\.ts$": ["ts-jest", { tsconfig: "<rootDir>/tsconfig.json", isolatedModules: false }],
    },
    moduleNameMapper: {
      "^typeorm$": typeorm,
      "^typeorm/(.*)$": `${typeorm}/$1`,
    },
  };
}

/** @type {import('jest').Config} */
module.exports = {
  projects: [project("typeorm-0.3", "typeorm-0.3"), project("typeorm-1", "typeorm-1")],
  // The tests share databases: one file at a time.
  maxWorkers: 1,
  testTimeout: 30_000,
  globalSetup: "<rootDir>/test/support/global-setup.mjs",
  globalTeardown: "<rootDir>/test/support/global-teardown.mjs",
  reporters: ["default", "<rootDir>/test/support/matrix-reporter.js"],
};
