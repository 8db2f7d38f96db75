/**
 * The two copies of TypeORM the bench uses: `typeorm`, which the library hooks once installed,
 * and `typeorm-1`, a second copy of the same release (the alias the tests use) that it never
 * patches, for plain DataSources that must not pass through the library's hooks.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

type Typeorm = typeof import("typeorm");

/** An installed package's version, read beside its entry point: typeorm's `exports` hide its package.json from require(). */
export function packageVersion(name: string): string {
  return JSON.parse(readFileSync(join(dirname(require.resolve(name)), "package.json"), "utf8")).version;
}

/** Both copies; throws when `typeorm-1` is not a separate copy of the same release. */
export function typeormCopies(): { pristine: Typeorm; main: Typeorm } {
  const pristine = require("typeorm-1") as Typeorm;
  const main = require("typeorm") as Typeorm;
  if (pristine.DataSource === main.DataSource || packageVersion("typeorm-1") !== packageVersion("typeorm")) {
    throw new Error("the bench needs typeorm-1 to be a second copy of the same typeorm release (see package.json)");
  }
  return { pristine, main };
}
