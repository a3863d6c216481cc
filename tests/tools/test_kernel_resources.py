"""tools/kernel_resources.py: ptxas's report parsed, occupancy against hand-computed cases, and
exit status 1 on a kernel that spills (one compiled here by nvcc, where nvcc exists); and the
kernels tools/bootstrap.sh built neither spill nor outgrow 512-thread blocks."""

import json
import shutil
import subprocess

import pytest
from conftest import REPO, load_tool

tool = load_tool("kernel_resources")

MANGLED = "_ZN14detr_efficient12_GLOBAL__N_119msda_forward_kernelEPKf"
REPORT = f"""\
[3/7] /usr/local/cuda/bin/nvcc --resource-usage -c deform_attn_kernel.cu
ptxas info    : 28 bytes gmem
ptxas info    : Compiling entry function '{MANGLED}' for 'sm_90'
ptxas info    : Function properties for {MANGLED}
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 92 registers, used 0 barriers, 400 bytes cmem[0]
ptxas info    : Compile time = 40.739 ms
ptxas info    : Compiling entry function '_Z19greedy_sweep_kernelv' for 'sm_90'
ptxas info    : Function properties for _Z19greedy_sweep_kernelv
    16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 45 registers, used 1 barriers, 2560 bytes smem, 380 bytes cmem[0]
ptxas info    : Compiling entry function '_Z6kernelv' for 'sm_61'
ptxas info    : Function properties for _Z6kernelv
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers
"""


def test_parse_log_reads_every_kernel():
    msda, sweep, old = tool.parse_log(REPORT)
    assert (msda.name, msda.arch, msda.registers, msda.shared_bytes) == (MANGLED, "sm_90", 92, 0)
    assert (msda.stack_bytes, msda.spill_store_bytes, msda.spill_load_bytes) == (0, 0, 0)
    assert (sweep.registers, sweep.stack_bytes, sweep.spill_store_bytes) == (45, 16, 8)
    assert (sweep.spill_load_bytes, sweep.shared_bytes) == (12, 2560)
    assert (old.arch, old.registers) == ("sm_61", 8)


def kernel(registers, shared=0, arch="sm_90"):
    return tool.Kernel("k", arch, registers, 0, 0, 0, shared)


@pytest.mark.parametrize(
    "registers, threads, warps",
    [
        # 92 registers: 2944 per warp, allocated as 3072; 65536 // 3072 = 21 -> 20 warps (groups
        # of 4); 256 threads = 8 warps -> 2 blocks, 16 warps; 64 threads -> 10 blocks, 20 warps.
        (92, None, 20),
        (92, 256, 16),
        (92, 64, 20),
        # 32 registers: 1024 per warp, 64 warps by registers, 64 by the SM's limit.
        (32, 256, 64),
        # 128 registers: 4096 per warp, 16 warps; a 512-thread block (16 warps) fits once.
        (128, 512, 16),
        # 255 registers: 8192 per warp, 8 warps; a 512-thread block does not fit at all.
        (255, 512, 0),
    ],
)
def test_resident_warps_by_hand(registers, threads, warps):
    assert tool.resident_warps(kernel(registers), threads) == warps


def test_shared_memory_and_block_limits():
    # 100 KiB of static shared memory + 1 KiB reserved: two blocks in sm_90's 228 KiB.
    assert tool.resident_warps(kernel(32, shared=100 * 1024), 128) == 2 * 4
    # 64-thread blocks of a light kernel: 32 blocks at most, 64 warps.
    assert tool.resident_warps(kernel(16), 64) == 32 * 2
    assert tool.occupancy(kernel(92), 256) == pytest.approx(16 / 64)
    assert tool.resident_warps(kernel(32, arch="sm_61"), 256) is None


def test_main_table_json_and_spills(tmp_path, capsys):
    log = tmp_path / "build.log"
    log.write_text(REPORT)
    assert tool.main([str(log), "--json", str(tmp_path / "r.json")]) == 1
    assert "1 kernel(s) spill registers" in capsys.readouterr().err
    rows = json.loads((tmp_path / "r.json").read_text())["kernels"]
    assert [r["registers"] for r in rows] == [92, 45, 8]
    # 92 registers: 20 warps by registers; blocks of 2 and 4 warps fill them, of 8 and 16 not.
    assert rows[0]["occupancy"] == {"64": 20 / 64, "128": 20 / 64, "256": 16 / 64, "512": 16 / 64}
    assert "occupancy" not in rows[1]
    assert tool.main([str(log), "--allow-spills"]) == 0


def test_a_deformable_kernel_too_heavy_for_512_threads_fails(tmp_path, capsys):
    # 160 registers: 5120 per warp, 12 warps by registers; a 512-thread block needs 16.
    log = tmp_path / "build.log"
    log.write_text(REPORT.replace("Used 92 registers", "Used 160 registers"))
    assert tool.main([str(log), "--allow-spills"]) == 1
    assert "too many registers for 512-thread blocks" in capsys.readouterr().err


def test_main_refuses_a_log_without_a_report(tmp_path):
    log = tmp_path / "build.log"
    log.write_text("[1/1] c++ -c nms.cpp\n")
    with pytest.raises(SystemExit, match="no ptxas report"):
        tool.main([str(log)])


SPILLING_KERNEL = """
__global__ void __launch_bounds__(1024, 2) spills(const float* in, float* out, int n) {
  float acc[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = in[(threadIdx.x * 64 + i) % n];
  float total = 0.f;
#pragma unroll
  for (int j = 0; j < 64; ++j)
#pragma unroll
    for (int i = 0; i < 64; ++i) total += acc[i] * acc[(i * 7 + j) % 64];
  out[threadIdx.x] = total;
}
__global__ void light(float* out) { out[threadIdx.x] = 1.f; }
"""


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_a_real_ptxas_report(tmp_path, capsys):
    source = tmp_path / "spills.cu"
    source.write_text(SPILLING_KERNEL)
    build = subprocess.run(
        ["nvcc", "-arch=sm_90", "--resource-usage", "-c", str(source), "-o", str(tmp_path / "s.o")],
        capture_output=True,
        text=True,
        check=True,
    )
    log = tmp_path / "build.log"
    log.write_text(build.stdout + build.stderr)
    assert tool.main([str(log)]) == 1
    names = {row.name: row for row in tool.parse_log(log.read_text())}
    assert names["_Z5lightPf"].spill_store_bytes == 0
    heavy = next(row for name, row in names.items() if "spills" in name)
    # 1024 threads, 2 blocks per SM: at most 32 registers per thread, so the 64 values spill.
    assert heavy.registers <= 32 and heavy.spill_store_bytes > 0
    assert "spills" in capsys.readouterr().err


BUILT = REPO / "build" / "ptxas_resources.log"


@pytest.mark.skipif(not BUILT.is_file(), reason="tools/bootstrap.sh compiled no CUDA code here")
def test_the_built_kernels_neither_spill_nor_outgrow_512_thread_blocks(capsys):
    assert tool.main([str(BUILT)]) == 0, capsys.readouterr().err
    assert "none spills registers" in capsys.readouterr().out
