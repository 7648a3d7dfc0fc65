/** Every workflow the worker registers. */
export { experimentWorkflow, progressQuery } from './experiment.js';
export { packProgressQuery, packWorkflow, runWorkflow, runStageQuery } from './run.js';
