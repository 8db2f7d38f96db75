// The package as a consumer gets it: `npm pack`, the tarball installed into a throw-away app,
// that app type-checked with `tsc --strict` and `skipLibCheck: false` under moduleResolution
// node10, nodenext and bundler, then compiled to a CommonJS and an ES module that each run a
// stale save against SQLite and must catch an OptimisticLockError. Once per TypeORM line.
//
// It reuses dist/ when present (CI builds just before), installs nothing from the network (the
// tarball has no dependencies; typeorm, better-sqlite3, reflect-metadata and @types/node are
// linked from this repository's node_modules) and writes test-results/consumer-summary.json,
// which .ci/run adds to its totals. Exit code 1 when any check failed.
//
//   node scripts/consumer-check.mjs [--keep]    (--keep leaves the temporary apps for a look)
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const keep = process.argv.includes("--keep");
const lines = [
  { name: "typeorm-0.3", folder: "typeorm-0.3" },
  { name: "typeorm-1", folder: "typeorm-1" },
];
/** Packages the app takes from this repository instead of the registry. */
const linked = ["reflect-metadata", "better-sqlite3", "@types/node"];
const tsc = join(repo, "node_modules/typescript/bin/tsc");

/** @type {{ name: string, ok: boolean, seconds: number, output?: string }[]} */
const checks = [];

/** Runs a command, records it as a check, and prints what failed. */
function check(name, command, args, cwd, expect) {
  const started = performance.now();
  const run = spawnSync(command, args, { cwd, encoding: "utf8", timeout: 180_000 });
  const output = `${run.stdout ?? ""}${run.stderr ?? ""}${run.error ? String(run.error) : ""}`.trim();
  const ok = run.status === 0 && (!expect || expect.test(output));
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  checks.push({ name, ok, seconds, ...(ok ? {} : { output }) });
  console.log(`${ok ? "ok  " : "FAIL"} ${name} (${seconds} s)`);
  if (!ok) console.log(output.replace(/^/gm, "     "));
  return ok;
}

// The consumer's code: the README's story, strict, through the package's public entry point only.
const consumerSource = `import "reflect-metadata";
import { Column, DataSource, Entity, PrimaryGeneratedColumn } from "typeorm";
import {
  conflictResponse,
  installLocking,
  LockMode,
  OptimisticLockError,
  type RetryOptions,
  Versioned,
  withLockMode,
} from "typeorm-locking";

@Entity()
class Order {
  @PrimaryGeneratedColumn() id!: number;
  @Column() status!: string;
  @Versioned() version!: number;
}

const retry: RetryOptions = { attempts: 3, isolation: "SERIALIZABLE" };

export async function main(): Promise<string> {
  const dataSource = installLocking(
    new DataSource({ type: "better-sqlite3", database: ":memory:", entities: [Order], synchronize: true }),
  );
  await dataSource.initialize();
  try {
    const orders = dataSource.getRepository(Order);
    const { id } = await orders.save(orders.create({ status: "NEW" }));
    // A lock mode belongs to a transaction; OPTIMISTIC checks the version again at commit. The
    // spread into a repository's options did not compile on TypeORM 0.3 before LockModeOption
    // left out \`select\`.
    const first = await dataSource.transaction((manager) =>
      manager.getRepository(Order).findOneOrFail({ where: { id }, ...withLockMode(LockMode.OPTIMISTIC) }),
    );
    const second = await orders.findOneByOrFail({ id });
    second.status = "PAID";
    await orders.save(second);
    first.status = "SHIPPED";
    try {
      await orders.save(first);
    } catch (error) {
      if (error instanceof OptimisticLockError) {
        return \`caught OptimisticLockError (HTTP \${conflictResponse(error)?.status}, retry attempts \${retry.attempts})\`;
      }
      throw error;
    }
    throw new Error("the stale save was accepted");
  } finally {
    await dataSource.destroy();
  }
}

main().then(
  (message) => console.log(message),
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
`;

const compilerOptions = {
  strict: true,
  skipLibCheck: false,
  target: "ES2022",
  lib: ["ES2022"],
  types: ["node"],
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  esModuleInterop: true,
};
const resolutions = {
  node10: { module: "commonjs", moduleResolution: "node10", files: ["consumer.ts"] },
  bundler: { module: "esnext", moduleResolution: "bundler", files: ["consumer.ts"] },
  nodenext: { module: "nodenext", moduleResolution: "nodenext", files: ["consumer.cts", "consumer.mts"] },
};

if (!existsSync(join(repo, "dist/cjs/index.js")) || !existsSync(join(repo, "dist/esm/index.mjs"))) {
  execFileSync(process.execPath, ["scripts/build.mjs"], { cwd: repo, stdio: "inherit" });
}
const work = mkdtempSync(join(tmpdir(), "typeorm-locking-consumer-"));
try {
  const packed = JSON.parse(
    execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: repo, encoding: "utf8" }),
  );
  const tarball = join(work, packed[0].filename);
  const shipped = packed[0].files.map((file) => file.path);
  checks.push({
    name: "tarball contents",
    ok:
      ["LICENSE", "dist/cjs/index.d.ts", "dist/esm/index.d.mts"].every((file) => shipped.includes(file)) &&
      !shipped.some((file) => file.startsWith("src/") || file.startsWith("test/")),
    seconds: 0,
  });
  console.log(`${checks.at(-1).ok ? "ok  " : "FAIL"} tarball contents (${shipped.length} files)`);

  for (const line of lines) {
    const app = join(work, line.name);
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), `${JSON.stringify({ name: "consumer-app", private: true }, null, 2)}\n`);
    // The tarball itself goes through npm: it has no dependencies, so nothing is fetched.
    const installed = check(
      `${line.name}: npm install the tarball`,
      "npm",
      ["install", "--offline", "--no-audit", "--no-fund", "--legacy-peer-deps", "--ignore-scripts", tarball],
      app,
    );
    if (!installed) continue;
    symlinkSync(join(repo, "node_modules", line.folder), join(app, "node_modules/typeorm"), "dir");
    for (const name of linked) {
      mkdirSync(dirname(join(app, "node_modules", name)), { recursive: true });
      symlinkSync(join(repo, "node_modules", name), join(app, "node_modules", name), "dir");
    }
    for (const file of ["consumer.ts", "consumer.cts", "consumer.mts"]) writeFileSync(join(app, file), consumerSource);

    for (const [resolution, { files, ...options }] of Object.entries(resolutions)) {
      const config = `tsconfig.${resolution}.json`;
      const emit = resolution === "nodenext"; // the nodenext build is also what the run checks execute
      writeFileSync(
        join(app, config),
        JSON.stringify({ compilerOptions: { ...compilerOptions, ...options, noEmit: !emit, outDir: "out" }, files }),
      );
      check(
        `${line.name}: tsc --strict, skipLibCheck false, moduleResolution ${resolution}`,
        process.execPath,
        [tsc, "-p", config],
        app,
      );
    }
    const expect = /caught OptimisticLockError \(HTTP 409/;
    check(`${line.name}: CommonJS run on SQLite`, process.execPath, ["out/consumer.cjs"], app, expect);
    check(`${line.name}: ES module run on SQLite`, process.execPath, ["out/consumer.mjs"], app, expect);
  }
} finally {
  if (keep) console.log(`apps kept in ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

const passed = checks.filter((c) => c.ok).length;
const failed = checks.length - passed;
mkdirSync(join(repo, "test-results"), { recursive: true });
writeFileSync(
  join(repo, "test-results/consumer-summary.json"),
  `${JSON.stringify({ passed, failed, checks }, null, 2)}\n`,
);
console.log(`consumer check: ${passed} of ${checks.length} checks passed`);
process.exitCode = failed === 0 ? 0 : 1;
