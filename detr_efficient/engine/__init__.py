"""Training engine: trainer, hooks (EMA, AMP), checkpointing. Used by ``train_net.py``."""
