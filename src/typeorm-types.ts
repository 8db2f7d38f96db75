/**
 * TypeORM types the package's declarations need that TypeORM's root does not export on both
 * lines. They are derived from root exports on purpose: a deep import (`typeorm/metadata/...`)
 * in an emitted `.d.ts` does not resolve for a consumer under `moduleResolution: "bundler"` or
 * `"nodenext"`, because TypeORM's `./*` export maps `import` to an extensionless path.
 */
import type { EntityMetadata, QueryRunner } from "typeorm";

/**
 * TypeORM's `ColumnMetadata`: one column of an entity.
 *
 * @example
 * ```ts
 * const version: ColumnMetadata | undefined = metadata.versionColumn;
 * ```
 */
export type ColumnMetadata = EntityMetadata["columns"][number];

/**
 * TypeORM's `IsolationLevel`: the isolation levels a transaction can ask for.
 *
 * @example
 * ```ts
 * const isolation: IsolationLevel = "SERIALIZABLE";
 * ```
 */
export type IsolationLevel = NonNullable<Parameters<QueryRunner["startTransaction"]>[0]>;
