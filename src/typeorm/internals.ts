/**
 * The one place that knows TypeORM's internal classes. Everything the library hooks is looked
 * up here, checked once, and fails loudly if a TypeORM release moved it, instead of leaving
 * writes silently unchecked.
 *
 * The shapes below are the parts of TypeORM 0.3.20+ and 1.x that the hooks touch; they are
 * declared structurally because the two lines' type declarations differ in places we do not use.
 */
import type { DataSource, EntityManager, EntityMetadata, ObjectLiteral, QueryRunner } from "typeorm";
import { LockingConfigurationError } from "../errors";
import type { ColumnMetadata } from "../typeorm-types";

/** A persistence subject: one entity that `save()`/`remove()` is about to write. @internal */
export interface SubjectLike {
  metadata: EntityMetadata;
  entity?: ObjectLiteral;
  databaseEntity?: ObjectLiteral;
  identifier?: ObjectLiteral;
  changeMaps: Array<{ column?: ColumnMetadata; relation?: { propertyPath: string }; value?: unknown }>;
  /** Whether TypeORM looked the row up (true even when it found none). */
  databaseEntityLoaded?: boolean;
  /** Set by `softRemove()` (`recover()`) on the entities it was given and their cascades. */
  canBeSoftRemoved?: boolean;
  canBeRecovered?: boolean;
  /** The subject whose save made this one (cascades, orphan fix-ups, junction rows). */
  parentSubject?: SubjectLike;
  /** TypeORM's shallow copy of `entity` that its pre-load reads the relations to load from. */
  entityWithFulfilledIds?: ObjectLiteral;
  /** What the write returned (generated columns), merged into `entity` after the flush. */
  generatedMap?: ObjectLiteral;
  /** The UPDATE's value set; empties `changeMaps` (a written subject has nothing left to write). */
  createValueSetAndPopChangeMap?(): ObjectLiteral;
}

/** TypeORM's `SubjectDatabaseEntityLoader`: the pre-load of the rows a save() writes. */
export interface DatabaseEntityLoaderLike {
  queryRunner: QueryRunner;
  subjects: SubjectLike[];
}

/** TypeORM's `SubjectExecutor`: runs the writes of one `save()`/`remove()`. @internal */
export interface SubjectExecutorLike {
  queryRunner: QueryRunner;
  insertSubjects: SubjectLike[];
  updateSubjects: SubjectLike[];
  removeSubjects: SubjectLike[];
  softRemoveSubjects: SubjectLike[];
  recoverSubjects: SubjectLike[];
  /** The save options (`reload: false` skips the re-read of generated columns). */
  options?: { reload?: boolean };
}

/** The part of a write query builder's state the hooks read. @internal */
export interface ExpressionMapLike {
  mainAlias?: { metadata: EntityMetadata; hasMetadata: boolean };
  /** "insert", "update", "delete", "soft-delete", "restore", ... */
  queryType?: string;
  /** Set by `orUpdate()` / `onConflict()` (an upsert) on an insert. */
  onUpdate?: unknown;
  onConflict?: unknown;
  extraReturningColumns: ColumnMetadata[];
}

/** A write query builder (update, soft delete/restore, delete). @internal */
export interface WriteQueryBuilderLike {
  expressionMap: ExpressionMapLike;
  /** The runner the statement runs on (TypeORM's persistence layer always sets one). */
  queryRunner?: QueryRunner;
}

/** TypeORM's `ReturningResultsEntityUpdator`, which re-reads generated columns after an UPDATE. @internal */
export interface ReturningUpdatorLike {
  queryRunner: QueryRunner;
  expressionMap: ExpressionMapLike;
}

/** A write result, as TypeORM's `UpdateResult`/`DeleteResult`. @internal */
export interface WriteResultLike {
  affected?: number | null;
  generatedMaps?: ObjectLiteral[];
}

type Prototype = Record<string, unknown>;

/** The prototypes the hooks patch. @internal */
export interface TypeormInternals {
  subjectExecutor: Prototype;
  updateQueryBuilder: Prototype;
  softDeleteQueryBuilder: Prototype;
  deleteQueryBuilder: Prototype;
  insertQueryBuilder: Prototype;
  returningUpdator: Prototype;
  selectQueryBuilder: Prototype;
  entityPersistExecutor: Prototype;
  subjectDatabaseEntityLoader: Prototype;
  queryExpressionMap: Prototype;
  materializedPathExecutor: Prototype;
  dataSourceClass: Function;
}

const REQUIRED: Array<[keyof Omit<TypeormInternals, "dataSourceClass">, string[]]> = [
  [
    "subjectExecutor",
    [
      "execute",
      "executeInsertOperations",
      "executeUpdateOperations",
      "executeRemoveOperations",
      "executeSoftRemoveOperations",
      "executeRecoverOperations",
      "updateSpecialColumnsInPersistedEntities",
    ],
  ],
  ["updateQueryBuilder", ["set", "whereEntity", "createWhereExpression", "getQueryAndParameters", "execute"]],
  ["softDeleteQueryBuilder", ["whereEntity", "createWhereExpression", "getQueryAndParameters", "execute"]],
  ["deleteQueryBuilder", ["where", "execute"]],
  ["insertQueryBuilder", ["execute"]],
  ["returningUpdator", ["update"]],
  [
    "selectQueryBuilder",
    [
      "executeEntitiesAndRawResults",
      "createLockExpression",
      "createTableLockExpression",
      "getQuery",
      "getRawAndEntities",
      "getManyAndCount",
    ],
  ],
  ["entityPersistExecutor", ["execute"]],
  ["subjectDatabaseEntityLoader", ["load"]],
  ["queryExpressionMap", ["clone"]],
  ["materializedPathExecutor", ["insert", "update"]],
];

let cached: TypeormInternals | undefined;

/** Loads and checks the TypeORM internals (the copy of `typeorm` this package resolves). @internal */
export function typeormInternals(): TypeormInternals {
  if (cached) return cached;
  const internals: TypeormInternals = {
    subjectExecutor: load("typeorm/persistence/SubjectExecutor.js", "SubjectExecutor"),
    updateQueryBuilder: load("typeorm/query-builder/UpdateQueryBuilder.js", "UpdateQueryBuilder"),
    softDeleteQueryBuilder: load("typeorm/query-builder/SoftDeleteQueryBuilder.js", "SoftDeleteQueryBuilder"),
    deleteQueryBuilder: load("typeorm/query-builder/DeleteQueryBuilder.js", "DeleteQueryBuilder"),
    insertQueryBuilder: load("typeorm/query-builder/InsertQueryBuilder.js", "InsertQueryBuilder"),
    returningUpdator: load("typeorm/query-builder/ReturningResultsEntityUpdator.js", "ReturningResultsEntityUpdator"),
    selectQueryBuilder: load("typeorm/query-builder/SelectQueryBuilder.js", "SelectQueryBuilder"),
    entityPersistExecutor: load("typeorm/persistence/EntityPersistExecutor.js", "EntityPersistExecutor"),
    subjectDatabaseEntityLoader: load(
      "typeorm/persistence/SubjectDatabaseEntityLoader.js",
      "SubjectDatabaseEntityLoader",
    ),
    queryExpressionMap: load("typeorm/query-builder/QueryExpressionMap.js", "QueryExpressionMap"),
    materializedPathExecutor: load(
      "typeorm/persistence/tree/MaterializedPathSubjectExecutor.js",
      "MaterializedPathSubjectExecutor",
    ),
    dataSourceClass: require("typeorm").DataSource,
  };
  for (const [key, methods] of REQUIRED) {
    for (const method of methods) {
      if (typeof internals[key][method] !== "function") {
        throw unsupported(`${key}.${method} is missing`);
      }
    }
  }
  // Protected, so not in TypeORM's typings: where @Versioned({ type }) gives the column its type.
  if (typeof (internals.dataSourceClass.prototype as Prototype).buildMetadatas !== "function") {
    throw unsupported("dataSource.buildMetadatas is missing");
  }
  cached = internals;
  return internals;
}

function load(path: string, exportName: string): Prototype {
  let module: Record<string, { prototype?: Prototype }>;
  try {
    module = require(path);
  } catch (cause) {
    throw unsupported(`cannot load ${path}`, cause);
  }
  const prototype = module[exportName]?.prototype;
  if (!prototype) throw unsupported(`${path} has no ${exportName}`);
  return prototype;
}

function unsupported(what: string, cause?: unknown): LockingConfigurationError {
  return new LockingConfigurationError(
    `typeorm-locking cannot hook this TypeORM build (${what}). Supported: typeorm 0.3.20+ and 1.x.`,
    { cause },
  );
}

/**
 * The DataSource a query runner or query builder belongs to (`dataSource` in 1.x, `connection`
 * in 0.3).
 *
 * @internal
 */
export function dataSourceOf(owner: QueryRunner | WriteQueryBuilderLike | EntityManager): DataSource {
  const holder = owner as unknown as { dataSource?: DataSource; connection?: DataSource };
  return (holder.dataSource ?? holder.connection) as DataSource;
}

/** A method of a TypeORM prototype, as the hooks see it. @internal */
// biome-ignore lint/suspicious/noExplicitAny: TypeORM's internal method signatures are not public types
export type Method = (this: any, ...args: any[]) => any;

/** Replaces a prototype method by `make(original)`. @internal */
export function wrap(prototype: Record<string, unknown>, name: string, make: (original: Method) => Method): void {
  prototype[name] = make(prototype[name] as Method);
}

/**
 * Ends the server session under a query runner: its driver connection is destroyed (mysql2 and
 * mysql take it out of the pool; TypeORM's later `release()` of it does nothing), and the server
 * rolls back the transaction the session held. For a transaction the server will not end by any
 * statement. A driver without `destroy()` (not in the MySQL family) is left as it is. @internal
 */
export function destroyConnectionOf(queryRunner: QueryRunner): void {
  const connection = (queryRunner as unknown as { databaseConnection?: { destroy?: () => void } }).databaseConnection;
  if (typeof connection?.destroy === "function") connection.destroy();
}
