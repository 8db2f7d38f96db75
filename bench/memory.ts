/**
 * Heap after many saves of many distinct entities (the library keeps per-entity bookkeeping in
 * WeakMaps): heap used after a full GC, sampled every tenth of the run. Needs `node --expose-gc`.
 */
import { DataSource } from "typeorm";
import { installLocking } from "../src";
import { BenchItem } from "./entities";

export interface MemoryResult {
  saves: number;
  /** Heap used after GC, in MB, at 0, 10%, ..., 100% of the saves. */
  samplesMb: number[];
  growthMb: number;
}

export async function heapOverSaves(saves: number, distinctRows = 1000): Promise<MemoryResult> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("the memory phase needs node --expose-gc (npm run bench passes it)");
  const source = installLocking(
    new DataSource({ type: "better-sqlite3", database: ":memory:", entities: [BenchItem], synchronize: true }),
  );
  await source.initialize();
  try {
    const repository = source.getRepository(BenchItem);
    for (let first = 0; first < distinctRows; first += 100) {
      const ids = Array.from({ length: Math.min(100, distinctRows - first) }, (_, i) => first + i);
      await repository.insert(ids.map((id) => ({ id, value: 0, label: "m", version: 1 })));
    }
    const heapMb = () => {
      gc();
      return process.memoryUsage().heapUsed / 1024 / 1024;
    };
    // Warm-up outside the samples: TypeORM's metadata and query caches, the JIT.
    for (let i = 0; i < 2000; i++) await save(i % distinctRows);
    const samplesMb = [heapMb()];
    const step = Math.ceil(saves / 10);
    for (let i = 0; i < saves; i++) {
      await save(i % distinctRows);
      if ((i + 1) % step === 0) samplesMb.push(heapMb());
    }
    return { saves, samplesMb, growthMb: samplesMb[samplesMb.length - 1] - samplesMb[0] };

    /** A fresh object per save: load, change, save. */
    async function save(id: number) {
      const item = await repository.findOneByOrFail({ id });
      item.value += 1;
      await repository.save(item);
    }
  } finally {
    await source.destroy();
  }
}
