/**
 * Shared plumbing for paramtrail's flat-array kernels: the shape of a kernel that can hand an unsupported
 * case back to the built-in implementation, and typed access to tensor storage on the two backends they
 * run on: the pure-JS 'cpu' backend (values in a JS array per tensor) and the 'wasm' backend (values in
 * the WebAssembly module's heap, addressed through the backend's dataIdMap).
 *
 * Used by ml/kernels/conv2d.ts and ml/kernels/pool.ts; ml/backend.ts binds each fast kernel to the
 * built-in one it replaces (cpu) or registers it where the backend has none (wasm).
 */
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** A backend whose tensors these kernels can read and write. */
export type FlatBackend = MathBackendCPU | BackendWasm;

export interface KernelArgs {
  inputs: NamedTensorInfoMap;
  backend: FlatBackend;
  attrs: NamedAttrMap;
}

function isWasm(backend: FlatBackend): backend is BackendWasm {
  return 'wasm' in backend && 'dataIdMap' in backend;
}

/**
 * A replacement for one built-in CPU kernel. `run` returns null for a case it does not implement
 * (another data format, dtype or dilation), and the caller then runs `builtin` on the same arguments.
 */
export interface FastKernel {
  kernelName: string;
  run(args: KernelArgs): TensorInfo | null;
}

/**
 * The float32 values behind a tensor (not a copy: never write to it). On wasm it is a view of the heap,
 * which moves when the heap grows: read every input before allocating the output (float32Output).
 */
export function float32Values(backend: FlatBackend, t: TensorInfo): Float32Array {
  if (isWasm(backend)) {
    if (t.dtype !== 'float32') throw new Error(`expected a float32 tensor on the wasm backend, found ${t.dtype}`);
    return backend.typedArrayFromHeap(t) as Float32Array;
  }
  const values = backend.data.get(t.dataId).values;
  if (!(values instanceof Float32Array)) {
    throw new Error(`expected float32 values on the cpu backend, found ${values?.constructor?.name ?? typeof values}`);
  }
  return values;
}

/** A new float32 tensor of `shape` holding `values`, on the backend the kernel runs on. */
export function float32Output(backend: FlatBackend, shape: number[], values: Float32Array): TensorInfo {
  if (isWasm(backend)) {
    const out = backend.makeOutput(shape, 'float32');
    // After makeOutput: allocating may have grown the heap and detached earlier views.
    (backend.typedArrayFromHeap(out) as Float32Array).set(values);
    return out;
  }
  return backend.makeTensorInfo(shape, 'float32', values);
}

/** True when every input is float32 (our kernels do not implement other dtypes). */
export function allFloat32(...ts: TensorInfo[]): boolean {
  return ts.every((t) => t.dtype === 'float32');
}

/** Binds a fast kernel to the built-in one it falls back to. */
export function withFallback(fast: FastKernel, builtin: KernelFunc): KernelFunc {
  return (params) => {
    const out = fast.run(params as unknown as KernelArgs);
    return out ?? builtin(params);
  };
}
