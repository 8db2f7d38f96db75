/**
 * What the packed package promises, checked on the source tree in every test run (the full check
 * of the tarball, `npm run test:consumer`, runs in CI): declarations that resolve for consumers,
 * and the metadata and files a published package carries.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(__dirname, "..");
const packageJson = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const REPOSITORY = "https://github.com/typeorm-locking/typeorm-locking";

function sourceFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(folder, entry.name))
      : entry.name.endsWith(".ts")
        ? [join(folder, entry.name)]
        : [],
  );
}

describe("the package", () => {
  it("src imports TypeORM from its root only (a deep import does not resolve for consumers under bundler)", () => {
    const deep = sourceFiles(join(root, "src")).flatMap((file) =>
      readFileSync(file, "utf8")
        .split("\n")
        .map((line, index) => ({ line, at: `${relative(root, file)}:${index + 1}` }))
        .filter(({ line }) => /\bfrom\s+["']typeorm\/|import\(["']typeorm\//.test(line))
        .map(({ line, at }) => `${at}: ${line.trim()}`),
    );
    expect(deep).toEqual([]);
  });

  it("has a LICENSE file (MIT) that it ships, and repository, homepage and bugs fields", () => {
    expect(packageJson.license).toBe("MIT");
    expect(readFileSync(join(root, "LICENSE"), "utf8")).toMatch(
      /^MIT License\n\nCopyright \(c\) \d{4} typeorm-locking contributors/,
    );
    expect(packageJson.files).toContain("LICENSE");
    expect(packageJson.repository).toEqual({ type: "git", url: `git+${REPOSITORY}.git` });
    expect(packageJson.homepage).toBe(`${REPOSITORY}#readme`);
    expect(packageJson.bugs).toEqual({ url: `${REPOSITORY}/issues` });
  });

  it("builds declarations without @internal ones, and source maps that carry their sources", () => {
    const build = JSON.parse(readFileSync(join(root, "tsconfig.build.json"), "utf8"));
    expect(build.compilerOptions).toMatchObject({ stripInternal: true, inlineSources: true });
  });
});
