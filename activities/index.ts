/**
 * Every activity of paramtrail, built from its dependencies (the samples' dependency-injection
 * pattern). The worker calls `createActivities` once per process; workflows type their proxies with
 * `ReturnType<typeof createActivities>`.
 */
import type { ArtifactStore } from '../artifacts/store.js';
import type { BackendPreference } from '../ml/backend.js';
import { createDistance } from './distance.js';
import { createDownload } from './download.js';
import { createPlot } from './plot.js';
import { createReport } from './report.js';
import { createTrain } from './train.js';

export interface ActivityDeps {
  store: ArtifactStore;
  /** Replaces the global fetch for dataset downloads (tests count requests with it). */
  fetch?: typeof fetch;
  /** The backend training runs on; default `cpu`, whose results are bit-identical everywhere. */
  backend?: BackendPreference;
}

export const createActivities = (deps: ActivityDeps) => ({
  download: createDownload(deps),
  train: createTrain(deps),
  distance: createDistance(deps),
  plot: createPlot(deps),
  report: createReport(deps),
});

export type Activities = ReturnType<typeof createActivities>;
