"""Two CPU processes over gloo train the toy detector in sync."""

import pytest
import torch
from conftest import TOY_CONFIG
from ddp_worker import train_and_gather
from detectron2.utils.env import seed_all_rng

from detr_efficient.engine import do_train, launch


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(toy_cfg, tmp_path):
    settings = ["model.dropout=0.0", "train.eval_period=0"]
    single = toy_cfg(*settings, name="single")
    seed_all_rng(single.train.seed)
    reference = do_train(single).model.state_dict()

    result_file = tmp_path / "ddp.pth"
    overrides = [*settings, f"train.output_dir={tmp_path / 'ddp'}"]
    launch(
        train_and_gather,
        2,
        dist_url="auto",
        backend="gloo",
        args=(str(TOY_CONFIG), overrides, str(result_file)),
    )
    result = torch.load(result_file, weights_only=True)
    assert result["backend"] == "gloo" and result["world"] == 2
    rank0, rank1 = result["weights"]
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), name  # the ranks hold identical weights
        # Same global batches as one process (the stream does not depend on the world size),
        # gradients averaged across ranks: the same training up to summation order.
        torch.testing.assert_close(value, reference[name], rtol=1e-4, atol=1e-5)
    assert (tmp_path / "ddp" / "model_final.pth").is_file()
