/**
 * The column type `@Versioned({ type })` declares. TypeORM gives every version column its
 * driver's version type (`integer`, `int4`, `int`) whatever the decorator says, so the declared
 * type is put into the column's metadata as soon as a DataSource has built it: before
 * `synchronize` and before a migration is generated from it.
 */
import type { DataSource } from "typeorm";
import { LockingConfigurationError } from "../errors";
import type { ColumnMetadata } from "../typeorm-types";
import { declaredVersionTypeOf } from "../versioned";
import { type Method, type TypeormInternals, wrap } from "./internals";

/** Wraps `DataSource.buildMetadatas()`. @internal */
export function installVersionColumnTypes(internals: TypeormInternals): void {
  const dataSourcePrototype = (internals.dataSourceClass as { prototype: Record<string, unknown> }).prototype;
  wrap(
    dataSourcePrototype,
    "buildMetadatas",
    (build: Method): Method =>
      async function (this: DataSource, ...args: unknown[]) {
        const built = await build.apply(this, args);
        for (const metadata of this.entityMetadatas) {
          const column = metadata.versionColumn;
          // The class that declared the property: an embedded value's, a parent entity's.
          const declared = typeof column?.target === "function" ? declaredVersionTypeOf(column.target) : undefined;
          if (column && declared !== undefined) giveType(this, metadata.name, column, declared);
        }
        return built;
      },
  );
}

function giveType(dataSource: DataSource, entityName: string, column: ColumnMetadata, type: string): void {
  const { driver } = dataSource;
  if (!driver.supportedDataTypes.includes(driver.normalizeType({ ...column, type } as ColumnMetadata) as never)) {
    throw new LockingConfigurationError(
      `${entityName}.${column.propertyPath}: @Versioned({ type: "${type}" }) is not a column type of ` +
        `${String(dataSource.options.type)}. Use an integer type it has, or leave type out for its default.`,
    );
  }
  column.type = type as ColumnMetadata["type"];
}
