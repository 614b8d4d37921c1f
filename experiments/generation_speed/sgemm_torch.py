"""torch.matmul and numpy (OpenBLAS) throughput for the shapes in sgemm.rs (2 threads, float32)."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


def gflops(matmul, m, k, n, reps):
    matmul()
    start = time.perf_counter()
    for _ in range(reps):
        matmul()
    secs = (time.perf_counter() - start) / reps
    return 2 * m * k * n / secs / 1e9


SHAPES = [(m, k, n) for m in [1, 8, 256, 512, 1024]
          for k, n in [(576, 1536), (1536, 576), (576, 576), (576, 192)]]
# All torch timings first, then numpy's: OpenBLAS's threads spin after each call and would
# slow torch down if the two were interleaved.
torch_rates, numpy_rates = [], []
for m, k, n in SHAPES:
    x, w = torch.rand(m, k), torch.rand(k, n)
    torch_rates.append(gflops(lambda: x @ w, m, k, n, 200 if m < 64 else 20))
for m, k, n in SHAPES:
    x, w = np.random.rand(m, k).astype(np.float32), np.random.rand(k, n).astype(np.float32)
    out = np.empty((m, n), dtype=np.float32)
    numpy_rates.append(gflops(lambda: np.matmul(x, w, out=out), m, k, n, 200 if m < 64 else 20))
print("| m | k | n | torch x·W GFLOP/s | numpy (OpenBLAS) x·W GFLOP/s |")
print("|---|---|---|---|---|")
for (m, k, n), t, o in zip(SHAPES, torch_rates, numpy_rates):
    print(f"| {m} | {k} | {n} | {t:.1f} | {o:.1f} |")
