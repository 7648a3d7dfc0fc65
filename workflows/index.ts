/** Every workflow the worker registers. */
export { experimentWorkflow, progressQuery } from './experiment.js';
export { runWorkflow, runStageQuery } from './run.js';
