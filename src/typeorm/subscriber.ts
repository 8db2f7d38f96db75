import type { DataSource, EntitySubscriberInterface, ObjectLiteral, QueryRunner } from "typeorm";
import type { EntityMetadata } from "typeorm/metadata/EntityMetadata";
import { installationOf } from "../installation";
import { rememberLoadedVersion } from "../loaded-versions";
import { dropCommitChecks, runCommitChecks } from "./commit-checks";

/**
 * The library's one subscriber per DataSource: notes the version of every versioned entity
 * TypeORM loads (so a later save can tell "the row moved since this load" from "a client-sent
 * version is stale"), and runs the OPTIMISTIC checks queued for a transaction before it commits.
 */
export class LockingSubscriber implements EntitySubscriberInterface<ObjectLiteral> {
  afterLoad(
    entity: ObjectLiteral,
    event?: { metadata?: EntityMetadata; dataSource?: DataSource; connection?: DataSource },
  ): void {
    const dataSource = event?.dataSource ?? event?.connection;
    if (!event?.metadata || !dataSource) return;
    const policy = installationOf(dataSource)?.policies.of(event.metadata);
    if (policy) rememberLoadedVersion(entity, policy.column.getEntityValue(entity));
  }

  async beforeTransactionCommit(event: { queryRunner: QueryRunner }): Promise<void> {
    await runCommitChecks(event.queryRunner);
  }

  afterTransactionRollback(event: { queryRunner: QueryRunner }): void {
    dropCommitChecks(event.queryRunner);
  }
}

/** Adds the subscriber to a DataSource, once. */
export function attachSubscriber(dataSource: DataSource): void {
  const subscribers = dataSource.subscribers as EntitySubscriberInterface[];
  if (!subscribers.some((s) => s instanceof LockingSubscriber)) subscribers.push(new LockingSubscriber());
}
