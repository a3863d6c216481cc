"""detr_efficient: efficient DETR-family detectors on Detectron2, with hand-written kernels.

Layers (imports flow downward only): ``engine`` / ``modeling`` / ``data`` / ``evaluation``
→ ``layers`` → ``ops`` → the compiled extension ``detr_efficient._C``. ``ops`` needs torch only.
"""

from . import compat

__version__ = "0.1.0"

compat.apply()
