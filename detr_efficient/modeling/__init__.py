"""Detectors: the shared core (backbone adapter, matcher, criterion, heads, post-processing)
and one folder of deltas per method, registered in Detectron2's ``META_ARCH_REGISTRY``."""
