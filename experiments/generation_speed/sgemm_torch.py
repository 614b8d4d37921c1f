"""torch.matmul throughput for the shapes in sgemm.rs (2 threads, float32)."""
import time

import torch

torch.set_num_threads(2)
print("| m | k | n | torch x·W GFLOP/s |")
print("|---|---|---|---|")
for m in [1, 8, 256, 512]:
    for k, n in [(576, 1536), (1536, 576), (576, 576), (576, 192)]:
        x, w = torch.rand(m, k), torch.rand(k, n)
        reps = 200 if m < 64 else 20
        x @ w
        start = time.perf_counter()
        for _ in range(reps):
            x @ w
        secs = (time.perf_counter() - start) / reps
        print(f"| {m} | {k} | {n} | {2 * m * k * n / secs / 1e9:.1f} |")
