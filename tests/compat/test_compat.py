"""detr_efficient.compat: each fix applies only where needed, and Detectron2 v0.6 works with it."""

import argparse
import json
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

import detr_efficient
from detr_efficient import compat


def test_numpy_aliases_added_only_where_missing():
    bare = types.SimpleNamespace()
    assert compat.add_numpy_aliases(bare)
    assert (bare.int, bare.float, bare.bool, bare.str, bare.object) == (
        int,
        float,
        bool,
        str,
        object,
    )
    full = types.SimpleNamespace(**{name: "theirs" for name in compat.NUMPY_ALIASES})
    assert not compat.add_numpy_aliases(full)
    assert full.int == "theirs"


def test_pil_linear_added_only_where_missing():
    from PIL import Image

    bare = types.SimpleNamespace(Resampling=Image.Resampling)
    assert compat.add_pil_linear(bare)
    assert bare.LINEAR == Image.Resampling.BILINEAR
    has_it = types.SimpleNamespace(LINEAR="theirs")
    assert not compat.add_pil_linear(has_it)
    assert has_it.LINEAR == "theirs"


def test_pkg_resources_shim_only_where_missing(monkeypatch):
    assert not compat.add_pkg_resources_shim({"pkg_resources": object()})
    monkeypatch.setattr(compat.importlib.util, "find_spec", lambda name: None)
    modules = {}
    assert compat.add_pkg_resources_shim(modules)
    path = modules["pkg_resources"].resource_filename(
        "detectron2.model_zoo", "configs/common/train.py"
    )
    assert path.endswith("detectron2/model_zoo/configs/common/train.py")


def test_stand_in_not_installed_over_a_real_extension():
    real = types.ModuleType("detectron2._C")
    assert not compat.add_extension_stand_in({"detectron2._C": real})


def test_detectron2_imports_and_works_on_the_pinned_stack():
    import detectron2.data  # noqa: F401
    import detectron2.evaluation  # noqa: F401
    import detectron2.layers  # noqa: F401
    import detectron2.modeling  # noqa: F401
    import detectron2.structures  # noqa: F401
    from detectron2.data import transforms as T

    assert np.int is int and np.float is float  # noqa: NPY001 (the aliases under test)
    image = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    # ExtentTransform defaults to PIL.Image.LINEAR.
    out = T.ExtentTransform(src_rect=(0, 0, 30, 20), output_size=(10, 15)).apply_image(image)
    assert out.shape == (10, 15, 3)


def test_model_zoo_lazy_configs_load():
    from detectron2 import model_zoo

    train = model_zoo.get_config("common/train.py").train
    assert train.max_iter > 0 and "checkpointer" in train


def test_rotated_ops_fail_with_a_clear_error():
    if not compat.extension_missing():
        pytest.skip("this Detectron2 has its C extension")
    from detectron2.layers import nms_rotated
    from detectron2.structures import RotatedBoxes, pairwise_iou_rotated

    boxes = RotatedBoxes(torch.tensor([[5.0, 5.0, 4.0, 4.0, 0.0]]))
    with pytest.raises(compat.MissingDetectron2Extension, match="box_iou_rotated is not available"):
        pairwise_iou_rotated(boxes, boxes)
    with pytest.raises(compat.MissingDetectron2Extension, match="nms_rotated needs"):
        nms_rotated(boxes.tensor, torch.ones(1), 0.5)


def test_collect_env_still_works():
    from detectron2.utils.collect_env import collect_env_info

    assert "detectron2" in collect_env_info()


def test_coco_evaluator_scores_ground_truth_at_ap_100(shared_data, tmp_path):
    from detectron2.data import DatasetCatalog
    from detectron2.data.datasets import register_coco_instances
    from detectron2.evaluation import COCOEvaluator
    from detectron2.structures import Boxes, BoxMode, Instances

    root = shared_data / "coco_tiny"
    name = "compat_test_coco_tiny_val"
    if name not in DatasetCatalog.list():
        register_coco_instances(
            name, {}, str(root / "annotations/instances_val2017.json"), str(root / "val2017")
        )
    dicts = DatasetCatalog.get(name)
    evaluator = COCOEvaluator(name, output_dir=str(tmp_path))
    assert evaluator._use_fast_impl is not compat.extension_missing()
    evaluator.reset()
    for record in dicts:
        objects = [a for a in record["annotations"] if not a.get("iscrowd", 0)]
        instances = Instances((record["height"], record["width"]))
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in objects]
        instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        instances.scores = torch.ones(len(objects))
        instances.pred_classes = torch.tensor([a["category_id"] for a in objects], dtype=torch.long)
        evaluator.process([{"image_id": record["image_id"]}], [{"instances": instances}])
    results = evaluator.evaluate()
    assert results["bbox"]["AP"] == pytest.approx(100.0)


def test_amp_trainer_runs_on_cpu_with_bfloat16():
    from detectron2.engine import AMPTrainer

    class TinyModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)
            self.autocast_seen = []

        def forward(self, batch):
            self.autocast_seen.append(torch.is_autocast_enabled("cpu"))
            return {"loss": self.linear(batch).float().pow(2).mean()}

    torch.manual_seed(0)
    model = TinyModel()
    before = model.linear.weight.detach().clone()
    data = iter([torch.randn(8, 4) for _ in range(3)])
    trainer = AMPTrainer(model, data, torch.optim.SGD(model.parameters(), lr=0.1))
    trainer.iter = 0
    trainer.storage = None

    from detectron2.utils.events import EventStorage

    with EventStorage(0) as storage:
        trainer.storage = storage
        trainer.run_step()
    assert model.autocast_seen == [True]
    assert not torch.equal(model.linear.weight, before)


def test_weights_only_load_accepts_numpy_and_args_but_not_arbitrary_objects(tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer

    model = torch.nn.Linear(2, 2)
    payload = {
        "model": model.state_dict(),
        "args": argparse.Namespace(lr=1e-4),
        "stats": np.arange(3, dtype=np.float32),
        "best": np.float64(0.5),
    }
    path = tmp_path / "checkpoint.pth"
    torch.save(payload, path)
    loaded = DetectionCheckpointer(torch.nn.Linear(2, 2)).load(str(path))
    assert loaded["args"].lr == 1e-4 and loaded["stats"].tolist() == [0, 1, 2]

    torch.save(
        {"model": model.state_dict(), "evil": types.SimpleNamespace(x=1)}, tmp_path / "bad.pth"
    )
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        torch.load(tmp_path / "bad.pth")


def _run_python(code: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_imports_without_detectron2():
    code = """
import importlib.machinery, json
find_spec = importlib.machinery.PathFinder.find_spec
def hide_detectron2(name, path=None, target=None):  # as if it were not installed
    return None if name.split(".")[0] == "detectron2" else find_spec(name, path, target)
importlib.machinery.PathFinder.find_spec = staticmethod(hide_detectron2)
import detr_efficient, detr_efficient.ops
print(json.dumps({"fixes": detr_efficient.compat.applied_fixes(),
                  "numpy_int": hasattr(__import__("numpy"), "int")}))
"""
    out = _run_python(code)
    assert out == {"fixes": ["torch.load safe globals"], "numpy_int": False}


def test_imports_with_a_built_detectron2_extension():
    code = """
import json, sys, types
sys.modules["detectron2._C"] = types.ModuleType("detectron2._C")  # a real build would be here
import detr_efficient
from detectron2.evaluation.coco_evaluation import COCOEvaluator
fixes = detr_efficient.compat.applied_fixes()
print(json.dumps({"stand_in": "detectron2._C stand-in" in fixes,
                  "evaluator_patched": "detectron2.evaluation.coco_evaluation" in fixes,
                  "wrapped": hasattr(COCOEvaluator.__init__, "__wrapped__")}))
"""
    assert _run_python(code) == {"stand_in": False, "evaluator_patched": False, "wrapped": False}


def test_apply_is_idempotent():
    before = compat.applied_fixes()
    detr_efficient.compat.apply()
    assert compat.applied_fixes() == before
