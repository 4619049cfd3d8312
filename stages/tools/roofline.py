"""This CPU's GEMM peaks, the roofline's numerator: square matrix products timed in each library
that runs the formats (torch, ONNX Runtime, OpenVINO), per precision (fp32, int8, bf16).

The probes are calls the benchmarks time in their own protocol (make bench interleaves them with
the formats, make bench-train and make bench-int8 time them after the models); gemm_gflops turns
a product's seconds into GFLOP/s, and the fastest library's rate per precision is the peak.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper

from birds_onnx.onnx_model import session_options

GEMM_SIZE = 2048  # large enough for every library's kernel to run at full speed


def ort_gemm(op: str, a: np.ndarray, b: np.ndarray, out: np.dtype, threads: int):
    """A call computing `op` (MatMul, MatMulInteger) of `a` by the constant `b` in ONNX Runtime."""
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info("a", helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)],
        [helper.make_tensor_value_info("c", helper.np_dtype_to_tensor_dtype(out), a.shape[:1] + b.shape[1:])],
        [numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"a": a})


def gemm_probes(threads: int) -> dict[str, Callable]:
    """Square matrix products with `threads` threads: fp32 through both libraries, as each is
    fastest on some CPUs; int8 (uint8 x int8 -> int32, the kernel of QLinearConv) through ORT."""
    n, rng = GEMM_SIZE, np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    a8, b8 = rng.integers(0, 256, (n, n), dtype=np.uint8), rng.integers(-128, 128, (n, n), dtype=np.int8)
    torch.set_num_threads(threads)
    return {
        "fp32 torch.mm": lambda: torch.mm(torch.from_numpy(a), torch.from_numpy(b)),
        "fp32 ONNX Runtime MatMul": ort_gemm("MatMul", a, b, np.dtype(np.float32), threads),
        "int8 ONNX Runtime MatMulInteger": ort_gemm("MatMulInteger", a8, b8, np.dtype(np.int32), threads),
    }


def openvino_gemm(b: np.ndarray, precision: str, threads: int) -> Callable:
    """A call computing a float32 `b`-shaped input by the constant `b` in OpenVINO, as it runs the
    openvino format: `threads` threads, one stream, in `precision` (fp32, bf16) where native."""
    import openvino as ov
    import openvino.opset13 as ops

    from birds_onnx.openvino_model import compile_options

    a = ops.parameter(list(b.shape), ov.Type.f32, name="a")
    model = ov.Model([ops.matmul(a, ops.constant(b), False, False)], [a], "gemm")
    request = ov.Core().compile_model(model, "CPU", compile_options(threads, precision)).create_infer_request()
    return lambda: request.infer({0: b}, share_inputs=True)


def openvino_gemm_probes(threads: int, bf16: bool) -> dict[str, Callable]:
    """OpenVINO's fp32 product beside the other libraries'; with `bf16` (a CPU computing bf16
    natively), bf16 products in torch and in OpenVINO, for the bf16 roofline."""
    b = np.random.default_rng(1).standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    probes = {"fp32 OpenVINO MatMul": openvino_gemm(b, "fp32", threads)}
    if bf16:
        a16, b16 = (torch.from_numpy(b).to(torch.bfloat16) for _ in range(2))
        probes["bf16 torch.mm"] = lambda: torch.mm(a16, b16)
        probes["bf16 OpenVINO MatMul"] = openvino_gemm(b, "bf16", threads)
    return probes


def gemm_gflops(seconds: float) -> float:
    """GFLOP/s of one GEMM_SIZE x GEMM_SIZE product that took `seconds`."""
    return 2 * GEMM_SIZE**3 / seconds / 1e9


def fp32_peak(peaks: dict[str, float]) -> float:
    """The fastest fp32 library's peak: each is fastest on some CPUs."""
    return peak(peaks, "fp32")


def peak(peaks: dict[str, float], precision: str) -> float:
    """The fastest library's peak for `precision` (the probes' names start with it)."""
    return max(rate for name, rate in peaks.items() if name.startswith(precision + " "))
