#!/usr/bin/env python
"""Registers, stack, spills and shared memory of every CUDA kernel, from ptxas's report in a
build log, with the theoretical occupancy those allow; exit status 1 where a kernel spills, or
where a deformable-attention kernel needs too many registers for 512-thread blocks.

    DETR_EFFICIENT_NVCC_FLAGS=--resource-usage FORCE_CUDA=1 \
        python setup.py build_ext --inplace 2>&1 | tee build.log
    python tools/kernel_resources.py build.log [--json resources.json] [--allow-spills]

Occupancy is computed as the CUDA occupancy calculator does (registers allocated per warp in
units of 256, warps in groups of 4, static shared memory plus 1 KiB per block), for the
deformable-attention kernels at each block size their launch setting allows (64-512 threads,
``deform_attn_threads_per_block``); the other kernels launch their own fixed block sizes, so
only their register limit (resident warps per SM) is given. Needs no GPU.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from json_output import write_json  # noqa: E402

from detr_efficient.ops.deform_attn import THREADS_PER_BLOCK_CHOICES  # noqa: E402

ENTRY = re.compile(r"ptxas info\s*: Compiling entry function '(\S+)' for '(sm_\d+a?)'")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"ptxas info\s*: Used (\d+) registers(.*)")
SHARED = re.compile(r"(\d+) bytes smem")

DEFORM_BLOCK_SIZES = THREADS_PER_BLOCK_CHOICES  # what deform_attn_threads_per_block allows
REGISTER_UNIT, WARP_GROUP, WARP = 256, 4, 32


@dataclass(frozen=True)
class Arch:
    """Per-SM limits of one compute capability."""

    max_warps: int
    max_blocks: int
    shared_bytes: int
    registers: int = 65536
    reserved_shared_per_block: int = 1024


ARCHS = {
    "sm_70": Arch(max_warps=64, max_blocks=32, shared_bytes=96 * 1024, reserved_shared_per_block=0),
    "sm_75": Arch(max_warps=32, max_blocks=16, shared_bytes=64 * 1024, reserved_shared_per_block=0),
    "sm_80": Arch(max_warps=64, max_blocks=32, shared_bytes=164 * 1024),
    "sm_86": Arch(max_warps=48, max_blocks=16, shared_bytes=100 * 1024),
    "sm_89": Arch(max_warps=48, max_blocks=24, shared_bytes=100 * 1024),
    "sm_90": Arch(max_warps=64, max_blocks=32, shared_bytes=228 * 1024),
}


@dataclass
class Kernel:
    """One kernel instantiation as ptxas compiled it for one architecture."""

    name: str
    arch: str
    registers: int
    stack_bytes: int
    spill_store_bytes: int
    spill_load_bytes: int
    shared_bytes: int


def parse_log(text: str) -> list[Kernel]:
    """Every kernel of ptxas's ``--resource-usage`` report in ``text`` (names still mangled)."""
    kernels, entry, frame = [], None, (0, 0, 0)
    for line in text.splitlines():
        if match := ENTRY.search(line):
            entry, frame = match.groups(), (0, 0, 0)
        elif (match := FRAME.search(line)) and entry:
            frame = tuple(int(g) for g in match.groups())
        elif (match := USED.search(line)) and entry:
            shared = SHARED.search(match.group(2))
            kernels.append(
                Kernel(
                    entry[0],
                    entry[1],
                    int(match.group(1)),
                    *frame,
                    int(shared.group(1)) if shared else 0,
                )
            )
            entry = None
    return kernels


def demangle(names: list[str]) -> list[str]:
    """Readable names through ``c++filt`` where it exists, shortened to the kernel and its
    template arguments; the mangled names otherwise."""
    tool = shutil.which("c++filt")
    if not tool or not names:
        return names
    plain = subprocess.run(
        [tool], input="\n".join(names), capture_output=True, text=True, check=True
    )
    readable = plain.stdout.splitlines()
    if len(readable) != len(names):
        return names
    return [
        re.sub(r"detr_efficient::|\(anonymous namespace\)::|^void ", "", n).split("(")[0]
        for n in readable
    ]


def arch_of(kernel: Kernel) -> Arch | None:
    """The limits of the kernel's architecture (``sm_90a`` as ``sm_90``); None if unknown."""
    return ARCHS.get(kernel.arch.rstrip("a"))


def resident_warps(kernel: Kernel, block_threads: int | None = None) -> int | None:
    """Warps per SM that fit by registers alone (``block_threads`` None), or that a launch of
    ``block_threads`` keeps resident by every limit; None for an architecture not in ARCHS."""
    arch = arch_of(kernel)
    if arch is None:
        return None
    warp_registers = math.ceil(max(kernel.registers, 1) * WARP / REGISTER_UNIT) * REGISTER_UNIT
    by_registers = (arch.registers // warp_registers) // WARP_GROUP * WARP_GROUP
    if block_threads is None:
        return min(by_registers, arch.max_warps)
    block_warps = math.ceil(block_threads / WARP)
    block_shared = kernel.shared_bytes + arch.reserved_shared_per_block
    blocks = min(
        arch.max_blocks,
        arch.max_warps // block_warps,
        by_registers // block_warps,
        arch.shared_bytes // block_shared if block_shared else arch.max_blocks,
    )
    return blocks * block_warps


def occupancy(kernel: Kernel, block_threads: int) -> float | None:
    """Resident warps of a ``block_threads`` launch as a share of the SM's maximum."""
    warps = resident_warps(kernel, block_threads)
    return None if warps is None else warps / arch_of(kernel).max_warps


def is_deformable(name: str) -> bool:
    return "msda_" in name or "kda_" in name


def rows_of(kernels: list[Kernel]) -> list[dict]:
    """One JSON-ready row per kernel: its resources, the warps its registers allow and, for
    the deformable-attention kernels, the occupancy at each block size."""
    rows = []
    for kernel, readable in zip(kernels, demangle([k.name for k in kernels]), strict=True):
        row = {**asdict(kernel), "kernel": readable, "warps_by_registers": resident_warps(kernel)}
        if is_deformable(kernel.name):
            row["occupancy"] = {str(t): occupancy(kernel, t) for t in DEFORM_BLOCK_SIZES}
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    sizes = " | ".join(f"occ@{t}" for t in DEFORM_BLOCK_SIZES)
    print(f"| kernel | arch | regs | stack B | spill B | smem B | warps/SM by regs | {sizes} |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(DEFORM_BLOCK_SIZES))
    for row in rows:
        spill = row["spill_store_bytes"] + row["spill_load_bytes"]
        shares = row.get("occupancy", {})
        cells = " | ".join(
            "-" if shares.get(str(t)) is None else f"{shares[str(t)]:.0%}"
            for t in DEFORM_BLOCK_SIZES
        )
        warps = "-" if row["warps_by_registers"] is None else row["warps_by_registers"]
        print(
            f"| {row['kernel']} | {row['arch']} | {row['registers']} | {row['stack_bytes']} | "
            f"{spill} | {row['shared_bytes']} | {warps} | {cells} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("log", type=Path, help="build output with ptxas's --resource-usage report")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--allow-spills", action="store_true", help="report spills, exit 0 anyway")
    args = parser.parse_args(argv)
    if not args.log.is_file():
        raise SystemExit(f"kernel_resources.py: {args.log} does not exist")
    kernels = parse_log(args.log.read_text(errors="replace"))
    if not kernels:
        raise SystemExit(
            f"kernel_resources.py: no ptxas report in {args.log}; build with "
            "DETR_EFFICIENT_NVCC_FLAGS=--resource-usage (and a clean build folder, or ninja "
            "recompiles nothing)"
        )
    rows = rows_of(kernels)
    print_table(rows)
    if args.json:
        write_json(args.json, {"log": str(args.log), "kernels": rows})
    spilling = [
        row["kernel"] for row in rows if row["spill_store_bytes"] or row["spill_load_bytes"]
    ]
    if spilling:
        print(f"{len(spilling)} kernel(s) spill registers: " + ", ".join(spilling), file=sys.stderr)
    largest = str(DEFORM_BLOCK_SIZES[-1])
    unlaunchable = [row["kernel"] for row in rows if row.get("occupancy", {}).get(largest) == 0]
    if unlaunchable:
        print(
            f"{len(unlaunchable)} kernel(s) use too many registers for {largest}-thread blocks, "
            "which deform_attn_threads_per_block allows: " + ", ".join(unlaunchable),
            file=sys.stderr,
        )
    if unlaunchable or (spilling and not args.allow_spills):
        return 1
    print(f"{len(rows)} kernels" + (", spills allowed" if spilling else ", none spills registers"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
