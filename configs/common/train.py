"""Training settings shared by every method (``train`` in a method config).

``train_net.py`` checks these fields (``detr_efficient.engine.check_train_config``): a
misspelt or missing field is an error. Periods count iterations.
"""

train = dict(
    output_dir="./output",
    # Weights loaded before training (or evaluated with --eval-only); "" for none.
    init_checkpoint="",
    max_iter=90000,
    # Mixed precision: "bf16" (CPU or GPU, no loss scaling) or "fp16" (GPU, with GradScaler).
    amp=dict(enabled=False, dtype="bf16"),
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    # Checkpoint every `period` iterations (plus model_final); keep the newest `max_to_keep`.
    checkpointer=dict(period=5000, max_to_keep=100),
    # Evaluate on dataloader.test every `eval_period` iterations (0: only at the end).
    eval_period=5000,
    log_period=20,
    device="cuda",
    # Seeds the RNGs (+ rank) and the training data stream; negative: a random seed.
    seed=42,
    cudnn_benchmark=False,
    # Clip the global gradient norm (after unscaling) when enabled.
    clip_grad=dict(enabled=False, params=dict(max_norm=0.1, norm_type=2.0)),
    # EMA of the weights, updated every step; evaluation uses it when eval_with_ema.
    model_ema=dict(enabled=False, decay=0.999, eval_with_ema=True),
)
