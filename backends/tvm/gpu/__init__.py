"""GPU targets of the TVM backend (issue 10): Adreno / Mali OpenCL, WebGPU and CUDA.

    targets.py    the GPU target specs (device target + LLVM host), served through backends/tvm/targets.py
    schedules.py  `apply(mod, target)`: GPU schedules (own rules + an explicit dlight rule list per target)
    opencl.py     OpenCL kernels of a compiled executable, and running them with pyopencl (PoCL validation)
    rpc.py        RPC tracker / server helpers and MetaSchedule tuning over RPC

Same lowering, emitters, cache layout, weight formats and manifest as the CPU backend; only the schedules,
the target and the export differ. Non-goals: Vulkan (not in the PyPI TVM build), linking for Android/WebGPU
here (no NDK / emscripten: the link command is written next to the object archive).
"""
