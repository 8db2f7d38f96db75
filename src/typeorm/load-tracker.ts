import type { DataSource, EntitySubscriberInterface, ObjectLiteral } from "typeorm";
import type { EntityMetadata } from "typeorm/metadata/EntityMetadata";
import { installationOf } from "../installation";
import { rememberLoadedVersion } from "../loaded-versions";

/**
 * A subscriber that notes the version of every versioned entity TypeORM loads, so a later save
 * can tell "the row moved since this load" from "a client-sent version is stale".
 */
export class LoadedVersionTracker implements EntitySubscriberInterface<ObjectLiteral> {
  afterLoad(
    entity: ObjectLiteral,
    event?: { metadata?: EntityMetadata; dataSource?: DataSource; connection?: DataSource },
  ): void {
    const dataSource = event?.dataSource ?? event?.connection;
    if (!event?.metadata || !dataSource) return;
    const policy = installationOf(dataSource)?.policies.of(event.metadata);
    if (policy) rememberLoadedVersion(entity, policy.column.getEntityValue(entity));
  }
}

/** Adds the tracker to a DataSource's subscribers, once. */
export function attachLoadTracker(dataSource: DataSource): void {
  const subscribers = dataSource.subscribers as EntitySubscriberInterface[];
  if (!subscribers.some((s) => s instanceof LoadedVersionTracker)) subscribers.push(new LoadedVersionTracker());
}
