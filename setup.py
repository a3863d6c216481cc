"""Build detr_efficient and its kernel extension ``detr_efficient._C``.

CPU sources (``csrc/**/*.cpp``) are always compiled. CUDA sources (``csrc/**/*.cu``) are added
when torch has CUDA and a CUDA toolkit is found, or when ``FORCE_CUDA=1``. Environment:

- ``CUDA_HOME``: toolkit root; found from the real ``nvcc`` when unset.
- ``TORCH_CUDA_ARCH_LIST``: target GPUs; defaults to ``9.0+PTX`` when no GPU is visible.
- ``FORCE_CUDA=1`` / ``FORCE_CUDA=0``: force the CUDA kernels on / off.
- ``MAX_JOBS``: parallel compile jobs (ninja).
- ``DETR_EFFICIENT_NVCC_FLAGS``: extra nvcc flags, split as a shell would, e.g.
  ``--resource-usage`` for ptxas's registers and spills per kernel (tools/kernel_resources.py).
"""

import glob
import os
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
DEFAULT_ARCH_LIST = "9.0+PTX"


def _toolkit_root_of(nvcc: str) -> Path | None:
    """Toolkit root of an nvcc (which may be a wrapper script), as its ``-dryrun`` reports it."""
    try:
        dryrun = subprocess.run(
            [nvcc, "-dryrun", "-E", "-x", "cu", os.devnull],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    for line in (dryrun.stdout + dryrun.stderr).splitlines():
        if "TOP=" in line:
            return Path(line.split("TOP=", 1)[1].strip()).resolve()
    return None


def find_cuda_home() -> str | None:
    """``CUDA_HOME``/``CUDA_PATH`` if set, else the root of the toolkit that ``nvcc`` runs."""
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(variable):
            return os.environ[variable]
    nvcc = shutil.which("nvcc")
    candidates = [_toolkit_root_of(nvcc)] if nvcc else []
    candidates.append(Path("/usr/local/cuda"))
    for root in candidates:
        if root is not None and (root / "include" / "cuda_runtime.h").exists():
            return str(root)
    return None


CUDA_HOME = find_cuda_home()
if CUDA_HOME:
    # torch.utils.cpp_extension reads this once, at import.
    os.environ["CUDA_HOME"] = CUDA_HOME

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402


def want_cuda() -> bool:
    force = os.environ.get("FORCE_CUDA")
    if force is not None and force != "":
        return force == "1"
    return torch.version.cuda is not None and CUDA_HOME is not None


def cuda_library_includes() -> list[str]:
    """``-isystem`` flags for CUDA library headers the toolkit lacks (cuBLAS, cuSPARSE).

    ``ATen/cuda/CUDAContext.h`` includes them; torch's pip CUDA packages ship them under
    ``site-packages/nvidia/*/include``.
    """
    if CUDA_HOME and (Path(CUDA_HOME) / "include" / "cublas_v2.h").exists():
        return []
    site = Path(sysconfig.get_paths()["purelib"])
    folders = sorted(
        {str(Path(p).parent) for p in glob.glob(str(site / "nvidia/*/include/cublas_v2.h"))}
    )
    flags = []
    for folder in folders:
        flags += ["-isystem", folder]
    return flags


def extensions():
    cpp_sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").rglob("*.cpp"))
    cuda_sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").rglob("*.cu"))
    # -fopenmp: at::parallel_for runs serially in code compiled without OpenMP.
    cxx_flags = ["-O3", "-ffp-contract=off", "-fopenmp"]
    link_flags = ["-fopenmp"]
    if not want_cuda():
        return [
            CppExtension(
                "detr_efficient._C",
                cpp_sources,
                extra_compile_args={"cxx": cxx_flags},
                extra_link_args=link_flags,
            )
        ]

    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCH_LIST
    library_includes = cuda_library_includes()
    nvcc_flags = ["-O3", "-lineinfo"] + library_includes
    nvcc_flags += shlex.split(os.environ.get("DETR_EFFICIENT_NVCC_FLAGS", ""))
    return [
        CUDAExtension(
            "detr_efficient._C",
            cpp_sources + cuda_sources,
            define_macros=[("WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags + library_includes, "nvcc": nvcc_flags},
            extra_link_args=link_flags,
        )
    ]


setup(
    name="detr_efficient",
    version="0.1.0",
    description="Efficient DETR-family detectors on Detectron2 with hand-written CUDA kernels",
    packages=find_packages(include=["detr_efficient", "detr_efficient.*"]),
    python_requires=">=3.10",
    install_requires=["torch", "numpy", "fvcore", "pycocotools", "ninja"],
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    zip_safe=False,
)
