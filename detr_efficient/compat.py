"""Make Detectron2 v0.6 run on the pinned stack (numpy 2, Pillow >= 10, torch 2.x).

Every fix first checks whether the running libraries still lack the feature it restores
and does nothing where they have it, so an upstream Detectron2 that already fixed a break is
left alone. Fixes to Detectron2 modules that are not imported yet are applied right after
their first import (a post-import hook), so ``import detr_efficient`` stays cheap and never
imports Detectron2 itself. Nothing is touched when Detectron2 is not installed: the kernels
in ``detr_efficient.ops`` need torch only.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.resources
import importlib.util
import inspect
import logging
import sys
import time
import types
import warnings
from collections.abc import Callable

logger = logging.getLogger(__name__)

NUMPY_ALIASES = {"int": int, "float": float, "bool": bool, "str": str, "object": object}
STAND_IN_ORIGIN = "detr_efficient.compat stand-in for a missing detectron2._C"

_applied: list[str] = []
_state = {"done": False}


class MissingDetectron2Extension(RuntimeError):
    """Raised when code reaches an op of Detectron2's C extension, which is not built."""


def applied_fixes() -> list[str]:
    """Names of the fixes applied in this process (empty where none was needed)."""
    return list(_applied)


def add_numpy_aliases(np_module) -> bool:
    """Restore ``np.int``/``np.float``/``np.bool``/``np.str``/``np.object`` where removed."""
    with warnings.catch_warnings():  # numpy 2 warns that these names may return one day
        warnings.simplefilter("ignore", FutureWarning)
        missing = [name for name in NUMPY_ALIASES if not hasattr(np_module, name)]
    for name in missing:
        setattr(np_module, name, NUMPY_ALIASES[name])
    return bool(missing)


def add_pil_linear(image_module) -> bool:
    """Restore ``PIL.Image.LINEAR`` (an alias of BILINEAR removed in Pillow 10)."""
    if hasattr(image_module, "LINEAR"):
        return False
    image_module.LINEAR = image_module.Resampling.BILINEAR
    return True


def _resource_filename(package: str, resource: str) -> str:
    """``pkg_resources.resource_filename`` for packages installed as plain files."""
    return str(importlib.resources.files(package).joinpath(resource))


def add_pkg_resources_shim(modules: dict) -> bool:
    """Provide the one ``pkg_resources`` function Detectron2 uses, where setuptools dropped it."""
    if "pkg_resources" in modules or importlib.util.find_spec("pkg_resources") is not None:
        return False
    shim = types.ModuleType("pkg_resources", "detr_efficient shim: resource_filename only")
    shim.resource_filename = _resource_filename
    modules["pkg_resources"] = shim
    return True


class _ExtensionStandIn(types.ModuleType):
    """Takes the place of ``detectron2._C``; any op on it raises a clear error.

    The three version queries that Detectron2's ``collect_env`` makes answer honestly,
    so environment logging keeps working.
    """

    def __init__(self) -> None:
        super().__init__("detectron2._C", STAND_IN_ORIGIN)
        self.__spec__ = importlib.machinery.ModuleSpec(
            "detectron2._C", None, origin=STAND_IN_ORIGIN
        )
        self.get_compiler_version = lambda: "not built"
        self.get_cuda_version = lambda: "not built"
        self.has_cuda = lambda: False

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise MissingDetectron2Extension(
            f"detectron2._C.{name} is not available: this Detectron2 was installed without its "
            "C extension (rotated boxes, deformable conv, fast COCO eval). detr_efficient "
            "does not need it; install Detectron2 from source with its extension if you do."
        )


def _has_built_extension(spec: importlib.machinery.ModuleSpec) -> bool:
    locations = spec.submodule_search_locations or []
    return importlib.machinery.PathFinder.find_spec("_C", list(locations)) is not None


def add_extension_stand_in(modules: dict) -> bool:
    """Put a stand-in for ``detectron2._C`` in place where Detectron2 has no built extension."""
    if "detectron2._C" in modules:
        return False
    spec = importlib.util.find_spec("detectron2")
    if spec is None or _has_built_extension(spec):
        return False
    modules["detectron2._C"] = _ExtensionStandIn()
    return True


def extension_missing() -> bool:
    """True when Detectron2's ``_C`` is this module's stand-in."""
    return isinstance(sys.modules.get("detectron2._C"), _ExtensionStandIn)


def _raise_rotated_nms(*args, **kwargs):
    raise MissingDetectron2Extension(
        "nms_rotated needs Detectron2's C extension, which is not built in this environment."
    )


def patch_rotated_nms(nms_module) -> bool:
    """Make ``detectron2.layers.nms.nms_rotated`` fail clearly instead of a missing-op error."""
    if not extension_missing():
        return False
    nms_module.nms_rotated = _raise_rotated_nms
    return True


def patch_coco_evaluator(coco_evaluation_module) -> bool:
    """Evaluate with pycocotools' COCOeval where the fast C++ implementation is missing."""
    if not extension_missing():
        return False
    evaluator = coco_evaluation_module.COCOEvaluator
    original_init = evaluator.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._use_fast_impl = False

    __init__.__wrapped__ = original_init
    evaluator.__init__ = __init__
    return True


def _amp_run_step(self) -> None:
    """AMPTrainer step under ``torch.autocast`` on whatever device the model lives on."""
    import torch

    assert self.model.training, "[AMPTrainer] model was changed to eval mode!"
    device_type = next(self.model.parameters()).device.type
    default_dtype = torch.float16 if device_type == "cuda" else torch.bfloat16
    dtype = getattr(self, "precision", default_dtype)

    start = time.perf_counter()
    data = next(self._data_loader_iter)
    data_time = time.perf_counter() - start

    with torch.autocast(device_type=device_type, dtype=dtype):
        loss_dict = self.model(data)
        if isinstance(loss_dict, torch.Tensor):
            losses = loss_dict
            loss_dict = {"total_loss": loss_dict}
        else:
            losses = sum(loss_dict.values())

    self.optimizer.zero_grad()
    self.grad_scaler.scale(losses).backward()
    self._write_metrics(loss_dict, data_time)
    self.grad_scaler.step(self.optimizer)
    self.grad_scaler.update()


def patch_amp_trainer(train_loop_module) -> bool:
    """Let ``AMPTrainer`` run without CUDA (bf16 autocast on CPU, scaler disabled there)."""
    trainer = train_loop_module.AMPTrainer
    if "CUDA is required" not in inspect.getsource(trainer.run_step):
        return False
    original_init = trainer.__init__

    def __init__(self, model, data_loader, optimizer, grad_scaler=None, **kwargs):
        if grad_scaler is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            grad_scaler = torch.amp.GradScaler(device, enabled=device == "cuda")
        original_init(self, model, data_loader, optimizer, grad_scaler, **kwargs)

    __init__.__wrapped__ = original_init
    trainer.__init__ = __init__
    trainer.run_step = _amp_run_step
    return True


def allow_checkpoint_globals(serialization) -> bool:
    """Let ``torch.load(weights_only=True)`` read checkpoints holding numpy data or ``args``.

    Detectron2 and the public DETR checkpoints store numpy arrays/scalars and an
    ``argparse.Namespace``; these are allow-listed instead of turning ``weights_only`` off.
    """
    if not hasattr(serialization, "add_safe_globals"):
        return False
    import numpy as np

    multiarray = getattr(np, "_core", None) or np.core
    safe = [
        argparse.Namespace,
        np.ndarray,
        np.dtype,
        multiarray.multiarray._reconstruct,
        multiarray.multiarray.scalar,
    ]
    safe += [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"]
    already = set(serialization.get_safe_globals())
    serialization.add_safe_globals([obj for obj in safe if obj not in already])
    return True


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Runs a patch on a module right after its first import."""

    def __init__(self, patches: dict[str, Callable[[types.ModuleType], bool]]) -> None:
        self.patches = patches

    def find_spec(self, fullname, path, target=None):
        patch = self.patches.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchingLoader(spec.loader, lambda module: _record(fullname, patch(module)))
        return spec


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, after: Callable) -> None:
        self.loader = loader
        self.after = after

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        self.after(module)


def _record(name: str, did_apply: bool) -> None:
    if did_apply:
        _applied.append(name)
        logger.debug("detr_efficient.compat applied %s", name)


def _detectron2_module_patches() -> dict[str, Callable[[types.ModuleType], bool]]:
    return {
        "detectron2.layers.nms": patch_rotated_nms,
        "detectron2.evaluation.coco_evaluation": patch_coco_evaluator,
        "detectron2.engine.train_loop": patch_amp_trainer,
    }


def apply() -> None:
    """Apply every fix the running versions need; idempotent."""
    if _state["done"]:
        return
    _state["done"] = True
    import torch.serialization

    _record("torch.load safe globals", allow_checkpoint_globals(torch.serialization))
    if importlib.util.find_spec("detectron2") is None:
        return
    import numpy
    from PIL import Image

    _record("numpy aliases", add_numpy_aliases(numpy))
    _record("PIL.Image.LINEAR", add_pil_linear(Image))
    _record("pkg_resources shim", add_pkg_resources_shim(sys.modules))
    _record("detectron2._C stand-in", add_extension_stand_in(sys.modules))

    patches = _detectron2_module_patches()
    for name, patch in list(patches.items()):
        if name in sys.modules:
            _record(name, patch(sys.modules[name]))
            del patches[name]
    sys.meta_path.insert(0, _PatchAfterImport(patches))
