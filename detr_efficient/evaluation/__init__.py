"""COCO evaluation helpers around Detectron2's ``COCOEvaluator`` (pycocotools), and model
analysis: parameters, fvcore flops with handles for the custom ops, speed and memory, and
the share of live ReLU units."""

from .model_analysis import (
    EXTRA_OP_HANDLES,
    IGNORED_OPS,
    FlopReport,
    analyze_flops,
    build_inference_model,
    count_flops,
    count_parameters,
    dummy_inputs,
    dummy_training_inputs,
    encoder_flops,
    encoder_token_counts,
    key_aware_deform_attn_flops,
    load_checkpoint,
    load_config,
    measure_speed,
    measure_training_step,
    ms_deform_attn_flops,
    top_level_flops,
)
from .relu_activity import HiddenActivity, relu_activity

__all__ = [
    "EXTRA_OP_HANDLES",
    "IGNORED_OPS",
    "FlopReport",
    "HiddenActivity",
    "analyze_flops",
    "build_inference_model",
    "count_flops",
    "count_parameters",
    "dummy_inputs",
    "dummy_training_inputs",
    "encoder_flops",
    "encoder_token_counts",
    "key_aware_deform_attn_flops",
    "load_checkpoint",
    "load_config",
    "measure_speed",
    "measure_training_step",
    "ms_deform_attn_flops",
    "relu_activity",
    "top_level_flops",
]
