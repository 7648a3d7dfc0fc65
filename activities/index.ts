/**
 * Every activity of paramtrail, built from its dependencies (the samples' dependency-injection
 * pattern). The worker calls `createActivities` once per process; workflows type their proxies with
 * `ReturnType<typeof createActivities>`.
 */
import type { ArtifactStore } from '../artifacts/store.js';
import type { BackendPreference } from '../ml/backend.js';
import type { DecodedCacheOptions } from './decoded-cache.js';
import { createAggregate } from './aggregate.js';
import { createCompare, createCompareBatch } from './compare.js';
import { createCorrelation } from './correlation.js';
import { createDistance } from './distance.js';
import { createDownload } from './download.js';
import { createFeatures } from './features.js';
import { createTrainPack } from './pack.js';
import { createNorms, createPerturb } from './perturb.js';
import { createPlot } from './plot.js';
import { createReinit } from './reinit.js';
import { createReport } from './report.js';
import { createGetRunResult, createGetSummaries, createPutRunResult, createPutRunResults, createPutSummaries } from './results.js';
import { createLookupRun } from './reuse.js';
import { createSmoothness } from './smoothness.js';
import { createTrain } from './train.js';

export interface ActivityDeps {
  store: ArtifactStore;
  /** Replaces the global fetch for dataset downloads (tests count requests with it). */
  fetch?: typeof fetch;
  /** The backend training runs on; default `cpu`, whose results are bit-identical everywhere. */
  backend?: BackendPreference;
  /** Where this machine keeps decoded datasets between processes (a worker's state folder); none when omitted. */
  decodedCache?: DecodedCacheOptions;
}

export function createActivities(deps: ActivityDeps) {
  const train = createTrain(deps);
  const distance = createDistance(deps);
  const lookupRun = createLookupRun(deps);
  return {
    download: createDownload(deps),
    train,
    distance,
    trainPack: createTrainPack({ lookupRun, train, distance }),
    features: createFeatures(deps),
    correlation: createCorrelation(deps),
    compare: createCompare(deps),
    compareBatch: createCompareBatch(deps),
    smoothness: createSmoothness(deps),
    perturb: createPerturb(deps),
    norms: createNorms(deps),
    reinit: createReinit(deps),
    aggregate: createAggregate(deps),
    lookupRun,
    putRunResult: createPutRunResult(deps),
    putRunResults: createPutRunResults(deps),
    getRunResult: createGetRunResult(deps),
    putSummaries: createPutSummaries(deps),
    getSummaries: createGetSummaries(deps),
    plot: createPlot(deps),
    report: createReport(deps),
  };
}

/** Activities of the train queue (the rest run on the analysis queue, but for LOCAL_ACTIVITIES). */
export const TRAIN_ACTIVITIES = ['download', 'train'] as const;
/** Activities that only run as local activities, in the worker of the workflow that calls them. */
export const LOCAL_ACTIVITIES = ['trainPack'] as const;

export type Activities = ReturnType<typeof createActivities>;
