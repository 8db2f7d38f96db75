/**
 * The offline lock manager on every database: one winner among 20 connections racing for a lock,
 * the handle's life (check, extend, release, expiry, take-over, fencing token), writes that
 * require the lock, and the migration creating exactly the table the entity describes.
 */
import {
  Column,
  DataSource,
  type DataSourceOptions,
  Entity,
  JoinTable,
  ManyToMany,
  PrimaryColumn,
  PrimaryGeneratedColumn,
} from "typeorm";
import {
  AlreadyLockedError,
  installLocking,
  type LockDialect,
  LockingConfigurationError,
  mariadbDialect,
  mysqlDialect,
  OFFLINE_LOCK_TABLE,
  OfflineLockBypassError,
  type OfflineLockHandle,
  OfflineLockLostError,
  OfflineLockManager,
  OfflineLockRecord,
  OfflineLockRequiredError,
  OfflineLockTableMigration,
  postgresDialect,
  sqliteDialect,
} from "../src";
import { Order, OrderLine } from "./fixtures/entities";
import { closeAll, describeEachDatabase, openAlongside, openDataSources } from "./support/databases";

/** A composite key: its lock id is its columns in order, joined by a comma. */
@Entity({ name: "tl_offline_seat" })
class Seat {
  @PrimaryColumn() hall!: number;
  @PrimaryColumn() place!: number;
  @Column() holder!: string;
}

@Entity({ name: "tl_offline_song" })
class Song {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @ManyToMany(
    () => Playlist,
    (playlist) => playlist.songs,
  )
  playlists!: Playlist[];
}

/** Protected, not versioned and no aggregate: a change of its links alone writes only junction rows. */
@Entity({ name: "tl_offline_playlist" })
class Playlist {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @ManyToMany(
    () => Song,
    (song) => song.playlists,
  )
  @JoinTable({ name: "tl_offline_playlist_song" })
  songs!: Song[];
}

/** Protected, linked to stations of its own kind: both ends of a junction row are stations. */
@Entity({ name: "tl_offline_station" })
class Station {
  @PrimaryGeneratedColumn() id!: number;
  @Column() name!: string;
  @ManyToMany(() => Station)
  @JoinTable({ name: "tl_offline_station_link" })
  neighbours!: Station[];
}

/** Linked to labels, new ones inserted by cascade: a post and a label can be new in one flush. */
@Entity({ name: "tl_offline_post" })
class Post {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @ManyToMany(
    () => Label,
    (label) => label.posts,
    { cascade: ["insert"] },
  )
  @JoinTable({ name: "tl_offline_post_label" })
  labels!: Label[];
}

/** The inverse side of a post's labels, inserting by cascade too: a label saved may bring new posts. */
@Entity({ name: "tl_offline_label" })
class Label {
  @PrimaryGeneratedColumn() id!: number;
  @Column() board!: string;
  @ManyToMany(
    () => Post,
    (post) => post.labels,
    { cascade: ["insert"] },
  )
  posts!: Post[];
}

const ENTITIES = [OfflineLockRecord, Order, OrderLine, Seat, Song, Playlist, Station, Post, Label];
const RACERS = 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeEachDatabase((db) => {
  let source: DataSource;
  /** One DataSource per racer on SQLite (a DataSource is one connection there); one pool elsewhere. */
  let racers: DataSource[];
  let locks: OfflineLockManager;

  beforeAll(async () => {
    [source] = await openDataSources(db, ENTITIES, { extra: db.family === "sqlite" ? {} : { poolSize: RACERS } });
    installLocking(source);
    racers = [source];
    if (db.family === "sqlite") while (racers.length < RACERS) racers.push(await openAlongside(source));
    locks = new OfflineLockManager(source).protect(Order);
  });
  afterAll(() => closeAll(...racers));

  let nextId = 1;
  const resource = () => `doc-${nextId++}`;

  // Lock expiry is judged on the server's clock, read with the dialect's nowMillis: UTC ms since
  // the epoch (this machine and the server share a clock). MySQL's is run forced on MariaDB.
  const own = { postgres: postgresDialect, sqlite: sqliteDialect, mysql: mariadbDialect }[db.family];
  const clocks: [string, LockDialect][] = [
    [own.name, own],
    ...(db.family === "mysql" ? [[mysqlDialect.name, mysqlDialect] as [string, LockDialect]] : []),
  ];
  it.each(clocks)("the server's clock, as the %s dialect reads it, is UTC ms since the epoch", async (_, dialect) => {
    const before = Date.now();
    const [row] = (await source.query(`SELECT ${dialect.nowMillis} AS now`)) as { now: unknown }[];
    const after = Date.now();
    expect(Number(row.now)).toBeGreaterThanOrEqual(before - 1000);
    expect(Number(row.now)).toBeLessThanOrEqual(after + 1000);
  });

  it(`${RACERS} concurrent tryLock calls on ${RACERS} connections: exactly one handle, the others AlreadyLockedError naming the holder`, async () => {
    const id = resource();
    const outcomes = await Promise.allSettled(
      Array.from({ length: RACERS }, (_, i) =>
        new OfflineLockManager(racers[i % racers.length]).tryLock("Document", id, {
          owner: `user-${i}`,
          ttlMs: 60_000,
        }),
      ),
    );
    const winners = outcomes.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []));
    const losers = outcomes.flatMap((o) => (o.status === "rejected" ? [o.reason] : []));
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(RACERS - 1);
    for (const loser of losers) {
      expect(loser).toBeInstanceOf(AlreadyLockedError);
      expect(loser).toMatchObject({ lockType: "Document", lockId: id, owner: winners[0].owner });
      expect(loser.expiresAt.getTime()).toBe(winners[0].expiresAt.getTime());
    }
    expect(winners[0]).toMatchObject({ lockType: "Document", lockId: id, fencingToken: 1 });
    expect(winners[0].handle).toMatch(/^[0-9a-f]{32}$/);
  });

  it("check, extend and release go by handle; a released lock is taken again with a higher fencing token", async () => {
    const id = resource();
    const first = await locks.tryLock("Document", id, { owner: "kim", ttlMs: 60_000 });
    expect(await locks.checkLock(first.handle)).toEqual(first);
    const extended = await locks.extendLock(first, 120_000);
    expect(extended.expiresAt.getTime()).toBeGreaterThan(first.expiresAt.getTime());
    await expect(locks.tryLock("Document", id, { owner: "lee", ttlMs: 60_000 })).rejects.toThrow(/locked by kim until/);

    await locks.releaseLock(first);
    await expect(locks.checkLock(first)).rejects.toThrow(OfflineLockLostError);
    await expect(locks.releaseLock(first)).rejects.toThrow(OfflineLockLostError);
    const second = await locks.tryLock("Document", id, { owner: "lee", ttlMs: 60_000 });
    expect(second.fencingToken).toBe(first.fencingToken + 1);
    expect(second.handle).not.toBe(first.handle);
  });

  it("an expired lock can be taken by someone else, and the old handle then fails check, extend and release", async () => {
    const id = resource();
    const stale = await locks.tryLock("Document", id, { owner: "kim", ttlMs: 200 });
    await sleep(400);
    const fresh = await locks.tryLock("Document", id, { owner: "lee", ttlMs: 60_000 });
    expect(fresh.fencingToken).toBe(stale.fencingToken + 1);
    await expect(locks.checkLock(stale)).rejects.toThrow(OfflineLockLostError);
    await expect(locks.extendLock(stale, 60_000)).rejects.toThrow(OfflineLockLostError);
    await expect(locks.releaseLock(stale)).rejects.toThrow(OfflineLockLostError);
    expect(await locks.checkLock(fresh)).toMatchObject({ owner: "lee", fencingToken: fresh.fencingToken });
  });

  describe("writes of a protected entity require its lock", () => {
    async function newOrder(): Promise<Order> {
      return source.getRepository(Order).save({ address: "Old Street 1", status: "NEW" } as Order);
    }
    const orders = () => source.getRepository(Order);

    it("without a handle the save fails before writing; with the held handle it succeeds", async () => {
      const order = await newOrder();
      order.address = "Unlocked Street";
      await expect(orders().save(order)).rejects.toThrow(OfflineLockRequiredError);
      expect(await orders().findOneByOrFail({ id: order.id })).toMatchObject({ address: "Old Street 1", version: 1 });

      const lock = await locks.tryLock("Order", order.id, { owner: "kim", ttlMs: 60_000 });
      const reloaded = await orders().findOneByOrFail({ id: order.id });
      reloaded.address = "Locked Street";
      await locks.runHolding(lock, () => orders().save(reloaded));
      expect(await orders().findOneByOrFail({ id: order.id })).toMatchObject({ address: "Locked Street", version: 2 });
      await locks.releaseLock(lock);
    });

    it("a handle for another order, or one that lapsed, does not let the save or the remove through", async () => {
      const order = await newOrder();
      const other = await newOrder();
      const otherLock = await locks.tryLock("Order", other.id, { owner: "kim", ttlMs: 60_000 });
      order.status = "PAID";
      await expect(locks.runHolding(otherLock, () => orders().save(order))).rejects.toThrow(/holds no handle/);

      const lapsed = await locks.tryLock("Order", order.id, { owner: "kim", ttlMs: 200 });
      await sleep(400);
      await expect(locks.runHolding(lapsed, () => orders().save(order))).rejects.toThrow(/no longer holds/);
      await expect(locks.runHolding(lapsed, () => orders().remove(order))).rejects.toThrow(OfflineLockRequiredError);
      expect(await orders().findOneByOrFail({ id: order.id })).toMatchObject({ status: "NEW", version: 1 });
    });

    it("a handle string tryLock() never made lets no save through: OfflineLockRequiredError, not a driver error", async () => {
      const order = await newOrder();
      const lock = await locks.tryLock("Order", order.id, { owner: "kim", ttlMs: 60_000 });
      order.status = "PAID";
      for (const forged of ["\u0000", `${lock.handle}\u0000`, "x"]) {
        await expect(locks.runHolding(forged, () => orders().save(order))).rejects.toBeInstanceOf(
          OfflineLockRequiredError,
        );
      }
      expect(await orders().findOneByOrFail({ id: order.id })).toMatchObject({ status: "NEW", version: 1 });
      await locks.releaseLock(lock);
    });

    it("a composite key's lock id is its columns joined by a comma: (1, 23) and (12, 3) are two locks", async () => {
      const seats = source.getRepository(Seat);
      const own = new OfflineLockManager(source).protect(Seat);
      const [a, b] = await seats.save([
        { hall: 1, place: 23, holder: "none" },
        { hall: 12, place: 3, holder: "none" },
      ]);
      const lock = await own.tryLock("Seat", "1,23", { owner: "kim", ttlMs: 60_000 });
      a.holder = b.holder = "kim";
      await own.runHolding(lock, () => seats.save(a));
      await expect(own.runHolding(lock, () => seats.save(b))).rejects.toBeInstanceOf(OfflineLockRequiredError);
      expect((await seats.find({ order: { hall: "ASC" } })).map((s) => s.holder)).toEqual(["kim", "none"]);
      await own.releaseLock(lock);
    });

    it("a many-to-many link added or removed needs the lock of the entity saved, though no column of it changes", async () => {
      const own = new OfflineLockManager(source).protect(Playlist);
      const playlists = source.getRepository(Playlist);
      const [a, b] = await source.getRepository(Song).save([{ title: "a" }, { title: "b" }]);
      const { id } = await playlists.save({ name: "mix", songs: [a] } as Playlist);
      const songsOf = async () =>
        (await playlists.findOneOrFail({ where: { id }, relations: { songs: true } })).songs.map((s) => s.id);
      const relink = async (songs: Song[]) => {
        const playlist = await playlists.findOneOrFail({ where: { id }, relations: { songs: true } });
        playlist.songs = songs;
        return playlists.save(playlist);
      };
      await expect(relink([a, b])).rejects.toBeInstanceOf(OfflineLockRequiredError);
      await expect(relink([])).rejects.toBeInstanceOf(OfflineLockRequiredError);
      expect(await songsOf()).toEqual([a.id]);

      const lock = await own.tryLock("Playlist", id, { owner: "kim", ttlMs: 60_000 });
      await own.runHolding(lock, () => relink([b]));
      expect(await songsOf()).toEqual([b.id]);
      await own.releaseLock(lock);
    });

    it("the same links changed from the unprotected side (a song's playlists) need the playlist's lock too", async () => {
      const own = new OfflineLockManager(source).protect(Playlist);
      const songs = source.getRepository(Song);
      const [mix, other] = await source
        .getRepository(Playlist)
        .save([{ name: "mix" }, { name: "other" }] as Playlist[]);
      const song = await songs.save({ title: "c" } as Song);
      const playlistsOf = async () =>
        (await songs.findOneOrFail({ where: { id: song.id }, relations: { playlists: true } })).playlists.map(
          (p) => p.id,
        );
      const relink = async (playlists: Playlist[]) => {
        const loaded = await songs.findOneOrFail({ where: { id: song.id }, relations: { playlists: true } });
        loaded.playlists = playlists;
        return songs.save(loaded);
      };
      await expect(relink([mix])).rejects.toBeInstanceOf(OfflineLockRequiredError);
      // A new song linked into the playlist changes the playlist as well.
      await expect(songs.save({ title: "new", playlists: [mix] } as Song)).rejects.toBeInstanceOf(
        OfflineLockRequiredError,
      );
      const mixLock = await own.tryLock("Playlist", mix.id, { owner: "kim", ttlMs: 60_000 });
      await own.runHolding(mixLock, () => relink([mix]));
      expect(await playlistsOf()).toEqual([mix.id]);
      // Moving it from mix to other changes both: mix's lock alone is not enough.
      await expect(own.runHolding(mixLock, () => relink([other]))).rejects.toBeInstanceOf(OfflineLockRequiredError);
      await expect(relink([])).rejects.toBeInstanceOf(OfflineLockRequiredError);
      expect(await playlistsOf()).toEqual([mix.id]);
      await own.runHolding(mixLock, () => relink([]));
      expect(await playlistsOf()).toEqual([]);
      // Removing a linked song removes its link: that needs the playlist's lock as well.
      await own.runHolding(mixLock, () => relink([mix]));
      const linked = await songs.findOneOrFail({ where: { id: song.id }, relations: { playlists: true } });
      await expect(songs.remove(linked)).rejects.toBeInstanceOf(OfflineLockRequiredError);
      expect(await playlistsOf()).toEqual([mix.id]);
      await own.runHolding(mixLock, () => songs.remove(linked));
      expect(await songs.findOneBy({ id: song.id })).toBeNull();
      await own.releaseLock(mixLock);
    });

    it("a link between two stations (self-referencing many-to-many), added or removed, needs both stations' locks", async () => {
      const own = new OfflineLockManager(source).protect(Station);
      const stations = source.getRepository(Station);
      const [a, b] = await stations.save([{ name: "north" }, { name: "south" }] as Station[]);
      const neighboursOf = async () =>
        (await stations.findOneOrFail({ where: { id: a.id }, relations: { neighbours: true } })).neighbours.map(
          (s) => s.id,
        );
      const relink = async (neighbours: Station[]) => {
        const loaded = await stations.findOneOrFail({ where: { id: a.id }, relations: { neighbours: true } });
        loaded.neighbours = neighbours;
        return stations.save(loaded);
      };
      const aLock = await own.tryLock("Station", a.id, { owner: "kim", ttlMs: 60_000 });
      const bLock = await own.tryLock("Station", b.id, { owner: "kim", ttlMs: 60_000 });
      const refused = await own.runHolding(aLock, () => relink([b])).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(OfflineLockRequiredError);
      expect(refused).toMatchObject({ lockType: "Station", lockId: String(b.id) });
      await own.runHolding(aLock, () => own.runHolding(bLock, () => relink([b])));
      expect(await neighboursOf()).toEqual([b.id]);
      await expect(own.runHolding(aLock, () => relink([]))).rejects.toBeInstanceOf(OfflineLockRequiredError);
      expect(await neighboursOf()).toEqual([b.id]);
      await own.runHolding(aLock, () => own.runHolding(bLock, () => relink([])));
      expect(await neighboursOf()).toEqual([]);
      await own.releaseLock(aLock);
      await own.releaseLock(bLock);
    });

    it("softRemove() and recover() need the lock as save() does, and go through under the held handle", async () => {
      const order = await newOrder();
      const lock = await locks.tryLock("Order", order.id, { owner: "kim", ttlMs: 60_000 });
      try {
        await expect(orders().softRemove(order)).rejects.toBeInstanceOf(OfflineLockRequiredError);
        await locks.runHolding(lock, () => orders().softRemove(order));
        const removed = await orders().findOneOrFail({ where: { id: order.id }, withDeleted: true });
        expect(removed.deletedAt).toBeInstanceOf(Date);
        await expect(orders().recover(removed)).rejects.toBeInstanceOf(OfflineLockRequiredError);
        await locks.runHolding(lock, () => orders().recover(removed));
      } finally {
        await locks.releaseLock(lock);
      }
      expect(await orders().findOneBy({ id: order.id })).toMatchObject({ deletedAt: null, version: 3 });
    });

    it("softDelete() and restore() name no entity: refused with OfflineLockBypassError, holder included", async () => {
      const order = await newOrder();
      const gone = await newOrder();
      const goneLock = await locks.tryLock("Order", gone.id, { owner: "kim", ttlMs: 60_000 });
      await locks.runHolding(goneLock, () => orders().softRemove(gone)); // checked: a row to restore
      await locks.releaseLock(goneLock);
      const lock = await locks.tryLock("Order", order.id, { owner: "kim", ttlMs: 60_000 });
      try {
        for (const write of [() => orders().softDelete(order.id), () => orders().restore(gone.id)]) {
          await expect(write()).rejects.toBeInstanceOf(OfflineLockBypassError);
          await expect(locks.runHolding(lock, write)).rejects.toBeInstanceOf(OfflineLockBypassError);
        }
      } finally {
        await locks.releaseLock(lock);
      }
      expect(await orders().findOneBy({ id: order.id })).toMatchObject({ deletedAt: null, version: 1 });
      expect(await orders().findOneBy({ id: gone.id })).toBeNull();
    });

    it("inserts need no lock (a new entity has none yet)", async () => {
      await expect(newOrder()).resolves.toMatchObject({ version: 1 });
    });
  });

  it("bad input is refused with a clear error", async () => {
    await expect(locks.tryLock("Document", "x", { owner: "kim", ttlMs: 0 })).rejects.toThrow(LockingConfigurationError);
    await expect(locks.tryLock("", "x", { owner: "kim", ttlMs: 10 })).rejects.toThrow(
      /type must be a non-empty string/,
    );
    await expect(locks.checkLock("")).rejects.toThrow(/pass the handle/);
    const unopened = new DataSource({ ...source.options, synchronize: false, dropSchema: false } as DataSourceOptions);
    expect(() => new OfflineLockManager(unopened).protect(Order)).toThrow(/initialize the DataSource/);
    // Never passed to installLocking(): the lock it asks for is enforced all the same.
    const plain = await openAlongside(source);
    try {
      new OfflineLockManager(plain).protect(Order);
      const order = await plain.getRepository(Order).save({ address: "A", status: "NEW" } as Order);
      order.status = "PAID";
      await expect(plain.getRepository(Order).save(order)).rejects.toBeInstanceOf(OfflineLockRequiredError);
    } finally {
      await closeAll(plain);
    }
  });

  it("a lock id must be a string, bigint or finite number: others are refused and store nothing; a number is its digits", async () => {
    const records = () => source.getRepository(OfflineLockRecord).count();
    const before = await records();
    for (const id of [Number.NaN, Number.POSITIVE_INFINITY, null, undefined, { id: 1 }]) {
      await expect(locks.tryLock("Document", id as never, { owner: "kim", ttlMs: 60_000 })).rejects.toBeInstanceOf(
        LockingConfigurationError,
      );
    }
    // No options at all: a LockingConfigurationError, not a TypeError.
    await expect(locks.tryLock("Document", "no-options", undefined as never)).rejects.toBeInstanceOf(
      LockingConfigurationError,
    );
    expect(await records()).toBe(before);
    const n = 1_000_000 + nextId++;
    const big = await locks.tryLock("Document", BigInt(n) as never, { owner: "kim", ttlMs: 60_000 });
    expect(big.lockId).toBe(String(n));
    await expect(locks.tryLock("Document", n, { owner: "lee", ttlMs: 60_000 })).rejects.toBeInstanceOf(
      AlreadyLockedError,
    );
    await locks.releaseLock(big);
  });

  it("extendLock() moves the expiry of its own lock only", async () => {
    const mine = await locks.tryLock("Document", resource(), { owner: "kim", ttlMs: 60_000 });
    const theirs = await locks.tryLock("Document", resource(), { owner: "lee", ttlMs: 60_000 });
    const extended = await locks.extendLock(mine, 600_000);
    expect(extended.expiresAt.getTime()).toBeGreaterThan(mine.expiresAt.getTime());
    expect(await locks.checkLock(theirs)).toEqual(theirs);
    await locks.releaseLock(mine);
    await locks.releaseLock(theirs);
  });

  describe("protect() with a lockIdOf of its own", () => {
    let plain: DataSource;
    beforeAll(async () => {
      plain = await openAlongside(source);
    });
    afterAll(() => closeAll(plain));
    const orders = () => plain.getRepository(Order);

    it("a lockIdOf reading another column than the key: the lock named by that column lets the save through", async () => {
      const own = new OfflineLockManager(plain).protect(Order, {
        lockType: "OrderByAddress",
        lockIdOf: (order) => order.address,
      });
      const address = `Street ${resource()}`;
      const order = await orders().save({ address, status: "NEW" } as Order);
      const lock = await own.tryLock("OrderByAddress", address, { owner: "kim", ttlMs: 60_000 });
      order.status = "PAID";
      await own.runHolding(lock, () => orders().save(order));
      expect(await orders().findOneByOrFail({ id: order.id })).toMatchObject({ status: "PAID", version: 2 });
      const id = order.id;
      await own.runHolding(lock, () => orders().remove(order));
      expect(await orders().findOneBy({ id })).toBeNull();
      await own.releaseLock(lock);
    });

    it.each([
      ["undefined", undefined],
      ["null", null],
      ["an empty string", ""],
    ])("a lockIdOf giving %s for the entity written is a LockingConfigurationError, nothing written", async (_, id) => {
      const own = new OfflineLockManager(plain).protect(Order, { lockType: "OrderById", lockIdOf: () => id as never });
      const order = await orders().save({ address: "Old", status: "NEW" } as Order);
      const lock = await own.tryLock("OrderById", order.id, { owner: "kim", ttlMs: 60_000 });
      order.status = "PAID";
      await expect(own.runHolding(lock, () => orders().save(order))).rejects.toBeInstanceOf(LockingConfigurationError);
      expect(await orders().findOneByOrFail({ id: order.id })).toMatchObject({ status: "NEW", version: 1 });
      await own.releaseLock(lock);
    });

    /** Runs `work` on a DataSource of its own: what it protects is protected there only. */
    async function onItsOwn(work: (ds: DataSource) => Promise<void>): Promise<void> {
      const ds = await openAlongside(source);
      try {
        await work(ds);
      } finally {
        await closeAll(ds);
      }
    }

    it("a playlist linked and unlinked from a song's side by its id only: the lock its stored row names is required", async () => {
      await onItsOwn(async (ds) => {
        const own = new OfflineLockManager(ds).protect(Playlist, {
          lockType: "PlaylistByName",
          lockIdOf: (playlist) => playlist.name,
        });
        const name = `mix ${resource()}`;
        const mix = await ds.getRepository(Playlist).save({ name } as Playlist);
        const songs = ds.getRepository(Song);
        const song = await songs.save({ title: "e" } as Song);
        const playlistsOf = async () =>
          (await songs.findOneOrFail({ where: { id: song.id }, relations: { playlists: true } })).playlists.map(
            (p) => p.id,
          );
        const relink = async (playlists: Playlist[]) => {
          const loaded = await songs.findOneOrFail({ where: { id: song.id }, relations: { playlists: true } });
          loaded.playlists = playlists;
          return songs.save(loaded);
        };
        // Added: the song names the playlist by its id, which holds no name; the name is in its row.
        const byId = () => relink([{ id: mix.id } as Playlist]);
        const refused = await byId().catch((error: unknown) => error);
        expect(refused).toBeInstanceOf(OfflineLockRequiredError);
        expect(refused).toMatchObject({ lockType: "PlaylistByName", lockId: name });
        const keyLock = await own.tryLock("PlaylistByName", mix.id, { owner: "kim", ttlMs: 60_000 });
        await expect(own.runHolding(keyLock, byId)).rejects.toBeInstanceOf(OfflineLockRequiredError);
        expect(await playlistsOf()).toEqual([]);
        const lock = await own.tryLock("PlaylistByName", name, { owner: "kim", ttlMs: 60_000 });
        await own.runHolding(lock, byId);
        expect(await playlistsOf()).toEqual([mix.id]);
        // Removed: the junction row's key names the playlist by its id only, though it was loaded whole.
        await expect(own.runHolding(keyLock, () => relink([]))).rejects.toBeInstanceOf(OfflineLockRequiredError);
        expect(await playlistsOf()).toEqual([mix.id]);
        await own.runHolding(lock, () => relink([]));
        expect(await playlistsOf()).toEqual([]);
        await own.releaseLock(keyLock);
        await own.releaseLock(lock);
      });
    });

    it("a new label inserted by cascade with the post linking it needs no lock (it has none yet); an existing label linked beside it does", async () => {
      await onItsOwn(async (ds) => {
        const own = new OfflineLockManager(ds).protect(Label, { lockType: "Board", lockIdOf: (label) => label.board });
        const posts = ds.getRepository(Post);
        const board = `board ${resource()}`;
        const existing = await ds.getRepository(Label).save({ board } as Label);
        const { id } = await posts.save({ title: "news" } as Post);
        const load = (postId: number) => posts.findOneOrFail({ where: { id: postId }, relations: { labels: true } });
        const boardsOf = async (postId: number) => (await load(postId)).labels.map((l) => l.board).sort();
        // An existing post, unprotected, linked to a label inserted by the same save: no handle needed.
        const post = await load(id);
        post.labels = [{ board: `${board} new` } as Label];
        await posts.save(post);
        expect(await boardsOf(id)).toEqual([`${board} new`]);
        // A new post and a new label, both inserted by one save.
        const fresh = await posts.save({ title: "fresh", labels: [{ board: `${board} fresh` }] } as Post);
        expect(await boardsOf(fresh.id)).toEqual([`${board} fresh`]);
        // A new label beside an existing one: the existing one's lock is required, and enough.
        const again = await load(id);
        again.labels.push({ board: `${board} newer` } as Label, existing);
        await expect(posts.save(again)).rejects.toBeInstanceOf(OfflineLockRequiredError);
        expect(await boardsOf(id)).toEqual([`${board} new`]);
        const lock = await own.tryLock("Board", board, { owner: "kim", ttlMs: 60_000 });
        await own.runHolding(lock, () => posts.save(again));
        expect(await boardsOf(id)).toEqual([board, `${board} new`, `${board} newer`].sort());
        await own.releaseLock(lock);
      });
    });

    it("a new post inserted by cascade with the label linking it (the inverse side) needs no lock; an existing post linked so does", async () => {
      await onItsOwn(async (ds) => {
        const own = new OfflineLockManager(ds).protect(Post, {
          lockType: "PostByTitle",
          lockIdOf: (post) => post.title,
        });
        const labels = ds.getRepository(Label);
        const title = `post ${resource()}`;
        const existing = await ds.getRepository(Post).save({ title } as Post);
        const { id } = await labels.save({ board: "tech" } as Label);
        const load = () => labels.findOneOrFail({ where: { id }, relations: { posts: true } });
        const titles = async () => (await load()).posts.map((p) => p.title).sort();
        const label = await load();
        label.posts = [{ title: `${title} new` } as Post];
        await labels.save(label);
        expect(await titles()).toEqual([`${title} new`]);
        const again = await load();
        again.posts.push(existing);
        await expect(labels.save(again)).rejects.toBeInstanceOf(OfflineLockRequiredError);
        expect(await titles()).toEqual([`${title} new`]);
        const lock = await own.tryLock("PostByTitle", title, { owner: "kim", ttlMs: 60_000 });
        await own.runHolding(lock, () => labels.save(again));
        expect(await titles()).toEqual([title, `${title} new`].sort());
        await own.releaseLock(lock);
      });
    });

    it("a DataSource whose entities lack OfflineLockRecord: tryLock() is a LockingConfigurationError", async () => {
      const without = await openAlongside(source, { entities: [Order, OrderLine] });
      try {
        await expect(
          new OfflineLockManager(without).tryLock("Document", "x", { owner: "kim", ttlMs: 1000 }),
        ).rejects.toBeInstanceOf(LockingConfigurationError);
      } finally {
        await closeAll(without);
      }
    });
  });

  it("protect() before initialize() on a DataSource given to installLocking(): enforced once it is initialized", async () => {
    const early = installLocking(
      new DataSource({ ...source.options, synchronize: false, dropSchema: false } as DataSourceOptions),
    );
    new OfflineLockManager(early).protect(Order);
    try {
      await early.initialize();
      const order = await early.getRepository(Order).save({ address: "A", status: "NEW" } as Order);
      order.status = "PAID";
      await expect(early.getRepository(Order).save(order)).rejects.toBeInstanceOf(OfflineLockRequiredError);
    } finally {
      await closeAll(early);
    }
  });

  it("the migration creates the table the entity describes (as synchronize would), and drops it again", async () => {
    const migrated = new DataSource({
      ...source.options,
      synchronize: false,
      dropSchema: false,
      entities: [OfflineLockRecord],
      migrations: [OfflineLockTableMigration],
      migrationsTableName: "typeorm_locking_test_migrations",
    } as DataSourceOptions);
    racers.push(migrated);
    await migrated.initialize();
    const runner = migrated.createQueryRunner();
    try {
      const pendingAfter = async () =>
        (await migrated.driver.createSchemaBuilder().log()).upQueries.map((q) => q.query);
      // What TypeORM still wants to change after its own synchronize (TypeORM's type "mysql" on a
      // MariaDB server re-declares nullable columns forever); the migration must leave the same.
      await runner.dropTable(OFFLINE_LOCK_TABLE, true);
      await migrated.synchronize();
      const afterSynchronize = await pendingAfter();
      if (db.name !== "mysql") expect(afterSynchronize).toEqual([]);
      await runner.dropTable(OFFLINE_LOCK_TABLE, true);
      await runner.dropTable("typeorm_locking_test_migrations", true);
      await migrated.runMigrations();
      expect(await pendingAfter()).toEqual(afterSynchronize);
      const lock: OfflineLockHandle = await new OfflineLockManager(migrated).tryLock("Document", "m", {
        owner: "kim",
        ttlMs: 1000,
      });
      expect(lock.fencingToken).toBe(1);
      await migrated.undoLastMigration();
      expect(await runner.hasTable(OFFLINE_LOCK_TABLE)).toBe(false);
      // Its down() again, on a database without the table (dropped by hand): nothing to drop, no error.
      await new OfflineLockTableMigration().down(runner);
      await migrated.synchronize(); // leave the table for the other tests of this file
    } finally {
      await runner.release();
    }
  });
});
