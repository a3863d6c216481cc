"""COCO evaluation helpers around Detectron2's ``COCOEvaluator`` (pycocotools)."""
