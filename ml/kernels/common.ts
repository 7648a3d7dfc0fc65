/**
 * Shared plumbing for paramtrail's fast CPU kernels: the shape of a kernel that can hand an unsupported
 * case back to the built-in implementation, and typed access to the CPU backend's tensor storage.
 *
 * Used by ml/kernels/conv2d.ts and ml/kernels/pool.ts; ml/backend.ts binds each fast kernel to the
 * built-in one it replaces.
 */
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

export interface KernelArgs {
  inputs: NamedTensorInfoMap;
  backend: MathBackendCPU;
  attrs: NamedAttrMap;
}

/**
 * A replacement for one built-in CPU kernel. `run` returns null for a case it does not implement
 * (another data format, dtype or dilation), and the caller then runs `builtin` on the same arguments.
 */
export interface FastKernel {
  kernelName: string;
  run(args: KernelArgs): TensorInfo | null;
}

/** The float32 values behind a tensor on the CPU backend (not a copy: never write to it). */
export function float32Values(backend: MathBackendCPU, t: TensorInfo): Float32Array {
  const values = backend.data.get(t.dataId).values;
  if (!(values instanceof Float32Array)) {
    throw new Error(`expected float32 values on the cpu backend, found ${values?.constructor?.name ?? typeof values}`);
  }
  return values;
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
