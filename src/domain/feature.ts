import type { FilterString } from "./group-filter";
import { iso } from "./time";

/** A feature as D1 keeps it (times in epoch ms): what customer objects get in the namespace config. */
export interface FeatureDef {
  id: string;
  key: string;
  name: string;
  meterSlug: string | null;
  meterGroupByFilters: Record<string, string> | null;
  /** Absent in definitions stored before migration 0009. */
  advancedMeterGroupByFilters?: Record<string, FilterString> | null;
  metadata: Record<string, string> | null;
  createdAt: number;
  updatedAt: number;
  archivedAt: number | null;
}

/** OpenMeter's Feature. Used by the API and by webhook payloads, which must show a feature exactly as the API does. */
export function renderFeature(f: FeatureDef) {
  return {
    id: f.id,
    key: f.key,
    name: f.name,
    ...(f.metadata ? { metadata: f.metadata } : {}),
    ...(f.meterSlug !== null ? { meterSlug: f.meterSlug } : {}),
    ...(f.meterGroupByFilters ? { meterGroupByFilters: f.meterGroupByFilters } : {}),
    ...(f.advancedMeterGroupByFilters ? { advancedMeterGroupByFilters: f.advancedMeterGroupByFilters } : {}),
    createdAt: iso(f.createdAt),
    updatedAt: iso(f.updatedAt),
    ...(f.archivedAt !== null ? { archivedAt: iso(f.archivedAt) } : {}),
  };
}
