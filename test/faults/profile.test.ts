import { bySize, faultsProfile } from "./profile";

describe("fault-run profile", () => {
  it("is full unless LOCKING_FAULTS_PROFILE says reduced, and refuses anything else", () => {
    const saved = process.env.LOCKING_FAULTS_PROFILE;
    try {
      delete process.env.LOCKING_FAULTS_PROFILE;
      expect(faultsProfile()).toBe("full");
      expect(bySize(10_000, 500)).toBe(10_000);
      process.env.LOCKING_FAULTS_PROFILE = "reduced";
      expect(bySize(10_000, 500)).toBe(500);
      process.env.LOCKING_FAULTS_PROFILE = "huge";
      expect(() => faultsProfile()).toThrow(/full.*reduced/);
    } finally {
      if (saved === undefined) delete process.env.LOCKING_FAULTS_PROFILE;
      else process.env.LOCKING_FAULTS_PROFILE = saved;
    }
  });
});
